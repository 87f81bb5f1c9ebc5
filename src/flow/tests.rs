//! State machine tests on hand-built segments (not captures): one short packet sequence per
//! conn_state and per history rule, checked against Zeek's definitions (ZEEK-SEMANTICS §2–§5).

use super::conn::{ConnState, EndReason};
use super::record::ConnRecord;
use super::table::{FlowTable, TableConfig};
use crate::decode::{Addr, ChecksumVerdict, Decoded, TcpSegment, Transport, Vlans, tcp_flags as F};
use crate::time::Micros;

const C: [u8; 4] = [10, 0, 0, 1];
const S: [u8; 4] = [10, 0, 0, 2];

/// A segment from `from` (C or S) at `ms` milliseconds.
fn seg(ms: i64, from: [u8; 4], flags: u8, seq: u32, ack: u32, len: u32) -> Decoded {
    let (src, dst, sport, dport) = if from == C {
        (C, S, 40000, 8080)
    } else {
        (S, C, 8080, 40000)
    };
    Decoded {
        ts: Micros(ms * 1000),
        src: Addr::v4(src),
        dst: Addr::v4(dst),
        ip_proto: 6,
        ip_len: 40 + len,
        transport: Transport::Tcp(TcpSegment {
            sport,
            dport,
            seq,
            ack,
            flags,
            window: 1000,
            wscale: None,
            payload_len: len,
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

fn run(pkts: &[Decoded]) -> Vec<ConnRecord> {
    let mut t = FlowTable::new(TableConfig::default());
    let mut out = Vec::new();
    for p in pkts {
        t.packet(p, None, None, &mut |r| out.push(r));
    }
    t.flush(EndReason::EndOfInput, &mut |r| out.push(r));
    out
}

/// Runs `pkts` through a table that keeps at most `compact_after` connections whole (flushing
/// it at the end if `flush`); returns what `show` makes of each record, in the canonical order
/// of records (as the pipeline writes them: packets numbered as `Analyser` numbers them), and
/// the table's counters.
fn run_compact<T>(
    pkts: &[Decoded],
    compact_after: usize,
    flush: bool,
    show: impl Fn(&ConnRecord) -> T,
) -> (Vec<T>, super::FlowStats) {
    let events: Vec<Event> = pkts.iter().map(|p| Event::Packet(*p)).collect();
    run_events(&events, compact_after, flush, show)
}

/// What a test gives a table: a packet, or a live capture's idle tick, which runs the timers
/// due by a time past the clock without moving it (`Analyser::tick`).
enum Event {
    Packet(Decoded),
    Tick(Micros),
}

/// [`run_compact`] for packets and ticks.
fn run_events<T>(
    events: &[Event],
    compact_after: usize,
    flush: bool,
    show: impl Fn(&ConnRecord) -> T,
) -> (Vec<T>, super::FlowStats) {
    let mut t = FlowTable::new(TableConfig {
        compact_after,
        ..TableConfig::default()
    });
    let mut out = Vec::new();
    for (i, e) in events.iter().enumerate() {
        t.begin_layer(i as u64 + 1, 0);
        match e {
            Event::Packet(p) => {
                t.packet(p, None, None, &mut |r| out.push((r.order(), show(&r))));
            }
            Event::Tick(now) => t.advance(*now, &mut |r| out.push((r.order(), show(&r)))),
        }
    }
    if flush {
        t.flush(EndReason::EndOfInput, &mut |r| {
            out.push((r.order(), show(&r)))
        });
    }
    out.sort_by_key(|(order, _)| *order);
    (out.into_iter().map(|(_, shown)| shown).collect(), t.stats)
}

fn one(pkts: &[Decoded]) -> (ConnState, String) {
    let r = run(pkts);
    assert_eq!(r.len(), 1, "{r:?}");
    (r[0].conn_state, r[0].history.as_str().to_string())
}

const SA: u8 = F::SYN | F::ACK;
const A: u8 = F::ACK;
const PA: u8 = F::PSH | F::ACK;
const FA: u8 = F::FIN | F::ACK;
const RA: u8 = F::RST | F::ACK;

fn handshake() -> Vec<Decoded> {
    vec![
        seg(0, C, F::SYN, 100, 0, 0),
        seg(1, S, SA, 500, 101, 0),
        seg(2, C, A, 101, 501, 0),
    ]
}

#[test]
fn sf_normal_close_and_byte_counts() {
    let mut p = handshake();
    p.extend([
        seg(3, C, PA, 101, 501, 10),
        seg(4, S, PA, 501, 111, 20),
        seg(5, C, FA, 111, 521, 0),
        seg(6, S, FA, 521, 112, 0),
        seg(7, C, A, 112, 522, 0),
    ]);
    let r = run(&p);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].conn_state, ConnState::SF);
    // No pure ACK from the server, so no `a`.
    assert_eq!(r[0].history.as_str(), "ShADdFf");
    assert_eq!((r[0].orig_bytes, r[0].resp_bytes), (10, 20));
    assert_eq!(
        (r[0].syn_synack_us, r[0].synack_ack_us),
        (Some(1000), Some(1000))
    );
}

#[test]
fn s0_unanswered_and_split_by_the_attempt_timer() {
    // SYN, retransmitted with the same ISN (no second S), then a new SYN 6 s later.
    let p = [
        seg(0, C, F::SYN, 100, 0, 0),
        seg(1000, C, F::SYN, 100, 0, 0),
        seg(7000, C, F::SYN, 100, 0, 0),
    ];
    let r = run(&p);
    assert_eq!(r.len(), 2, "the attempt timer (5 s) ends the first record");
    assert_eq!(
        (r[0].conn_state, r[0].history.as_str(), r[0].orig_pkts),
        (ConnState::S0, "S", 2)
    );
    assert_eq!(r[0].reason, EndReason::Attempt);
    assert_eq!(r[1].conn_state, ConnState::S0);
}

#[test]
fn rej_rsto_rstr_rstos0() {
    assert_eq!(
        one(&[seg(0, C, F::SYN, 1, 0, 0), seg(1, S, RA, 0, 2, 0)]),
        (ConnState::REJ, "Sr".into())
    );
    let mut p = handshake();
    p.push(seg(3, C, RA, 101, 501, 0));
    assert_eq!(one(&p), (ConnState::RSTO, "ShAR".into()));
    let mut p = handshake();
    p.push(seg(3, S, RA, 501, 101, 0));
    assert_eq!(one(&p), (ConnState::RSTR, "ShAr".into()));
    assert_eq!(
        one(&[seg(0, C, F::SYN, 1, 0, 0), seg(1, C, F::RST, 2, 0, 0)]),
        (ConnState::RSTOS0, "SR".into())
    );
}

#[test]
fn half_open_scan_probe_is_rsto() {
    // nmap -sS to an open port: SYN, SYN-ACK, RST from the scanner.
    let (st, h) = one(&[
        seg(0, C, F::SYN, 1, 0, 0),
        seg(1, S, SA, 9, 2, 0),
        seg(2, C, F::RST, 2, 0, 0),
    ]);
    assert_eq!((st, h.as_str()), (ConnState::RSTO, "ShR"));
}

#[test]
fn s1_s2_s3_sh() {
    assert_eq!(one(&handshake()).0, ConnState::S1);
    let mut p = handshake();
    p.push(seg(3, C, FA, 101, 501, 0));
    assert_eq!(one(&p), (ConnState::S2, "ShAF".into()));
    let mut p = handshake();
    p.push(seg(3, S, FA, 501, 101, 0));
    assert_eq!(one(&p), (ConnState::S3, "ShAf".into()));
    assert_eq!(
        one(&[seg(0, C, F::SYN, 1, 0, 0), seg(1, C, F::FIN, 2, 0, 0)]),
        (ConnState::SH, "SF".into())
    );
}

#[test]
fn syn_ack_first_then_ack_flips_with_caret() {
    // The capture missed the SYN; the SYN-ACK's sender is the responder after all.
    let (st, h) = one(&[
        seg(0, S, SA, 500, 101, 0),
        seg(1, C, A, 101, 501, 0),
        seg(2, C, PA, 101, 501, 5),
    ]);
    assert_eq!(h, "^hAD");
    assert_eq!(st, ConnState::S1);
    let r = run(&[seg(0, S, SA, 500, 101, 0), seg(1, C, A, 101, 501, 0)]);
    assert_eq!(
        r[0].orig.addr,
        Addr::v4(C),
        "originator is the client after the flip"
    );
}

#[test]
fn lone_syn_ack_answered_by_rst() {
    // From a likely server port (8080) to a client port, Zeek flips at creation.
    let r = run(&[seg(0, S, SA, 500, 101, 0), seg(1, C, F::RST, 101, 0, 0)]);
    assert_eq!(r[0].history.as_str(), "^hR");
    assert_eq!(r[0].orig.addr, Addr::v4(C));
    // Between two unremarkable ports (backscatter, stealth scans) the SYN-ACK's sender stays
    // the originator.
    let mut a = seg(0, S, SA, 500, 101, 0);
    let mut b = seg(1, C, F::RST, 101, 0, 0);
    for (d, sp, dp) in [(&mut a, 47001u16, 40000u16), (&mut b, 40000, 47001)] {
        if let Transport::Tcp(t) = &mut d.transport {
            (t.sport, t.dport) = (sp, dp);
        }
    }
    let r = run(&[a, b]);
    assert_eq!(
        (r[0].history.as_str(), r[0].conn_state),
        ("Hr", ConnState::REJ)
    );
    assert_eq!(r[0].orig.addr, Addr::v4(S));
}

#[test]
fn midstream_data_is_oth_and_retransmission_is_t() {
    let (st, h) = one(&[
        seg(0, C, PA, 1000, 50, 10),
        seg(1, C, PA, 1000, 50, 10),
        seg(2, S, A, 50, 1010, 0),
    ]);
    assert_eq!((st, h.as_str()), (ConnState::OTH, "DTa"));
}

#[test]
fn multi_flag_and_inconsistent_letters() {
    let (_, h) = one(&[
        seg(0, C, F::SYN | F::FIN, 1, 0, 0),
        seg(1, S, F::FIN | F::RST, 1, 0, 0),
    ]);
    assert_eq!(h, "Qi");
}

#[test]
fn a_new_syn_after_close_starts_a_new_record() {
    let mut p = handshake();
    p.extend([
        seg(3, C, FA, 101, 501, 0),
        seg(4, S, FA, 501, 102, 0),
        seg(5, C, A, 102, 502, 0),
    ]);
    p.push(seg(1000, C, F::SYN, 9000, 0, 0));
    let r = run(&p);
    assert_eq!(r.len(), 2);
    assert_eq!(
        (r[0].conn_state, r[0].reason),
        (ConnState::SF, EndReason::Reused)
    );
    assert_eq!(r[1].history.as_str(), "S");
}

#[test]
fn close_delay_ends_the_record_and_later_packets_start_another() {
    let mut p = vec![seg(0, C, F::RST, 1, 0, 0)];
    p.push(seg(60_000, C, F::RST, 1, 0, 0));
    let r = run(&p);
    assert_eq!(r.len(), 2);
    assert_eq!(
        (r[0].conn_state, r[0].history.as_str(), r[0].reason),
        (ConnState::OTH, "R", EndReason::Closed)
    );
}

#[test]
fn zero_window_is_w() {
    let mut p = handshake();
    let mut z = seg(3, S, A, 501, 101, 0);
    if let Transport::Tcp(t) = &mut z.transport {
        t.window = 0;
    }
    p.push(z);
    assert_eq!(one(&p).1, "ShAaw");
}

#[test]
fn eviction_writes_the_evicted_flow() {
    let mut t = FlowTable::new(TableConfig {
        max_flows: 1,
        ..TableConfig::default()
    });
    let mut out = Vec::new();
    t.packet(&seg(0, C, F::SYN, 1, 0, 0), None, None, &mut |r| {
        out.push(r)
    });
    let mut other = seg(1, C, F::SYN, 1, 0, 0);
    other.dst = Addr::v4([10, 0, 0, 3]);
    t.packet(&other, None, None, &mut |r| out.push(r));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].reason, EndReason::Evicted);
    assert_eq!(t.stats.evicted, 1);
    assert_eq!(t.active(), 1);
}

#[test]
fn rstrh_and_shr() {
    // Zeek's RSTRH: the responder sent SYN-ACK then RST, the originator's SYN never seen. The
    // originator is known from a likely server port on the SYN-ACK (flip at creation).
    let (st, h) = one(&[seg(0, S, SA, 500, 101, 0), seg(1, S, RA, 501, 101, 0)]);
    assert_eq!((st, h.as_str()), (ConnState::RSTRH, "^hr"));
    // SHR: SYN-ACK then FIN from the responder, nothing from the originator.
    let (st, h) = one(&[seg(0, S, SA, 500, 101, 0), seg(1, S, FA, 501, 101, 0)]);
    assert_eq!((st, h.as_str()), (ConnState::SHR, "^hf"));
}

#[test]
fn content_gap_is_g_with_missed_bytes() {
    // The server's 1000 bytes were never captured; the client's ACK of them reveals the gap.
    let mut p = handshake();
    p.extend([
        seg(3, C, PA, 101, 501, 10),
        seg(4, C, A, 111, 1501, 0),
        seg(5, C, FA, 111, 1501, 0),
        seg(6, S, FA, 1501, 112, 0),
        seg(7, C, A, 112, 1502, 0),
    ]);
    let r = run(&p);
    assert_eq!(r[0].history.as_str(), "ShADgFf");
    assert_eq!(r[0].missed_bytes, 1000);
    assert_eq!(r[0].resp_bytes, 1000);
    assert_eq!(r[0].conn_state, ConnState::SF);
}

#[test]
fn acking_the_fin_or_after_a_reset_is_not_a_gap() {
    // The FIN's own octet is acknowledged: no gap.
    let mut p = handshake();
    p.extend([seg(3, S, FA, 501, 101, 0), seg(4, C, A, 101, 502, 0)]);
    let r = run(&p);
    assert!(
        !r[0].history.as_str().contains('g'),
        "{}",
        r[0].history.as_str()
    );
    assert_eq!(r[0].missed_bytes, 0);
    // A RST that acknowledges unseen data: the resetting side is not "clean", no gap.
    let mut p = handshake();
    p.push(seg(3, C, RA, 101, 9000, 0));
    let r = run(&p);
    assert!(
        !r[0].history.as_str().contains('g'),
        "{}",
        r[0].history.as_str()
    );
    assert_eq!(r[0].missed_bytes, 0);
}

#[test]
fn payload_cut_by_the_snap_length_is_a_gap_when_acknowledged() {
    let mut p = handshake();
    let mut cut = seg(3, S, PA, 501, 101, 300);
    cut.truncated = true;
    p.extend([cut, seg(4, C, A, 101, 801, 0)]);
    let r = run(&p);
    assert_eq!(r[0].history.as_str(), "ShAdg");
    assert_eq!((r[0].missed_bytes, r[0].resp_bytes), (300, 300));
}

#[test]
fn bad_checksum_is_c_and_the_packet_is_skipped() {
    let mut p = handshake();
    let mut bad = seg(3, C, PA, 101, 501, 10);
    bad.l4_checksum = ChecksumVerdict::Bad;
    p.push(bad);
    let r = run(&p);
    assert_eq!(r[0].history.as_str(), "ShAC");
    assert_eq!(r[0].orig_bytes, 0);
}

fn udp(ms: i64, from: [u8; 4], len: u32, reply: bool) -> Decoded {
    let (src, dst) = if from == C { (C, S) } else { (S, C) };
    let mut d = seg(ms, from, 0, 0, 0, 0);
    d.src = Addr::v4(src);
    d.dst = Addr::v4(dst);
    d.ip_proto = 17;
    d.ip_len = 28 + len;
    d.transport = Transport::Udp {
        sport: 123,
        dport: 123,
        payload_len: len,
    };
    d.udp_reply = reply;
    d
}

#[test]
fn udp_flip_on_a_first_packet_that_is_a_reply() {
    // ntp-misordered: the server's reply first, then the client's request; both port 123.
    let r = run(&[udp(0, S, 48, true), udp(1, C, 48, false)]);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].history.as_str(), "D^");
    assert_eq!(r[0].orig.addr, Addr::v4(C));
    // Zeek's counters stay with the role across this flip: 2 / 0, hence S0.
    assert_eq!((r[0].orig_pkts, r[0].resp_pkts), (2, 0));
    assert_eq!(r[0].conn_state, ConnState::S0);
    // A request first: no flip, SF.
    let r = run(&[udp(0, C, 48, false), udp(1, S, 48, true)]);
    assert_eq!(
        (r[0].history.as_str(), r[0].conn_state),
        ("Dd", ConnState::SF)
    );
}

#[test]
fn a_connection_stays_small() {
    // Memory per tracked flow is this plus the table's key, links and timer entry;
    // README's memory figures (benches/scaling.sh) depend on it. It was 928 bytes before the
    // timer settings became shared and the scaled-letter counters lost their thresholds (824),
    // then out-of-order ranges and tunnel parents moved to allocations made only when needed
    // (672), then optional times took 8 bytes instead of 16 (624), then the sides stopped
    // copying the endpoints the key holds (576), then the FIN sequence number lost its
    // `Option` and the timer flags left `Timers`' padding.
    let size = std::mem::size_of::<super::conn::Connection>();
    assert!(size <= 552, "Connection is {size} bytes");
}

/// Connections packed when they go quiet (more are open than `compact_after`) end exactly as
/// connections kept whole: through the repeating status check fired on the packed form, timers
/// that end them while packed, and packets that wake them.
#[test]
fn packed_connections_end_as_whole_ones() {
    let mut pkts = Vec::new();
    let n = 40u16;
    let client = |i: u16| [10, 1, (i >> 8) as u8, i as u8];
    let at = |ms: i64, i: u16, flags: u8, seq: u32, ack: u32, len: u32, from_client: bool| {
        let mut d = seg(ms, if from_client { C } else { S }, flags, seq, ack, len);
        if from_client {
            d.src = Addr::v4(client(i));
        } else {
            d.dst = Addr::v4(client(i));
        }
        d
    };
    for i in 0..n {
        let t = i64::from(i) * 10;
        pkts.push(at(t, i, F::SYN, 100, 0, 0, true));
        pkts.push(at(t + 1, i, F::SYN | F::ACK, 500, 101, 0, false));
        pkts.push(at(t + 2, i, F::ACK, 101, 501, 0, true));
        pkts.push(at(t + 3, i, F::PSH | F::ACK, 101, 501, 20, true));
    }
    // A minute of quiet for all (status checks every 6 s, run by another connection's
    // packets every 3 s), then a third of them close, a third send more data, and the rest
    // stay open until the end.
    pkts.push(seg(1_000, C, F::SYN, 7, 0, 0));
    pkts.push(seg(1_001, S, F::SYN | F::ACK, 70, 8, 0));
    for k in 1..20 {
        pkts.push(seg(1_001 + k * 3_000, C, F::ACK, 8, 71, 0));
    }
    for i in 0..n {
        let t = 60_000 + i64::from(i) * 10;
        match i % 3 {
            0 => {
                pkts.push(at(t, i, F::FIN | F::ACK, 121, 501, 0, true));
                pkts.push(at(t + 1, i, F::FIN | F::ACK, 501, 122, 0, false));
                pkts.push(at(t + 2, i, F::ACK, 122, 502, 0, true));
            }
            1 => pkts.push(at(t, i, F::PSH | F::ACK, 501, 121, 300, false)),
            _ => {}
        }
    }
    // Long enough for every timer, then a packet to make the table run them.
    pkts.push(seg(2_000_000, C, F::SYN, 9, 0, 0));
    let show = |r: &ConnRecord| format!("{r:?}");
    let (whole, whole_stats) = run_compact(&pkts, 1_000_000, true, show);
    let (packed, stats) = run_compact(&pkts, 4, true, show);
    assert_eq!(whole_stats.packed, 0);
    assert!(stats.packed >= u64::from(n) - 4, "{stats:?}");
    assert!(stats.quiet_fires >= u64::from(n), "{stats:?}");
    assert!(stats.unpacked >= u64::from(n), "{stats:?}");
    assert_eq!(whole.len(), usize::from(n) + 2);
    assert_eq!(whole, packed);
}

/// A closing connection packed while it lingers: its queue entry must stay at its next timer,
/// not at the end of its linger time, or its record's `due` (its place in the canonical order)
/// differs from a whole connection's. Found in review: the client sends FIN, the server more
/// data, the client RST (Closed -> Reset, still active), and the status check fires on the
/// packed form before the linger time is over.
#[test]
fn a_packed_lingering_connection_ends_when_a_whole_one_does() {
    let mk = |ms: i64, net: u8, from_client: bool, flags: u8, seq: u32, ack: u32, len: u32| {
        let mut d = seg(ms, if from_client { C } else { S }, flags, seq, ack, len);
        let c = Addr::v4([10, net, 0, 1]);
        if from_client {
            d.src = c;
        } else {
            d.dst = c;
        }
        d
    };
    let pkts = [
        // X: handshake; its attempt and SYN-timeout checks pass at 5.5 s (Y's SYN).
        mk(0, 0, true, F::SYN, 100, 0, 0),
        mk(1, 0, false, SA, 500, 101, 0),
        mk(2, 0, true, A, 101, 501, 0),
        mk(5_500, 1, true, F::SYN, 1, 0, 0),
        // X: client FIN, server data, client RST: linger ends at 13.1 s, expire at 11.5 s.
        mk(6_000, 0, true, FA, 101, 501, 0),
        mk(8_000, 0, false, PA, 501, 102, 10),
        mk(8_100, 0, true, RA, 102, 511, 0),
        // Y's second packet makes Y whole, and the table packs X.
        mk(9_000, 1, false, SA, 9, 2, 0),
        // Z: an unanswered SYN (attempt due at 14.5 s).
        mk(9_500, 2, true, F::SYN, 1, 0, 0),
        // X's status check fires at 12 s, before its linger ends.
        mk(12_000, 1, true, A, 2, 10, 0),
        // A lull, then one packet runs every timer.
        mk(30_000, 3, true, F::SYN, 1, 0, 0),
    ];
    let key = |r: &ConnRecord| (r.flow_id, r.due, r.order());
    let (whole, _) = run_compact(&pkts, 1_000_000, false, key);
    let (packed, stats) = run_compact(&pkts, 1, false, key);
    assert!(stats.packed > 0, "{stats:?}");
    assert_eq!(whole.len(), 2);
    assert_eq!(whole, packed);
}

/// The table's quiet paths for whole connections against the slow path, on random TCP
/// sequences over up to 20 flows: `FlowTable::fire_quiet` (a status check re-armed from the
/// table's cache, the connection not read) and the status-check groups (`Group`: quiet
/// connections whose checks fire as one entry, and members let go when their quiet time passed
/// in the same jump of the clock). Long gaps (so status checks, inactivity and linger timers
/// fire), gaps around the 6 s check, clocks going backwards, a live capture's idle ticks
/// (timers run past the clock), every flag mix, whole and packed tables, with and without a
/// flush. Every record and its place in the canonical order must be
/// the same. (From the review of the quiet path, which ran 20 000 rounds of it.)
#[test]
fn the_quiet_path_writes_what_the_slow_path_writes() {
    use super::table::{GROUP_FIRES, QUIET_PATH_FIRES, QUIET_PATH_OFF};
    let mut x: u64 = 0x1234_5678_9abc_def1;
    let mut rnd = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let flags = [F::SYN, SA, A, PA, FA, RA, F::RST, F::FIN, A, A, PA, PA];
    QUIET_PATH_FIRES.with(|n| n.set(0));
    GROUP_FIRES.with(|n| n.set([0; 4]));
    for round in 0..2_000 {
        let mut events = Vec::new();
        let mut ms: i64 = 0;
        let flows = 1 + rnd(20) as u8;
        for _ in 0..5 + rnd(100) {
            ms += match rnd(8) {
                7 => -(rnd(30_000) as i64),
                0 => rnd(400_000) as i64,
                1 => rnd(20_000) as i64,
                2 => 0,
                3 => 5_000 + rnd(60_000) as i64,
                _ => rnd(3_000) as i64,
            };
            let f = rnd(u64::from(flows)) as u8;
            let from_client = rnd(2) == 0;
            let flag = flags[rnd(flags.len() as u64) as usize];
            let len = if rnd(3) == 0 { rnd(100) as u32 } else { 0 };
            let seq = if rnd(4) == 0 {
                rnd(1000) as u32
            } else {
                100 + rnd(3) as u32
            };
            let mut d = seg(
                ms,
                if from_client { C } else { S },
                flag,
                seq,
                500 + rnd(3) as u32,
                len,
            );
            let client = Addr::v4([10, 7, f, 1]);
            if from_client {
                d.src = client;
            } else {
                d.dst = client;
            }
            if let Transport::Tcp(t) = &mut d.transport
                && f % 2 == 1
            {
                if from_client {
                    t.dport = 22;
                } else {
                    t.sport = 22;
                }
            }
            events.push(Event::Packet(d));
            if rnd(12) == 0 {
                events.push(Event::Tick(Micros((ms + rnd(20_000) as i64) * 1000)));
            }
        }
        for compact in [1_000_000usize, 1, 2] {
            let show = |r: &ConnRecord| format!("{r:?} order={:?}", r.order());
            let flush = round % 2 == 0;
            QUIET_PATH_OFF.with(|c| c.set(true));
            let (slow, _) = run_events(&events, compact, flush, show);
            QUIET_PATH_OFF.with(|c| c.set(false));
            let (quiet, _) = run_events(&events, compact, flush, show);
            assert_eq!(slow, quiet, "round {round}, compact_after {compact}");
        }
    }
    let fires = QUIET_PATH_FIRES.with(std::cell::Cell::get);
    let [group_fires, overdue, merges, seen_above] = GROUP_FIRES.with(std::cell::Cell::get);
    assert!(fires > 10, "the quiet path fired only {fires} times");
    assert!(merges > 5_000, "groups merged only {merges} times");
    assert!(
        seen_above > 5_000,
        "members saw a merged fire {seen_above} times"
    );
    assert!(
        group_fires > 5_000,
        "groups of two or more fired only {group_fires} times"
    );
    assert!(overdue > 5_000, "only {overdue} members were overdue");
}

/// A status-check group re-armed at the end of time (the clock within `tcp_session_timer` of
/// `i64::MAX` microseconds, which a crafted capture can reach) fires no more, as its members
/// would not alone; it used to be queued at the last time and fired there forever. (From the
/// review of the groups.)
#[test]
fn a_group_rearmed_at_the_end_of_time_is_not_fired_forever() {
    use super::table::QUIET_PATH_OFF;
    let end = i64::MAX / 1000; // ms
    let at = |mut d: Decoded, us: i64| {
        d.ts = Micros(us);
        d
    };
    let mut other = seg(0, C, F::SYN, 1, 0, 0);
    other.src = Addr::v4([10, 9, 9, 9]);
    let t0 = (end - 100_000) * 1000;
    let pkts = vec![
        // A handshake; its quiet time saturates to the end of time.
        at(seg(0, C, F::SYN, 100, 0, 0), t0),
        at(seg(0, S, SA, 500, 101, 0), t0),
        at(seg(0, C, A, 101, 501, 0), t0),
        // Its first status check is re-armed: it joins a group.
        at(other, t0 + 10_000_000),
        // The group fires and is re-armed at the end of time.
        at(other, (end - 1_000) * 1000),
        // The clock at the end of time.
        at(other, i64::MAX),
    ];
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let show = |r: &ConnRecord| format!("{r:?}");
        QUIET_PATH_OFF.with(|c| c.set(true));
        let (slow, _) = run_compact(&pkts, 1_000_000, true, show);
        QUIET_PATH_OFF.with(|c| c.set(false));
        let (quiet, _) = run_compact(&pkts, 1_000_000, true, show);
        let _ = tx.send((slow, quiet));
    });
    let (slow, quiet) = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the table's timers loop");
    assert_eq!(slow, quiet);
}

/// A connection whose quiet time is the end of time (its inactivity timeout saturates there)
/// joins no group: it would have no entry of its own, and its timeout, due when the clock
/// reaches the end of time, would never fire. (From the second review of the groups.)
#[test]
fn a_member_quiet_until_the_end_of_time_times_out() {
    use super::table::QUIET_PATH_OFF;
    let at = |mut d: Decoded, us: i64| {
        d.ts = Micros(us);
        d
    };
    let mut other = seg(0, C, F::SYN, 1, 0, 0);
    other.src = Addr::v4([10, 9, 9, 9]);
    let t0 = i64::MAX - 200_000_000; // 200 s before the end of time
    let pkts = vec![
        at(seg(0, C, F::SYN, 100, 0, 0), t0),
        at(seg(0, S, SA, 500, 101, 0), t0),
        at(seg(0, C, A, 101, 501, 0), t0),
        // The status check is re-armed to t0 + 16 s, where a group could take it.
        at(other, t0 + 10_000_000),
        // The clock at the end of time.
        at(other, i64::MAX),
    ];
    let show = |r: &ConnRecord| format!("{r:?}");
    QUIET_PATH_OFF.with(|c| c.set(true));
    let (slow, _) = run_compact(&pkts, 1_000_000, false, show);
    QUIET_PATH_OFF.with(|c| c.set(false));
    let (quiet, _) = run_compact(&pkts, 1_000_000, false, show);
    assert!(
        slow.iter().any(|r| r.contains("reason: Timeout")),
        "{slow:?}"
    );
    assert_eq!(slow, quiet);
}
