//! The rules file (TOML): local knowledge layered on the built-in port table.
//!
//! ```toml
//! [alerts]
//! fold_window = 3600          # seconds: repeats of one alert within this are one line
//!
//! [severity]                  # per rule, 1 = high … 3 = low
//! trojan-probe = 2
//!
//! [[port]]                    # add or override a port entry
//! proto = "tcp"
//! port = "4444"               # or 4444, or "4444-4450"
//! category = "trojan"         # trojan | risky | proxy | service
//! names = ["Metasploit default handler"]
//! severity = 1                # optional: for every alert on this port
//! advice = "a listener here is almost never legitimate"
//!
//! [[allow]]                   # no alert when every given field matches
//! src = "10.0.0.5/32"         # address or CIDR
//! port = 22                   # responder port or range
//! proto = "tcp"
//! rule = "risky-service-established"   # optional: only this rule
//! comment = "our SSH bastion"
//! ```
//!
//! `synwatch rules check FILE` validates a file and points at the line of any mistake.

use std::fmt;
use std::net::IpAddr;

use serde::Deserialize;

use crate::classify::ports::{Category, PortEntry, PortProto, parse_port_range};
use crate::decode::Addr;
use crate::detect::rule::Rule;
use crate::detect::scan::ScanConfig;
use crate::time::Micros;

/// A mistake in a rules file.
#[derive(Debug)]
pub struct RulesError {
    pub path: String,
    pub line: Option<usize>,
    pub msg: String,
}

impl fmt::Display for RulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.path, l, self.msg),
            None => write!(f, "{}: {}", self.path, self.msg),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRules {
    #[serde(default)]
    alerts: RawAlerts,
    #[serde(default)]
    scan: RawScan,
    #[serde(default)]
    severity: std::collections::BTreeMap<String, u8>,
    #[serde(default)]
    port: Vec<RawPort>,
    #[serde(default)]
    allow: Vec<RawAllow>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
    fold_window: Option<f64>,
}

/// `[scan]`: thresholds of the scan, flood and backscatter detector.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawScan {
    idle: Option<f64>,
    vertical_ports: Option<u64>,
    burst_ports: Option<u64>,
    burst_window: Option<f64>,
    horizontal_hosts: Option<u64>,
    block_pairs: Option<u64>,
    flood_attempts: Option<u64>,
    flood_window: Option<f64>,
    backscatter_hosts: Option<u64>,
    max_tracked: Option<usize>,
    memory_budget_mb: Option<usize>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PortSpec {
    Number(i64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    proto: String,
    port: PortSpec,
    category: String,
    #[serde(default)]
    names: Vec<String>,
    service: Option<String>,
    severity: Option<u8>,
    advice: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAllow {
    src: Option<String>,
    dst: Option<String>,
    port: Option<PortSpec>,
    proto: Option<String>,
    rule: Option<String>,
    #[allow(dead_code)]
    comment: Option<String>,
}

/// An address block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: Addr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().ok()?)),
            None => (s.trim(), None),
        };
        let addr = match a.parse::<IpAddr>().ok()? {
            IpAddr::V4(v) => Addr::v4(v.octets()),
            IpAddr::V6(v) => Addr::v6(v.octets()),
        };
        let max = if addr.v6 { 128 } else { 32 };
        let prefix = p.unwrap_or(max);
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    pub fn contains(&self, a: &Addr) -> bool {
        if a.v6 != self.addr.v6 {
            return false;
        }
        let full = usize::from(self.prefix / 8);
        let rest = self.prefix % 8;
        if a.bytes.get(..full) != self.addr.bytes.get(..full) {
            return false;
        }
        if rest == 0 {
            return true;
        }
        let mask = 0xffu8 << (8 - rest);
        match (a.bytes.get(full), self.addr.bytes.get(full)) {
            (Some(x), Some(y)) => x & mask == y & mask,
            _ => false,
        }
    }
}

/// One allow-list entry: suppresses alerts it matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allow {
    pub src: Option<Cidr>,
    pub dst: Option<Cidr>,
    pub ports: Option<(u16, u16)>,
    pub proto: Option<PortProto>,
    pub rule: Option<Rule>,
}

impl Allow {
    /// For an episode (scan, flood, backscatter): `src` is the scanner or the single flood
    /// source, `dst` the single target or the victim, `port` the single port; a field the
    /// episode lacks never matches a field the entry gives.
    pub fn matches_episode(
        &self,
        src: Option<Addr>,
        dst: Option<Addr>,
        port: Option<u16>,
        rule: Rule,
    ) -> bool {
        let addr_ok = |c: &Option<Cidr>, a: Option<Addr>| match (c, a) {
            (None, _) => true,
            (Some(c), Some(a)) => c.contains(&a),
            (Some(_), None) => false,
        };
        addr_ok(&self.src, src)
            && addr_ok(&self.dst, dst)
            && match (self.ports, port) {
                (None, _) => true,
                (Some((lo, hi)), Some(p)) => (lo..=hi).contains(&p),
                (Some(_), None) => false,
            }
            && self.rule.is_none_or(|r| r == rule)
    }

    pub fn matches(
        &self,
        src: &Addr,
        dst: &Addr,
        port: u16,
        proto: Option<PortProto>,
        rule: Rule,
    ) -> bool {
        self.src.is_none_or(|c| c.contains(src))
            && self.dst.is_none_or(|c| c.contains(dst))
            && self.ports.is_none_or(|(lo, hi)| (lo..=hi).contains(&port))
            && self.proto.is_none_or(|p| Some(p) == proto)
            && self.rule.is_none_or(|r| r == rule)
    }
}

/// The rules in effect.
#[derive(Clone, Debug)]
pub struct Rules {
    /// Repeats of one alert within this much packet time are folded into one.
    pub fold_window: Micros,
    /// Severity per port rule (index: `Rule::index`).
    pub severity: [u8; Rule::ALL.len()],
    pub ports: Vec<PortEntry>,
    pub allow: Vec<Allow>,
    pub scan: ScanConfig,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            fold_window: Micros::from_secs(3600),
            severity: Rule::ALL.map(|r| r.default_severity()),
            ports: Vec::new(),
            allow: Vec::new(),
            scan: ScanConfig::default(),
        }
    }
}

fn line_of(text: &str, byte: usize) -> usize {
    text.get(..byte.min(text.len()))
        .map_or(1, |s| s.matches('\n').count() + 1)
}

/// Finds the line where `[[table]]` number `n` (0-based) starts, for errors found after
/// parsing.
fn table_line(text: &str, table: &str, n: usize) -> Option<usize> {
    let head = format!("[[{table}]]");
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with(&head))
        .nth(n)
        .map(|(i, _)| i + 1)
}

/// The line of `key` inside `[[table]]` number `n`, else the table's own line.
fn key_line(text: &str, table: &str, n: usize, key: &str) -> Option<usize> {
    let start = table_line(text, table, n)?;
    let found = text
        .lines()
        .enumerate()
        .skip(start)
        .take_while(|(_, l)| !l.trim_start().starts_with('['))
        .find(|(_, l)| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|(i, _)| i + 1);
    found.or(Some(start))
}

fn port_spec(p: &PortSpec) -> Option<(u16, u16)> {
    match p {
        PortSpec::Number(n) => u16::try_from(*n).ok().map(|p| (p, p)),
        PortSpec::Text(s) => parse_port_range(s),
    }
}

impl Rules {
    /// The severity in effect for `rule`.
    pub fn severity_of(&self, rule: Rule) -> u8 {
        self.severity
            .get(rule.index())
            .copied()
            .unwrap_or_else(|| rule.default_severity())
    }

    /// Parses a rules file's text; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<Rules, RulesError> {
        let raw: RawRules = toml::from_str(text).map_err(|e| RulesError {
            path: path.to_string(),
            line: e.span().map(|s| line_of(text, s.start)),
            msg: e.message().trim().to_string(),
        })?;
        let mut rules = Rules::default();
        let err = |line: Option<usize>, msg: String| RulesError {
            path: path.to_string(),
            line,
            msg,
        };
        let find = |key: &str| {
            text.lines()
                .position(|l| l.trim_start().starts_with(key))
                .map(|i| i + 1)
        };
        if let Some(w) = raw.alerts.fold_window {
            if !w.is_finite() || !(0.0..=1e9).contains(&w) {
                return Err(err(
                    find("fold_window"),
                    format!("fold_window {w} is out of range (0 to 1e9 seconds)"),
                ));
            }
            rules.fold_window = Micros((w * 1e6).round() as i64);
        }
        let secs = |v: Option<f64>, key: &str, dflt: Micros| -> Result<Micros, RulesError> {
            match v {
                None => Ok(dflt),
                Some(w) if w.is_finite() && (0.0..=1e9).contains(&w) => {
                    Ok(Micros((w * 1e6).round() as i64))
                }
                Some(w) => Err(err(
                    find(key),
                    format!("{key} {w} is out of range (0 to 1e9 seconds)"),
                )),
            }
        };
        let count = |v: Option<u64>, key: &str, dflt: u64| -> Result<u64, RulesError> {
            match v {
                None => Ok(dflt),
                Some(0) => Err(err(find(key), format!("{key} must be at least 1"))),
                Some(n) => Ok(n),
            }
        };
        let d = ScanConfig::default();
        let sc = &raw.scan;
        rules.scan = ScanConfig {
            idle: secs(sc.idle, "idle", d.idle)?,
            vertical_ports: count(sc.vertical_ports, "vertical_ports", d.vertical_ports)?,
            burst_ports: count(sc.burst_ports, "burst_ports", d.burst_ports)?,
            burst_window: secs(sc.burst_window, "burst_window", d.burst_window)?,
            horizontal_hosts: count(sc.horizontal_hosts, "horizontal_hosts", d.horizontal_hosts)?,
            block_pairs: count(sc.block_pairs, "block_pairs", d.block_pairs)?,
            flood_attempts: count(sc.flood_attempts, "flood_attempts", d.flood_attempts)?,
            flood_window: secs(sc.flood_window, "flood_window", d.flood_window)?,
            backscatter_hosts: count(
                sc.backscatter_hosts,
                "backscatter_hosts",
                d.backscatter_hosts,
            )?,
            max_tracked: count(
                sc.max_tracked.map(|n| n as u64),
                "max_tracked",
                d.max_tracked as u64,
            )? as usize,
            memory_budget: match sc.memory_budget_mb {
                None => d.memory_budget,
                Some(0) => {
                    return Err(err(
                        find("memory_budget_mb"),
                        "memory_budget_mb must be at least 1".into(),
                    ));
                }
                Some(mb) => mb.saturating_mul(1 << 20),
            },
        };
        for (name, sev) in &raw.severity {
            let rule = Rule::parse(name).ok_or_else(|| {
                err(
                    find(name),
                    format!(
                        "unknown rule `{name}` in [severity]; known: {}",
                        Rule::names().join(", ")
                    ),
                )
            })?;
            if !(1..=3).contains(sev) {
                return Err(err(
                    find(name),
                    format!("severity {sev} for `{name}`: use 1 (high), 2 or 3 (low)"),
                ));
            }
            if let Some(s) = rules.severity.get_mut(rule.index()) {
                *s = *sev;
            }
        }
        for (i, p) in raw.port.iter().enumerate() {
            let at = |key: &str| key_line(text, "port", i, key);
            let proto = PortProto::parse(&p.proto)
                .ok_or_else(|| err(at("proto"), format!("proto `{}`: use tcp or udp", p.proto)))?;
            let (lo, hi) = port_spec(&p.port).ok_or_else(|| {
                err(
                    at("port"),
                    "port: use a number 0-65535 or a range \"N-M\"".into(),
                )
            })?;
            let category = Category::parse(&p.category).ok_or_else(|| {
                err(
                    at("category"),
                    format!(
                        "category `{}`: use trojan, risky, proxy or service",
                        p.category
                    ),
                )
            })?;
            if let Some(s) = p.severity
                && !(1..=3).contains(&s)
            {
                return Err(err(
                    at("severity"),
                    format!("severity {s}: use 1 (high), 2 or 3 (low)"),
                ));
            }
            rules.ports.push(PortEntry {
                proto,
                lo,
                hi,
                service: p.service.clone(),
                category,
                names: p.names.clone(),
                advice: p.advice.clone(),
                sources: vec![format!("rules:{path}")],
                correction: None,
                severity: p.severity,
            });
        }
        for (i, a) in raw.allow.iter().enumerate() {
            let line = table_line(text, "allow", i);
            let at = |key: &str| key_line(text, "allow", i, key);
            let cidr = |s: &Option<String>, what: &str| -> Result<Option<Cidr>, RulesError> {
                match s {
                    None => Ok(None),
                    Some(s) => Cidr::parse(s).map(Some).ok_or_else(|| {
                        err(at(what), format!("{what} `{s}` is not an address or CIDR"))
                    }),
                }
            };
            let allow =
                Allow {
                    src: cidr(&a.src, "src")?,
                    dst: cidr(&a.dst, "dst")?,
                    ports: match &a.port {
                        None => None,
                        Some(p) => Some(port_spec(p).ok_or_else(|| {
                            err(
                                at("port"),
                                "port: use a number 0-65535 or a range \"N-M\"".into(),
                            )
                        })?),
                    },
                    proto: match &a.proto {
                        None => None,
                        Some(p) => Some(PortProto::parse(p).ok_or_else(|| {
                            err(at("proto"), format!("proto `{p}`: use tcp or udp"))
                        })?),
                    },
                    rule: match &a.rule {
                        None => None,
                        Some(r) => Some(Rule::parse(r).ok_or_else(|| {
                            err(
                                at("rule"),
                                format!("unknown rule `{r}`; known: {}", Rule::names().join(", ")),
                            )
                        })?),
                    },
                };
            if allow
                == (Allow {
                    src: None,
                    dst: None,
                    ports: None,
                    proto: None,
                    rule: None,
                })
            {
                return Err(err(
                    line,
                    "an [[allow]] entry needs at least one of src, dst, port, proto, rule".into(),
                ));
            }
            rules.allow.push(allow);
        }
        Ok(rules)
    }

    /// Reads and parses a rules file.
    pub fn load(path: &str) -> Result<Rules, RulesError> {
        let text = std::fs::read_to_string(path).map_err(|e| RulesError {
            path: path.to_string(),
            line: None,
            msg: format!("cannot read: {e}"),
        })?;
        Rules::parse(&text, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[alerts]
fold_window = 60

[severity]
trojan-probe = 2

[[port]]
proto = "tcp"
port = "4444-4445"
category = "trojan"
names = ["Metasploit"]
severity = 1

[[allow]]
src = "10.0.0.0/8"
port = 22
proto = "tcp"
comment = "bastions"
"#;

    #[test]
    fn example_parses() {
        let r = Rules::parse(EXAMPLE, "x.toml").unwrap();
        assert_eq!(r.fold_window, Micros::from_secs(60));
        assert_eq!(r.severity[Rule::TrojanProbe.index()], 2);
        assert_eq!(r.ports.len(), 1);
        assert_eq!((r.ports[0].lo, r.ports[0].hi), (4444, 4445));
        let a = &r.allow[0];
        let inside = Addr::v4([10, 1, 2, 3]);
        let outside = Addr::v4([11, 1, 2, 3]);
        let rule = Rule::RiskyEstablished;
        assert!(a.matches(&inside, &outside, 22, Some(PortProto::Tcp), rule));
        assert!(!a.matches(&outside, &inside, 22, Some(PortProto::Tcp), rule));
        assert!(!a.matches(&inside, &outside, 23, Some(PortProto::Tcp), rule));
    }

    #[test]
    fn mistakes_point_at_their_line() {
        let bad = EXAMPLE.replace("category = \"trojan\"", "category = \"trojen\"");
        let e = Rules::parse(&bad, "x.toml").unwrap_err();
        assert_eq!(e.line, Some(11), "{e}");
        assert!(
            e.to_string().starts_with("x.toml:11: category `trojen`"),
            "{e}"
        );

        let bad = EXAMPLE.replace("src = \"10.0.0.0/8\"", "src = \"10.0.0.0/33\"");
        let e = Rules::parse(&bad, "x.toml").unwrap_err();
        assert_eq!(e.line, Some(16), "{e}");

        let bad = EXAMPLE.replace("fold_window = 60", "fold_windw = 60");
        let e = Rules::parse(&bad, "x.toml").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");

        let bad = EXAMPLE.replace("trojan-probe = 2", "trojan-probes = 2");
        let e = Rules::parse(&bad, "x.toml").unwrap_err();
        assert_eq!(e.line, Some(6), "{e}");

        let e = Rules::parse("[[allow]]\ncomment = \"x\"\n", "y.toml").unwrap_err();
        assert_eq!(e.line, Some(1), "{e}");
    }

    #[test]
    fn cidr_matching() {
        let c = Cidr::parse("192.168.1.0/25").unwrap();
        assert!(c.contains(&Addr::v4([192, 168, 1, 127])));
        assert!(!c.contains(&Addr::v4([192, 168, 1, 128])));
        let c6 = Cidr::parse("fd00::/8").unwrap();
        assert!(c6.contains(&Addr::v6([
            0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1
        ])));
        assert!(!c6.contains(&Addr::v4([253, 0, 0, 1])));
        assert!(Cidr::parse("nope").is_none());
    }
}
