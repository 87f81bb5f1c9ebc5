//! JSON lines, close to Suricata's EVE `flow` events (GUIDE §5).

use serde::Serialize;

use super::text::{Text, push_ip};
use super::{proto_name, uid};
use crate::classify::ports::{PortDb, PortEntry, RangeClass};
use crate::decode::Addr;
use crate::flow::ConnRecord;
use crate::flow::key::proto;

/// The `port` object: what the port database says about the responder's port.
#[derive(Serialize)]
pub struct PortObject<'a> {
    pub port: u16,
    pub proto: &'static str,
    /// IANA range: well-known, registered or dynamic.
    pub range: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<&'a str>,
    /// trojan, risky, proxy or service; absent for ports the database does not know.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<&'static str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub names: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advice: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correction: Option<&'a str>,
}

impl<'a> PortObject<'a> {
    pub fn new(e: &'a PortEntry, port: u16) -> Self {
        PortObject {
            port,
            proto: e.proto.name(),
            range: RangeClass::of(port).name(),
            service: e.service.as_deref(),
            category: Some(e.category.name()),
            names: &e.names,
            advice: e.advice.as_deref(),
            correction: e.correction.as_deref(),
        }
    }

    /// Without the advice and the correction (flow records: one per connection).
    pub fn brief(e: &'a PortEntry, port: u16) -> Self {
        PortObject {
            advice: None,
            correction: None,
            ..PortObject::new(e, port)
        }
    }

    /// For a port the database does not know: only its range.
    pub fn unknown(proto: &'static str, port: u16) -> Self {
        PortObject {
            port,
            proto,
            range: RangeClass::of(port).name(),
            service: None,
            category: None,
            names: &[],
            advice: None,
            correction: None,
        }
    }
}

#[derive(Serialize)]
struct FlowEvent<'a> {
    timestamp: String,
    flow_id: u64,
    event_type: &'static str,
    src_ip: std::net::IpAddr,
    src_port: u16,
    dest_ip: std::net::IpAddr,
    dest_port: u16,
    proto: &'static str,
    ip_proto: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    vlan: Option<Vec<u16>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<PortObject<'a>>,
    flow: FlowBody<'a>,
}

#[derive(Serialize)]
struct FlowBody<'a> {
    uid: String,
    conn_state: &'static str,
    history: &'a str,
    duration: f64,
    orig_pkts: u64,
    orig_bytes: u64,
    resp_pkts: u64,
    resp_bytes: u64,
    orig_ip_bytes: u64,
    resp_ip_bytes: u64,
    missed_bytes: u64,
    start: String,
    end: String,
    reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    handshake: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    syn_synack_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    synack_ack_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tunnel: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tunnel_parents: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    orig_tcp_flags: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resp_tcp_flags: Option<String>,
}

/// TCP flags as letters in a fixed order (like `tcpdump`): F S R P A U.
pub fn flag_letters(f: u8) -> String {
    let mut s = String::with_capacity(6);
    push_flags(&mut s, f);
    s
}

/// What the record writer keeps from one record to the next: pre-rendered `port` objects by
/// (protocol, port) (the database is fixed for a run, so each object is serialised once;
/// bounded by the number of distinct pairs), the last second's date and time, and the text of
/// recently written addresses.
#[derive(Default)]
pub struct RecordCache {
    map: std::collections::HashMap<u32, Box<str>, foldhash::fast::FixedState>,
    dates: crate::time::DateCache,
    addrs: AddrCache,
}

/// Addresses as text, direct-mapped by their last byte: a scanner, its target and a flood's
/// target come back record after record, and copying their text whole is cheaper than
/// rendering it again.
struct AddrCache {
    slots: [(Addr, [u8; 40], u8); AddrCache::SLOTS],
}

impl Default for AddrCache {
    fn default() -> Self {
        // An empty slot has no text (length 0), and only a slot with text is used.
        AddrCache {
            slots: [(Addr::default(), [0; 40], 0); AddrCache::SLOTS],
        }
    }
}

impl AddrCache {
    const SLOTS: usize = 16;

    /// Appends `a` as [`push_ip`] writes it.
    #[inline]
    fn put(&mut self, line: &mut Vec<u8>, a: &Addr) {
        let last = if a.v6 {
            a.bytes.get(15)
        } else {
            a.bytes.get(3)
        };
        let at = usize::from(last.copied().unwrap_or(0)) % Self::SLOTS;
        let Some((addr, text, len)) = self.slots.get_mut(at) else {
            return push_ip(line, a);
        };
        if *len > 0 && addr == a {
            return line.put_prefix(text, usize::from(*len));
        }
        let start = line.len();
        push_ip(line, a);
        let written = line.get(start..).unwrap_or_default();
        if let Some(dst) = text.get_mut(..written.len()) {
            dst.copy_from_slice(written);
            (*addr, *len) = (*a, written.len() as u8);
        }
    }
}

impl RecordCache {
    fn get(&mut self, ip_proto: u8, port: u16, db: &PortDb) -> Option<&str> {
        let p = match ip_proto {
            proto::TCP => "tcp",
            proto::UDP => "udp",
            _ => return None,
        };
        let key = (u32::from(ip_proto) << 16) | u32::from(port);
        let s = self.map.entry(key).or_insert_with(|| {
            let obj = match db.lookup_ip(ip_proto, port) {
                // Flow records carry the tags; advice and corrections are in alerts and `ports`.
                Some(e) => PortObject::brief(e, port),
                None => PortObject::unknown(p, port),
            };
            serde_json::to_string(&obj)
                .unwrap_or_else(|_| String::from("null"))
                .into_boxed_str()
        });
        Some(s)
    }
}

fn push_flags(s: &mut impl super::text::Text, f: u8) {
    for (bit, c) in [
        (0x01, "F"),
        (0x02, "S"),
        (0x04, "R"),
        (0x08, "P"),
        (0x10, "A"),
        (0x20, "U"),
    ] {
        if f & bit != 0 {
            s.put(c);
        }
    }
}

/// Writes one record as a JSON line, built by hand into `line` (reused): no allocation per
/// record once the port objects are cached. Every string written is ASCII from synwatch's own
/// vocabulary (history letters, names of states), so nothing needs escaping; the port objects
/// come from serde.
pub fn write_flow_into(
    out: &mut impl std::io::Write,
    r: &ConnRecord,
    db: &PortDb,
    line: &mut Vec<u8>,
    cache: &mut RecordCache,
) -> std::io::Result<()> {
    line.clear();
    append_flow(line, r, db, cache);
    out.write_all(line)
}

/// Appends one record's JSON line (see [`write_flow_into`]) to `line`.
pub fn append_flow(line: &mut Vec<u8>, r: &ConnRecord, db: &PortDb, cache: &mut RecordCache) {
    use super::text::{push_secs6, push_u64};
    use std::io::Write as _;
    let is_tcp = r.ip_proto == proto::TCP;
    line.put("{\"timestamp\":\"");
    // The start time is written once and copied for `start`, and its date and time of day
    // for `end` when it ends in the same second (most records).
    let start_at = line.len();
    cache.dates.write(r.start, line);
    let start = start_at..line.len();
    line.put("\",\"flow_id\":");
    push_u64(line, r.flow_id);
    line.put(",\"event_type\":\"flow\",\"src_ip\":\"");
    cache.addrs.put(line, &r.orig.addr);
    line.put("\",\"src_port\":");
    push_u64(line, u64::from(r.orig.port));
    line.put(",\"dest_ip\":\"");
    cache.addrs.put(line, &r.resp.addr);
    line.put("\",\"dest_port\":");
    push_u64(line, u64::from(r.resp.port));
    line.put(",\"proto\":\"");
    line.put(proto_name(r.ip_proto));
    line.put("\",\"ip_proto\":");
    push_u64(line, u64::from(r.ip_proto));
    match (r.vlans.outer, r.vlans.inner) {
        (0, _) => {}
        (o, 0) => {
            let _ = write!(line, ",\"vlan\":[{o}]");
        }
        (o, i) => {
            let _ = write!(line, ",\"vlan\":[{o},{i}]");
        }
    }
    if let Some(p) = cache.get(r.ip_proto, r.resp.port, db) {
        line.put(",\"port\":");
        line.put(p);
    }
    line.put(",\"flow\":{\"uid\":\"");
    super::write_uid(line, r.flow_id);
    line.put("\",\"conn_state\":\"");
    line.put(r.conn_state.name());
    line.put("\",\"history\":\"");
    let (letters, n) = r.history.padded();
    line.put_prefix(letters, n);
    line.put("\",\"duration\":");
    push_secs6(line, r.duration().0);
    super::text::push_fields(
        line,
        &[
            (",\"orig_pkts\":", r.orig_pkts),
            (",\"orig_bytes\":", r.orig_bytes),
            (",\"resp_pkts\":", r.resp_pkts),
            (",\"resp_bytes\":", r.resp_bytes),
            (",\"orig_ip_bytes\":", r.orig_ip_bytes),
            (",\"resp_ip_bytes\":", r.resp_ip_bytes),
            (",\"missed_bytes\":", r.missed_bytes),
        ],
    );
    line.put(",\"start\":\"");
    line.extend_from_within(start.clone());
    line.put("\",\"end\":\"");
    if r.end.secs() == r.start.secs() {
        // `YYYY-MM-DDTHH:MM:SS` of the start, without its `.ffffffZ`.
        line.extend_from_within(start.start..start.end.saturating_sub(8));
        super::text::push_micros_z(line, r.end.subsec_micros());
    } else {
        cache.dates.write(r.end, line);
    }
    line.put("\",\"reason\":\"");
    line.put(r.reason.name());
    line.put("\"");
    if is_tcp {
        line.put(",\"handshake\":\"");
        line.put(r.handshake.name());
        line.put("\"");
    }
    if let Some(us) = r.syn_synack_us {
        line.put(",\"syn_synack_us\":");
        push_u64(line, us);
    }
    if let Some(us) = r.synack_ack_us {
        line.put(",\"synack_ack_us\":");
        push_u64(line, us);
    }
    if let Some(t) = r.tunnel {
        let _ = write!(line, ",\"tunnel\":\"{}\"", t.name());
    }
    if !r.parents.is_empty() {
        line.put(",\"tunnel_parents\":[");
        for (n, p) in r.parents.as_slice().iter().enumerate() {
            if n > 0 {
                line.put(",");
            }
            line.put("\"");
            super::write_uid(line, *p);
            line.put("\"");
        }
        line.put("]");
    }
    if is_tcp {
        line.put(",\"orig_tcp_flags\":\"");
        push_flags(line, r.orig_tcp_flags);
        line.put("\",\"resp_tcp_flags\":\"");
        push_flags(line, r.resp_tcp_flags);
        line.put("\"");
    }
    line.put("}}\n");
}

/// Writes one record as a JSON line.
pub fn write_flow(
    out: &mut impl std::io::Write,
    r: &ConnRecord,
    db: &PortDb,
) -> std::io::Result<()> {
    let is_tcp = r.ip_proto == proto::TCP;
    let port = match (r.ip_proto, db.lookup_ip(r.ip_proto, r.resp.port)) {
        // Flow records carry the tags; the advice and corrections are in alerts and `ports`.
        (_, Some(e)) => Some(PortObject::brief(e, r.resp.port)),
        (proto::TCP, None) => Some(PortObject::unknown("tcp", r.resp.port)),
        (proto::UDP, None) => Some(PortObject::unknown("udp", r.resp.port)),
        _ => None,
    };
    let ev = FlowEvent {
        timestamp: r.start.to_rfc3339(),
        flow_id: r.flow_id,
        event_type: "flow",
        src_ip: r.orig.addr.to_ip(),
        src_port: r.orig.port,
        dest_ip: r.resp.addr.to_ip(),
        dest_port: r.resp.port,
        proto: proto_name(r.ip_proto),
        ip_proto: r.ip_proto,
        vlan: match (r.vlans.outer, r.vlans.inner) {
            (0, _) => None,
            (o, 0) => Some(vec![o]),
            (o, i) => Some(vec![o, i]),
        },
        port,
        flow: FlowBody {
            uid: uid(r.flow_id),
            conn_state: r.conn_state.name(),
            history: r.history.as_str(),
            duration: r.duration().as_secs_f64(),
            orig_pkts: r.orig_pkts,
            orig_bytes: r.orig_bytes,
            resp_pkts: r.resp_pkts,
            resp_bytes: r.resp_bytes,
            orig_ip_bytes: r.orig_ip_bytes,
            resp_ip_bytes: r.resp_ip_bytes,
            missed_bytes: r.missed_bytes,
            start: r.start.to_rfc3339(),
            end: r.end.to_rfc3339(),
            reason: r.reason.name(),
            handshake: is_tcp.then(|| r.handshake.name()),
            syn_synack_us: r.syn_synack_us,
            synack_ack_us: r.synack_ack_us,
            tunnel: r.tunnel.map(|t| t.name()),
            tunnel_parents: r.parents.as_slice().iter().map(|p| uid(*p)).collect(),
            orig_tcp_flags: is_tcp.then(|| flag_letters(r.orig_tcp_flags)),
            resp_tcp_flags: is_tcp.then(|| flag_letters(r.resp_tcp_flags)),
        },
    };
    serde_json::to_writer(&mut *out, &ev).map_err(std::io::Error::other)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The address cache writes what `push_ip` writes, whatever the order of lookups: the
    /// same address again, another with the same last byte (one slot), IPv4 and IPv6 alike.
    #[test]
    fn the_address_cache_writes_what_push_ip_writes() {
        let addrs = [
            Addr::v4([10, 0, 0, 1]),
            Addr::v4([192, 168, 7, 1]),
            Addr::v4([0, 0, 0, 0]),
            Addr::v4([255, 255, 255, 17]),
            Addr::v6([0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
            Addr::v6([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11]),
            Addr::v6([0; 16]),
        ];
        let mut cache = AddrCache::default();
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..2_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let a = addrs[(x % addrs.len() as u64) as usize];
            let (mut got, mut want) = (b"x".to_vec(), b"x".to_vec());
            cache.put(&mut got, &a);
            push_ip(&mut want, &a);
            assert_eq!(got, want, "{a:?}");
        }
    }

    /// The hand-written writer says exactly what the serde reference says, on real records
    /// (VLAN tags, tunnels and their parents, TCP, UDP, ICMP, IPv6).
    #[test]
    fn hand_written_json_matches_the_serde_reference() {
        let (db, records) = crate::analyse::fixture_records(&[
            "vlan.pcap",
            "tunnel-vxlan.pcap",
            "tunnel-vxlan6.pcap",
            "udp-31337-unreachable.pcap",
            "scan-udp.pcap",
        ]);
        assert!(records.len() > 10, "{}", records.len());
        let (mut line, mut cache) = (Vec::new(), RecordCache::default());
        for r in &records {
            let mut a = Vec::new();
            let mut b = Vec::new();
            write_flow(&mut a, r, &db).unwrap();
            write_flow_into(&mut b, r, &db, &mut line, &mut cache).unwrap();
            let va: serde_json::Value = serde_json::from_slice(&a).unwrap();
            let vb: serde_json::Value = serde_json::from_slice(&b).unwrap();
            assert_eq!(
                va,
                vb,
                "\n{}\n{}",
                String::from_utf8_lossy(&a),
                String::from_utf8_lossy(&b)
            );
            assert!(b.ends_with(b"\n") && !b[..b.len() - 1].contains(&b'\n'));
        }
        // Start and end in the same second (whose date and time the end reuses), in
        // different seconds, days and years, and before 1970.
        let base = records[0];
        let same = |a: &[u8], b: &[u8]| {
            let va: serde_json::Value = serde_json::from_slice(a).unwrap();
            let vb: serde_json::Value = serde_json::from_slice(b).unwrap();
            assert_eq!(va, vb);
        };
        for (start, end) in [
            (1_700_000_000_000_001, 1_700_000_000_999_999),
            (1_700_000_000_999_999, 1_700_000_001_000_000),
            (1_703_980_799_500_000, 1_703_980_800_250_000),
            (0, 0),
            (-1, 0),
            (-1_500_000, -1_000_000),
            (-86_400_000_001, -86_400_000_000),
            // The ends of the range, years 9999 to 10000 and beyond, year 0 and before
            // (the date has more or fewer characters there; `.ffffffZ` stays the last 8).
            (i64::MIN, i64::MIN + 999_999),
            (i64::MAX - 5, i64::MAX),
            (253_402_300_799_000_000, 253_402_300_800_000_001),
            (300_000_000_000_000_000, 300_000_000_000_000_001),
            (-62_167_219_200_500_000, -62_167_219_200_000_001),
            (-70_000_000_000_000_000, -70_000_000_000_000_000),
        ] {
            let mut r = base;
            r.start = crate::time::Micros(start);
            r.end = crate::time::Micros(end);
            let (mut a, mut b) = (Vec::new(), Vec::new());
            write_flow(&mut a, &r, &db).unwrap();
            write_flow_into(&mut b, &r, &db, &mut line, &mut cache).unwrap();
            same(&a, &b);
            let text = String::from_utf8_lossy(&b);
            for (name, t) in [("start", start), ("end", end)] {
                let want = format!("\"{name}\":\"{}\"", crate::time::Micros(t).to_rfc3339());
                assert!(text.contains(&want), "{want} in {text}");
            }
        }
    }
}
