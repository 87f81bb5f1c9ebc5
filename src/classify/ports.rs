//! The port database: what the seeds and IANA say about each TCP and UDP port.
//!
//! The table is data, reviewed and embedded (`data/ports.tsv`, described in `data/README.md`):
//! protocol, port or range, IANA service keyword, category, the names the seeds give (trojans'
//! names for trojan ports), the seeds' advice, the sources and any correction of a seed. It is
//! parsed once at start; lookups go through one 65 536-entry index per protocol, O(1) per
//! packet. A rules file can add or override entries (see `rules`).

use std::fmt;

use serde::Serialize;

/// The embedded, reviewed table.
pub const BUILTIN_TSV: &str = include_str!("../../data/ports.tsv");

/// TCP or UDP: separate namespaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum PortProto {
    Tcp,
    Udp,
}

impl PortProto {
    pub fn name(self) -> &'static str {
        match self {
            PortProto::Tcp => "tcp",
            PortProto::Udp => "udp",
        }
    }

    pub fn parse(s: &str) -> Option<PortProto> {
        match s.trim().to_ascii_lowercase().as_str() {
            "tcp" => Some(PortProto::Tcp),
            "udp" => Some(PortProto::Udp),
            _ => None,
        }
    }

    /// The IP protocol number's namespace, if it has ports in the database.
    pub fn of_ip_proto(p: u8) -> Option<PortProto> {
        match p {
            6 => Some(PortProto::Tcp),
            17 => Some(PortProto::Udp),
            _ => None,
        }
    }
}

/// What kind of port an entry describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// A trojan's or backdoor's default port.
    Trojan,
    /// An exposed service the seeds call risky (telnet, NetBIOS, SMB, RPC, SNMP, …).
    Risky,
    /// A proxy or alternate HTTP port.
    Proxy,
    /// An ordinary service.
    Service,
}

impl Category {
    pub const ALL: [Category; 4] = [
        Category::Trojan,
        Category::Risky,
        Category::Proxy,
        Category::Service,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Category::Trojan => "trojan",
            Category::Risky => "risky",
            Category::Proxy => "proxy",
            Category::Service => "service",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.name() == s.trim())
    }
}

/// IANA's three ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RangeClass {
    /// 0–1023.
    WellKnown,
    /// 1024–49151.
    Registered,
    /// 49152–65535 (dynamic / private / ephemeral).
    Dynamic,
}

impl RangeClass {
    pub fn of(port: u16) -> RangeClass {
        match port {
            0..=1023 => RangeClass::WellKnown,
            1024..=49151 => RangeClass::Registered,
            _ => RangeClass::Dynamic,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RangeClass::WellKnown => "well-known",
            RangeClass::Registered => "registered",
            RangeClass::Dynamic => "dynamic",
        }
    }
}

/// One row of the table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PortEntry {
    pub proto: PortProto,
    /// First and last port (equal for a single port).
    pub lo: u16,
    pub hi: u16,
    /// IANA service keyword, if IANA assigns one.
    pub service: Option<String>,
    pub category: Category,
    /// Names the sources give (trojans' names for trojan ports).
    pub names: Vec<String>,
    pub advice: Option<String>,
    pub sources: Vec<String>,
    /// What a seed got wrong here, and the registry's answer.
    pub correction: Option<String>,
    /// Severity override from a rules file (1 high … 3 low), for alerts on this port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<u8>,
}

impl PortEntry {
    /// "31337/tcp" or "6970-7170/udp".
    pub fn label(&self) -> String {
        if self.lo == self.hi {
            format!("{}/{}", self.lo, self.proto.name())
        } else {
            format!("{}-{}/{}", self.lo, self.hi, self.proto.name())
        }
    }

    /// A short human name: the first of the names, else the service keyword.
    pub fn display_name(&self) -> &str {
        self.names
            .first()
            .map(String::as_str)
            .or(self.service.as_deref())
            .unwrap_or("-")
    }
}

/// A mistake in a port table, with its line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableError {
    pub line: usize,
    pub msg: String,
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.msg)
    }
}

const HEADER: &str = "proto\tport\tservice\tcategory\tnames\tadvice\tsources\tcorrection";

fn dash(s: &str) -> Option<String> {
    let s = s.trim();
    (s != "-" && !s.is_empty()).then(|| s.to_string())
}

/// Parses `N` or `N-M`.
pub fn parse_port_range(s: &str) -> Option<(u16, u16)> {
    let s = s.trim();
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
            (a <= b).then_some((a, b))
        }
        None => s.parse().ok().map(|p| (p, p)),
    }
}

/// Parses the TSV format of `data/ports.tsv`.
pub fn parse_tsv(text: &str) -> Result<Vec<PortEntry>, TableError> {
    let mut out = Vec::new();
    let mut seen_header = false;
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if !seen_header {
            if line != HEADER {
                return Err(TableError {
                    line: line_no,
                    msg: format!("expected the header `{HEADER}`"),
                });
            }
            seen_header = true;
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let err = |msg: String| TableError { line: line_no, msg };
        let [
            proto,
            port,
            service,
            category,
            names,
            advice,
            sources,
            correction,
        ] = cols[..]
        else {
            return Err(err(format!(
                "expected 8 tab-separated columns, found {}",
                cols.len()
            )));
        };
        let proto = PortProto::parse(proto).ok_or_else(|| err(format!("bad proto `{proto}`")))?;
        let (lo, hi) =
            parse_port_range(port).ok_or_else(|| err(format!("bad port or range `{port}`")))?;
        let category =
            Category::parse(category).ok_or_else(|| err(format!("bad category `{category}`")))?;
        let list = |s: &str, sep: char| -> Vec<String> {
            dash(s)
                .map(|s| {
                    s.split(sep)
                        .map(|x| x.trim().to_string())
                        .filter(|x| !x.is_empty())
                        .collect()
                })
                .unwrap_or_default()
        };
        out.push(PortEntry {
            proto,
            lo,
            hi,
            service: dash(service),
            category,
            names: list(names, '|'),
            advice: dash(advice),
            sources: list(sources, ','),
            correction: dash(correction),
            severity: None,
        });
    }
    if !seen_header {
        return Err(TableError {
            line: 1,
            msg: "no header line".into(),
        });
    }
    Ok(out)
}

/// The database: entries and an O(1) index per protocol.
#[derive(Clone, Debug)]
pub struct PortDb {
    entries: Vec<PortEntry>,
    /// For each protocol and port, 1 + the entry's index, or 0.
    index: [Vec<u16>; 2],
}

impl PortDb {
    /// The built-in table.
    pub fn builtin() -> Result<PortDb, TableError> {
        PortDb::from_entries(parse_tsv(BUILTIN_TSV)?)
    }

    /// Builds the index; later entries override earlier ones where they overlap.
    pub fn from_entries(entries: Vec<PortEntry>) -> Result<PortDb, TableError> {
        if entries.len() >= usize::from(u16::MAX) {
            return Err(TableError {
                line: 0,
                msg: "too many port entries".into(),
            });
        }
        let mut index = [vec![0u16; 65536], vec![0u16; 65536]];
        for (i, e) in entries.iter().enumerate() {
            let [tcp, udp] = &mut index;
            let slot = match e.proto {
                PortProto::Tcp => tcp,
                PortProto::Udp => udp,
            };
            for p in e.lo..=e.hi {
                if let Some(x) = slot.get_mut(usize::from(p)) {
                    *x = (i + 1) as u16;
                }
            }
        }
        Ok(PortDb { entries, index })
    }

    /// Adds or replaces entries (a rules file's `[[port]]` tables): each new entry takes over
    /// its ports.
    pub fn overlay(&mut self, extra: Vec<PortEntry>) -> Result<(), TableError> {
        let mut entries = std::mem::take(&mut self.entries);
        entries.extend(extra);
        *self = PortDb::from_entries(entries)?;
        Ok(())
    }

    fn slot(&self, proto: PortProto) -> &[u16] {
        let [tcp, udp] = &self.index;
        match proto {
            PortProto::Tcp => tcp,
            PortProto::Udp => udp,
        }
    }

    /// The entry for a port, in O(1).
    #[inline]
    pub fn lookup(&self, proto: PortProto, port: u16) -> Option<&PortEntry> {
        let i = *self.slot(proto).get(usize::from(port))?;
        if i == 0 {
            return None;
        }
        self.entries.get(usize::from(i - 1))
    }

    /// The entry for an IP protocol number and port (None for protocols without ports).
    #[inline]
    pub fn lookup_ip(&self, ip_proto: u8, port: u16) -> Option<&PortEntry> {
        self.lookup(PortProto::of_ip_proto(ip_proto)?, port)
    }

    /// Every entry that is in effect (not wholly overridden), in table order.
    pub fn entries(&self) -> impl Iterator<Item = &PortEntry> {
        self.entries.iter().enumerate().filter_map(|(i, e)| {
            let idx = self.slot(e.proto);
            let live =
                (e.lo..=e.hi).any(|p| idx.get(usize::from(p)).copied() == Some((i + 1) as u16));
            live.then_some(e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_table_parses_and_indexes() {
        let db = PortDb::builtin().unwrap();
        let bo = db.lookup(PortProto::Tcp, 31337).unwrap();
        assert_eq!(bo.category, Category::Trojan);
        assert!(bo.names.iter().any(|n| n == "Back Orifice"));
        assert_eq!(
            db.lookup(PortProto::Udp, 31337).unwrap().category,
            Category::Trojan
        );
        assert_eq!(
            db.lookup(PortProto::Tcp, 23).unwrap().category,
            Category::Risky
        );
        // The seeds' mistakes are corrected in the data.
        assert_eq!(
            db.lookup(PortProto::Tcp, 109).unwrap().service.as_deref(),
            Some("pop2")
        );
        assert_eq!(
            db.lookup(PortProto::Tcp, 110).unwrap().service.as_deref(),
            Some("pop3")
        );
        assert_eq!(
            db.lookup(PortProto::Udp, 161).unwrap().service.as_deref(),
            Some("snmp")
        );
        let http = db.lookup(PortProto::Tcp, 80).unwrap();
        assert_eq!(http.service.as_deref(), Some("http"));
        assert!(http.correction.as_deref().unwrap_or("").contains("UDP"));
        // A port nobody mentions.
        assert!(db.lookup(PortProto::Tcp, 47123).is_none());
    }

    #[test]
    fn ranges_and_overlays() {
        let mut db = PortDb::builtin().unwrap();
        assert!(db.lookup(PortProto::Udp, 7000).is_some()); // RealAudio 6970-7170
        let extra = parse_tsv(&format!(
            "{HEADER}\ntcp\t4444-4445\t-\ttrojan\tMetasploit\t-\tlocal\t-\n"
        ))
        .unwrap();
        db.overlay(extra).unwrap();
        assert_eq!(
            db.lookup(PortProto::Tcp, 4445).unwrap().names,
            vec!["Metasploit"]
        );
    }

    #[test]
    fn table_errors_name_the_line() {
        let e = parse_tsv(&format!(
            "# c\n{HEADER}\ntcp\t70000\t-\tservice\t-\t-\t-\t-\n"
        ))
        .unwrap_err();
        assert_eq!(e.line, 3);
        let e = parse_tsv(&format!("{HEADER}\ntcp\t1\t-\n")).unwrap_err();
        assert!(e.msg.contains("8 tab-separated"));
        assert!(parse_tsv("tcp\t1").is_err());
    }

    #[test]
    fn range_classes() {
        assert_eq!(RangeClass::of(1023), RangeClass::WellKnown);
        assert_eq!(RangeClass::of(1024), RangeClass::Registered);
        assert_eq!(RangeClass::of(49151), RangeClass::Registered);
        assert_eq!(RangeClass::of(49152), RangeClass::Dynamic);
    }
}
