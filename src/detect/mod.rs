//! Detection: alerts from finished connections, folded so a flood yields a handful of lines.
//!
//! Each connection record is judged when it is written ([`port_alerts`]). An alert is keyed by
//! (rule, source, destination, destination port, protocol); repeats of a key within the fold
//! window (packet time, `[alerts] fold_window` in the rules file, default one hour) are counted
//! into the first, and the alert is written once when the window closes or the input ends,
//! with the count, the first and last time and the totals. At most [`MAX_OPEN_FOLDS`] keys are
//! open at once; beyond that the oldest is written early (counted in
//! [`DetectStats::folds_flushed_early`]), so memory stays bounded under any flood.

pub mod port_alerts;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::classify::ports::{PortDb, PortProto};
use crate::decode::Addr;
use crate::flow::ConnRecord;
use crate::rules::Rules;
use crate::time::Micros;
use port_alerts::PortRule;

/// Open fold keys kept at most.
pub const MAX_OPEN_FOLDS: usize = 100_000;

/// One alert, possibly standing for several connections.
#[derive(Clone, Debug)]
pub struct Alert {
    pub rule: PortRule,
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
    rule: PortRule,
    src: Addr,
    dst: Addr,
    dport: u16,
    proto: u8,
}

/// One line of the summary's alert table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopAlert {
    pub rule: PortRule,
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
    /// Alerts by severity (index 0 = severity 1).
    pub by_severity: [u64; 3],
    /// Folds written before their window closed because too many were open.
    pub folds_flushed_early: u64,
}

pub struct Detector {
    db: Arc<PortDb>,
    rules: Rules,
    open: HashMap<FoldKey, Alert, foldhash::fast::FixedState>,
    /// Keys by the time their window opened (stale entries skipped).
    order: VecDeque<(FoldKey, Micros)>,
    /// Alerts and connections written, by (rule, severity, port, protocol).
    tally: HashMap<(PortRule, u8, u16, u8), (u64, u64), foldhash::fast::FixedState>,
    pub stats: DetectStats,
}

impl Detector {
    pub fn new(db: Arc<PortDb>, rules: Rules) -> Self {
        Detector {
            db,
            rules,
            open: HashMap::with_hasher(foldhash::fast::FixedState::with_seed(0xa1e7)),
            order: VecDeque::new(),
            tally: HashMap::with_hasher(foldhash::fast::FixedState::with_seed(0x7a11)),
            stats: DetectStats::default(),
        }
    }

    pub fn db(&self) -> &Arc<PortDb> {
        &self.db
    }

    /// Judges a finished connection; alerts whose window has closed go to `out`.
    pub fn on_record(&mut self, r: &ConnRecord, out: &mut Vec<Alert>) {
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
            .unwrap_or(self.rules.severity[rule.index()])
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
            Alert {
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

    fn emit(&mut self, a: Alert, out: &mut Vec<Alert>) {
        self.stats.alerts += 1;
        let t = self
            .tally
            .entry((a.rule, a.severity, a.first.resp.port, a.first.ip_proto))
            .or_default();
        t.0 += 1;
        t.1 += a.count;
        if let Some(n) = self
            .stats
            .by_severity
            .get_mut(usize::from(a.severity.clamp(1, 3) - 1))
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

    /// Writes every open alert (end of input or shutdown), oldest first.
    pub fn finish(&mut self, out: &mut Vec<Alert>) {
        while !self.open.is_empty() {
            let before = self.open.len();
            self.pop_oldest(out);
            if self.open.len() == before {
                break;
            }
        }
    }
}
