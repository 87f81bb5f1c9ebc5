//! Scans, SYN floods and backscatter, from finished connection records.
//!
//! **Probes.** A record is a probe when its originator tried something and got nothing useful:
//! a SYN (history `S`) with no payload from the originator, whatever came back (SYN-ACK then
//! RST: a half-open "SYN" probe; handshake completed and closed at once: a "connect" probe; RST:
//! closed; nothing: filtered); or a packet without SYN carrying no payload whose flags are a
//! stealth probe's (none: NULL; FIN: FIN; FIN+PSH+URG: Xmas; FIN+ACK: Maimon; ACK: ACK or
//! window — these two send the same packets and differ only in how nmap reads the RST's window,
//! so synwatch names the pair after the replies); or UDP with no UDP answer. SYN and connect
//! probes are told apart only where a port answered; a scan whose ports all stayed closed is
//! called a SYN scan.
//!
//! **Scans** are counted per source, over an episode that lasts while probes keep coming less
//! than [`ScanConfig::idle`] apart (5 minutes, Zeek's `port_scan_interval`). A source scans when
//! it probed at least [`ScanConfig::vertical_ports`] distinct ports on one host (15, Zeek's
//! `port_scan_threshold`), or [`ScanConfig::burst_ports`] distinct ports on one host within
//! [`ScanConfig::burst_window`] of the first (8 in 10 s: a burst no client makes by accident,
//! and what a short UDP scan looks like), or one port on at least [`ScanConfig::horizontal_hosts`] hosts (25,
//! Zeek's `addr_scan_threshold` and bro-simple-scan's `scan_threshold`), or at least
//! [`ScanConfig::block_pairs`] distinct (host, port) pairs spread over several hosts and ports
//! (50). One alert is written per episode when it ends, with the totals.
//!
//! **SYN floods** are counted per destination (host, port), whatever the sources: at least
//! [`ScanConfig::flood_attempts`] failed or half-open SYNs within [`ScanConfig::flood_window`]
//! (200 in 10 s). The alert gives the rate, the number of sources (spoofed floods have many) and
//! how many SYNs the target answered.
//!
//! **Backscatter** is SYN-ACKs and RSTs arriving unasked (the recipient never sent a SYN):
//! the footprint of someone spoofing the recipient's address. Counted per recipient; at least
//! [`ScanConfig::backscatter_hosts`] distinct senders (20) make an alert. Such records are never
//! probes, so backscatter is not called a scan.
//!
//! **Memory** is bounded: every set is a [`DistinctSet`]; at most [`ScanConfig::max_tracked`]
//! sources, destinations and recipients are tracked, and all sets together stay within
//! [`ScanConfig::memory_budget`] bytes. Beyond either, the least recently active is ended early
//! (its alert written if it qualified) and counted in [`ScanStats::evicted`].

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Arc;

use super::distinct::DistinctSet;
use crate::classify::ports::{Category, PortDb};
use crate::counters;
use crate::decode::Addr;
use crate::flow::key::proto;
use crate::flow::{ConnRecord, Handshake};
use crate::time::Micros;

/// Thresholds and limits (the rules file's `[scan]` section).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScanConfig {
    pub idle: Micros,
    pub vertical_ports: u64,
    /// A faster vertical rule: this many distinct ports on one host ...
    pub burst_ports: u64,
    /// ... within this long of the first probe of that host.
    pub burst_window: Micros,
    pub horizontal_hosts: u64,
    pub block_pairs: u64,
    pub flood_attempts: u64,
    pub flood_window: Micros,
    pub backscatter_hosts: u64,
    pub max_tracked: usize,
    pub memory_budget: usize,
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            idle: Micros::from_secs(300),
            vertical_ports: 15,
            burst_ports: 8,
            burst_window: Micros::from_secs(10),
            horizontal_hosts: 25,
            block_pairs: 50,
            flood_attempts: 200,
            flood_window: Micros::from_secs(10),
            backscatter_hosts: 20,
            max_tracked: 100_000,
            memory_budget: 256 << 20,
        }
    }
}

/// How a probe was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Technique {
    Syn,
    Connect,
    Fin,
    Null,
    Xmas,
    Ack,
    Maimon,
    Window,
    Udp,
}

impl Technique {
    pub const ALL: [Technique; 9] = [
        Technique::Syn,
        Technique::Connect,
        Technique::Fin,
        Technique::Null,
        Technique::Xmas,
        Technique::Ack,
        Technique::Maimon,
        Technique::Window,
        Technique::Udp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Technique::Syn => "SYN",
            Technique::Connect => "connect",
            Technique::Fin => "FIN",
            Technique::Null => "NULL",
            Technique::Xmas => "Xmas",
            Technique::Ack => "ACK/window",
            Technique::Maimon => "Maimon",
            Technique::Window => "window",
            Technique::Udp => "UDP",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What a probe's target did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// SYN-ACK (TCP) or a UDP answer: the port is open.
    Open,
    /// RST: closed (or, for ACK probes, unfiltered).
    Reset,
    /// Nothing came back.
    Silent,
}

/// A SYN probe whose open/closed answer cannot tell SYN from connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Known(Technique),
    SynOrConnect,
}

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;
const URG: u8 = 0x20;

/// The probe a record is, if it is one.
fn probe_of(r: &ConnRecord) -> Option<(Kind, Outcome)> {
    if r.orig_pkts == 0 {
        return None;
    }
    match r.ip_proto {
        proto::TCP => {
            let rf = r.resp_tcp_flags;
            if r.history.as_bytes().contains(&b'S') {
                if r.orig_bytes > 0 {
                    return None; // the originator said something: a conversation
                }
                if rf & (SYN | ACK) == SYN | ACK {
                    let kind = if r.handshake == Handshake::Completed {
                        Technique::Connect
                    } else {
                        Technique::Syn
                    };
                    return Some((Kind::Known(kind), Outcome::Open));
                }
                let out = if rf & RST != 0 {
                    Outcome::Reset
                } else {
                    Outcome::Silent
                };
                return Some((Kind::SynOrConnect, out));
            }
            if r.orig_bytes > 0 || r.resp_bytes > 0 || r.orig_pkts > 3 {
                return None;
            }
            let of = r.orig_tcp_flags & (FIN | SYN | RST | PSH | ACK | URG);
            let t = match of {
                0 => Technique::Null,
                FIN => Technique::Fin,
                x if x == FIN | PSH | URG => Technique::Xmas,
                x if x == FIN | ACK => Technique::Maimon,
                ACK => Technique::Ack,
                _ => return None,
            };
            let out = if rf & RST != 0 {
                Outcome::Reset
            } else {
                Outcome::Silent
            };
            Some((Kind::Known(t), out))
        }
        proto::UDP => {
            let out = if r.resp_pkts > 0 {
                Outcome::Open
            } else {
                Outcome::Silent
            };
            Some((Kind::Known(Technique::Udp), out))
        }
        _ => None,
    }
}

/// One open port a scan found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub host: Addr,
    pub port: u16,
    pub proto: u8,
}

/// A finished scan episode.
#[derive(Clone, Debug)]
pub struct ScanReport {
    pub scanner: Addr,
    /// `vertical` (one host), `horizontal` (one port) or `block`.
    pub shape: &'static str,
    pub technique: Technique,
    pub by_technique: Vec<(Technique, u64)>,
    pub targets: u64,
    pub target_sample: Vec<Addr>,
    pub ports: u64,
    pub port_sample: Vec<u16>,
    pub probes: u64,
    pub open: Vec<Found>,
    pub open_total: u64,
    /// Trojan/backdoor ports among the ports probed (their individual alerts are folded here).
    pub trojan_ports: Vec<u16>,
    pub proto: u8,
    pub first: Micros,
    pub last: Micros,
    pub pkts: u64,
    /// True when a count is a sketch's estimate.
    pub approximate: bool,
    /// Written when the scan first met a threshold (live capture); the final report follows.
    pub in_progress: bool,
}

/// A finished SYN flood episode.
#[derive(Clone, Debug)]
pub struct FloodReport {
    pub target: Addr,
    pub port: u16,
    pub attempts: u64,
    pub answered: u64,
    pub sources: u64,
    pub source_sample: Vec<Addr>,
    pub peak_window_attempts: u64,
    pub first: Micros,
    pub last: Micros,
    pub approximate: bool,
    /// Written when the flood first met its threshold (live capture); the final report follows.
    pub in_progress: bool,
}

/// A finished backscatter episode.
#[derive(Clone, Debug)]
pub struct BackscatterReport {
    pub victim: Addr,
    pub senders: u64,
    pub sender_sample: Vec<Addr>,
    pub synacks: u64,
    pub resets: u64,
    pub first: Micros,
    pub last: Micros,
    pub approximate: bool,
}

/// What the scan detector reports.
#[derive(Clone, Debug)]
pub enum Episode {
    Scan(ScanReport),
    Flood(FloodReport),
    Backscatter(BackscatterReport),
}

/// Counters of the scan detector.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanStats {
    pub probes: u64,
    pub scans: u64,
    pub floods: u64,
    pub backscatter: u64,
    /// Tracked sources, destinations or recipients ended early by the limits.
    pub evicted: u64,
}

fn addr_key(a: &Addr) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in a.bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h ^ u64::from(a.v6)
}

/// The [`addr_key`]s of the last two addresses asked for: a scanner's target and a flood's
/// source come back probe after probe, and the hash goes byte by byte (16 dependent
/// multiplications).
struct AddrKeys([(Addr, u64); 2]);

impl Default for AddrKeys {
    fn default() -> Self {
        let zero = (Addr::default(), addr_key(&Addr::default()));
        AddrKeys([zero, zero])
    }
}

impl AddrKeys {
    fn get(&mut self, a: &Addr) -> u64 {
        let [first, second] = &mut self.0;
        if first.0 == *a {
            return first.1;
        }
        if second.0 == *a {
            std::mem::swap(first, second);
            return first.1;
        }
        *second = *first;
        *first = (*a, addr_key(a));
        first.1
    }
}

const SAMPLE: usize = 20;
const OPEN_KEPT: usize = 256;

/// One probe, as the scanner state needs it.
#[derive(Clone, Copy, Debug)]
struct Probe {
    target: Addr,
    /// `addr_key(&target)`.
    target_key: u64,
    port: u16,
    proto: u8,
    open: bool,
    trojan: bool,
    start: Micros,
}

/// A source seen probing. Most sources of a spoofed flood probe once: they keep only counters
/// and that first probe; the sets are allocated at the second probe.
#[derive(Default)]
struct Scanner {
    first: Micros,
    last: Micros,
    probes: u64,
    pkts: u64,
    kinds: [u64; 9],
    syn_or_connect: u64,
    udp: u64,
    tcp: u64,
    first_probe: Option<Probe>,
    detail: Option<Box<Detail>>,
    /// An in-progress alert was written for this episode.
    announced: bool,
}

/// What a source probed, once it probed more than once.
#[derive(Default)]
struct Detail {
    /// Distinct ports per target (first targets only), with the time of the target's first probe.
    per_target: HashMap<Addr, (Micros, DistinctSet), foldhash::fast::FixedState>,
    /// A target got `burst_ports` distinct ports within `burst_window`.
    burst: bool,
    /// Distinct targets per port (first ports only).
    per_port: HashMap<u16, DistinctSet, foldhash::fast::FixedState>,
    targets: DistinctSet,
    ports: DistinctSet,
    /// The target and port of the last probe: a scan probes one host's ports or one port's
    /// hosts in runs, and inserting the value just inserted again changes no set.
    last_target: Option<Addr>,
    last_port: Option<u16>,
    pairs: DistinctSet,
    target_sample: Vec<Addr>,
    open: Vec<Found>,
    open_total: u64,
    open_seen: DistinctSet,
    trojan_ports: Vec<u16>,
    max_ports_one_host: u64,
    max_hosts_one_port: u64,
}

/// Per-key detail kept for at most this many targets (ports) per scanner.
const DETAIL_KEYS: usize = 1024;

impl Detail {
    fn apply(&mut self, p: &Probe, cfg: &ScanConfig) {
        let pkey = (u64::from(p.proto) << 16) | u64::from(p.port);
        let target = p.target_key;
        if self.last_target != Some(p.target) {
            self.last_target = Some(p.target);
            if self.targets.insert(target) && self.target_sample.len() < SAMPLE {
                self.target_sample.push(p.target);
            }
        }
        if self.last_port != Some(p.port) {
            self.last_port = Some(p.port);
            self.ports.insert(u64::from(p.port));
        }
        self.pairs
            .insert(target ^ pkey.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        if self.per_target.len() < DETAIL_KEYS || self.per_target.contains_key(&p.target) {
            let (first, set) = self
                .per_target
                .entry(p.target)
                .or_insert_with(|| (p.start, DistinctSet::default()));
            set.insert(u64::from(p.port));
            let n = set.len();
            self.max_ports_one_host = self.max_ports_one_host.max(n);
            if n >= cfg.burst_ports && p.start.saturating_sub(*first) <= cfg.burst_window {
                self.burst = true;
            }
        }
        if self.per_port.len() < DETAIL_KEYS || self.per_port.contains_key(&p.port) {
            let set = self.per_port.entry(p.port).or_default();
            set.insert(target);
            self.max_hosts_one_port = self.max_hosts_one_port.max(set.len());
        }
        if p.open && self.open_seen.insert(target ^ pkey) {
            self.open_total += 1;
            if self.open.len() < OPEN_KEPT {
                self.open.push(Found {
                    host: p.target,
                    port: p.port,
                    proto: p.proto,
                });
            }
        }
        if p.trojan && self.trojan_ports.len() < 64 && !self.trojan_ports.contains(&p.port) {
            self.trojan_ports.push(p.port);
        }
    }

    fn bytes(&self) -> usize {
        let sets: usize = self
            .per_target
            .values()
            .map(|(_, s)| s.bytes())
            .sum::<usize>()
            + self
                .per_port
                .values()
                .map(DistinctSet::bytes)
                .sum::<usize>();
        sets + self.targets.bytes()
            + self.ports.bytes()
            + self.pairs.bytes()
            + self.open_seen.bytes()
            + (self.per_target.len() + self.per_port.len()) * 64
            + self.open.len() * 32
            + 512
    }
}

impl Scanner {
    fn bytes(&self) -> usize {
        128 + self.detail.as_ref().map_or(0, |d| d.bytes())
    }

    fn detail(&self) -> Detail {
        let mut d = Detail::default();
        if let Some(p) = &self.first_probe {
            d.apply(p, &ScanConfig::default());
        }
        d
    }

    fn qualifies(&self, cfg: &ScanConfig) -> bool {
        match &self.detail {
            Some(d) => {
                d.max_ports_one_host >= cfg.vertical_ports
                    || d.burst
                    || d.max_hosts_one_port >= cfg.horizontal_hosts
                    || (d.pairs.len() >= cfg.block_pairs
                        && d.targets.len() > 1
                        && d.ports.len() > 1)
            }
            // One probe: a scan only under thresholds of 1.
            None => {
                self.first_probe.is_some()
                    && (cfg.vertical_ports <= 1
                        || cfg.burst_ports <= 1
                        || cfg.horizontal_hosts <= 1)
            }
        }
    }

    fn report(&self, scanner: Addr) -> ScanReport {
        let single;
        let d: &Detail = match &self.detail {
            Some(d) => d,
            None => {
                single = self.detail();
                &single
            }
        };
        // SYN probes that cannot tell SYN from connect follow what the open ports showed.
        let mut kinds = self.kinds;
        let connect = counters::get(&kinds, Technique::Connect.index());
        let syn = counters::get(&kinds, Technique::Syn.index());
        let to = if connect > syn {
            Technique::Connect
        } else {
            Technique::Syn
        };
        counters::add(&mut kinds, to.index(), self.syn_or_connect);
        let by_technique: Vec<(Technique, u64)> = Technique::ALL
            .iter()
            .filter(|t| counters::get(&kinds, t.index()) > 0)
            .map(|t| (*t, counters::get(&kinds, t.index())))
            .collect();
        let technique = by_technique
            .iter()
            .max_by_key(|(t, n)| (*n, std::cmp::Reverse(*t)))
            .map_or(Technique::Syn, |(t, _)| *t);
        let targets = d.targets.len();
        let ports = d.ports.len();
        let shape = if targets <= 1 {
            "vertical"
        } else if ports <= 1 {
            "horizontal"
        } else {
            "block"
        };
        let mut port_sample: Vec<u16> = d
            .ports
            .smallest(SAMPLE)
            .into_iter()
            .map(|p| p as u16)
            .collect();
        if port_sample.is_empty() {
            port_sample = d.per_port.keys().copied().take(SAMPLE).collect();
            port_sample.sort_unstable();
        }
        ScanReport {
            scanner,
            shape,
            technique,
            by_technique,
            targets,
            target_sample: d.target_sample.clone(),
            ports,
            port_sample,
            probes: self.probes,
            open: d.open.clone(),
            open_total: d.open_total,
            trojan_ports: d.trojan_ports.clone(),
            proto: if self.udp > self.tcp {
                proto::UDP
            } else {
                proto::TCP
            },
            first: self.first,
            last: self.last,
            pkts: self.pkts,
            approximate: !(d.targets.is_exact() && d.ports.is_exact()),
            in_progress: false,
        }
    }
}

#[derive(Default)]
struct Flood {
    first: Micros,
    last: Micros,
    attempts: u64,
    answered: u64,
    sources: DistinctSet,
    source_sample: Vec<Addr>,
    window_start: Micros,
    window_attempts: u64,
    peak: u64,
    announced: bool,
}

#[derive(Default)]
struct Backscatter {
    first: Micros,
    last: Micros,
    senders: DistinctSet,
    sender_sample: Vec<Addr>,
    synacks: u64,
    resets: u64,
}

/// Tracked state by key, least recently active first out.
struct Lru<K, V> {
    map: HashMap<K, (V, u64), foldhash::fast::FixedState>,
    order: VecDeque<(K, u64)>,
    stamp: u64,
    /// The oldest live entry as [`Lru::due`] last found it, and the time it is due: while
    /// that entry is neither touched nor removed it stays the oldest and its time stays the
    /// same, so `due` answers before then without looking it up.
    memo: Option<(K, Micros)>,
}

impl<K: Copy + Eq + Hash, V: Default> Lru<K, V> {
    fn new(seed: u64) -> Self {
        Lru {
            map: HashMap::with_hasher(foldhash::fast::FixedState::with_seed(seed)),
            order: VecDeque::new(),
            stamp: 0,
            memo: None,
        }
    }

    fn touch(&mut self, k: K) -> &mut V {
        self.forget(&k);
        self.stamp += 1;
        let stamp = self.stamp;
        if self.order.len() >= 4 * self.map.len() + 64 {
            // Drop stale entries so the queue stays proportional to the map.
            let map = &self.map;
            self.order
                .retain(|(k, s)| map.get(k).is_some_and(|(_, live)| live == s));
        }
        let e = self.map.entry(k).or_insert_with(|| (V::default(), stamp));
        let prev = std::mem::replace(&mut e.1, stamp);
        match self.order.back_mut() {
            // Touched again while the most recent (a scanner's probes come in runs): its live
            // queue entry takes the new stamp in place instead of a second one being queued.
            Some((last, s)) if *last == k && *s == prev => *s = stamp,
            _ => self.order.push_back((k, stamp)),
        }
        &mut e.0
    }

    /// The least recently touched live entry.
    fn oldest(&mut self) -> Option<K> {
        while let Some(&(k, s)) = self.order.front() {
            if self.map.get(&k).is_some_and(|(_, live)| *live == s) {
                return Some(k);
            }
            self.order.pop_front();
        }
        None
    }

    /// The oldest live entry's key when it is due by `now` (its `deadline`, which may change
    /// only when it is touched, is at or before `now`); None when the oldest is not due yet
    /// or there is none. Called for every record, so the answer "not yet" is remembered.
    fn due(&mut self, now: Micros, deadline: impl Fn(&V) -> Micros) -> Option<K> {
        if let Some((_, at)) = self.memo
            && now < at
        {
            return None;
        }
        let k = self.oldest()?;
        let at = self.map.get(&k).map_or(Micros::MAX, |(v, _)| deadline(v));
        if at > now {
            self.memo = Some((k, at));
            return None;
        }
        Some(k)
    }

    fn forget(&mut self, k: &K) {
        if self.memo.as_ref().is_some_and(|(m, _)| m == k) {
            self.memo = None;
        }
    }

    fn remove(&mut self, k: &K) -> Option<V> {
        self.forget(k);
        self.map.remove(k).map(|(v, _)| v)
    }

    fn get(&self, k: &K) -> Option<&V> {
        self.map.get(k).map(|(v, _)| v)
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn keys(&self) -> Vec<K> {
        self.map.keys().copied().collect()
    }
}

/// Remembers recent scanners so that their low-severity port probes can be folded in.
const KNOWN_SCANNERS: usize = 65_536;

pub struct ScanDetector {
    cfg: ScanConfig,
    db: Arc<PortDb>,
    scanners: Lru<Addr, Scanner>,
    floods: Lru<(Addr, u16), Flood>,
    backscatter: Lru<Addr, Backscatter>,
    known_scanners: HashMap<Addr, (Micros, Micros), foldhash::fast::FixedState>,
    keys: AddrKeys,
    /// Also report an episode when it first meets its threshold (live capture), not only when
    /// it ends.
    pub early: bool,
    pub stats: ScanStats,
}

impl ScanDetector {
    pub fn new(db: Arc<PortDb>, cfg: ScanConfig) -> Self {
        ScanDetector {
            cfg,
            db,
            scanners: Lru::new(1),
            floods: Lru::new(2),
            backscatter: Lru::new(3),
            known_scanners: HashMap::with_hasher(foldhash::fast::FixedState::with_seed(4)),
            keys: AddrKeys::default(),
            early: false,
            stats: ScanStats::default(),
        }
    }

    /// True when `src` scanned (a qualifying episode, finished or running) around `t`.
    pub fn is_scanner(&self, src: &Addr, t: Micros) -> bool {
        if let Some(s) = self.scanners.get(src)
            && s.qualifies(&self.cfg)
        {
            return true;
        }
        self.known_scanners.get(src).is_some_and(|&(first, last)| {
            t >= first.saturating_sub(self.cfg.idle) && t <= last.saturating_add(self.cfg.idle)
        })
    }

    /// Looks at one finished connection; finished episodes go to `out`.
    pub fn on_record(&mut self, r: &ConnRecord, out: &mut Vec<Episode>) {
        self.expire(r.end, out);
        if let Some((kind, outcome)) = probe_of(r) {
            self.stats.probes += 1;
            self.scan_probe(r, kind, outcome, out);
            if matches!(kind, Kind::SynOrConnect | Kind::Known(Technique::Syn)) {
                self.flood_attempt(r, outcome, out);
            }
        } else {
            self.maybe_backscatter(r, out);
        }
        self.enforce_limits(out);
    }

    fn scan_probe(&mut self, r: &ConnRecord, kind: Kind, outcome: Outcome, out: &mut Vec<Episode>) {
        let probe = Probe {
            target: r.resp.addr,
            target_key: self.keys.get(&r.resp.addr),
            port: r.resp.port,
            proto: r.ip_proto,
            open: outcome == Outcome::Open,
            trojan: self
                .db
                .lookup_ip(r.ip_proto, r.resp.port)
                .is_some_and(|e| e.category == Category::Trojan),
            start: r.start,
        };
        let cfg = self.cfg;
        let s = self.scanners.touch(r.orig.addr);
        if s.probes == 0 {
            s.first = r.start;
        }
        s.last = s.last.max(r.end);
        s.probes += 1;
        s.pkts += r.orig_pkts + r.resp_pkts;
        if r.ip_proto == proto::UDP {
            s.udp += 1;
        } else {
            s.tcp += 1;
        }
        match kind {
            Kind::Known(t) => counters::add(&mut s.kinds, t.index(), 1),
            Kind::SynOrConnect => s.syn_or_connect += 1,
        }
        match (&mut s.detail, s.first_probe) {
            (Some(d), _) => d.apply(&probe, &cfg),
            (None, None) => s.first_probe = Some(probe),
            (None, Some(first)) => {
                let mut d = Box::<Detail>::default();
                d.apply(&first, &cfg);
                d.apply(&probe, &cfg);
                s.detail = Some(d);
            }
        }
        if self.early && !s.announced && s.qualifies(&cfg) {
            s.announced = true;
            out.push(Episode::Scan(ScanReport {
                in_progress: true,
                ..s.report(r.orig.addr)
            }));
        }
    }

    fn flood_attempt(&mut self, r: &ConnRecord, outcome: Outcome, out: &mut Vec<Episode>) {
        let cfg = self.cfg;
        let source = self.keys.get(&r.orig.addr);
        let f = self.floods.touch((r.resp.addr, r.resp.port));
        let n = r.orig_pkts.max(1);
        if f.attempts == 0 {
            f.first = r.start;
            f.window_start = r.start;
        }
        f.last = f.last.max(r.end);
        f.attempts += n;
        if outcome == Outcome::Open {
            f.answered += 1;
        }
        if f.sources.insert(source) && f.source_sample.len() < SAMPLE {
            f.source_sample.push(r.orig.addr);
        }
        if r.start.saturating_sub(f.window_start) > cfg.flood_window {
            f.window_start = r.start;
            f.window_attempts = 0;
        }
        f.window_attempts += n;
        f.peak = f.peak.max(f.window_attempts);
        if self.early && !f.announced && f.peak >= cfg.flood_attempts {
            f.announced = true;
            out.push(Episode::Flood(FloodReport {
                target: r.resp.addr,
                port: r.resp.port,
                attempts: f.attempts,
                answered: f.answered,
                sources: f.sources.len(),
                source_sample: f.source_sample.clone(),
                peak_window_attempts: f.peak,
                first: f.first,
                last: f.last,
                approximate: !f.sources.is_exact(),
                in_progress: true,
            }));
        }
    }

    fn maybe_backscatter(&mut self, r: &ConnRecord, out: &mut Vec<Episode>) {
        let _ = out;
        if r.ip_proto != proto::TCP || r.orig_bytes > 0 || r.resp_bytes > 0 {
            return;
        }
        // Exactly one side sent, and only replies: SYN-ACKs or RSTs.
        let (sender, recipient, flags) = match (r.orig_pkts, r.resp_pkts) {
            (0, n) if n > 0 => (r.resp.addr, r.orig.addr, r.resp_tcp_flags),
            (n, 0) if n > 0 => (r.orig.addr, r.resp.addr, r.orig_tcp_flags),
            _ => return,
        };
        let synack = flags & (SYN | ACK) == SYN | ACK;
        let reset = flags & RST != 0 && flags & SYN == 0;
        if !(synack || reset) || r.history.as_str().contains('S') {
            return;
        }
        let b = self.backscatter.touch(recipient);
        if b.synacks + b.resets == 0 {
            b.first = r.start;
        }
        b.last = b.last.max(r.end);
        if synack {
            b.synacks += 1;
        } else {
            b.resets += 1;
        }
        if b.senders.insert(addr_key(&sender)) && b.sender_sample.len() < SAMPLE {
            b.sender_sample.push(sender);
        }
    }

    fn total_bytes(&self) -> usize {
        self.scanners
            .map
            .values()
            .map(|(s, _)| s.bytes())
            .sum::<usize>()
            + self
                .floods
                .map
                .values()
                .map(|(f, _)| f.sources.bytes() + 256)
                .sum::<usize>()
            + self
                .backscatter
                .map
                .values()
                .map(|(b, _)| b.senders.bytes() + 256)
                .sum::<usize>()
    }

    fn enforce_limits(&mut self, out: &mut Vec<Episode>) {
        let max = self.cfg.max_tracked.max(1);
        while self.scanners.len() > max {
            let Some(k) = self.scanners.oldest() else {
                break;
            };
            self.stats.evicted += 1;
            self.end_scanner(k, out);
        }
        while self.floods.len() > max {
            let Some(k) = self.floods.oldest() else { break };
            self.stats.evicted += 1;
            self.end_flood(k, out);
        }
        while self.backscatter.len() > max {
            let Some(k) = self.backscatter.oldest() else {
                break;
            };
            self.stats.evicted += 1;
            self.end_backscatter(k, out);
        }
        // The byte budget is checked now and then (summing is linear in what is tracked).
        if self.stats.probes.is_multiple_of(1 << 16) {
            while self.total_bytes() > self.cfg.memory_budget {
                let Some(k) = self.scanners.oldest() else {
                    break;
                };
                self.stats.evicted += 1;
                self.end_scanner(k, out);
            }
        }
    }

    /// Ends every episode idle for longer than the idle time (scans) or flood window.
    pub fn expire(&mut self, now: Micros, out: &mut Vec<Episode>) {
        let idle = self.cfg.idle;
        while let Some(k) = self.scanners.due(now, |s| s.last.saturating_add(idle)) {
            self.end_scanner(k, out);
        }
        let flood_idle = self.cfg.flood_window.saturating_add(Micros::from_secs(60));
        while let Some(k) = self.floods.due(now, |f| f.last.saturating_add(flood_idle)) {
            self.end_flood(k, out);
        }
        while let Some(k) = self.backscatter.due(now, |b| b.last.saturating_add(idle)) {
            self.end_backscatter(k, out);
        }
    }

    fn end_scanner(&mut self, k: Addr, out: &mut Vec<Episode>) {
        let Some(s) = self.scanners.remove(&k) else {
            return;
        };
        if s.qualifies(&self.cfg) {
            self.stats.scans += 1;
            if self.known_scanners.len() >= KNOWN_SCANNERS {
                self.known_scanners.clear();
            }
            self.known_scanners.insert(k, (s.first, s.last));
            out.push(Episode::Scan(s.report(k)));
        }
    }

    fn end_flood(&mut self, k: (Addr, u16), out: &mut Vec<Episode>) {
        let Some(f) = self.floods.remove(&k) else {
            return;
        };
        if f.peak >= self.cfg.flood_attempts {
            self.stats.floods += 1;
            out.push(Episode::Flood(FloodReport {
                target: k.0,
                port: k.1,
                attempts: f.attempts,
                answered: f.answered,
                sources: f.sources.len(),
                source_sample: f.source_sample,
                peak_window_attempts: f.peak,
                first: f.first,
                last: f.last,
                approximate: !f.sources.is_exact(),
                in_progress: false,
            }));
        }
    }

    fn end_backscatter(&mut self, k: Addr, out: &mut Vec<Episode>) {
        let Some(b) = self.backscatter.remove(&k) else {
            return;
        };
        if b.senders.len() >= self.cfg.backscatter_hosts {
            self.stats.backscatter += 1;
            out.push(Episode::Backscatter(BackscatterReport {
                victim: k,
                senders: b.senders.len(),
                sender_sample: b.sender_sample,
                synacks: b.synacks,
                resets: b.resets,
                first: b.first,
                last: b.last,
                approximate: !b.senders.is_exact(),
            }));
        }
    }

    /// Ends every episode (end of input or shutdown).
    pub fn finish(&mut self, out: &mut Vec<Episode>) {
        let mut keys = self.scanners.keys();
        keys.sort();
        for k in keys {
            self.end_scanner(k, out);
        }
        let mut keys = self.floods.keys();
        keys.sort();
        for k in keys {
            self.end_flood(k, out);
        }
        let mut keys = self.backscatter.keys();
        keys.sort();
        for k in keys {
            self.end_backscatter(k, out);
        }
    }
}

#[cfg(test)]
mod tests {
    //! Hand-built segments through the real flow table, then the detector.
    use super::*;
    use crate::decode::{ChecksumVerdict, Decoded, TcpSegment, Transport, Vlans, tcp_flags as F};
    use crate::flow::{EndReason, FlowTable, TableConfig};

    #[allow(clippy::too_many_arguments)]
    fn tcp(
        ms: i64,
        src: Addr,
        sport: u16,
        dst: Addr,
        dport: u16,
        flags: u8,
        seq: u32,
        ack: u32,
    ) -> Decoded {
        Decoded {
            ts: Micros(ms * 1000),
            src,
            dst,
            ip_proto: 6,
            ip_len: 40,
            transport: Transport::Tcp(TcpSegment {
                sport,
                dport,
                seq,
                ack,
                flags,
                window: 1024,
                wscale: None,
                payload_len: 0,
            }),
            vlans: Vlans::default(),
            l4_checksum: ChecksumVerdict::Unchecked,
            truncated: false,
            fragmented: false,
            udp_reply: false,
            ip_off: 0,
            payload_off: 0,
        }
    }

    fn v4(last: u8) -> Addr {
        Addr::v4([10, 9, 0, last])
    }

    fn run(pkts: &[Decoded], cfg: ScanConfig) -> (Vec<Episode>, ScanStats) {
        let mut t = FlowTable::new(TableConfig::default());
        let mut recs = Vec::new();
        for p in pkts {
            t.packet(p, None, None, &mut |r| recs.push(r));
        }
        t.flush(EndReason::EndOfInput, &mut |r| recs.push(r));
        let db = Arc::new(PortDb::builtin().unwrap());
        let mut d = ScanDetector::new(db, cfg);
        let mut out = Vec::new();
        for r in &recs {
            d.on_record(r, &mut out);
        }
        d.finish(&mut out);
        (out, d.stats)
    }

    const SCANNER: u8 = 5;
    const TARGET: u8 = 9;

    /// A probe of `port` with `flags`; `reply` is what the target answers (0: nothing).
    fn probe(pkts: &mut Vec<Decoded>, ms: i64, port: u16, flags: u8, reply: u8) {
        let (s, t) = (v4(SCANNER), v4(TARGET));
        pkts.push(tcp(ms, s, 45000, t, port, flags, 1000, 0));
        if reply != 0 {
            pkts.push(tcp(ms, t, port, s, 45000, reply, 7000, 1001));
        }
    }

    fn scans(e: &[Episode]) -> Vec<&ScanReport> {
        e.iter()
            .filter_map(|x| match x {
                Episode::Scan(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn syn_scan_is_vertical_and_finds_the_open_port() {
        let mut p = Vec::new();
        for port in 1..=30u16 {
            if port == 22 {
                probe(&mut p, i64::from(port), port, F::SYN, F::SYN | F::ACK);
                p.push(tcp(
                    i64::from(port),
                    v4(SCANNER),
                    45000,
                    v4(TARGET),
                    22,
                    F::RST,
                    1001,
                    0,
                ));
            } else {
                probe(&mut p, i64::from(port), port, F::SYN, F::RST | F::ACK);
            }
        }
        let (e, _) = run(&p, ScanConfig::default());
        let s = scans(&e);
        assert_eq!(s.len(), 1, "{e:?}");
        let s = s[0];
        assert_eq!(
            (s.technique, s.shape, s.targets, s.ports),
            (Technique::Syn, "vertical", 1, 30)
        );
        assert_eq!(s.open.iter().map(|f| f.port).collect::<Vec<_>>(), vec![22]);
    }

    #[test]
    fn connect_scan_completes_the_handshake_on_open_ports() {
        let mut p = Vec::new();
        for port in 1..=30u16 {
            if port == 22 || port == 25 {
                let (s, t) = (v4(SCANNER), v4(TARGET));
                let ms = i64::from(port);
                p.push(tcp(ms, s, 45000 + port, t, port, F::SYN, 1000, 0));
                p.push(tcp(
                    ms,
                    t,
                    port,
                    s,
                    45000 + port,
                    F::SYN | F::ACK,
                    7000,
                    1001,
                ));
                p.push(tcp(ms, s, 45000 + port, t, port, F::ACK, 1001, 7001));
                p.push(tcp(
                    ms,
                    s,
                    45000 + port,
                    t,
                    port,
                    F::RST | F::ACK,
                    1001,
                    7001,
                ));
            } else {
                probe(&mut p, i64::from(port), port, F::SYN, F::RST | F::ACK);
            }
        }
        let (e, _) = run(&p, ScanConfig::default());
        let s = scans(&e);
        assert_eq!(
            s[0].technique,
            Technique::Connect,
            "{:?}",
            s[0].by_technique
        );
        assert_eq!(s[0].open.len(), 2);
    }

    #[test]
    fn stealth_techniques_are_named_by_their_flags() {
        for (flags, want) in [
            (0u8, Technique::Null),
            (F::FIN, Technique::Fin),
            (F::FIN | F::PSH | F::URG, Technique::Xmas),
            (F::FIN | F::ACK, Technique::Maimon),
            (F::ACK, Technique::Ack),
        ] {
            let mut p = Vec::new();
            for port in 100..120u16 {
                // Closed ports answer RST; open ones stay silent.
                let reply = if port % 5 == 0 { 0 } else { F::RST };
                probe(&mut p, i64::from(port), port, flags, reply);
            }
            let (e, _) = run(&p, ScanConfig::default());
            let s = scans(&e);
            assert_eq!(s.len(), 1, "{flags:#x}: {e:?}");
            assert_eq!(s[0].technique, want, "{flags:#x}");
            assert!(s[0].open.is_empty());
        }
    }

    #[test]
    fn live_mode_reports_a_scan_when_it_starts_and_again_when_it_ends() {
        let mut p = Vec::new();
        for port in 1..=30u16 {
            probe(&mut p, i64::from(port), port, F::SYN, F::RST | F::ACK);
        }
        let mut t = FlowTable::new(TableConfig::default());
        let mut recs = Vec::new();
        for x in &p {
            t.packet(x, None, None, &mut |r| recs.push(r));
        }
        t.flush(EndReason::EndOfInput, &mut |r| recs.push(r));
        let mut d = ScanDetector::new(Arc::new(PortDb::builtin().unwrap()), ScanConfig::default());
        d.early = true;
        let mut out = Vec::new();
        for r in &recs {
            d.on_record(r, &mut out);
        }
        // The burst rule (8 ports) is met at the 8th probe.
        let early = scans(&out);
        assert_eq!(early.len(), 1);
        assert!(early[0].in_progress);
        assert_eq!(early[0].ports, 8);
        d.finish(&mut out);
        let all = scans(&out);
        assert_eq!(all.len(), 2);
        assert!(!all[1].in_progress);
        assert_eq!(all[1].ports, 30);
        assert_eq!(d.stats.scans, 1);
    }

    #[test]
    fn horizontal_scan_of_one_port() {
        let mut p = Vec::new();
        for h in 10..40u8 {
            p.push(tcp(
                i64::from(h),
                v4(SCANNER),
                45000,
                v4(h),
                445,
                F::SYN,
                1000,
                0,
            ));
        }
        let (e, _) = run(&p, ScanConfig::default());
        let s = scans(&e);
        assert_eq!(
            (s[0].shape, s[0].targets, s[0].ports),
            ("horizontal", 30, 1)
        );
    }

    #[test]
    fn a_few_failed_connections_are_not_a_scan() {
        // Seven closed ports at once (under the burst rule), then twelve ports two seconds
        // apart (under the vertical rule, too slow for the burst rule).
        let mut p = Vec::new();
        for port in 1..=7u16 {
            probe(&mut p, i64::from(port), port, F::SYN, F::RST | F::ACK);
        }
        let (e, stats) = run(&p, ScanConfig::default());
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(stats.probes, 7);
        let mut p = Vec::new();
        for port in 1..=12u16 {
            probe(
                &mut p,
                i64::from(port) * 2000,
                port,
                F::SYN,
                F::RST | F::ACK,
            );
        }
        let (e, _) = run(&p, ScanConfig::default());
        assert!(e.is_empty(), "{e:?}");
    }

    #[test]
    fn spoofed_syn_flood_is_a_flood_not_a_scan_and_state_stays_bounded() {
        let mut p = Vec::new();
        for i in 0..3000u32 {
            let src = Addr::v4([(i >> 16) as u8 + 100, (i >> 8) as u8, i as u8, 1]);
            p.push(tcp(
                i64::from(i / 10),
                src,
                40000,
                v4(TARGET),
                80,
                F::SYN,
                i,
                0,
            ));
        }
        let cfg = ScanConfig {
            max_tracked: 500,
            ..ScanConfig::default()
        };
        let (e, stats) = run(&p, cfg);
        assert!(scans(&e).is_empty(), "{e:?}");
        let floods: Vec<&FloodReport> = e
            .iter()
            .filter_map(|x| match x {
                Episode::Flood(f) => Some(f),
                _ => None,
            })
            .collect();
        assert_eq!(floods.len(), 1);
        assert_eq!((floods[0].port, floods[0].attempts), (80, 3000));
        assert!(floods[0].sources > 2800, "{}", floods[0].sources);
        assert!(stats.evicted >= 2500, "{stats:?}");
    }

    /// `Lru::due` remembers when the oldest entry is due; once that entry moves back (touched)
    /// or goes, the next oldest may be due earlier, and must be found.
    #[test]
    fn the_oldest_due_is_found_again_after_the_remembered_one_moves() {
        #[derive(Default)]
        struct Last(i64);
        let deadline = |v: &Last| Micros(v.0);
        for remove in [false, true] {
            let mut lru: Lru<u8, Last> = Lru::new(9);
            lru.touch(1).0 = 100;
            lru.touch(2).0 = 50;
            assert_eq!(
                lru.due(Micros(60), deadline),
                None,
                "the oldest, 1, is not due"
            );
            assert_eq!(lru.due(Micros(99), deadline), None);
            if remove {
                lru.remove(&1);
            } else {
                lru.touch(1);
            }
            assert_eq!(
                lru.due(Micros(60), deadline),
                Some(2),
                "2 is the oldest now, and due"
            );
            lru.remove(&2);
            let next = if remove { None } else { Some(1) };
            assert_eq!(lru.due(Micros(100), deadline), next);
        }
    }

    /// `AddrKeys` answers what `addr_key` answers, in any order of asking.
    #[test]
    fn remembered_address_keys_are_the_keys() {
        let addrs = [
            Addr::default(),
            Addr::v4([10, 0, 0, 1]),
            Addr::v4([10, 0, 0, 2]),
            Addr::v6([0xfd, 0x34, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
        ];
        let mut keys = AddrKeys::default();
        for i in [0usize, 1, 1, 2, 1, 2, 3, 0, 3, 3, 2, 0, 1] {
            assert_eq!(keys.get(&addrs[i]), addr_key(&addrs[i]), "{i}");
        }
    }

    /// `Lru` against a plain model (keys in order of last touch): the oldest entry, and the
    /// queue kept proportional to the map after a touch, over random touches (often of the key touched
    /// last, which updates the queue in place) and removals.
    #[test]
    fn the_lru_keeps_touch_order() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for round in 0..200 {
            let keys = 2 + round % 40;
            let mut lru: Lru<u64, u64> = Lru::new(round);
            let mut model: Vec<u64> = Vec::new();
            let mut last = 0;
            for step in 0..2_000u64 {
                match next(10) {
                    0 => {
                        let k = next(keys);
                        assert_eq!(lru.remove(&k).is_some(), model.contains(&k));
                        model.retain(|&m| m != k);
                    }
                    r => {
                        let k = if r < 5 { last } else { next(keys) };
                        *lru.touch(k) = step;
                        model.retain(|&m| m != k);
                        model.push(k);
                        last = k;
                        assert!(lru.order.len() <= 4 * lru.map.len() + 64);
                    }
                }
                assert_eq!(
                    lru.oldest(),
                    model.first().copied(),
                    "round {round} step {step}"
                );
                assert_eq!(lru.len(), model.len());
            }
        }
    }

    #[test]
    fn backscatter_is_recognised_and_not_a_scan() {
        let mut p = Vec::new();
        let victim = Addr::v4([10, 8, 0, 200]);
        for h in 1..=30u8 {
            let flags = if h % 3 == 0 {
                F::RST | F::ACK
            } else {
                F::SYN | F::ACK
            };
            p.push(tcp(
                i64::from(h),
                v4(h),
                80,
                victim,
                3000 + u16::from(h),
                flags,
                5000,
                77,
            ));
        }
        let (e, _) = run(&p, ScanConfig::default());
        assert!(scans(&e).is_empty(), "{e:?}");
        let b: Vec<&BackscatterReport> = e
            .iter()
            .filter_map(|x| match x {
                Episode::Backscatter(b) => Some(b),
                _ => None,
            })
            .collect();
        assert_eq!(b.len(), 1, "{e:?}");
        assert_eq!(
            (b[0].victim, b[0].senders, b[0].synacks, b[0].resets),
            (victim, 30, 20, 10)
        );
    }
}
