//! The alert log: EVE-like JSON lines (GUIDE §5) or one line of text per alert.

use std::io::Write;

use serde::Serialize;

use super::text::{Text as _, push_ip, push_u64};
use super::{json::PortObject, proto_name};
use crate::classify::ports::{PortDb, RangeClass};
use crate::detect::scan::{BackscatterReport, Episode, FloodReport, ScanReport};
use crate::detect::{Alert, PortAlert};
use crate::time::Micros;

/// How alerts are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AlertFormat {
    /// One EVE-like JSON object per line (`event_type":"alert"`).
    Json,
    /// One line of text per alert, for people.
    Text,
}

/// A port alert as serde writes it: the reference for [`append_port_json`].
#[cfg(test)]
#[derive(Serialize)]
struct AlertEvent<'a> {
    timestamp: String,
    flow_id: u64,
    event_type: &'static str,
    src_ip: std::net::IpAddr,
    src_port: u16,
    dest_ip: std::net::IpAddr,
    dest_port: u16,
    proto: &'static str,
    alert: AlertBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<PortObject<'a>>,
    flow: AlertFlow<'a>,
}

#[derive(Serialize)]
struct AlertBody {
    action: &'static str,
    gid: u32,
    signature_id: u32,
    rev: u32,
    signature: String,
    category: &'static str,
    severity: u8,
    rule: &'static str,
    /// Port alerts: connections folded in. Episodes: probes, SYNs or unsolicited replies.
    count: u64,
    first_seen: String,
    last_seen: String,
    /// Port alerts: packets and payload bytes over every connection folded into the alert.
    #[serde(skip_serializing_if = "Option::is_none")]
    pkts: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<u64>,
    /// Episodes: probes, SYNs or replies per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_per_s: Option<f64>,
}

/// The first connection that raised the alert.
#[cfg(test)]
#[derive(Serialize)]
struct AlertFlow<'a> {
    uid: String,
    conn_state: &'static str,
    history: &'a str,
    orig_pkts: u64,
    resp_pkts: u64,
    orig_bytes: u64,
    resp_bytes: u64,
    handshake: &'static str,
    start: String,
    end: String,
}

/// Writes one alert as a JSON line. Generic over the writer: serde writes an event a few bytes
/// at a time, and through `dyn Write` every piece was a call that could not be inlined
/// (about half an alert's cost); the pipeline passes its `Vec<u8>` buffer.
pub fn write_json(
    out: &mut Vec<u8>,
    a: &Alert,
    db: &PortDb,
    cache: &mut AlertCache,
) -> std::io::Result<()> {
    match a {
        Alert::Port(p) => {
            append_port_json(out, p, db, cache);
            Ok(())
        }
        Alert::Episode {
            rule,
            severity,
            episode,
        } => write_episode_json(out, *rule, *severity, episode, db),
    }
}

/// Writes one alert as a line of text.
pub fn write_text(out: &mut dyn Write, a: &Alert, db: &PortDb) -> std::io::Result<()> {
    match a {
        Alert::Port(p) => write_port_text(out, p, db),
        Alert::Episode {
            rule,
            severity,
            episode,
        } => writeln!(
            out,
            "{} severity {} {}: {}",
            episode_first(episode).to_rfc3339(),
            severity,
            rule.id(),
            episode_signature(episode, db)
        ),
    }
}

/// The serde rendering of a port alert: what [`append_port_json`] writes by hand (the test
/// reference).
#[cfg(test)]
fn write_port_json(
    out: &mut (impl Write + ?Sized),
    a: &PortAlert,
    db: &PortDb,
) -> std::io::Result<()> {
    let r = &a.first;
    let entry = db.lookup_ip(r.ip_proto, r.resp.port);
    let ev = AlertEvent {
        timestamp: a.first_seen.to_rfc3339(),
        flow_id: r.flow_id,
        event_type: "alert",
        src_ip: r.orig.addr.to_ip(),
        src_port: r.orig.port,
        dest_ip: r.resp.addr.to_ip(),
        dest_port: r.resp.port,
        proto: proto_name(r.ip_proto),
        alert: AlertBody {
            action: "allowed",
            gid: 1,
            signature_id: a.rule.signature_id(),
            rev: 1,
            signature: entry.map_or_else(
                || a.rule.id().to_string(),
                |e| a.rule.signature(e, r.resp.port),
            ),
            category: a.rule.category(),
            severity: a.severity,
            rule: a.rule.id(),
            count: a.count,
            first_seen: a.first_seen.to_rfc3339(),
            last_seen: a.last_seen.to_rfc3339(),
            pkts: Some(a.pkts),
            bytes: Some(a.bytes),
            rate_per_s: None,
        },
        port: entry.map(|e| PortObject::new(e, r.resp.port)),
        flow: AlertFlow {
            uid: super::uid(r.flow_id),
            conn_state: r.conn_state.name(),
            history: r.history.as_str(),
            orig_pkts: r.orig_pkts,
            resp_pkts: r.resp_pkts,
            orig_bytes: r.orig_bytes,
            resp_bytes: r.resp_bytes,
            handshake: r.handshake.name(),
            start: r.start.to_rfc3339(),
            end: r.end.to_rfc3339(),
        },
    };
    serde_json::to_writer(&mut *out, &ev).map_err(std::io::Error::other)?;
    out.write_all(b"\n")
}

/// What the alert writer keeps from one port alert to the next: the parts fixed by the rule,
/// severity, protocol and port, pre-rendered (one entry per pair that raised an alert, and
/// only for ports in the database: bounded by its size times the rules), and the last
/// second's date.
#[derive(Default)]
pub struct AlertCache {
    pieces: std::collections::HashMap<u64, PortPieces, foldhash::fast::FixedState>,
    dates: crate::time::DateCache,
}

/// A port alert's fixed parts as JSON: from `"signature"` to `"count":`, and the `port`
/// member with its leading comma.
struct PortPieces {
    body: Box<[u8]>,
    port: Box<[u8]>,
}

impl PortPieces {
    fn render(a: &PortAlert, entry: Option<&crate::classify::ports::PortEntry>) -> PortPieces {
        let port = a.first.resp.port;
        let signature =
            entry.map_or_else(|| a.rule.id().to_string(), |e| a.rule.signature(e, port));
        let mut body = b"\"signature\":".to_vec();
        let mut port_json = Vec::new();
        // Serialising a string or a `PortObject` into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut body, &signature);
        body.put(",\"category\":\"");
        body.put(a.rule.category());
        body.put("\",\"severity\":");
        push_u64(&mut body, u64::from(a.severity));
        body.put(",\"rule\":\"");
        body.put(a.rule.id());
        body.put("\",\"count\":");
        if let Some(e) = entry {
            port_json.put(",\"port\":");
            let _ = serde_json::to_writer(&mut port_json, &PortObject::new(e, port));
        }
        PortPieces {
            body: body.into_boxed_slice(),
            port: port_json.into_boxed_slice(),
        }
    }
}

/// Appends a port alert as one JSON line, byte for byte what serde writes for [`AlertEvent`]
/// (a test holds the two together). Built by hand: serde took about 20 instructions a byte
/// for these thousand-byte lines, a quarter of the merge stage's time on small-packet
/// captures, most of it on the parts that never change for a port.
fn append_port_json(out: &mut Vec<u8>, a: &PortAlert, db: &PortDb, cache: &mut AlertCache) {
    let r = &a.first;
    let entry = db.lookup_ip(r.ip_proto, r.resp.port);
    let key = (u64::from(a.rule.signature_id()) << 32)
        | (u64::from(a.severity) << 24)
        | (u64::from(r.ip_proto) << 16)
        | u64::from(r.resp.port);
    let rendered;
    let pieces = if entry.is_some() {
        cache
            .pieces
            .entry(key)
            .or_insert_with(|| PortPieces::render(a, entry))
    } else {
        rendered = PortPieces::render(a, entry);
        &rendered
    };
    let dates = &mut cache.dates;
    out.put("{\"timestamp\":\"");
    dates.write(a.first_seen, out);
    out.put("\",\"flow_id\":");
    push_u64(out, r.flow_id);
    out.put(",\"event_type\":\"alert\",\"src_ip\":\"");
    push_ip(out, &r.orig.addr);
    out.put("\",\"src_port\":");
    push_u64(out, u64::from(r.orig.port));
    out.put(",\"dest_ip\":\"");
    push_ip(out, &r.resp.addr);
    out.put("\",\"dest_port\":");
    push_u64(out, u64::from(r.resp.port));
    out.put(",\"proto\":\"");
    out.put(proto_name(r.ip_proto));
    out.put("\",\"alert\":{\"action\":\"allowed\",\"gid\":1,\"signature_id\":");
    push_u64(out, u64::from(a.rule.signature_id()));
    out.put(",\"rev\":1,");
    out.extend_from_slice(&pieces.body);
    push_u64(out, a.count);
    out.put(",\"first_seen\":\"");
    dates.write(a.first_seen, out);
    out.put("\",\"last_seen\":\"");
    dates.write(a.last_seen, out);
    out.put("\",\"pkts\":");
    push_u64(out, a.pkts);
    out.put(",\"bytes\":");
    push_u64(out, a.bytes);
    out.put("}");
    out.extend_from_slice(&pieces.port);
    out.put(",\"flow\":{\"uid\":\"");
    super::write_uid(out, r.flow_id);
    out.put("\",\"conn_state\":\"");
    out.put(r.conn_state.name());
    out.put("\",\"history\":\"");
    // History letters are ASCII letters and `^`: nothing to escape.
    out.put(r.history.as_str());
    super::text::push_fields(
        out,
        &[
            ("\",\"orig_pkts\":", r.orig_pkts),
            (",\"resp_pkts\":", r.resp_pkts),
            (",\"orig_bytes\":", r.orig_bytes),
            (",\"resp_bytes\":", r.resp_bytes),
        ],
    );
    out.put(",\"handshake\":\"");
    out.put(r.handshake.name());
    out.put("\",\"start\":\"");
    dates.write(r.start, out);
    out.put("\",\"end\":\"");
    dates.write(r.end, out);
    out.put("\"}}\n");
}

fn write_port_text(out: &mut dyn Write, a: &PortAlert, db: &PortDb) -> std::io::Result<()> {
    let r = &a.first;
    let entry = db.lookup_ip(r.ip_proto, r.resp.port);
    let sig = entry.map_or_else(
        || a.rule.id().to_string(),
        |e| a.rule.signature(e, r.resp.port),
    );
    let addr = |ip: std::net::IpAddr, port: u16| match ip {
        std::net::IpAddr::V6(_) => format!("[{ip}]:{port}"),
        std::net::IpAddr::V4(_) => format!("{ip}:{port}"),
    };
    let hist = if r.history.is_empty() {
        "-"
    } else {
        r.history.as_str()
    };
    write!(
        out,
        "{} severity {} {} {} -> {} {}: {} (conn_state {}, history {}, {} pkts, {} bytes",
        a.first_seen.to_rfc3339(),
        a.severity,
        a.rule.id(),
        addr(r.orig.addr.to_ip(), r.orig.port),
        addr(r.resp.addr.to_ip(), r.resp.port),
        proto_name(r.ip_proto),
        sig,
        r.conn_state.name(),
        hist,
        a.pkts,
        a.bytes
    )?;
    if a.count > 1 {
        write!(
            out,
            "; {} connections until {}",
            a.count,
            a.last_seen.to_rfc3339()
        )?;
    }
    writeln!(out, ")")
}

fn episode_first(e: &Episode) -> Micros {
    match e {
        Episode::Scan(s) => s.first,
        Episode::Flood(f) => f.first,
        Episode::Backscatter(b) => b.first,
    }
}

/// "22/ssh" or "31337/Back Orifice" or "4444/tcp".
fn port_label(db: &PortDb, proto: u8, port: u16) -> String {
    // A trojan's port by the trojan's name; a service by its IANA keyword.
    match db.lookup_ip(proto, port) {
        Some(e) if e.category == crate::classify::ports::Category::Trojan => {
            format!("{port}/{}", e.display_name())
        }
        Some(e) => format!(
            "{port}/{}",
            e.service.as_deref().unwrap_or(e.display_name())
        ),
        None => format!("{port}/{}", proto_name(proto).to_lowercase()),
    }
}

fn rate(n: u64, first: Micros, last: Micros) -> f64 {
    let secs = last.saturating_sub(first).as_secs_f64();
    if secs > 0.0 {
        (n as f64 / secs * 10.0).round() / 10.0
    } else {
        n as f64
    }
}

/// One line for people: "10.0.0.5 scanned 1036 ports on 10.0.0.9 (SYN scan) and found 22/ssh,
/// 31337/Back Orifice open".
pub fn episode_signature(e: &Episode, db: &PortDb) -> String {
    match e {
        Episode::Scan(s) if s.in_progress => format!("{} (in progress)", scan_signature(s, db)),
        Episode::Scan(s) => scan_signature(s, db),
        Episode::Flood(f) if f.in_progress => format!("{} (in progress)", flood_signature(f)),
        Episode::Flood(f) => flood_signature(f),
        Episode::Backscatter(b) => format!(
            "{} received {} unsolicited SYN-ACKs and {} RSTs from {} hosts: backscatter of traffic spoofed with its address",
            b.victim.to_ip(),
            b.synacks,
            b.resets,
            b.senders
        ),
    }
}

fn scan_signature(s: &ScanReport, db: &PortDb) -> String {
    let about = if s.approximate { "about " } else { "" };
    let what = match s.targets {
        1 => format!(
            "{about}{} port{} on {}",
            s.ports,
            if s.ports == 1 { "" } else { "s" },
            s.target_sample
                .first()
                .map_or_else(String::new, |a| a.to_ip().to_string())
        ),
        n => match s.ports {
            1 => format!(
                "port {} on {about}{n} hosts",
                s.port_sample.first().map_or(0, |p| *p)
            ),
            p => format!("{about}{p} ports on {about}{n} hosts"),
        },
    };
    let mut line = format!(
        "{} scanned {} ({} scan)",
        s.scanner.to_ip(),
        what,
        s.technique.name()
    );
    if s.open.is_empty() {
        line.push_str(" and found no open port");
    } else {
        let mut found: Vec<String> = Vec::new();
        for f in s.open.iter().take(10) {
            let l = port_label(db, f.proto, f.port);
            let l = if s.targets > 1 {
                format!("{}:{l}", f.host.to_ip())
            } else {
                l
            };
            if !found.contains(&l) {
                found.push(l);
            }
        }
        line.push_str(" and found ");
        line.push_str(&found.join(", "));
        if s.open_total as usize > found.len() {
            line.push_str(&format!(" (+{} more)", s.open_total as usize - found.len()));
        }
        line.push_str(" open");
    }
    line
}

fn flood_signature(f: &FloodReport) -> String {
    let from = if f.sources == 1 {
        format!(
            "from {}",
            f.source_sample
                .first()
                .map_or_else(String::new, |a| a.to_ip().to_string())
        )
    } else {
        format!(
            "from {}{} sources",
            if f.approximate { "about " } else { "" },
            f.sources
        )
    };
    format!(
        "SYN flood to {}:{}: {} SYNs {} in {:.1} s ({} per s), {} answered with SYN-ACK",
        f.target.to_ip(),
        f.port,
        f.attempts,
        from,
        f.last.saturating_sub(f.first).as_secs_f64(),
        rate(f.attempts, f.first, f.last),
        f.answered
    )
}

#[derive(Serialize)]
struct EpisodeEvent<'a> {
    timestamp: String,
    event_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    src_ip: Option<std::net::IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dest_ip: Option<std::net::IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dest_port: Option<u16>,
    proto: &'static str,
    alert: AlertBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    scan: Option<ScanObject<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flood: Option<FloodObject>,
    #[serde(skip_serializing_if = "Option::is_none")]
    backscatter: Option<BackscatterObject>,
}

/// What a scan's open port adds to its host, port and protocol (see [`write_open`]).
#[derive(Serialize)]
struct OpenTail<'a> {
    range: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    service: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    category: Option<&'static str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    names: &'a [String],
}

#[derive(Serialize)]
struct ScanObject<'a> {
    scanner: std::net::IpAddr,
    shape: &'static str,
    technique: &'static str,
    techniques: std::collections::BTreeMap<&'static str, u64>,
    targets: u64,
    target_sample: Vec<std::net::IpAddr>,
    ports: u64,
    port_sample: Vec<u16>,
    probes: u64,
    pkts: u64,
    /// Always empty here: filled in by [`write_open`].
    open: Vec<OpenTail<'a>>,
    open_total: u64,
    trojan_ports_probed: Vec<u16>,
    approximate: bool,
    /// The first report of a scan still going on (live capture); the final one follows.
    in_progress: bool,
}

#[derive(Serialize)]
struct FloodObject {
    target: std::net::IpAddr,
    port: u16,
    attempts: u64,
    answered: u64,
    sources: u64,
    source_sample: Vec<std::net::IpAddr>,
    peak_attempts_in_window: u64,
    approximate: bool,
    in_progress: bool,
}

#[derive(Serialize)]
struct BackscatterObject {
    victim: std::net::IpAddr,
    senders: u64,
    sender_sample: Vec<std::net::IpAddr>,
    synacks: u64,
    resets: u64,
    approximate: bool,
}

fn write_episode_json(
    out: &mut (impl Write + ?Sized),
    rule: crate::detect::rule::Rule,
    severity: u8,
    e: &Episode,
    db: &PortDb,
) -> std::io::Result<()> {
    let (first, last, count) = match e {
        Episode::Scan(s) => (s.first, s.last, s.probes),
        Episode::Flood(f) => (f.first, f.last, f.attempts),
        Episode::Backscatter(b) => (b.first, b.last, b.synacks + b.resets),
    };
    let mut ev = EpisodeEvent {
        timestamp: first.to_rfc3339(),
        event_type: "alert",
        src_ip: None,
        dest_ip: None,
        dest_port: None,
        proto: "TCP",
        alert: AlertBody {
            action: "allowed",
            gid: 1,
            signature_id: rule.signature_id(),
            rev: 1,
            signature: episode_signature(e, db),
            category: rule.category(),
            severity,
            rule: rule.id(),
            count,
            first_seen: first.to_rfc3339(),
            last_seen: last.to_rfc3339(),
            pkts: None,
            bytes: None,
            rate_per_s: Some(rate(count, first, last)),
        },
        scan: None,
        flood: None,
        backscatter: None,
    };
    match e {
        Episode::Scan(s) => {
            ev.src_ip = Some(s.scanner.to_ip());
            if s.targets == 1 {
                ev.dest_ip = s.target_sample.first().map(|a| a.to_ip());
            }
            if s.ports == 1 {
                ev.dest_port = s.port_sample.first().copied();
            }
            ev.proto = proto_name(s.proto);
            ev.scan = Some(ScanObject {
                scanner: s.scanner.to_ip(),
                shape: s.shape,
                technique: s.technique.name(),
                techniques: s.by_technique.iter().map(|(t, n)| (t.name(), *n)).collect(),
                targets: s.targets,
                target_sample: s.target_sample.iter().map(|a| a.to_ip()).collect(),
                ports: s.ports,
                port_sample: s.port_sample.clone(),
                probes: s.probes,
                pkts: s.pkts,
                // Written apart (`write_open`) and put in place below.
                open: Vec::new(),
                open_total: s.open_total,
                trojan_ports_probed: s.trojan_ports.clone(),
                approximate: s.approximate,
                in_progress: s.in_progress,
            });
        }
        Episode::Flood(f) => {
            if f.sources == 1 {
                ev.src_ip = f.source_sample.first().map(|a| a.to_ip());
            }
            ev.dest_ip = Some(f.target.to_ip());
            ev.dest_port = Some(f.port);
            ev.flood = Some(FloodObject {
                target: f.target.to_ip(),
                port: f.port,
                attempts: f.attempts,
                answered: f.answered,
                sources: f.sources,
                source_sample: f.source_sample.iter().map(|a| a.to_ip()).collect(),
                peak_attempts_in_window: f.peak_window_attempts,
                approximate: f.approximate,
                in_progress: f.in_progress,
            });
        }
        Episode::Backscatter(b) => {
            ev.dest_ip = Some(b.victim.to_ip());
            ev.backscatter = Some(back_object(b));
        }
    }
    let Episode::Scan(s) = e else {
        serde_json::to_writer(&mut *out, &ev).map_err(std::io::Error::other)?;
        return out.write_all(b"\n");
    };
    // A scan's open ports repeat each port's names for every host: serialising them through
    // serde was most of an alert's cost (about 30 instructions a byte, 4 for the records).
    // The rest of the event is serialised with an empty list, which is then filled in.
    let line = serde_json::to_vec(&ev).map_err(std::io::Error::other)?;
    const EMPTY: &[u8] = b"\"open\":[]";
    // A key in quotes followed by a colon cannot occur inside a JSON string (its quotes
    // would be escaped), and only the scan object has an `open` key.
    let at = line
        .windows(EMPTY.len())
        .position(|w| w == EMPTY)
        .map(|i| i + EMPTY.len() - 1);
    match at {
        Some(at) => {
            out.write_all(line.get(..at).unwrap_or_default())?;
            let mut open = Vec::with_capacity(s.open.len() * 160);
            write_open(&mut open, s, db);
            out.write_all(&open)?;
            out.write_all(line.get(at..).unwrap_or_default())?;
        }
        // Not reached (the key is always written); the event is whole without the list.
        None => out.write_all(&line)?,
    }
    out.write_all(b"\n")
}

/// The body of a scan's `open` list (between its brackets), as serde would write the
/// [`OpenPort`]s: each port's classification is serialised once per run and kept.
fn write_open(out: &mut Vec<u8>, s: &ScanReport, db: &PortDb) {
    use super::text::{Text, push_ip, push_u64};
    use std::cell::RefCell;
    use std::collections::HashMap;
    thread_local! {
        /// `"range":…` to the end of an [`OpenTail`] by (protocol, port): bounded by the
        /// number of distinct pairs.
        static TAILS: RefCell<HashMap<u32, Box<str>>> = RefCell::new(HashMap::new());
    }
    TAILS.with_borrow_mut(|tails| {
        for (n, f) in s.open.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            let tail = tails
                .entry((u32::from(f.proto) << 16) | u32::from(f.port))
                .or_insert_with(|| {
                    let e = db.lookup_ip(f.proto, f.port);
                    let t = OpenTail {
                        range: RangeClass::of(f.port).name(),
                        service: e.and_then(|e| e.service.as_deref()),
                        category: e.map(|e| e.category.name()),
                        names: e.map_or(&[][..], |e| &e.names[..]),
                    };
                    let json = serde_json::to_string(&t).unwrap_or_default();
                    // Without its braces: the fields go after host, port and proto.
                    json.get(1..json.len().saturating_sub(1))
                        .unwrap_or_default()
                        .into()
                });
            out.put("{\"host\":\"");
            push_ip(out, &f.host);
            out.put("\",\"port\":");
            push_u64(out, u64::from(f.port));
            out.put(",\"proto\":\"");
            out.put(proto_name(f.proto));
            out.put("\",");
            out.put(tail);
            out.put("}");
        }
    });
}

fn back_object(b: &BackscatterReport) -> BackscatterObject {
    BackscatterObject {
        victim: b.victim.to_ip(),
        senders: b.senders,
        sender_sample: b.sender_sample.iter().map(|a| a.to_ip()).collect(),
        synacks: b.synacks,
        resets: b.resets,
        approximate: b.approximate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::rule::Rule;

    /// Port alerts built by hand say what serde said: every port rule and three severities on
    /// real records (trojan, risky and unlisted ports, TCP, UDP, ICMP, IPv6, tunnels), with
    /// counts, byte totals and times at the edges (before 1970, one second apart, far
    /// apart), each written twice so that the cached parts are used as well as made.
    #[test]
    fn hand_built_port_alerts_match_the_serde_reference() {
        let (db, records) = crate::analyse::fixture_records(&[
            "trojan-31337-open.pcap",
            "telnet-23.pcap",
            "udp-31337-answered.pcap",
            "udp-31337-unreachable.pcap",
            "scan-syn6.pcap",
            "tunnel-vxlan.pcap",
            "http-curl.pcap",
        ]);
        assert!(records.len() > 10, "{}", records.len());
        let rules = [
            Rule::TrojanEstablished,
            Rule::TrojanProbe,
            Rule::RiskyEstablished,
            Rule::TrojanUdpAnswered,
            Rule::TrojanUdpUnanswered,
        ];
        let times = [
            (-1_500_000, -1_000_000),
            (0, 0),
            (1_700_000_000_999_999, 1_700_000_001_000_000),
            (i64::MIN / 2, i64::MAX / 2),
        ];
        let mut cache = AlertCache::default();
        let (mut cached, mut listed) = (0, 0);
        for (n, r) in records.iter().enumerate() {
            listed += usize::from(db.lookup_ip(r.ip_proto, r.resp.port).is_some());
            for (k, rule) in rules.iter().enumerate() {
                let (first_seen, last_seen) = times[(n + k) % times.len()];
                let a = PortAlert {
                    rule: *rule,
                    severity: (n % 3) as u8 + 1,
                    first: *r,
                    count: [1, 9, 10, u64::MAX][k % 4],
                    first_seen: Micros(first_seen),
                    last_seen: Micros(last_seen),
                    pkts: r.orig_pkts + r.resp_pkts,
                    bytes: [0, 99_999_999, u64::MAX][n % 3],
                };
                let mut want = Vec::new();
                write_port_json(&mut want, &a, &db).unwrap();
                for _ in 0..2 {
                    let mut got = Vec::new();
                    write_json(&mut got, &Alert::Port(a.clone()), &db, &mut cache).unwrap();
                    assert_eq!(
                        String::from_utf8(got).unwrap(),
                        String::from_utf8(want.clone()).unwrap()
                    );
                }
                cached = cache.pieces.len();
            }
        }
        assert!(listed > 0 && cached > 0, "{listed} listed, {cached} cached");
        assert!(listed < records.len(), "no record on an unlisted port");
    }
}
