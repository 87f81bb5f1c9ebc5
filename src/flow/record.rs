//! The connection record a flow yields when it ends: plain data, ready for any output format.

use super::conn::{ConnState, Connection, EndReason, Parents, ProtoState};
use super::history::History;
use super::key::Endpoint;
use crate::decode::Vlans;
use crate::decode::tunnel::TunnelKind;
use crate::time::Micros;

/// What the TCP handshake showed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Handshake {
    /// Not TCP, or no SYN from the originator.
    None,
    /// SYN, SYN-ACK and the originator's ACK.
    Completed,
    /// SYN and SYN-ACK, but no ACK (e.g. half-open scan probes).
    HalfOpen,
    /// SYN answered by RST.
    Rejected,
    /// SYN with no answer.
    Unanswered,
}

impl Handshake {
    pub fn name(self) -> &'static str {
        match self {
            Handshake::None => "none",
            Handshake::Completed => "completed",
            Handshake::HalfOpen => "half_open",
            Handshake::Rejected => "rejected",
            Handshake::Unanswered => "unanswered",
        }
    }
}

/// One finished connection.
#[derive(Clone, Copy, Debug)]
pub struct ConnRecord {
    pub flow_id: u64,
    pub ip_proto: u8,
    pub orig: Endpoint,
    pub resp: Endpoint,
    pub start: Micros,
    pub end: Micros,
    pub conn_state: ConnState,
    pub history: History,
    pub orig_pkts: u64,
    pub resp_pkts: u64,
    pub orig_bytes: u64,
    pub resp_bytes: u64,
    pub orig_ip_bytes: u64,
    pub resp_ip_bytes: u64,
    pub missed_bytes: u64,
    pub orig_tcp_flags: u8,
    pub resp_tcp_flags: u8,
    pub reason: EndReason,
    pub handshake: Handshake,
    pub syn_synack_us: Option<u64>,
    pub synack_ack_us: Option<u64>,
    pub vlans: Vlans,
    /// The tunnel this connection carried (it is a tunnel's outer connection).
    pub tunnel: Option<TunnelKind>,
    /// Outer connections this one was seen inside (Zeek's `tunnel_parents`).
    pub parents: Parents,
    /// Sequence number of the packet during whose analysis the record was written.
    pub seq: u64,
    /// When the end was due: the timer's time, the ending packet's time, or `Micros::MAX` for
    /// records written at the end of input.
    pub due: Micros,
}

impl ConnRecord {
    pub fn from_conn(c: &Connection, reason: EndReason) -> ConnRecord {
        let o = c.orig_side_info();
        let r = c.resp_side_info();
        let (orig_bytes, resp_bytes) = c.byte_counts();
        let conn_state = c.conn_state();
        let t = c.tcp();
        let us = |a: Option<Micros>, b: Option<Micros>| match (a, b) {
            (Some(a), Some(b)) if b >= a => Some((b.0 - a.0) as u64),
            _ => None,
        };
        let handshake = if c.state != ProtoState::Tcp || t.syn_ts.is_none() {
            Handshake::None
        } else if t.ack_ts.is_some() {
            Handshake::Completed
        } else if t.synack_ts.is_some() {
            Handshake::HalfOpen
        } else if conn_state == ConnState::REJ {
            Handshake::Rejected
        } else {
            Handshake::Unanswered
        };
        ConnRecord {
            flow_id: c.flow_id,
            ip_proto: c.key.proto,
            orig: c.orig_ep(),
            resp: c.resp(),
            start: c.start,
            end: c.last_time,
            conn_state,
            history: c.history,
            orig_pkts: o.pkts,
            resp_pkts: r.pkts,
            orig_bytes,
            resp_bytes,
            orig_ip_bytes: o.ip_bytes,
            resp_ip_bytes: r.ip_bytes,
            missed_bytes: t.ep[0].missed.saturating_add(t.ep[1].missed),
            orig_tcp_flags: o.tcp_flags,
            resp_tcp_flags: r.tcp_flags,
            reason,
            handshake,
            syn_synack_us: us(t.syn_ts.get(), t.synack_ts.get()),
            synack_ack_us: us(t.synack_ts.get(), t.ack_ts.get()),
            vlans: c.vlans,
            tunnel: c.tunnel,
            parents: c.parents.as_deref().copied().unwrap_or_default(),
            seq: 0,
            due: Micros::MAX,
        }
    }

    /// The canonical order of records: by the packet that ended them, then when each was due,
    /// then flow id. It depends only on the input, so one worker or many write the records
    /// (and judge them) in the same order.
    pub fn order(&self) -> (u64, Micros, u64) {
        (self.seq, self.due, self.flow_id)
    }

    pub fn duration(&self) -> Micros {
        self.end.saturating_sub(self.start)
    }
}
