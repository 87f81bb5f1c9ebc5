//! One connection: who is originator, what each side sent, its history, its timers, and the
//! `conn_state` derived from it all (ZEEK-SEMANTICS §2).

use super::history::{History, Once, Scaled};
use super::key::{Endpoint, FlowKey, proto};
use super::pack::{
    Reader, Writer, code_of, maybe_delta, maybe_undelta, of_code, time_delta, time_undelta,
    tunnel_code, tunnel_of,
};
use super::server_ports::is_likely_server_port;
use super::tcp::{EndpointState, TcpConn};
use crate::decode::tunnel::TunnelKind;
use crate::decode::{ChecksumVerdict, Decoded, Transport, Vlans};
use crate::time::{MaybeMicros, Micros};

/// Timer settings, in packet time (ZEEK-SEMANTICS §6; Zeek's defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub tcp_attempt: Micros,
    pub tcp_close: Micros,
    pub tcp_session_timer: Micros,
    pub tcp_linger: Micros,
    pub tcp_syn_timeout: Micros,
    pub tcp_inactivity: Micros,
    /// Inactivity timeout for TCP on the interactive ports 21, 22, 23, 513 once established.
    pub tcp_interactive_inactivity: Micros,
    pub udp_inactivity: Micros,
    pub icmp_inactivity: Micros,
    pub other_inactivity: Micros,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_attempt: Micros::from_secs(5),
            tcp_close: Micros::from_secs(5),
            tcp_session_timer: Micros::from_secs(6),
            tcp_linger: Micros::from_secs(5),
            tcp_syn_timeout: Micros::from_secs(5),
            tcp_inactivity: Micros::from_secs(300),
            tcp_interactive_inactivity: Micros::from_secs(3600),
            udp_inactivity: Micros::from_secs(60),
            icmp_inactivity: Micros::from_secs(60),
            other_inactivity: Micros::from_secs(60),
        }
    }
}

impl Timeouts {
    /// One shared copy of these settings for the life of the process, so that a connection
    /// holds a pointer (8 bytes) instead of its own copy (80). Equal settings share one copy;
    /// a process uses only a few distinct settings (one per run), so the few leaked copies are
    /// bounded.
    pub fn interned(self) -> &'static Timeouts {
        static SEEN: std::sync::Mutex<Vec<&'static Timeouts>> = std::sync::Mutex::new(Vec::new());
        let mut seen = match SEEN.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(t) = seen.iter().find(|t| ***t == self) {
            return t;
        }
        let t: &'static Timeouts = Box::leak(Box::new(self));
        seen.push(t);
        t
    }

    /// The names `--timeout` accepts: Zeek's option names (init-bare.zeek), with what each sets.
    pub const NAMES: [(&'static str, &'static str); 10] = [
        (
            "tcp_attempt_delay",
            "an unanswered SYN is written as an attempt (S0) after this",
        ),
        (
            "tcp_close_delay",
            "a closed or reset connection is written this long after the close",
        ),
        (
            "tcp_session_timer",
            "how often a half-closed or idle TCP connection is re-checked",
        ),
        (
            "tcp_connection_linger",
            "idle time after one side closed before the record is written",
        ),
        (
            "tcp_SYN_timeout",
            "first re-check of a connection that has only seen a SYN",
        ),
        (
            "tcp_inactivity_timeout",
            "an established TCP connection idle this long is written",
        ),
        (
            "tcp_interactive_timeout",
            "the same for ports 21, 22, 23 and 513",
        ),
        (
            "udp_inactivity_timeout",
            "a UDP flow idle this long is written",
        ),
        (
            "icmp_inactivity_timeout",
            "an ICMP flow idle this long is written",
        ),
        (
            "unknown_ip_inactivity_timeout",
            "a flow of another IP protocol idle this long is written",
        ),
    ];

    /// Sets the timer called `name` (one of [`Timeouts::NAMES`]).
    pub fn set(&mut self, name: &str, value: Micros) -> Result<(), String> {
        let slot = match name {
            "tcp_attempt_delay" => &mut self.tcp_attempt,
            "tcp_close_delay" => &mut self.tcp_close,
            "tcp_session_timer" => &mut self.tcp_session_timer,
            "tcp_connection_linger" => &mut self.tcp_linger,
            "tcp_SYN_timeout" => &mut self.tcp_syn_timeout,
            "tcp_inactivity_timeout" => &mut self.tcp_inactivity,
            "tcp_interactive_timeout" => &mut self.tcp_interactive_inactivity,
            "udp_inactivity_timeout" => &mut self.udp_inactivity,
            "icmp_inactivity_timeout" => &mut self.icmp_inactivity,
            "unknown_ip_inactivity_timeout" => &mut self.other_inactivity,
            _ => {
                let names: Vec<&str> = Self::NAMES.iter().map(|(n, _)| *n).collect();
                return Err(format!(
                    "unknown timeout `{name}`; known: {}",
                    names.join(", ")
                ));
            }
        };
        if name == "tcp_session_timer" && value.0 <= 0 {
            // It re-arms itself at the clock plus this: nothing would ever move past it.
            return Err("tcp_session_timer must be more than 0 seconds".to_string());
        }
        *slot = value;
        Ok(())
    }
}

/// Why a connection record was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// Closed or reset, and the close delay passed.
    Closed,
    /// An unanswered SYN's attempt timer ran out.
    Attempt,
    /// No packets for the inactivity timeout (or a closed connection lingered).
    Timeout,
    /// A new SYN reused the 5-tuple.
    Reused,
    /// The input ended while the connection was open.
    EndOfInput,
    /// Evicted to keep the flow table within its limit.
    Evicted,
    /// Live capture stopped (SIGINT / SIGTERM) while the connection was open.
    Shutdown,
}

impl EndReason {
    pub fn name(self) -> &'static str {
        match self {
            EndReason::Closed => "closed",
            EndReason::Attempt => "attempt",
            EndReason::Timeout => "timeout",
            EndReason::Reused => "reused",
            EndReason::EndOfInput => "end_of_input",
            EndReason::Evicted => "evicted",
            EndReason::Shutdown => "shutdown",
        }
    }
}

/// Zeek's conn_state values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConnState {
    S0,
    S1,
    SF,
    REJ,
    S2,
    S3,
    RSTO,
    RSTR,
    RSTOS0,
    RSTRH,
    SH,
    SHR,
    OTH,
}

impl ConnState {
    pub const ALL: [ConnState; 13] = [
        ConnState::S0,
        ConnState::S1,
        ConnState::SF,
        ConnState::REJ,
        ConnState::S2,
        ConnState::S3,
        ConnState::RSTO,
        ConnState::RSTR,
        ConnState::RSTOS0,
        ConnState::RSTRH,
        ConnState::SH,
        ConnState::SHR,
        ConnState::OTH,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ConnState::S0 => "S0",
            ConnState::S1 => "S1",
            ConnState::SF => "SF",
            ConnState::REJ => "REJ",
            ConnState::S2 => "S2",
            ConnState::S3 => "S3",
            ConnState::RSTO => "RSTO",
            ConnState::RSTR => "RSTR",
            ConnState::RSTOS0 => "RSTOS0",
            ConnState::RSTRH => "RSTRH",
            ConnState::SH => "SH",
            ConnState::SHR => "SHR",
            ConnState::OTH => "OTH",
        }
    }

    /// Zeek's one-line meaning (main.zeek L54-91).
    pub fn meaning(self) -> &'static str {
        match self {
            ConnState::S0 => "attempt seen, no reply",
            ConnState::S1 => "established, not terminated",
            ConnState::SF => "normal establishment and termination",
            ConnState::REJ => "attempt rejected",
            ConnState::S2 => "established, originator closed, no reply",
            ConnState::S3 => "established, responder closed, no reply",
            ConnState::RSTO => "established, originator aborted (RST)",
            ConnState::RSTR => "responder sent a RST",
            ConnState::RSTOS0 => "originator sent SYN then RST, no SYN-ACK",
            ConnState::RSTRH => "responder sent SYN-ACK then RST, no SYN seen",
            ConnState::SH => "originator sent SYN then FIN, no SYN-ACK",
            ConnState::SHR => "responder sent SYN-ACK then FIN, no SYN seen",
            ConnState::OTH => "no SYN seen, midstream or other traffic",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// What one side of the connection sent (by side, which does not change on a flip).
#[derive(Clone, Copy, Debug, Default)]
pub struct Side {
    pub pkts: u64,
    pub ip_bytes: u64,
    /// Payload bytes (UDP, ICMP); TCP uses sequence numbers instead.
    pub payload_bytes: u64,
    /// OR of the TCP flags this side sent.
    pub tcp_flags: u8,
    pub chk: Scaled,
}

/// The connections a tunnelled connection was seen inside (Zeek's `tunnel_parents`), by flow
/// id. Kept inline; a connection seen through more than [`Parents::CAP`] outer connections
/// keeps the first ones.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Parents {
    ids: [u64; Parents::CAP],
    len: u8,
}

impl Parents {
    pub const CAP: usize = 4;

    pub fn add(&mut self, id: u64) {
        let n = usize::from(self.len);
        if self.as_slice().contains(&id) || n >= Self::CAP {
            return;
        }
        if let Some(slot) = self.ids.get_mut(n) {
            *slot = id;
            self.len += 1;
        }
    }

    pub fn as_slice(&self) -> &[u64] {
        self.ids.get(..usize::from(self.len)).unwrap_or(&[])
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Which transport a connection carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtoState {
    Tcp,
    Udp,
    Icmp,
    Other,
}

/// Pending timers (absolute packet times) of a connection.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timers {
    pub attempt: MaybeMicros,
    pub expire: MaybeMicros,
    pub delete: MaybeMicros,
}

/// One tracked connection.
#[derive(Clone, Debug)]
pub struct Connection {
    pub flow_id: u64,
    pub key: FlowKey,
    /// Side 0 sent the first packet.
    pub sides: [Side; 2],
    /// Side 0's endpoint is `key.lo` (else `key.hi`).
    first_is_lo: bool,
    orig: u8,
    pub start: Micros,
    /// Zeek's `last_time` (for TCP not advanced once both sides closed).
    pub last_time: Micros,
    /// `last_time` as the timers see it: the analysis clock (the latest packet time seen
    /// anywhere) when that packet came. Equal to `last_time` for input in time order; for a
    /// packet older than the clock (files given out of order, overlapping merged captures) the
    /// timers run from the clock, so that they are not already due.
    pub(crate) timer_time: Micros,
    /// The clock for the packet being applied (max of its time and the table's clock).
    pub(crate) arm: Micros,
    /// Time of the last packet of any kind (for eviction).
    pub last_seen: Micros,
    pub history: History,
    pub state: ProtoState,
    /// TCP endpoint states (unused for other transports).
    pub(crate) tcp: TcpConn,
    pub timers: Timers,
    /// TCP: the handshake is over, so the TCP inactivity timeout applies (kept out of
    /// `Timers`, whose padding it would double).
    pub use_tcp_inactivity: bool,
    /// TCP on an interactive port: one hour.
    pub interactive: bool,
    pub vlans: Vlans,
    /// The tunnel this connection's packets carry, if any (it is a tunnel's outer connection).
    pub tunnel: Option<TunnelKind>,
    /// The outer connections this one was seen inside.
    /// Allocated for the connections seen inside a tunnel only.
    pub parents: Option<Box<Parents>>,
    pub(crate) cfg: &'static Timeouts,
}

/// [`ProtoState`]s by their code in the byte form.
const PROTO_STATES: [ProtoState; 4] = [
    ProtoState::Tcp,
    ProtoState::Udp,
    ProtoState::Icmp,
    ProtoState::Other,
];

impl Side {
    fn pack(&self, w: &mut Writer) {
        let Side {
            pkts,
            ip_bytes,
            payload_bytes,
            tcp_flags,
            chk,
        } = self;
        w.sparse(&[
            *pkts,
            *ip_bytes,
            *payload_bytes,
            u64::from(*tcp_flags),
            u64::from(chk.count()),
        ]);
    }

    fn unpack(r: &mut Reader) -> Option<Side> {
        let [pkts, ip_bytes, payload_bytes, tcp_flags, chk] = r.sparse::<5>()?;
        Some(Side {
            pkts,
            ip_bytes,
            payload_bytes,
            tcp_flags: u8::try_from(tcp_flags).ok()?,
            chk: Scaled::with_count(u32::try_from(chk).ok()?),
        })
    }
}

impl Connection {
    /// Appends the byte form of the connection (`super::pack`): the key first and the flow id
    /// next, so that [`Connection::packed_key`] and [`Connection::packed_flow_id`] read no
    /// further; times relative to the start, and the start relative to `epoch` (any time the
    /// caller gives again to [`Connection::unpack`]). All but `timers.expire`, which the caller
    /// keeps where it can change it in place (see [`Connection::quiet_until`]) and gives back
    /// to `unpack`.
    pub fn pack(&self, w: &mut Writer, epoch: Micros) {
        let Connection {
            flow_id,
            key,
            sides,
            first_is_lo,
            orig,
            start,
            last_time,
            timer_time,
            arm,
            last_seen,
            history,
            state,
            tcp,
            timers:
                Timers {
                    attempt,
                    expire: _, // kept by the caller (see above)
                    delete,
                },
            use_tcp_inactivity,
            interactive,
            vlans: Vlans { outer, inner },
            tunnel,
            parents,
            cfg: _,
        } = self;
        key.pack(w);
        w.var(*flow_id);
        let (has_attempt, attempt) = maybe_delta(*attempt, *start);
        let (has_delete, delete) = maybe_delta(*delete, *start);
        let state_code = code_of(&PROTO_STATES, state);
        let flags = u64::from(*first_is_lo)
            | u64::from(*orig) << 1
            | state_code << 2
            | u64::from(*use_tcp_inactivity) << 4
            | u64::from(*interactive) << 5
            | u64::from(has_attempt) << 6
            | u64::from(has_delete) << 8
            | u64::from(parents.is_some()) << 9;
        let tunnel = tunnel_code(*tunnel);
        w.sparse(&[
            flags,
            time_delta(*start, epoch),
            time_delta(*last_time, *start),
            time_delta(*timer_time, *start),
            time_delta(*arm, *start),
            time_delta(*last_seen, *start),
            attempt,
            delete,
            u64::from(*outer),
            u64::from(*inner),
            tunnel,
        ]);
        for side in sides {
            side.pack(w);
        }
        history.pack(w);
        tcp.pack(w, *start);
        if let Some(p) = parents {
            let ids = p.as_slice();
            w.u8(ids.len() as u8);
            for &id in ids {
                w.var(id);
            }
        }
    }

    /// The connection [`Connection::pack`] wrote, or None if `bytes` are not one.
    pub fn unpack(
        bytes: &[u8],
        epoch: Micros,
        expire: MaybeMicros,
        cfg: &'static Timeouts,
    ) -> Option<Connection> {
        let mut r = Reader::new(bytes);
        let key = FlowKey::unpack(&mut r)?;
        let flow_id = r.var()?;
        let [
            flags,
            start,
            last_time,
            timer_time,
            arm,
            last_seen,
            attempt,
            delete,
            outer,
            inner,
            tunnel,
        ] = r.sparse::<11>()?;
        let bit = |b: u32| flags >> b & 1 != 0;
        let start = time_undelta(start, epoch);
        let sides = [Side::unpack(&mut r)?, Side::unpack(&mut r)?];
        let history = History::unpack(&mut r)?;
        let tcp = TcpConn::unpack(&mut r, start)?;
        let parents = if bit(9) {
            let mut p = Parents::default();
            for _ in 0..r.u8()? {
                p.add(r.var()?);
            }
            Some(Box::new(p))
        } else {
            None
        };
        let tunnel = tunnel_of(tunnel)?;
        Some(Connection {
            flow_id,
            key,
            sides,
            first_is_lo: bit(0),
            orig: u8::from(bit(1)),
            start,
            last_time: time_undelta(last_time, start),
            timer_time: time_undelta(timer_time, start),
            arm: time_undelta(arm, start),
            last_seen: time_undelta(last_seen, start),
            history,
            state: of_code(&PROTO_STATES, flags >> 2 & 3)?,
            tcp,
            timers: Timers {
                attempt: maybe_undelta(bit(6), attempt, start),
                expire,
                delete: maybe_undelta(bit(8), delete, start),
            },
            use_tcp_inactivity: bit(4),
            interactive: bit(5),
            vlans: Vlans {
                outer: u16::try_from(outer).ok()?,
                inner: u16::try_from(inner).ok()?,
            },
            tunnel,
            parents,
            cfg,
        })
    }

    /// The key of a packed connection.
    pub fn packed_key(bytes: &[u8]) -> Option<FlowKey> {
        FlowKey::unpack(&mut Reader::new(bytes))
    }

    /// The flow id of a packed connection.
    pub fn packed_flow_id(bytes: &[u8]) -> Option<u64> {
        let mut r = Reader::new(bytes);
        FlowKey::unpack(&mut r)?;
        r.var()
    }

    /// Creates a connection for a packet from `src` to `dst`, deciding the originator the way
    /// Zeek's `WantConnection` does (ZEEK-SEMANTICS §5).
    pub fn new(
        flow_id: u64,
        key: FlowKey,
        src: Endpoint,
        dst: Endpoint,
        d: &Decoded,
        cfg: &'static Timeouts,
        clock: Micros,
    ) -> Self {
        let mut c = Self::first(flow_id, key, src, d, cfg, clock);
        c.first_packet(src, dst, d);
        c
    }

    /// [`Connection::new`] written over `self`: a place in the flow table being reused. The
    /// connection is built where it stays, not built and then copied (over 500 bytes, twice,
    /// for every connection).
    #[allow(clippy::too_many_arguments)]
    pub fn restart(
        &mut self,
        flow_id: u64,
        key: FlowKey,
        src: Endpoint,
        dst: Endpoint,
        d: &Decoded,
        cfg: &'static Timeouts,
        clock: Micros,
    ) {
        *self = Self::first(flow_id, key, src, d, cfg, clock);
        self.first_packet(src, dst, d);
    }

    /// The fields of [`Connection::new`] before its first packet's timers and role.
    #[inline(always)]
    fn first(
        flow_id: u64,
        key: FlowKey,
        src: Endpoint,
        d: &Decoded,
        cfg: &'static Timeouts,
        clock: Micros,
    ) -> Self {
        let arm = clock.max(d.ts);
        let state = match key.proto {
            proto::TCP => ProtoState::Tcp,
            proto::UDP => ProtoState::Udp,
            proto::ICMP | proto::ICMPV6 => ProtoState::Icmp,
            _ => ProtoState::Other,
        };
        Connection {
            flow_id,
            key,
            sides: [Side::default(), Side::default()],
            first_is_lo: key.lo == src,
            orig: 0,
            start: d.ts,
            last_time: d.ts,
            timer_time: arm,
            arm,
            last_seen: d.ts,
            history: History::default(),
            state,
            tcp: TcpConn {
                is_active: true,
                ..TcpConn::default()
            },
            timers: Timers::default(),
            use_tcp_inactivity: false,
            interactive: false,
            vlans: d.vlans,
            tunnel: None,
            parents: None,
            cfg,
        }
    }

    /// The rest of [`Connection::new`]: the status check of a TCP connection, and the roles
    /// (Zeek flips a first packet that looks like a server's reply).
    #[inline(always)]
    fn first_packet(&mut self, src: Endpoint, dst: Endpoint, d: &Decoded) {
        if self.state == ProtoState::Tcp {
            self.timers.expire = Some(self.arm.saturating_add(self.cfg.tcp_syn_timeout)).into();
        }
        let flip = match d.transport {
            Transport::Tcp(t) => {
                let pure_syn = t.syn() && !t.ack_flag();
                if pure_syn || !is_likely_server_port(proto::TCP, src.port) {
                    false
                } else if is_likely_server_port(proto::TCP, dst.port) {
                    !t.syn() && src.port < dst.port
                } else {
                    true
                }
            }
            Transport::Udp { .. } => {
                is_likely_server_port(proto::UDP, src.port)
                    && !is_likely_server_port(proto::UDP, dst.port)
            }
            _ => false,
        };
        if flip && !dst.addr.is_v4_broadcast() {
            self.flip_roles();
        }
    }

    /// The side (0 or 1) that is the originator now.
    pub fn orig_side(&self) -> usize {
        usize::from(self.orig)
    }

    /// Zeek's `Connection::FlipRoles`: swap originator and responder, append `^`.
    pub fn flip_roles(&mut self) {
        self.orig ^= 1;
        self.history.push_raw(b'^');
        self.tcp.flip();
    }

    pub(crate) fn tcp(&self) -> &TcpConn {
        &self.tcp
    }

    pub(crate) fn tcp_mut(&mut self) -> &mut TcpConn {
        &mut self.tcp
    }

    pub(crate) fn cfg_close_delay(&self) -> Micros {
        self.cfg.tcp_close
    }
    pub(crate) fn cfg_session_timer(&self) -> Micros {
        self.cfg.tcp_session_timer
    }
    pub(crate) fn cfg_linger(&self) -> Micros {
        self.cfg.tcp_linger
    }

    /// Which side sent a packet from `src`.
    pub fn side_of(&self, src: &Endpoint) -> usize {
        if self.endpoint(0) == *src { 0 } else { 1 }
    }

    /// Starts timers from `clock` instead of the packet's own time when the packet is older
    /// (see `timer_time`). Call right after `new` and before each `packet`.
    pub fn set_clock(&mut self, clock: Micros, d: &Decoded) {
        self.arm = clock.max(d.ts);
    }

    /// Notes that `last_time` moved with the current packet.
    pub(crate) fn touch_time(&mut self, ts: Micros) {
        self.last_time = self.last_time.max(ts);
        self.timer_time = self.timer_time.max(self.arm);
    }

    /// Applies one packet from `side`.
    pub fn packet(&mut self, side: usize, d: &Decoded) {
        let side = side & 1;
        self.last_seen = self.last_seen.max(d.ts);
        if matches!(d.transport, Transport::TcpHeaderCut { .. }) {
            return;
        }
        if d.l4_checksum == ChecksumVerdict::Bad {
            // Zeek skips such packets after the connection exists: they only leave C/c.
            match self.state {
                ProtoState::Tcp => self.tcp_checksum_error(side),
                ProtoState::Udp => {
                    let from_orig = side == self.orig_side();
                    let mut c = self.side(side).chk;
                    c.hit(&mut self.history, b'C', from_orig);
                    self.side_mut(side).chk = c;
                }
                _ => {}
            }
            return;
        }
        let s = self.side_mut(side);
        s.pkts += 1;
        s.ip_bytes += u64::from(d.ip_len);
        match d.transport {
            Transport::Tcp(seg) => {
                s.tcp_flags |= seg.flags;
                let fx = self.tcp_segment(side, &seg, d.ts, !d.truncated);
                if fx.arm_attempt {
                    self.timers.attempt =
                        Some(self.arm.saturating_add(self.cfg.tcp_attempt)).into();
                }
                if !self.interactive {
                    let (o, r) = self.tcp_states();
                    if o == EndpointState::Established && r == EndpointState::Established {
                        let rp = self.resp().port;
                        let op = self.orig_ep().port;
                        let interactive = |p: u16| matches!(p, 21 | 22 | 23 | 513);
                        if interactive(rp)
                            || (!is_likely_server_port(proto::TCP, rp) && interactive(op))
                        {
                            self.interactive = true;
                        }
                    }
                }
            }
            Transport::Udp { payload_len, .. } => {
                s.payload_bytes += u64::from(payload_len);
                self.touch_time(d.ts);
                let from_orig = side == self.orig_side();
                self.history.check(Once::Data, b'D', from_orig);
                // The first packet is a reply from the supposed originator (ZEEK-SEMANTICS §5:
                // the DNS and NTP analyzers flip); letters already recorded keep their case.
                // Zeek's size counters are kept by role, not by endpoint, across this flip
                // (anchor `ntp-misordered`: orig_pkts 2, resp_pkts 0), so they move with it.
                // Replies sent to a multicast or broadcast group (mDNS announcements) are not
                // flipped: there is no requester to make the originator.
                let first = self.sides[0].pkts + self.sides[1].pkts == 1;
                let group = d.dst.is_v4_broadcast() || d.dst.is_multicast();
                if first && from_orig && d.udp_reply && !group {
                    self.flip_roles();
                    let [a, b] = &mut self.sides;
                    std::mem::swap(&mut a.pkts, &mut b.pkts);
                    std::mem::swap(&mut a.ip_bytes, &mut b.ip_bytes);
                    std::mem::swap(&mut a.payload_bytes, &mut b.payload_bytes);
                }
            }
            Transport::Icmp { payload_len, .. } => {
                s.payload_bytes += u64::from(payload_len);
                self.touch_time(d.ts);
            }
            // Zeek counts no payload bytes for protocols it does not analyse.
            Transport::Other | Transport::Fragment | Transport::TcpHeaderCut { .. } => {
                self.touch_time(d.ts);
            }
        }
    }

    /// The endpoint of `side` (0: the first packet's sender), from the key: the key holds
    /// both endpoints already, so the sides do not keep copies.
    pub fn endpoint(&self, side: usize) -> Endpoint {
        if (side == 0) == self.first_is_lo {
            self.key.lo
        } else {
            self.key.hi
        }
    }

    pub fn orig_ep(&self) -> Endpoint {
        self.endpoint(self.orig_side())
    }

    pub fn resp(&self) -> Endpoint {
        self.endpoint(self.orig_side() ^ 1)
    }

    pub fn orig_side_info(&self) -> &Side {
        self.side(self.orig_side())
    }

    pub fn resp_side_info(&self) -> &Side {
        self.side(self.orig_side() ^ 1)
    }

    /// Side 0 or 1 (only the low bit of `i` counts).
    pub fn side(&self, i: usize) -> &Side {
        let [a, b] = &self.sides;
        if i & 1 == 0 { a } else { b }
    }

    fn side_mut(&mut self, i: usize) -> &mut Side {
        let [a, b] = &mut self.sides;
        if i & 1 == 0 { a } else { b }
    }

    /// The inactivity timeout that applies now.
    pub fn inactivity_timeout(&self) -> Micros {
        match self.state {
            ProtoState::Tcp => {
                if self.interactive {
                    self.cfg.tcp_interactive_inactivity
                } else if self.use_tcp_inactivity {
                    self.cfg.tcp_inactivity
                } else {
                    // Zeek starts TCP with the UDP timeout until the handshake is over.
                    self.cfg.udp_inactivity
                }
            }
            ProtoState::Udp => self.cfg.udp_inactivity,
            ProtoState::Icmp => self.cfg.icmp_inactivity,
            ProtoState::Other => self.cfg.other_inactivity,
        }
    }

    /// The earliest time at which a timer of this connection must be looked at.
    pub fn next_due(&self) -> Micros {
        let inactivity = self.inactivity_timeout();
        let mut due = if inactivity.0 > 0 {
            self.timer_time.saturating_add(inactivity)
        } else {
            Micros::MAX
        };
        for t in [self.timers.attempt, self.timers.expire, self.timers.delete]
            .map(MaybeMicros::get)
            .into_iter()
            .flatten()
        {
            due = due.min(t);
        }
        due
    }

    /// Runs the timers due at `now`. Returns why the connection ends, if it does.
    pub fn fire_timers(&mut self, now: Micros) -> Option<EndReason> {
        if self.timers.delete.is_some_and(|t| t <= now) {
            return Some(EndReason::Closed);
        }
        if self.timers.attempt.is_some_and(|t| t <= now) {
            self.timers.attempt = MaybeMicros::NONE;
            if self.tcp_attempt_expired() {
                return Some(EndReason::Attempt);
            }
        }
        if self.timers.expire.is_some_and(|t| t <= now) {
            if self.tcp_expire_due(now) {
                return Some(EndReason::Timeout);
            }
            self.timers.expire = if self.tcp().is_active {
                Some(now.saturating_add(self.cfg.tcp_session_timer))
            } else {
                None
            }
            .into();
        }
        let inactivity = self.inactivity_timeout();
        if inactivity.0 > 0 && self.timer_time.saturating_add(inactivity) <= now {
            return Some(EndReason::Timeout);
        }
        None
    }

    /// The time before which [`Connection::fire_timers`], left without packets, can do no more
    /// than re-arm the `expire` timer (an active TCP connection's status check, repeating every
    /// `tcp_session_timer`): the earliest of its other timers and the inactivity timeout, so
    /// that the earlier of this and `expire` is [`Connection::next_due`]. `Micros(i64::MIN)`
    /// when there is no such time (not TCP, not active, or closing). Lets the table fire a
    /// packed connection's repeating check without unpacking it; results are the same either
    /// way (`tests/workers.rs`, `src/flow/tests.rs`).
    pub fn quiet_until(&self) -> Micros {
        if self.state != ProtoState::Tcp || !self.tcp().is_active {
            return Micros(i64::MIN);
        }
        let mut until = Micros::MAX;
        for t in [self.timers.delete, self.timers.attempt]
            .map(MaybeMicros::get)
            .into_iter()
            .flatten()
        {
            until = until.min(t);
        }
        let inactivity = self.inactivity_timeout();
        if inactivity.0 > 0 {
            until = until.min(self.timer_time.saturating_add(inactivity));
        }
        if self.tcp_expire_closing() {
            // `tcp_expire_due` would hold once `now` is past the linger time. That end is no
            // timer of its own: were it part of the quiet time, the table would queue the
            // connection's next look at it, not at its next timer, and a record's `due` (its
            // place in the canonical order) could differ from a whole connection's. Closing
            // connections are rare among quiet ones; they are unpacked.
            return Micros(i64::MIN);
        }
        until
    }

    /// What [`Connection::fire_timers`] does to the `expire` timer at `now` before
    /// [`Connection::quiet_until`]: re-arms it when due.
    pub fn quiet_expire(expire: MaybeMicros, now: Micros, cfg: &Timeouts) -> MaybeMicros {
        if expire.is_some_and(|t| t <= now) {
            Some(now.saturating_add(cfg.tcp_session_timer)).into()
        } else {
            expire
        }
    }

    /// Zeek's `conn_state()` (main.zeek L184-242).
    pub fn conn_state(&self) -> ConnState {
        match self.state {
            ProtoState::Tcp => {
                use EndpointState::*;
                let (os, rs) = self.tcp_states();
                let o_inactive = os.is_inactive_for_state();
                let r_inactive = rs.is_inactive_for_state();
                if rs == Reset {
                    let (ob, rb) = self.tcp_sizes();
                    if matches!(os, SynSent | SynAckSent) || (os == Reset && ob == 0 && rb == 0) {
                        ConnState::REJ
                    } else if o_inactive {
                        ConnState::RSTRH
                    } else {
                        ConnState::RSTR
                    }
                } else if os == Reset {
                    if r_inactive {
                        if history_is_syn_then_rst(self.history.as_bytes()) {
                            ConnState::RSTOS0
                        } else {
                            ConnState::OTH
                        }
                    } else {
                        ConnState::RSTO
                    }
                } else if rs == Closed && os == Closed {
                    ConnState::SF
                } else if os == Closed {
                    if r_inactive {
                        ConnState::SH
                    } else {
                        ConnState::S2
                    }
                } else if rs == Closed {
                    if o_inactive {
                        ConnState::SHR
                    } else {
                        ConnState::S3
                    }
                } else if os == SynSent && rs == Inactive {
                    ConnState::S0
                } else if os == Established && rs == Established {
                    ConnState::S1
                } else {
                    ConnState::OTH
                }
            }
            ProtoState::Udp => {
                let o = self.orig_side_info().pkts > 0;
                let r = self.resp_side_info().pkts > 0;
                match (o, r) {
                    (true, true) => ConnState::SF,
                    (true, false) => ConnState::S0,
                    (false, true) => ConnState::SHR,
                    (false, false) => ConnState::OTH,
                }
            }
            ProtoState::Icmp | ProtoState::Other => ConnState::OTH,
        }
    }

    /// (orig_bytes, resp_bytes) as Zeek reports them.
    pub fn byte_counts(&self) -> (u64, u64) {
        match self.state {
            ProtoState::Tcp => self.tcp_sizes(),
            _ => (
                self.orig_side_info().payload_bytes,
                self.resp_side_info().payload_bytes,
            ),
        }
    }
}

/// Zeek's `/\^?S[^HAFGIQ]*R.*/` test on the history, for RSTOS0.
fn history_is_syn_then_rst(h: &[u8]) -> bool {
    let b = h.strip_prefix(b"^").unwrap_or(h);
    let Some(rest) = b.strip_prefix(b"S") else {
        return false;
    };
    for c in rest {
        match c {
            b'R' => return true,
            b'H' | b'A' | b'F' | b'G' | b'I' | b'Q' => return false,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A status check re-armed at the clock plus nothing would never let the clock move on.
    #[test]
    fn a_zero_session_timer_is_refused() {
        let mut t = Timeouts::default();
        assert!(t.set("tcp_session_timer", Micros(0)).is_err());
        assert!(t.set("tcp_session_timer", Micros(-1)).is_err());
        assert!(t.set("tcp_session_timer", Micros(1)).is_ok());
        assert!(t.set("tcp_inactivity_timeout", Micros(0)).is_ok());
    }

    #[test]
    fn rstos0_history_pattern() {
        assert!(history_is_syn_then_rst(b"SR"));
        assert!(history_is_syn_then_rst(b"SaR"));
        assert!(history_is_syn_then_rst(b"^SR"));
        assert!(!history_is_syn_then_rst(b"SaFR"));
        assert!(!history_is_syn_then_rst(b"R"));
        assert!(!history_is_syn_then_rst(b"SA"));
    }
}
