//! Detection: alerts from finished connections, folded so a flood yields a handful of lines.
//!
//! Each connection record is judged when it is written: by the port rules ([`port_alerts`]) and
//! by the scan, flood and backscatter detector ([`scan`]), which writes one alert per episode.
//! The low-severity port probes (`trojan-probe`, `trojan-udp-unanswered`) of a source that
//! scanned are folded into its scan alert instead of being written one by one.
//!
//! A port alert is keyed by
//! (rule, source, destination, destination port, protocol); repeats of a key within the fold
//! window (packet time, `[alerts] fold_window` in the rules file, default one hour) are counted
//! into the first, and the alert is written once when the window closes or the input ends,
//! with the count, the first and last time and the totals. At most [`MAX_OPEN_FOLDS`] keys are
//! open at once; beyond that the oldest is written early (counted in
//! [`DetectStats::folds_flushed_early`]), so memory stays bounded under any flood.

pub mod distinct;
pub mod port_alerts;
pub mod rule;
pub mod scan;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::classify::ports::{PortDb, PortProto};
use crate::decode::Addr;
use crate::flow::ConnRecord;
use crate::rules::Rules;
use crate::time::Micros;
use rule::Rule;

/// Open fold keys kept at most.
pub const MAX_OPEN_FOLDS: usize = 100_000;

/// One alert.
#[derive(Clone, Debug)]
pub enum Alert {
    /// A port rule, possibly standing for several connections.
    Port(PortAlert),
    /// A scan, flood or backscatter episode.
    Episode {
        rule: Rule,
        severity: u8,
        episode: scan::Episode,
    },
}

impl Alert {
    /// When the alert's first connection or episode began.
    pub fn first_seen(&self) -> Micros {
        match self {
            Alert::Port(a) => a.first_seen,
            Alert::Episode { episode, .. } => match episode {
                scan::Episode::Scan(s) => s.first,
                scan::Episode::Flood(f) => f.first,
                scan::Episode::Backscatter(b) => b.first,
            },
        }
    }

    pub fn rule(&self) -> Rule {
        match self {
            Alert::Port(a) => a.rule,
            Alert::Episode { rule, .. } => *rule,
        }
    }

    pub fn severity(&self) -> u8 {
        match self {
            Alert::Port(a) => a.severity,
            Alert::Episode { severity, .. } => *severity,
        }
    }
}

/// A port rule's alert, possibly standing for several connections.
#[derive(Clone, Debug)]
pub struct PortAlert {
    pub rule: Rule,
    pub severity: u8,
    /// The first connection that raised it.
    pub first: ConnRecord,
    /// How many connections raised it in the window.
    pub count: u64,
    pub first_seen: Micros,
    pub last_seen: Micros,
    /// Totals over every connection folded in.
    pub pkts: u64,
    pub bytes: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FoldKey {
    rule: Rule,
    src: Addr,
    dst: Addr,
    dport: u16,
    proto: u8,
}

/// One line of the summary's alert table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopAlert {
    pub rule: Rule,
    pub severity: u8,
    /// "31337/tcp Back Orifice".
    pub label: String,
    /// Alerts written (after folding) and connections behind them.
    pub alerts: u64,
    pub conns: u64,
}

/// Counters of the detection stage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DetectStats {
    /// Connections that matched a rule.
    pub matched: u64,
    /// Of those, suppressed by an allow entry.
    pub allowed: u64,
    /// Alerts written (after folding).
    pub alerts: u64,
    /// Low-severity port probe alerts folded into their source's scan alert.
    pub folded_into_scans: u64,
    /// Alerts by severity (index 0 = severity 1).
    pub by_severity: [u64; 3],
    /// Folds written before their window closed because too many were open.
    pub folds_flushed_early: u64,
}

pub struct Detector {
    db: Arc<PortDb>,
    rules: Rules,
    scan: scan::ScanDetector,
    episodes: Vec<scan::Episode>,
    open: HashMap<FoldKey, PortAlert, foldhash::fast::FixedState>,
    /// Keys by the time their window opened (stale entries skipped).
    order: VecDeque<(FoldKey, Micros)>,
    /// Alerts and connections written, by (rule, severity, port, protocol).
    tally: HashMap<(Rule, u8, u16, u8), (u64, u64), foldhash::fast::FixedState>,
    /// Episode alerts written, by (rule, severity, label): alerts and probes/attempts.
    episode_tally: std::collections::BTreeMap<(Rule, u8, String), (u64, u64)>,
    pub stats: DetectStats,
}

impl Detector {
    pub fn new(db: Arc<PortDb>, rules: Rules) -> Self {
        Detector {
            scan: scan::ScanDetector::new(db.clone(), rules.scan),
            episodes: Vec::new(),
            db,
            rules,
            open: HashMap::with_hasher(foldhash::fast::FixedState::with_seed(0xa1e7)),
            order: VecDeque::new(),
            tally: HashMap::with_hasher(foldhash::fast::FixedState::with_seed(0x7a11)),
            episode_tally: std::collections::BTreeMap::new(),
            stats: DetectStats::default(),
        }
    }

    pub fn db(&self) -> &Arc<PortDb> {
        &self.db
    }

    /// Live capture: report scans and floods when they first meet a threshold, too.
    pub fn set_early_alerts(&mut self, on: bool) {
        self.scan.early = on;
    }

    pub fn scan_stats(&self) -> scan::ScanStats {
        self.scan.stats
    }

    /// Judges a finished connection; alerts whose window has closed go to `out`.
    pub fn on_record(&mut self, r: &ConnRecord, out: &mut Vec<Alert>) {
        self.scan.on_record(r, &mut self.episodes);
        self.drain_episodes(out);
        self.expire(r.end, out);
        let Some((rule, entry)) = port_alerts::judge(r, &self.db) else {
            return;
        };
        self.stats.matched += 1;
        let proto = PortProto::of_ip_proto(r.ip_proto);
        if self
            .rules
            .allow
            .iter()
            .any(|a| a.matches(&r.orig.addr, &r.resp.addr, r.resp.port, proto, rule))
        {
            self.stats.allowed += 1;
            return;
        }
        let severity = entry
            .severity
            .unwrap_or(self.rules.severity_of(rule))
            .clamp(1, 3);
        let key = FoldKey {
            rule,
            src: r.orig.addr,
            dst: r.resp.addr,
            dport: r.resp.port,
            proto: r.ip_proto,
        };
        let pkts = r.orig_pkts + r.resp_pkts;
        let bytes = r.orig_bytes + r.resp_bytes;
        if let Some(a) = self.open.get_mut(&key) {
            a.count += 1;
            a.first_seen = a.first_seen.min(r.start);
            a.last_seen = a.last_seen.max(r.end);
            a.pkts += pkts;
            a.bytes += bytes;
            return;
        }
        if self.open.len() >= MAX_OPEN_FOLDS {
            self.stats.folds_flushed_early += 1;
            self.pop_oldest(out);
        }
        self.open.insert(
            key,
            PortAlert {
                rule,
                severity,
                first: *r,
                count: 1,
                first_seen: r.start,
                last_seen: r.end,
                pkts,
                bytes,
            },
        );
        self.order.push_back((key, r.end));
    }

    /// Ends what is due by `now` without a record: finished scan episodes and closed folds.
    pub fn expire_all(&mut self, now: Micros, out: &mut Vec<Alert>) {
        self.scan.expire(now, &mut self.episodes);
        self.drain_episodes(out);
        self.expire(now, out);
    }

    /// Writes every alert whose fold window closed by `now`.
    pub fn expire(&mut self, now: Micros, out: &mut Vec<Alert>) {
        while let Some(&(key, opened)) = self.order.front() {
            if opened.saturating_add(self.rules.fold_window) > now {
                break;
            }
            self.order.pop_front();
            if let Some(a) = self.open.remove(&key) {
                self.emit(a, out);
            }
        }
    }

    fn pop_oldest(&mut self, out: &mut Vec<Alert>) {
        while let Some((key, _)) = self.order.pop_front() {
            if let Some(a) = self.open.remove(&key) {
                self.emit(a, out);
                return;
            }
        }
    }

    /// Turns finished episodes into alerts (unless an allow entry covers them).
    fn drain_episodes(&mut self, out: &mut Vec<Alert>) {
        for ep in std::mem::take(&mut self.episodes) {
            let (rule, src, dst, port) = match &ep {
                scan::Episode::Scan(s) => (
                    Rule::PortScan,
                    Some(s.scanner),
                    (s.targets == 1)
                        .then(|| s.target_sample.first().copied())
                        .flatten(),
                    (s.ports == 1)
                        .then(|| s.port_sample.first().copied())
                        .flatten(),
                ),
                scan::Episode::Flood(f) => (
                    Rule::SynFlood,
                    (f.sources == 1)
                        .then(|| f.source_sample.first().copied())
                        .flatten(),
                    Some(f.target),
                    Some(f.port),
                ),
                scan::Episode::Backscatter(b) => (Rule::Backscatter, None, Some(b.victim), None),
            };
            let allowed = self
                .rules
                .allow
                .iter()
                .any(|a| a.matches_episode(src, dst, port, rule));
            if allowed {
                self.stats.allowed += 1;
                continue;
            }
            let severity = self.rules.severity_of(rule).clamp(1, 3);
            self.stats.alerts += 1;
            if let Some(n) = self.stats.by_severity.get_mut(usize::from(severity - 1)) {
                *n += 1;
            }
            let label = match &ep {
                scan::Episode::Scan(s) => format!(
                    "{} ({} scan, {})",
                    s.scanner.to_ip(),
                    s.technique.name(),
                    s.shape
                ),
                scan::Episode::Flood(f) => format!("{}:{}", f.target.to_ip(), f.port),
                scan::Episode::Backscatter(b) => format!("to {}", b.victim.to_ip()),
            };
            let t = self
                .episode_tally
                .entry((rule, severity, label))
                .or_default();
            t.0 += 1;
            t.1 += match &ep {
                scan::Episode::Scan(s) => s.probes,
                scan::Episode::Flood(f) => f.attempts,
                scan::Episode::Backscatter(b) => b.synacks + b.resets,
            };
            out.push(Alert::Episode {
                rule,
                severity,
                episode: ep,
            });
        }
    }

    fn emit(&mut self, a: PortAlert, out: &mut Vec<Alert>) {
        // A scanner's low-severity probes are part of its scan alert.
        if matches!(a.rule, Rule::TrojanProbe | Rule::TrojanUdpUnanswered)
            && self.scan.is_scanner(&a.first.orig.addr, a.first_seen)
        {
            self.stats.folded_into_scans += a.count;
            return;
        }
        self.stats.alerts += 1;
        let t = self
            .tally
            .entry((a.rule, a.severity, a.first.resp.port, a.first.ip_proto))
            .or_default();
        t.0 += 1;
        t.1 += a.count;
        let a = Alert::Port(a);
        if let Some(n) = self
            .stats
            .by_severity
            .get_mut(usize::from(a.severity().clamp(1, 3) - 1))
        {
            *n += 1;
        }
        out.push(a);
    }

    /// The alerts written so far, most severe and most frequent first.
    pub fn top_alerts(&self) -> Vec<TopAlert> {
        let mut v: Vec<TopAlert> = self
            .tally
            .iter()
            .map(|(&(rule, severity, port, proto), &(alerts, conns))| {
                let p = PortProto::of_ip_proto(proto).map_or("?", |p| p.name());
                let name = self
                    .db
                    .lookup_ip(proto, port)
                    .map_or("-", |e| e.display_name());
                TopAlert {
                    rule,
                    severity,
                    label: format!("{port}/{p} {name}"),
                    alerts,
                    conns,
                }
            })
            .collect();
        v.extend(
            self.episode_tally
                .iter()
                .map(|((rule, severity, label), &(alerts, conns))| TopAlert {
                    rule: *rule,
                    severity: *severity,
                    label: label.clone(),
                    alerts,
                    conns,
                }),
        );
        v.sort_by(|a, b| {
            (a.severity, std::cmp::Reverse(a.conns), a.rule, &a.label).cmp(&(
                b.severity,
                std::cmp::Reverse(b.conns),
                b.rule,
                &b.label,
            ))
        });
        v
    }

    /// Writes every open alert (end of input or shutdown), oldest first; scan episodes first,
    /// so the port probes of a scanner fold into its scan.
    pub fn finish(&mut self, out: &mut Vec<Alert>) {
        self.scan.finish(&mut self.episodes);
        self.drain_episodes(out);
        while !self.open.is_empty() {
            let before = self.open.len();
            self.pop_oldest(out);
            if self.open.len() == before {
                break;
            }
        }
    }
}
