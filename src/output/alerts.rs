//! The alert log: EVE-like JSON lines (GUIDE §5) or one line of text per alert.

use std::io::Write;

use serde::Serialize;

use super::{json::PortObject, proto_name, uid};
use crate::classify::ports::PortDb;
use crate::detect::Alert;

/// How alerts are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AlertFormat {
    /// One EVE-like JSON object per line (`event_type":"alert"`).
    Json,
    /// One line of text per alert, for people.
    Text,
}

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
    count: u64,
    first_seen: String,
    last_seen: String,
    /// Packets and payload bytes over every connection folded into this alert.
    pkts: u64,
    bytes: u64,
}

/// The first connection that raised the alert.
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

/// Writes one alert as a JSON line.
pub fn write_json(out: &mut dyn Write, a: &Alert, db: &PortDb) -> std::io::Result<()> {
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
            pkts: a.pkts,
            bytes: a.bytes,
        },
        port: entry.map(|e| PortObject::new(e, r.resp.port)),
        flow: AlertFlow {
            uid: uid(r.flow_id),
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

/// Writes one alert as a line of text.
pub fn write_text(out: &mut dyn Write, a: &Alert, db: &PortDb) -> std::io::Result<()> {
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
