//! The run summary: what was read, what could not be decoded and why, and what the
//! connections showed.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::time::Micros;

use super::tops::{TopHosts, TopPorts};
use crate::capture::file::SourceReport;
use crate::decode::Undecodable;
use crate::decode::defrag::DefragStats;
use crate::decode::tunnel::TunnelKind;
use crate::detect::scan::ScanStats;
use crate::detect::{DetectStats, TopAlert};
use crate::flow::key::proto;
use crate::flow::{ConnRecord, ConnState, FlowStats, Handshake};

/// Counters gathered during a run.
pub struct Summary {
    pub packets: u64,
    pub wire_bytes: u64,
    pub decoded: u64,
    pub undecodable: [u64; Undecodable::ALL.len()],
    pub bad_l4_checksums: u64,
    pub truncated_packets: u64,
    /// Packets found inside each kind of tunnel (index: `TunnelKind::index`).
    pub tunnelled: [u64; TunnelKind::ALL.len()],
    /// Tunnel payloads that did not decode (counted once each, by reason).
    pub inner_undecodable: [u64; Undecodable::ALL.len()],
    /// Packets whose tunnels were nested deeper than synwatch opens.
    pub tunnel_too_deep: u64,
    /// IP fragment reassembly.
    pub defrag: DefragStats,
    /// Alerts.
    pub detect: DetectStats,
    pub scan: ScanStats,
    pub top_alerts: Vec<TopAlert>,
    pub conns: u64,
    pub by_proto: [u64; 4], // tcp, udp, icmp, other
    pub by_state: [u64; ConnState::ALL.len()],
    pub completed: u64,
    pub half_open: u64,
    pub rejected: u64,
    pub unanswered: u64,
    pub syn_synack: Histogram<u64>,
    pub synack_ack: Histogram<u64>,
    pub flow_stats: FlowStats,
    pub sources: Vec<SourceReport>,
    /// The interface of a live capture.
    pub live_interface: Option<String>,
    /// Hosts by connections (both ends) and destination ports, for the top lists.
    pub hosts: TopHosts,
    pub ports: TopPorts,
    /// Length of the top lists.
    pub top_n: usize,
    /// The port database, for names in the top lists.
    pub db: Option<std::sync::Arc<crate::classify::ports::PortDb>>,
    /// Alerts written, for the report's timeline: (start, severity), at most [`KEEP_ALERTS`].
    pub alert_times: Vec<(Micros, u8)>,
    /// Scan episodes written, for the report, at most [`KEEP_SCANS`].
    pub scans: Vec<crate::detect::scan::ScanReport>,
    /// Colour the severities (standard output is a terminal, NO_COLOR unset).
    pub colour: bool,
    /// Analysis workers the run used.
    pub workers: usize,
}

/// Alerts remembered for the report's timeline.
pub const KEEP_ALERTS: usize = 100_000;
/// Scans remembered for the report.
pub const KEEP_SCANS: usize = 1_000;

// Constant arguments, exercised by every run and test: `expect` cannot fire on input.
#[allow(clippy::expect_used)]
fn histogram() -> Histogram<u64> {
    // 1 µs .. 1 hour at 3 significant digits, auto-resizing past that.
    let mut h = Histogram::new_with_bounds(1, 3_600_000_000, 3)
        .expect("constant histogram bounds are valid");
    h.auto(true);
    h
}

impl Default for Summary {
    fn default() -> Self {
        Summary {
            packets: 0,
            wire_bytes: 0,
            decoded: 0,
            undecodable: [0; Undecodable::ALL.len()],
            bad_l4_checksums: 0,
            truncated_packets: 0,
            tunnelled: [0; TunnelKind::ALL.len()],
            inner_undecodable: [0; Undecodable::ALL.len()],
            tunnel_too_deep: 0,
            defrag: DefragStats::default(),
            detect: DetectStats::default(),
            scan: ScanStats::default(),
            top_alerts: Vec::new(),
            conns: 0,
            by_proto: [0; 4],
            by_state: [0; ConnState::ALL.len()],
            completed: 0,
            half_open: 0,
            rejected: 0,
            unanswered: 0,
            syn_synack: histogram(),
            synack_ack: histogram(),
            flow_stats: FlowStats::default(),
            sources: Vec::new(),
            live_interface: None,
            hosts: TopHosts::default(),
            ports: TopPorts::default(),
            top_n: 5,
            db: None,
            alert_times: Vec::new(),
            scans: Vec::new(),
            colour: false,
            workers: 1,
        }
    }
}

impl Summary {
    /// Adds a worker's packet-level counts (decoding, fragments, tunnels, its flow table).
    /// `peak_active` becomes the sum of the workers' peaks: an upper bound of the true peak.
    pub fn add_packet_counts(&mut self, w: &Summary) {
        fn add<const N: usize>(a: &mut [u64; N], b: &[u64; N]) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
        self.packets += w.packets;
        self.wire_bytes += w.wire_bytes;
        self.decoded += w.decoded;
        add(&mut self.undecodable, &w.undecodable);
        self.bad_l4_checksums += w.bad_l4_checksums;
        self.truncated_packets += w.truncated_packets;
        add(&mut self.tunnelled, &w.tunnelled);
        add(&mut self.inner_undecodable, &w.inner_undecodable);
        self.tunnel_too_deep += w.tunnel_too_deep;
        let (d, e) = (&mut self.defrag, &w.defrag);
        d.fragments += e.fragments;
        d.reassembled += e.reassembled;
        d.timed_out += e.timed_out;
        d.evicted += e.evicted;
        d.malformed += e.malformed;
        d.overlaps += e.overlaps;
        let (f, g) = (&mut self.flow_stats, &w.flow_stats);
        f.created += g.created;
        f.evicted += g.evicted;
        f.reused += g.reused;
        f.non_first_fragments += g.non_first_fragments;
        f.peak_active += g.peak_active;
    }

    pub fn undecodable_total(&self) -> u64 {
        self.undecodable.iter().sum()
    }

    /// Accounts one finished connection.
    /// Notes an alert written, for the report.
    pub fn note_alert(&mut self, a: &crate::detect::Alert) {
        if self.alert_times.len() < KEEP_ALERTS {
            self.alert_times.push((a.first_seen(), a.severity()));
        }
        if let crate::detect::Alert::Episode {
            episode: crate::detect::scan::Episode::Scan(s),
            ..
        } = a
            && !s.in_progress
            && self.scans.len() < KEEP_SCANS
        {
            self.scans.push(s.clone());
        }
    }

    pub fn record(&mut self, r: &ConnRecord) {
        self.conns += 1;
        let bytes = r.orig_ip_bytes.saturating_add(r.resp_ip_bytes);
        self.hosts.add(&r.orig.addr, bytes);
        self.hosts.add(&r.resp.addr, bytes);
        self.ports.add(r.ip_proto, r.resp.port);
        let p = match r.ip_proto {
            proto::TCP => 0,
            proto::UDP => 1,
            proto::ICMP | proto::ICMPV6 => 2,
            _ => 3,
        };
        crate::counters::add(&mut self.by_proto, p, 1);
        crate::counters::add(&mut self.by_state, r.conn_state.index(), 1);
        match r.handshake {
            Handshake::Completed => self.completed += 1,
            Handshake::HalfOpen => self.half_open += 1,
            Handshake::Rejected => self.rejected += 1,
            Handshake::Unanswered => self.unanswered += 1,
            Handshake::None => {}
        }
        if let Some(us) = r.syn_synack_us {
            let _ = self.syn_synack.record(us.max(1));
        }
        if let Some(us) = r.synack_ack_us {
            let _ = self.synack_ack.record(us.max(1));
        }
    }

    /// The human summary.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let files = self.sources.len();
        let _ = writeln!(s, "synwatch summary");
        match &self.live_interface {
            Some(iface) => {
                let _ = writeln!(
                    s,
                    "  input        live capture on {iface}, {} packets, {} bytes on the wire",
                    self.packets, self.wire_bytes
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "  input        {} file{}, {} packets, {} bytes on the wire",
                    files,
                    if files == 1 { "" } else { "s" },
                    self.packets,
                    self.wire_bytes
                );
            }
        }
        for src in &self.sources {
            if let Some(msg) = src.describe() {
                let _ = writeln!(s, "  read error   {msg}");
            }
            for w in &src.warnings {
                let _ = writeln!(s, "  warning      {}: {w}", src.name);
            }
        }
        let _ = writeln!(
            s,
            "  decoded      {} packets ({} undecodable, {} cut by the snap length)",
            self.decoded,
            self.undecodable_total(),
            self.truncated_packets
        );
        for r in Undecodable::ALL {
            let n = crate::counters::get(&self.undecodable, r.index());
            if n > 0 {
                let _ = writeln!(s, "    {:<28} {n}", r.name());
            }
        }
        if self.bad_l4_checksums > 0 {
            let _ = writeln!(
                s,
                "  checksums    {} packets with a bad TCP/UDP/ICMP checksum skipped",
                self.bad_l4_checksums
            );
        }
        let f = &self.defrag;
        if f.fragments > 0 {
            let _ = writeln!(
                s,
                "  fragments    {} IP fragments: {} datagrams reassembled, {} timed out, {} dropped at the limits, {} unusable, {} overlapping",
                f.fragments, f.reassembled, f.timed_out, f.evicted, f.malformed, f.overlaps
            );
        }
        if self.flow_stats.non_first_fragments > 0 {
            let _ = writeln!(
                s,
                "               {} non-first fragments left unreassembled (no ports; not tracked)",
                self.flow_stats.non_first_fragments
            );
        }
        let tunnelled: u64 = self.tunnelled.iter().sum();
        if tunnelled > 0 {
            let kinds: Vec<String> = TunnelKind::ALL
                .iter()
                .filter(|k| crate::counters::get(&self.tunnelled, k.index()) > 0)
                .map(|k| {
                    format!(
                        "{} {}",
                        k.name(),
                        crate::counters::get(&self.tunnelled, k.index())
                    )
                })
                .collect();
            let _ = writeln!(
                s,
                "  tunnels      {} inner packets ({})",
                tunnelled,
                kinds.join(", ")
            );
            let bad: u64 = self.inner_undecodable.iter().sum();
            if bad > 0 || self.tunnel_too_deep > 0 {
                let _ = writeln!(
                    s,
                    "               {} inner packets undecodable, {} nested deeper than {}",
                    bad,
                    self.tunnel_too_deep,
                    crate::analyse::MAX_TUNNEL_DEPTH
                );
            }
        }
        let _ = writeln!(
            s,
            "  connections  {} (tcp {}, udp {}, icmp {}, other {})",
            self.conns, self.by_proto[0], self.by_proto[1], self.by_proto[2], self.by_proto[3]
        );
        for st in ConnState::ALL {
            let n = crate::counters::get(&self.by_state, st.index());
            if n > 0 {
                let _ = writeln!(s, "    {:<7} {:>8}  {}", st.name(), n, st.meaning());
            }
        }
        let _ = writeln!(
            s,
            "  handshakes   {} completed, {} half-open (SYN-ACK, no ACK), {} rejected, {} unanswered",
            self.completed, self.half_open, self.rejected, self.unanswered
        );
        for (name, h) in [
            ("SYN→SYN-ACK", &self.syn_synack),
            ("SYN-ACK→ACK", &self.synack_ack),
        ] {
            if !h.is_empty() {
                let _ = writeln!(
                    s,
                    "  {:<12} p50 {} µs, p90 {} µs, p99 {} µs, max {} µs ({} handshakes)",
                    name,
                    h.value_at_quantile(0.5),
                    h.value_at_quantile(0.9),
                    h.value_at_quantile(0.99),
                    h.max(),
                    h.len()
                );
            }
        }
        if self.flow_stats.evicted > 0 {
            let _ = writeln!(
                s,
                "  evicted      {} flows (flow table full; each still written)",
                self.flow_stats.evicted
            );
        }
        let d = &self.detect;
        let _ = writeln!(
            s,
            "  alerts       {} ({} high, {} medium, {} low){}",
            d.alerts,
            d.by_severity[0],
            d.by_severity[1],
            d.by_severity[2],
            if d.allowed > 0 {
                format!("; {} more allowed by the rules file", d.allowed)
            } else {
                String::new()
            }
        );
        let sc = &self.scan;
        if sc.scans + sc.floods + sc.backscatter > 0 || sc.evicted > 0 {
            let _ = writeln!(
                s,
                "               {} scan{}, {} SYN flood{}, {} backscatter episode{} ({} probes seen){}",
                sc.scans,
                if sc.scans == 1 { "" } else { "s" },
                sc.floods,
                if sc.floods == 1 { "" } else { "s" },
                sc.backscatter,
                if sc.backscatter == 1 { "" } else { "s" },
                sc.probes,
                if sc.evicted > 0 {
                    format!("; {} tracked sources ended early by the limits", sc.evicted)
                } else {
                    String::new()
                }
            );
        }
        if d.folded_into_scans > 0 {
            let _ = writeln!(
                s,
                "               {} low-severity port probe alerts folded into their scans",
                d.folded_into_scans
            );
        }
        for t in self.top_alerts.iter().take(self.top_n.max(1) * 2) {
            let sev = match (t.severity, self.colour) {
                (1, true) => "\x1b[1;31mhigh\x1b[0m  ",
                (2, true) => "\x1b[33mmedium\x1b[0m",
                (_, true) => "\x1b[2mlow\x1b[0m   ",
                (1, false) => "high",
                (2, false) => "medium",
                _ => "low",
            };
            let _ = writeln!(
                s,
                "    {:<6} {:<26} {:<28} {} alert{}, {} connection{}",
                sev,
                t.rule.id(),
                t.label,
                t.alerts,
                if t.alerts == 1 { "" } else { "s" },
                t.conns,
                if t.conns == 1 { "" } else { "s" }
            );
        }
        if d.folds_flushed_early > 0 {
            let _ = writeln!(
                s,
                "    ({} alerts written before their fold window closed: too many open at once)",
                d.folds_flushed_early
            );
        }
        if !self.scans.is_empty() && self.top_n > 0 {
            let _ = writeln!(s, "  scans");
            for sc in self.scans.iter().take(self.top_n) {
                let open: Vec<String> = sc
                    .open
                    .iter()
                    .take(6)
                    .map(|f| {
                        let name = self
                            .db
                            .as_ref()
                            .and_then(|db| db.lookup_ip(f.proto, f.port))
                            .map(|e| {
                                if e.category == crate::classify::ports::Category::Trojan {
                                    e.display_name().to_string()
                                } else {
                                    e.service
                                        .clone()
                                        .unwrap_or_else(|| e.display_name().to_string())
                                }
                            })
                            .unwrap_or_else(|| "?".to_string());
                        format!("{}/{name}", f.port)
                    })
                    .collect();
                let _ = writeln!(
                    s,
                    "    {} {} scan: {} port{} on {} host{}, {}",
                    sc.scanner.to_ip(),
                    sc.technique.name(),
                    sc.ports,
                    if sc.ports == 1 { "" } else { "s" },
                    sc.targets,
                    if sc.targets == 1 { "" } else { "s" },
                    if open.is_empty() {
                        "nothing found open".to_string()
                    } else {
                        format!(
                            "found {}{} open",
                            open.join(", "),
                            if sc.open_total as usize > open.len() {
                                format!(" (+{})", sc.open_total as usize - open.len())
                            } else {
                                String::new()
                            }
                        )
                    }
                );
            }
        }
        let n = self.top_n;
        if n > 0 && self.conns > 0 {
            let _ = writeln!(s, "  top talkers  (connections as either end, IP bytes)");
            for (a, c, b) in self.hosts.top(n) {
                let _ = writeln!(
                    s,
                    "    {:<40} {:>9} conns {:>12}",
                    a.to_ip().to_string(),
                    c,
                    human_bytes(b)
                );
            }
            let _ = writeln!(s, "  top ports    (connections to the port)");
            for (p, port, c) in self.ports.top(n) {
                let proto = if p == proto::TCP { "tcp" } else { "udp" };
                let (name, cat) = self
                    .db
                    .as_ref()
                    .and_then(|db| db.lookup_ip(p, port))
                    .map_or(("-".to_string(), "-"), |e| {
                        let name = if e.category == crate::classify::ports::Category::Trojan {
                            e.display_name().to_string()
                        } else {
                            e.service
                                .clone()
                                .unwrap_or_else(|| e.display_name().to_string())
                        };
                        (name, e.category.name())
                    });
                let _ = writeln!(
                    s,
                    "    {:<12} {:<20} {:<8} {:>9} conns",
                    format!("{port}/{proto}"),
                    name,
                    cat,
                    c
                );
            }
        }
        s
    }
}

/// 1234567 → "1.2 MB".
fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    let unit = UNITS.get(u).copied().unwrap_or("B");
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {unit}")
    }
}

/// The summary for machines (`--summary-json`): the same figures as [`Summary::render`].
pub mod json {
    use std::collections::BTreeMap;

    use serde::Serialize;

    use super::Summary;
    use crate::counters;
    use crate::decode::Undecodable;
    use crate::decode::tunnel::TunnelKind;
    use crate::flow::ConnState;

    #[derive(Serialize)]
    pub struct SummaryJson {
        pub input: Input,
        pub decode: Decode,
        pub connections: Connections,
        pub handshakes: Handshakes,
        pub alerts: Alerts,
        pub top_talkers: Vec<Talker>,
        pub top_ports: Vec<PortCount>,
    }

    #[derive(Serialize)]
    pub struct Input {
        pub packets: u64,
        pub wire_bytes: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub live_interface: Option<String>,
        pub files: Vec<FileJson>,
    }

    #[derive(Serialize)]
    pub struct FileJson {
        pub name: String,
        pub packets: u64,
        /// `complete`, `damaged`, `unreadable` or `unsupported`.
        pub outcome: &'static str,
        pub messages: Vec<String>,
    }

    #[derive(Serialize)]
    pub struct Decode {
        pub decoded: u64,
        pub undecodable: BTreeMap<&'static str, u64>,
        pub cut_by_snaplen: u64,
        pub bad_checksums: u64,
        pub fragments: u64,
        pub reassembled: u64,
        pub tunnelled: BTreeMap<&'static str, u64>,
    }

    #[derive(Serialize)]
    pub struct Connections {
        pub total: u64,
        pub tcp: u64,
        pub udp: u64,
        pub icmp: u64,
        pub other: u64,
        pub by_state: BTreeMap<&'static str, u64>,
        pub created: u64,
        pub evicted: u64,
        pub peak_active: u64,
    }

    #[derive(Serialize)]
    pub struct Handshakes {
        pub completed: u64,
        pub half_open: u64,
        pub rejected: u64,
        pub unanswered: u64,
        pub syn_synack_us: Option<Rtt>,
        pub synack_ack_us: Option<Rtt>,
    }

    #[derive(Serialize)]
    pub struct Rtt {
        pub count: u64,
        pub p50: u64,
        pub p90: u64,
        pub p99: u64,
        pub max: u64,
    }

    #[derive(Serialize)]
    pub struct Alerts {
        pub total: u64,
        pub high: u64,
        pub medium: u64,
        pub low: u64,
        pub allowed: u64,
        pub scans: u64,
        pub floods: u64,
        pub backscatter: u64,
        pub top: Vec<AlertLine>,
    }

    #[derive(Serialize)]
    pub struct AlertLine {
        pub rule: &'static str,
        pub severity: u8,
        pub label: String,
        pub alerts: u64,
        pub connections: u64,
    }

    #[derive(Serialize)]
    pub struct Talker {
        pub host: std::net::IpAddr,
        pub connections: u64,
        pub ip_bytes: u64,
    }

    #[derive(Serialize)]
    pub struct PortCount {
        pub port: u16,
        pub proto: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub service: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub category: Option<&'static str>,
        pub connections: u64,
    }

    fn rtt(h: &hdrhistogram::Histogram<u64>) -> Option<Rtt> {
        (!h.is_empty()).then(|| Rtt {
            count: h.len(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
        })
    }

    impl Summary {
        pub fn to_json(&self) -> SummaryJson {
            use crate::capture::file::SourceOutcome;
            let n = self.top_n;
            SummaryJson {
                input: Input {
                    packets: self.packets,
                    wire_bytes: self.wire_bytes,
                    live_interface: self.live_interface.clone(),
                    files: self
                        .sources
                        .iter()
                        .map(|s| FileJson {
                            name: s.name.clone(),
                            packets: s.packets,
                            outcome: match s.outcome {
                                SourceOutcome::Complete => "complete",
                                SourceOutcome::Damaged(_) => "damaged",
                                SourceOutcome::Unreadable(_) => "unreadable",
                                SourceOutcome::Unsupported(_) => "unsupported",
                            },
                            messages: s.messages(),
                        })
                        .collect(),
                },
                decode: Decode {
                    decoded: self.decoded,
                    undecodable: Undecodable::ALL
                        .iter()
                        .map(|u| (u.name(), counters::get(&self.undecodable, u.index())))
                        .filter(|(_, n)| *n > 0)
                        .collect(),
                    cut_by_snaplen: self.truncated_packets,
                    bad_checksums: self.bad_l4_checksums,
                    fragments: self.defrag.fragments,
                    reassembled: self.defrag.reassembled,
                    tunnelled: TunnelKind::ALL
                        .iter()
                        .map(|k| (k.name(), counters::get(&self.tunnelled, k.index())))
                        .filter(|(_, n)| *n > 0)
                        .collect(),
                },
                connections: Connections {
                    total: self.conns,
                    tcp: counters::get(&self.by_proto, 0),
                    udp: counters::get(&self.by_proto, 1),
                    icmp: counters::get(&self.by_proto, 2),
                    other: counters::get(&self.by_proto, 3),
                    by_state: ConnState::ALL
                        .iter()
                        .map(|s| (s.name(), counters::get(&self.by_state, s.index())))
                        .filter(|(_, n)| *n > 0)
                        .collect(),
                    created: self.flow_stats.created,
                    evicted: self.flow_stats.evicted,
                    peak_active: self.flow_stats.peak_active,
                },
                handshakes: Handshakes {
                    completed: self.completed,
                    half_open: self.half_open,
                    rejected: self.rejected,
                    unanswered: self.unanswered,
                    syn_synack_us: rtt(&self.syn_synack),
                    synack_ack_us: rtt(&self.synack_ack),
                },
                alerts: Alerts {
                    total: self.detect.alerts,
                    high: counters::get(&self.detect.by_severity, 0),
                    medium: counters::get(&self.detect.by_severity, 1),
                    low: counters::get(&self.detect.by_severity, 2),
                    allowed: self.detect.allowed,
                    scans: self.scan.scans,
                    floods: self.scan.floods,
                    backscatter: self.scan.backscatter,
                    top: self
                        .top_alerts
                        .iter()
                        .take(n.max(1) * 2)
                        .map(|t| AlertLine {
                            rule: t.rule.id(),
                            severity: t.severity,
                            label: t.label.clone(),
                            alerts: t.alerts,
                            connections: t.conns,
                        })
                        .collect(),
                },
                top_talkers: self
                    .hosts
                    .top(n)
                    .into_iter()
                    .map(|(a, c, b)| Talker {
                        host: a.to_ip(),
                        connections: c,
                        ip_bytes: b,
                    })
                    .collect(),
                top_ports: self
                    .ports
                    .top(n)
                    .into_iter()
                    .map(|(p, port, c)| {
                        let e = self.db.as_ref().and_then(|db| db.lookup_ip(p, port));
                        PortCount {
                            port,
                            proto: if p == 6 { "tcp" } else { "udp" },
                            service: e.and_then(|e| e.service.clone()),
                            category: e.map(|e| e.category.name()),
                            connections: c,
                        }
                    })
                    .collect(),
            }
        }
    }
}
