//! JSON lines, close to Suricata's EVE `flow` events (GUIDE §5).

use serde::Serialize;

use super::{proto_name, uid};
use crate::classify::ports::{PortDb, PortEntry, RangeClass};
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
    for (bit, c) in [
        (0x01, 'F'),
        (0x02, 'S'),
        (0x04, 'R'),
        (0x08, 'P'),
        (0x10, 'A'),
        (0x20, 'U'),
    ] {
        if f & bit != 0 {
            s.push(c);
        }
    }
    s
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
