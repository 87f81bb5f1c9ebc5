//! The TCP endpoint state machine, after Zeek's `TCPSessionAdapter` (ZEEK-SEMANTICS §4).
//!
//! Each side of a connection has an [`EndpointState`]; a segment moves the sender's state (and
//! sometimes its peer's) by a `match` on (state, flags) in `Connection::tcp_segment`. The pair of
//! states, read by role, gives `conn_state` (see `conn.rs`). Sequence numbers drive the history
//! letters' repeat rules, retransmission (`T`) detection and the byte counts.

use super::conn::Connection;
use super::content::ContentTracker;
use super::history::{History, Once, Scaled};
use super::pack::{
    Reader, Writer, code_of, maybe_delta, maybe_undelta, of_code, seq_delta as packed_seq,
    seq_undelta, unzigzag, zigzag,
};
use crate::decode::TcpSegment;
use crate::time::{MaybeMicros, Micros};

/// Zeek's `EndpointState` (TCP_Endpoint.h): what one side of a TCP connection has shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EndpointState {
    /// Nothing (that changes state) seen from this side.
    #[default]
    Inactive,
    /// A SYN seen, no ACK of it yet.
    SynSent,
    /// A SYN-ACK seen without an initial SYN from this side.
    SynAckSent,
    /// Data seen, but no SYN (a midstream pickup).
    Partial,
    /// Handshake complete from this side's view.
    Established,
    /// FIN seen.
    Closed,
    /// RST seen.
    Reset,
}

impl EndpointState {
    /// Zeek's `is_handshake`: states before a connection counts as having started.
    fn is_handshake(self) -> bool {
        matches!(
            self,
            EndpointState::Inactive | EndpointState::SynSent | EndpointState::SynAckSent
        )
    }

    /// Zeek's `o_inactive` / `r_inactive` in `conn_state()`.
    pub fn is_inactive_for_state(self) -> bool {
        matches!(self, EndpointState::Inactive | EndpointState::Partial)
    }
}

/// Sequence numbers further apart than this are not trusted (Zeek's `TOO_LARGE_SEQ_DELTA`).
const TOO_LARGE_SEQ_DELTA: i32 = 1_048_576;

fn seq_delta(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

/// One side of a TCP connection.
#[derive(Clone, Debug, Default)]
pub struct TcpEndpoint {
    pub state: EndpointState,
    pub prev_state: EndpointState,
    start_seq: u32,
    last_seq: u32,
    ack_seq: u32,
    seq_wraps: u32,
    ack_wraps: u32,
    fin_cnt: u32,
    /// This side's close (FIN or RST) has been acted on.
    pub did_close: bool,
    hist_last_syn: u64,
    hist_last_fin: u64,
    hist_last_rst: u64,
    rxmt: Scaled,
    win0: Scaled,
    pub(crate) chk: Scaled,
    gap: Scaled,
    /// One more than the relative sequence number just past this side's last FIN (Zeek's
    /// `FIN_seq`), 0 for none: an `Option<u64>` in 8 bytes instead of 16.
    fin_end: u64,
    /// This side's data as far as the peer's acknowledgements can tell (content gaps).
    content: ContentTracker,
    /// Bytes of this side's data found missing (Zeek's `content_gap` lengths).
    pub missed: u64,
}

impl TcpEndpoint {
    fn full(seq: u32, wraps: u32) -> u64 {
        (u64::from(wraps) << 32) | u64::from(seq)
    }

    fn init_seqs(&mut self, start: u32, last: u32) {
        self.start_seq = start;
        self.ack_seq = start;
        self.last_seq = last;
    }

    fn update_last_seq(&mut self, seq: u32) {
        if seq < self.last_seq {
            self.seq_wraps = self.seq_wraps.wrapping_add(1);
        }
        self.last_seq = seq;
    }

    fn update_ack_seq(&mut self, seq: u32) {
        if seq < self.ack_seq {
            self.ack_wraps = self.ack_wraps.wrapping_add(1);
        }
        self.ack_seq = seq;
    }

    /// How far the peer has acknowledged this side, relative to the start.
    fn rel_acked(&self) -> u64 {
        Self::full(self.ack_seq, self.ack_wraps).saturating_sub(u64::from(self.start_seq))
    }

    /// Zeek's `is_clean`: established, or closed straight from established.
    fn is_clean(&self) -> bool {
        self.state == EndpointState::Established
            || (self.state == EndpointState::Closed
                && self.prev_state == EndpointState::Established)
    }

    fn no_data_acked(&self) -> bool {
        let ack = Self::full(self.ack_seq, self.ack_wraps);
        let start = u64::from(self.start_seq);
        ack == start || ack == start + 1
    }

    /// Sequence number relative to the start, across 32-bit wraps (Zeek's `get_relative_seq`).
    /// Returns (relative, underflow).
    fn relative(&self, cur: u32, last: u32, mut wraps: u32) -> (u64, bool) {
        let delta = seq_delta(cur, last);
        if delta < 0 {
            if wraps > 0 && cur > last {
                wraps -= 1;
            }
        } else if delta > 0 && cur < last {
            wraps = wraps.wrapping_add(1);
        }
        if wraps == 0 {
            let d = seq_delta(cur, self.start_seq);
            return (d as i64 as u64, d < 0);
        }
        (
            Self::full(cur, wraps).wrapping_sub(u64::from(self.start_seq)),
            false,
        )
    }

    /// Bytes this side sent, from sequence numbers (Zeek's `TCP_Endpoint::Size`).
    pub fn size(&self, peer_state: EndpointState) -> u64 {
        if self.prev_state == EndpointState::SynSent
            && self.state == EndpointState::Reset
            && peer_state == EndpointState::Inactive
            && !self.no_data_acked()
        {
            return 0;
        }
        let last = Self::full(self.last_seq, self.seq_wraps);
        let ack = Self::full(self.ack_seq, self.ack_wraps);
        let top = last.max(ack);
        let mut size = top.saturating_sub(u64::from(self.start_seq));
        // The SYN's octet.
        size = size.saturating_sub(1);
        if self.fin_cnt > 0 && size != 0 {
            size -= 1; // the FIN's octet
        }
        size
    }
}

impl EndpointState {
    const ALL: [EndpointState; 7] = [
        EndpointState::Inactive,
        EndpointState::SynSent,
        EndpointState::SynAckSent,
        EndpointState::Partial,
        EndpointState::Established,
        EndpointState::Closed,
        EndpointState::Reset,
    ];

    fn code(self) -> u64 {
        code_of(&Self::ALL, &self)
    }

    fn from_code(c: u64) -> Option<EndpointState> {
        of_code(&Self::ALL, c)
    }
}

impl TcpEndpoint {
    /// Byte form (`super::pack`): sequence numbers relative to the initial one, counters left
    /// out while zero.
    fn pack(&self, w: &mut Writer) {
        let TcpEndpoint {
            state,
            prev_state,
            start_seq,
            last_seq,
            ack_seq,
            seq_wraps,
            ack_wraps,
            fin_cnt,
            did_close,
            hist_last_syn,
            hist_last_fin,
            hist_last_rst,
            rxmt,
            win0,
            chk,
            gap,
            fin_end,
            content,
            missed,
        } = self;
        let rel = |v: u64| zigzag(v as i64);
        w.sparse(&[
            state.code() | prev_state.code() << 3 | u64::from(*did_close) << 6,
            u64::from(*start_seq),
            packed_seq(*last_seq, *start_seq),
            packed_seq(*ack_seq, *start_seq),
            u64::from(*seq_wraps),
            u64::from(*ack_wraps),
            u64::from(*fin_cnt),
            rel(*hist_last_syn),
            rel(*hist_last_fin),
            rel(*hist_last_rst),
            u64::from(rxmt.count()),
            u64::from(win0.count()),
            u64::from(chk.count()),
            u64::from(gap.count()),
            rel(*fin_end),
            *missed,
        ]);
        content.pack(w);
    }

    fn unpack(r: &mut Reader) -> Option<TcpEndpoint> {
        let [
            states,
            start_seq,
            last_seq,
            ack_seq,
            seq_wraps,
            ack_wraps,
            fin_cnt,
            hist_last_syn,
            hist_last_fin,
            hist_last_rst,
            rxmt,
            win0,
            chk,
            gap,
            fin_end,
            missed,
        ] = r.sparse::<16>()?;
        let small = |v: u64| u32::try_from(v).ok();
        let start_seq = small(start_seq)?;
        let rel = |v: u64| unzigzag(v) as u64;
        Some(TcpEndpoint {
            state: EndpointState::from_code(states & 7)?,
            prev_state: EndpointState::from_code(states >> 3 & 7)?,
            did_close: states >> 6 & 1 != 0,
            start_seq,
            last_seq: seq_undelta(last_seq, start_seq),
            ack_seq: seq_undelta(ack_seq, start_seq),
            seq_wraps: small(seq_wraps)?,
            ack_wraps: small(ack_wraps)?,
            fin_cnt: small(fin_cnt)?,
            hist_last_syn: rel(hist_last_syn),
            hist_last_fin: rel(hist_last_fin),
            hist_last_rst: rel(hist_last_rst),
            rxmt: Scaled::with_count(small(rxmt)?),
            win0: Scaled::with_count(small(win0)?),
            chk: Scaled::with_count(small(chk)?),
            gap: Scaled::with_count(small(gap)?),
            fin_end: rel(fin_end),
            content: ContentTracker::unpack(r)?,
            missed,
        })
    }
}

impl TcpConn {
    /// Byte form (`super::pack`); times relative to `base` (the connection's start).
    pub(crate) fn pack(&self, w: &mut Writer, base: Micros) {
        let TcpConn {
            ep,
            is_active,
            syn_ts,
            synack_ts,
            ack_ts,
            is_partial,
            first_seen,
        } = self;
        let (syn, syn_d) = maybe_delta(*syn_ts, base);
        let (synack, synack_d) = maybe_delta(*synack_ts, base);
        let (ack, ack_d) = maybe_delta(*ack_ts, base);
        let flags = u64::from(*is_active)
            | u64::from(*is_partial) << 1
            | u64::from(syn) << 2
            | u64::from(synack) << 3
            | u64::from(ack) << 4
            | u64::from(*first_seen) << 5;
        w.sparse(&[flags, syn_d, synack_d, ack_d]);
        for e in ep {
            e.pack(w);
        }
    }

    pub(crate) fn unpack(r: &mut Reader, base: Micros) -> Option<TcpConn> {
        let [flags, syn_d, synack_d, ack_d] = r.sparse::<4>()?;
        let bit = |b: u32| flags >> b & 1 != 0;
        Some(TcpConn {
            is_active: bit(0),
            is_partial: bit(1),
            syn_ts: maybe_undelta(bit(2), syn_d, base),
            synack_ts: maybe_undelta(bit(3), synack_d, base),
            ack_ts: maybe_undelta(bit(4), ack_d, base),
            first_seen: u8::try_from(flags >> 5).ok()?,
            ep: [TcpEndpoint::unpack(r)?, TcpEndpoint::unpack(r)?],
        })
    }
}

/// TCP state of one connection: its two endpoints, indexed by side (not by role).
#[derive(Clone, Debug, Default)]
pub struct TcpConn {
    pub ep: [TcpEndpoint; 2],
    /// Zeek's `is_active`: timers still matter.
    pub is_active: bool,
    /// First SYN from the originator, its SYN-ACK, and the ACK completing the handshake.
    pub syn_ts: MaybeMicros,
    pub synack_ts: MaybeMicros,
    pub ack_ts: MaybeMicros,
    /// Zeek's `is_partial` and `first_packet_seen` (bit 1: originator, bit 2: responder).
    pub is_partial: bool,
    pub first_seen: u8,
}

impl TcpConn {
    /// Zeek's `FlipRoles` for the TCP adapter: role bits swap, partial status resets.
    pub(crate) fn flip(&mut self) {
        self.first_seen = ((self.first_seen & 1) << 1) | ((self.first_seen & 2) >> 1);
        self.is_partial = false;
    }
}

/// What a segment asks of the connection's timers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegmentEffects {
    /// An originator SYN from INACTIVE: arm the attempt timer.
    pub arm_attempt: bool,
}

impl Connection {
    fn ep(&self, side: usize) -> &TcpEndpoint {
        let [a, b] = &self.tcp().ep;
        if side & 1 == 0 { a } else { b }
    }

    fn ep_mut(&mut self, side: usize) -> &mut TcpEndpoint {
        let [a, b] = &mut self.tcp_mut().ep;
        if side & 1 == 0 { a } else { b }
    }

    /// One endpoint and the history, borrowed together.
    fn ep_and_history(&mut self, side: usize) -> (&mut TcpEndpoint, &mut History) {
        let [a, b] = &mut self.tcp.ep;
        (if side & 1 == 0 { a } else { b }, &mut self.history)
    }

    /// Zeek's `TCP_Endpoint::SetState`, including the switch to the TCP inactivity timeout when
    /// the handshake is over.
    fn set_state(&mut self, side: usize, new: EndpointState) {
        let peer_state = self.ep(side ^ 1).state;
        let e = self.ep_mut(side);
        if new != e.state {
            let finishes_handshake =
                !new.is_handshake() && e.state.is_handshake() && peer_state.is_handshake();
            e.prev_state = e.state;
            e.state = new;
            if finishes_handshake {
                self.use_tcp_inactivity = true;
            }
        }
    }

    /// Processes one TCP segment from `side` (Zeek's `TCPSessionAdapter::Process`, without
    /// content reassembly).
    /// `payload_complete` is false when the snap length cut the payload: such data is not
    /// "seen" (Zeek's `truncated_tcp_payload`), so acknowledgements of it are gaps.
    pub(crate) fn tcp_segment(
        &mut self,
        side: usize,
        seg: &TcpSegment,
        ts: Micros,
        payload_complete: bool,
    ) -> SegmentEffects {
        let mut fx = SegmentEffects::default();
        // Zeek computes this once; a flip during history update does not change it.
        let is_orig = side == self.orig_side();
        self.set_partial_status(is_orig, seg);
        let len = seg.payload_len;
        let mut seg_len = len as i64 + i64::from(seg.syn()) + i64::from(seg.fin());
        if seg.rst() {
            seg_len -= i64::from(len);
        }
        let seq_one_past = seg.seq.wrapping_add(seg_len as u32);

        self.init_endpoint(side, seg, seq_one_past);
        let (rel_seq, seq_underflow) = {
            let e = self.ep(side);
            e.relative(seg.seq, e.last_seq, e.seq_wraps)
        };
        self.update_history(side, seg, rel_seq, len);
        self.update_window(side, seg);

        let (o, r) = (self.orig_side(), self.orig_side() ^ 1);
        if !(self.ep(o).did_close && self.ep(r).did_close) {
            self.touch_time(ts);
        }

        if seg.fin() {
            let e = self.ep_mut(side);
            e.fin_cnt = e.fin_cnt.saturating_add(1);
            e.fin_end = rel_seq.wrapping_add(seg_len as u64).wrapping_add(1);
        }

        let mut rel_ack = 0;
        if seg.ack_flag() {
            let peer = side ^ 1;
            if self.ep(peer).state == EndpointState::Inactive {
                // Start the peer's numbering as if its SYN had been seen.
                rel_ack = 1;
                let start = seg.ack.wrapping_sub(1);
                self.ep_mut(peer).init_seqs(start, start);
            } else {
                let p = self.ep(peer);
                let (rel, underflow) = p.relative(seg.ack, p.ack_seq, p.ack_wraps);
                if !underflow {
                    rel_ack = rel;
                }
                let delta_ack = seq_delta(seg.ack, p.ack_seq);
                let broken_ack = seg.ack == 0 && delta_ack > TOO_LARGE_SEQ_DELTA;
                if !seg.rst() && !underflow && !broken_ack && delta_ack > 0 {
                    self.ep_mut(peer).update_ack_seq(seg.ack);
                }
            }
        }

        let delta_last = self.update_last_seq(side, seq_one_past, seg, len);

        // Handshake timings (issue "handshake timings"): first SYN, its SYN-ACK, the ACK.
        self.note_handshake(side, seg, ts);

        let (do_close, gen_event) =
            self.update_state_machine(side, seg, len, delta_last, is_orig, &mut fx);
        if seg.ack_flag() {
            // After the state machine, so a gap revealed by a final RST is not flagged.
            self.ack_received(side ^ 1, rel_ack);
        }
        if len > 0 && payload_complete && !seg.rst() && !seq_underflow {
            let data_seq = if seg.syn() { rel_seq + 1 } else { rel_seq };
            let e = self.ep_mut(side);
            let acked = e.rel_acked();
            e.content.data_sent(data_seq, u64::from(len), acked);
        }
        if do_close {
            self.connection_closed(side, gen_event);
        }
        fx
    }

    /// Zeek's `SetPartialStatus`.
    fn set_partial_status(&mut self, is_orig: bool, seg: &TcpSegment) {
        let t = self.tcp_mut();
        if is_orig {
            if t.first_seen & 1 == 0 {
                t.is_partial = !seg.syn() || seg.ack_flag();
            }
        } else if t.first_seen & 2 == 0 && !t.is_partial {
            t.is_partial = !seg.syn();
        }
    }

    /// `side`'s data was acknowledged up to `rel_ack` by its peer: look for content gaps and
    /// record them (scaled `G`/`g`, `missed_bytes`) when both sides are cleanly established.
    fn ack_received(&mut self, side: usize, rel_ack: u64) {
        let partial = self.tcp().is_partial;
        let report = self.ep(side).is_clean() && self.ep(side ^ 1).is_clean();
        let from_orig = side == self.orig_side();
        let (e, history) = self.ep_and_history(side);
        let mut gap_hits = 0u32;
        let mut missed = 0u64;
        e.content
            .ack_received(rel_ack, e.fin_end.checked_sub(1), partial, |g| {
                gap_hits += 1;
                missed = missed.saturating_add(g.len);
            });
        if report {
            e.missed = e.missed.saturating_add(missed);
            for _ in 0..gap_hits {
                e.gap.hit(history, b'G', from_orig);
            }
        }
    }

    fn note_handshake(&mut self, side: usize, seg: &TcpSegment, ts: Micros) {
        let from_orig = side == self.orig_side();
        let t = self.tcp_mut();
        if seg.syn() && !seg.ack_flag() && from_orig && t.syn_ts.is_none() {
            t.syn_ts = Some(ts).into();
        } else if seg.syn()
            && seg.ack_flag()
            && !from_orig
            && t.syn_ts.is_some()
            && t.synack_ts.is_none()
        {
            t.synack_ts = Some(ts).into();
        } else if !seg.syn()
            && seg.ack_flag()
            && from_orig
            && t.synack_ts.is_some()
            && t.ack_ts.is_none()
        {
            t.ack_ts = Some(ts).into();
        }
    }

    /// Zeek's `init_endpoint`: sets a side's sequence origin from its first segment.
    fn init_endpoint(&mut self, side: usize, seg: &TcpSegment, last_seq: u32) {
        let e = self.ep_mut(side);
        match e.state {
            EndpointState::Inactive => {
                if seg.syn() {
                    e.init_seqs(seg.seq, last_seq);
                } else {
                    // Midstream: number as though a SYN had been seen; the first packet is not a
                    // retransmission.
                    let start = seg.seq.wrapping_sub(1);
                    e.init_seqs(start, seg.seq);
                }
            }
            EndpointState::SynSent | EndpointState::SynAckSent => {
                if seg.syn() && seg.seq != e.start_seq {
                    e.init_seqs(seg.seq, last_seq);
                }
            }
            EndpointState::Established | EndpointState::Partial => {
                if seg.syn() {
                    e.init_seqs(seg.seq, last_seq);
                }
            }
            EndpointState::Reset => {
                if seg.syn() && e.prev_state == EndpointState::Inactive {
                    e.init_seqs(seg.seq, last_seq);
                }
            }
            EndpointState::Closed => {}
        }
    }

    /// Zeek's `update_history` and `TCP_Endpoint::CheckHistory`, including the flip of a
    /// connection that began with a SYN-ACK once productive traffic (A or D) follows.
    fn update_history(&mut self, side: usize, seg: &TcpSegment, rel_seq: u64, len: u32) {
        let bits = u8::from(seg.syn()) + u8::from(seg.fin()) + u8::from(seg.rst());
        if bits > 1 {
            let from_orig = side == self.orig_side();
            if seg.fin() && seg.rst() {
                self.history.check(Once::FinRst, b'I', from_orig);
            } else {
                self.history.check(Once::MultiFlag, b'Q', from_orig);
            }
            return;
        }
        if bits == 1 {
            let from_orig = side == self.orig_side();
            if seg.syn() {
                let code = if seg.ack_flag() { b'H' } else { b'S' };
                let seen = self.history.check(Once::Syn, code, from_orig);
                let e = self.ep_mut(side);
                let repeat = seen && rel_seq != e.hist_last_syn;
                e.hist_last_syn = rel_seq;
                if repeat {
                    self.history.add(code, from_orig);
                }
            }
            if seg.fin() {
                let fin_at = rel_seq.wrapping_add(u64::from(len));
                let seen = self.history.check(Once::Fin, b'F', from_orig);
                let e = self.ep_mut(side);
                let repeat = seen && fin_at != e.hist_last_fin;
                e.hist_last_fin = fin_at;
                if repeat {
                    self.history.add(b'F', from_orig);
                }
            }
            if seg.rst() {
                let seen = self.history.check(Once::Rst, b'R', from_orig);
                let e = self.ep_mut(side);
                let repeat = seen && rel_seq != e.hist_last_rst;
                e.hist_last_rst = rel_seq;
                if repeat {
                    self.history.add(b'R', from_orig);
                }
            }
            return;
        }
        let (kind, code) = if len > 0 {
            (Once::Data, b'D')
        } else if seg.ack_flag() {
            (Once::Ack, b'A')
        } else {
            return;
        };
        if self.history.as_bytes() == b"H" {
            // Began with a SYN-ACK and now shows productive traffic: the SYN-ACK's sender was
            // the responder after all (TCP_Endpoint::CheckHistory).
            self.flip_roles();
            self.history.replace("^h");
        }
        let from_orig = side == self.orig_side();
        self.history.check(kind, code, from_orig);
    }

    /// Zero-window accounting (Zeek's `update_window`, the part that feeds `W`).
    fn update_window(&mut self, side: usize, seg: &TcpSegment) {
        let peer_state = self.ep(side ^ 1).state;
        let from_orig = side == self.orig_side();
        if seg.window == 0
            && !seg.rst()
            && peer_state != EndpointState::Closed
            && self.ep(side).state != EndpointState::Reset
        {
            let mut w = self.ep(side).win0;
            w.hit(&mut self.history, b'W', from_orig);
            self.ep_mut(side).win0 = w;
        }
    }

    /// Zeek's `update_last_seq`: advances the highest sequence seen and counts retransmissions.
    fn update_last_seq(&mut self, side: usize, last_seq: u32, seg: &TcpSegment, len: u32) -> i32 {
        let from_orig = side == self.orig_side();
        let e = self.ep(side);
        let (e_last, e_start, e_state) = (e.last_seq, e.start_seq, e.state);
        let delta_last = seq_delta(last_seq, e_last);
        if (seg.syn() || seg.rst())
            && !(-TOO_LARGE_SEQ_DELTA..=TOO_LARGE_SEQ_DELTA).contains(&delta_last)
        {
            // Outlandish SYN/RST sequence numbers are not trusted.
        } else if seg.fin() && e_last == e_start.wrapping_add(1) {
            self.ep_mut(side).update_last_seq(last_seq);
        } else if e_state == EndpointState::Reset {
            // Nothing after a RST is trusted.
        } else if delta_last > 0 {
            self.ep_mut(side).update_last_seq(last_seq);
        } else if len > 0 {
            let (e, history) = self.ep_and_history(side);
            e.rxmt.hit(history, b'T', from_orig);
        }
        delta_last
    }

    /// Zeek's `UpdateStateMachine`: one arm per state of the sending endpoint.
    /// Returns (do_close, gen_event).
    fn update_state_machine(
        &mut self,
        side: usize,
        seg: &TcpSegment,
        len: u32,
        _delta_last: i32,
        is_orig: bool,
        fx: &mut SegmentEffects,
    ) -> (bool, bool) {
        let peer = side ^ 1;
        let mut do_close = false;
        let mut gen_event = false;
        match self.ep(side).state {
            // §4 INACTIVE (UpdateInactiveState).
            EndpointState::Inactive => {
                if seg.syn() {
                    if is_orig {
                        let s = if seg.ack_flag() {
                            EndpointState::SynAckSent
                        } else {
                            EndpointState::SynSent
                        };
                        self.set_state(side, s);
                        fx.arm_attempt = true;
                    } else {
                        if !seg.ack_flag()
                            && self.ep(peer).state == EndpointState::SynAckSent
                            && seg.seq == self.ep(side).start_seq
                        {
                            // SYN seen after its SYN-ACK (reordered capture): flip, establish.
                            self.flip_roles();
                            self.set_state(peer, EndpointState::Established);
                            self.tcp_mut().first_seen |= 1;
                        }
                        if self.ep(peer).state == EndpointState::SynSent {
                            self.set_state(peer, EndpointState::Established);
                        }
                        self.set_state(side, EndpointState::Established);
                    }
                }
                if seg.fin() {
                    self.set_state(side, EndpointState::Closed);
                    do_close = true;
                    gen_event = true;
                }
                if seg.rst() {
                    self.set_state(side, EndpointState::Reset);
                    let peer_state = self.ep(peer).state;
                    let is_reject = if is_orig {
                        // Orig resets a peer that sent a SYN-ACK: a reverse scan, a reject.
                        peer_state == EndpointState::Established
                    } else {
                        matches!(
                            peer_state,
                            EndpointState::SynSent | EndpointState::SynAckSent
                        )
                    };
                    do_close = true;
                    gen_event = !is_reject;
                }
                if self.ep(side).state == EndpointState::Inactive {
                    let orig_state = self.ep(self.orig_side()).state;
                    if !is_orig && len == 0 && orig_state == EndpointState::SynSent {
                        // A responder that ACKs a SYN before answering it: not a partial.
                    } else if seg.ack_flag() && self.ep(peer).state == EndpointState::Established {
                        // Missed the initial SYN but saw the SYN-ACK: established.
                        self.set_state(side, EndpointState::Established);
                        let t = self.tcp_mut();
                        t.is_partial = false;
                        t.first_seen |= if is_orig { 1 } else { 2 };
                    } else {
                        self.set_state(side, EndpointState::Partial);
                    }
                }
            }
            // §4 SYN_SENT / SYN_ACK_SENT (UpdateSYN_SentState).
            EndpointState::SynSent | EndpointState::SynAckSent => {
                if seg.fin() {
                    self.set_state(side, EndpointState::Closed);
                    do_close = true;
                    gen_event = true;
                }
                if seg.rst() {
                    self.set_state(side, EndpointState::Reset);
                    self.tcp_mut().is_active = false;
                    do_close = true;
                }
            }
            // §4 ESTABLISHED / PARTIAL (UpdateEstablishedState).
            EndpointState::Established | EndpointState::Partial => {
                if seg.syn()
                    && self.ep(side).state == EndpointState::Partial
                    && self.ep(peer).state == EndpointState::Inactive
                    && !seg.ack_flag()
                {
                    self.set_state(side, EndpointState::SynSent);
                }
                if seg.fin() && !seg.rst() {
                    self.set_state(side, EndpointState::Closed);
                    let p = self.ep(peer);
                    if p.state == EndpointState::Reset && p.prev_state == EndpointState::Closed {
                        // The peer sent FIN then RST: that was a normal close.
                        self.set_state(peer, EndpointState::Closed);
                    }
                    do_close = true;
                    gen_event = true;
                }
                if seg.rst() {
                    self.set_state(side, EndpointState::Reset);
                    do_close = true;
                    let p = self.ep(peer);
                    if p.state != EndpointState::Reset || p.prev_state != EndpointState::Established
                    {
                        self.tcp_mut().is_active = false;
                    }
                }
            }
            // §4 CLOSED (UpdateClosedState): a RST after our FIN resets us unless the peer
            // closed too (then the FIN exchange already ended it).
            EndpointState::Closed => {
                if seg.rst() && self.ep(peer).state != EndpointState::Closed {
                    self.set_state(side, EndpointState::Reset);
                    if !self.ep(side).did_close {
                        do_close = true;
                    }
                }
            }
            // §4 RESET: nothing moves a reset endpoint.
            EndpointState::Reset => {}
        }
        (do_close, gen_event)
    }

    /// Zeek's `ConnectionClosed`: marks the side closed and, once the close is complete, arms the
    /// close delay; otherwise keeps checking for the other side's close.
    fn connection_closed(&mut self, side: usize, gen_event: bool) {
        let peer = side ^ 1;
        if self.ep(side).did_close {
            return;
        }
        self.ep_mut(side).did_close = true;
        let (e, p) = (self.ep(side), self.ep(peer));
        let (e_state, e_prev) = (e.state, e.prev_state);
        let (p_state, p_did_close) = (p.state, p.did_close);
        let complete =
            e_state == EndpointState::Reset || p_did_close || p_state == EndpointState::Inactive;
        if complete {
            if (e_prev != EndpointState::Inactive || p_state != EndpointState::Inactive)
                && gen_event
            {
                self.tcp_mut().is_active = false;
            }
            self.timers.attempt = MaybeMicros::NONE;
            self.timers.expire = MaybeMicros::NONE;
            self.timers.delete =
                Some(self.timer_time.saturating_add(self.cfg_close_delay())).into();
        } else if e_prev != EndpointState::Inactive {
            let at = self.timer_time.saturating_add(self.cfg_session_timer());
            self.timers.expire = Some(self.timers.expire.map_or(at, |x| x.min(at))).into();
        }
    }

    /// Zeek's `IsReuse`: does this SYN start a new connection on the same 5-tuple?
    pub(crate) fn tcp_is_reuse(&self, seg: &TcpSegment) -> bool {
        if !seg.syn() {
            return false;
        }
        let o = self.orig_side();
        let r = o ^ 1;
        let mut conn_orig = o;
        if seg.ack_flag() {
            if self.ep(o).state != EndpointState::Inactive {
                return false;
            }
            conn_orig = r;
        }
        let closed = self.ep(o).did_close || self.ep(r).did_close;
        if !closed {
            if seg.seq == self.ep(conn_orig).start_seq {
                return false;
            }
            if !seg.ack_flag()
                && self.ep(conn_orig).state == EndpointState::SynAckSent
                && self.ep(r).state == EndpointState::Inactive
                && seg.seq == self.ep(r).start_seq
            {
                return false;
            }
        }
        true
    }

    /// Counts a segment dropped for a bad checksum (`C`/`c`, logarithmic).
    pub(crate) fn tcp_checksum_error(&mut self, side: usize) {
        let from_orig = side == self.orig_side();
        let mut c = self.ep(side).chk;
        c.hit(&mut self.history, b'C', from_orig);
        self.ep_mut(side).chk = c;
    }

    /// Zeek's `AttemptTimer`: an unanswered SYN ends the connection.
    pub(crate) fn tcp_attempt_expired(&self) -> bool {
        let t = self.tcp();
        let o = self.ep(self.orig_side());
        let r = self.ep(self.orig_side() ^ 1);
        t.is_active
            && matches!(o.state, EndpointState::SynSent | EndpointState::SynAckSent)
            && r.state == EndpointState::Inactive
    }

    /// Zeek's `ExpireTimer` condition: idle past the linger time and closed, reset, half-open
    /// or never active.
    pub(crate) fn tcp_expire_due(&self, now: Micros) -> bool {
        if !self.tcp().is_active {
            return false;
        }
        if self.timer_time.saturating_add(self.cfg_linger()) >= now {
            return false;
        }
        self.tcp_expire_closing()
    }

    /// The part of [`Connection::tcp_expire_due`] that does not depend on the time: closed,
    /// reset, half-open or never active.
    pub(crate) fn tcp_expire_closing(&self) -> bool {
        let o = self.ep(self.orig_side());
        let r = self.ep(self.orig_side() ^ 1);
        if (o.did_close || r.did_close)
            && ((o.did_close && r.did_close)
                || o.state == EndpointState::Reset
                || r.state == EndpointState::Reset
                || o.state == EndpointState::Inactive
                || r.state == EndpointState::Inactive)
        {
            return true;
        }
        r.state == EndpointState::Inactive && o.state == EndpointState::Inactive
    }

    /// States by role: (originator, responder).
    pub fn tcp_states(&self) -> (EndpointState, EndpointState) {
        (
            self.ep(self.orig_side()).state,
            self.ep(self.orig_side() ^ 1).state,
        )
    }

    /// Byte counts by role from sequence numbers: (orig_bytes, resp_bytes).
    pub fn tcp_sizes(&self) -> (u64, u64) {
        let o = self.ep(self.orig_side());
        let r = self.ep(self.orig_side() ^ 1);
        (o.size(r.state), r.size(o.state))
    }
}
