//! The analysis of one captured frame: decode, reassemble fragments, open tunnels, account to
//! connections. Everything per packet that is not capture or output happens here, on one
//! thread, without allocating (fragment reassembly allocates only for fragmented traffic).

use crate::decode::defrag::{DefragConfig, Defragmenter, Offer};
use crate::decode::link::dlt;
use crate::decode::{ChecksumVerdict, DecodeOptions, Decoded, decode_into, tunnel};
use crate::detect::{Alert, Detector};
use crate::flow::{ConnRecord, EndReason, FlowTable, TableConfig};
use crate::output::summary::Summary;
use crate::time::Micros;

/// How many tunnels deep synwatch looks (Zeek's `Tunnel::max_depth` is 2).
pub const MAX_TUNNEL_DEPTH: usize = 4;

/// Per-packet analysis state: the flow table, the fragment reassembler and the summary.
///
/// Every captured packet gets a sequence number (1, 2, …) and moves the analysis clock, whether
/// this analyzer owns it ([`Analyzer::packet`]) or another worker does ([`Analyzer::observe`]):
/// so each worker's timers fire at the same packet times as in a single-threaded run, and its
/// records are stamped with the same sequence numbers and flow ids.
pub struct Analyzer {
    pub table: FlowTable,
    pub summary: Summary,
    /// Connection records that ended and wait to be written.
    pub pending: Vec<ConnRecord>,
    /// Alerts decided and waiting to be written.
    pub alerts: Vec<Alert>,
    pub detector: Detector,
    defrag: Defragmenter,
    /// The last reassembled datagram (reused).
    reassembled: Vec<u8>,
    dopts: DecodeOptions,
    /// Sequence number of the last packet seen.
    seq: u64,
    /// Judge records here (one thread). Off for workers: a merge stage judges their records.
    judging: bool,
    /// `pending[..judged]` have been judged.
    judged: usize,
}

/// Accounts one finished connection to the summary and the detectors. Records must come in
/// their canonical order ([`ConnRecord::order`]) for results not to depend on the threading.
pub fn judge(
    summary: &mut Summary,
    detector: &mut Detector,
    alerts: &mut Vec<Alert>,
    r: &ConnRecord,
) {
    summary.record(r);
    detector.on_record(r, alerts);
}

impl Analyzer {
    /// An analyzer that also judges its records (summary counts, detectors, alerts).
    pub fn new(table: TableConfig, dopts: DecodeOptions, detector: Detector) -> Self {
        Analyzer {
            table: FlowTable::new(table),
            summary: Summary::default(),
            pending: Vec::with_capacity(1024),
            alerts: Vec::new(),
            detector,
            defrag: Defragmenter::new(DefragConfig::default()),
            reassembled: Vec::new(),
            dopts,
            seq: 0,
            judging: true,
            judged: 0,
        }
    }

    /// A worker's analyzer: it counts packets and writes records, and leaves the judging of
    /// the records to the stage that merges every worker's (`pipeline`).
    pub fn worker(table: TableConfig, dopts: DecodeOptions, detector: Detector) -> Self {
        Analyzer {
            judging: false,
            ..Analyzer::new(table, dopts, detector)
        }
    }

    /// Drops the records and alerts written so far, once the caller has taken what it needs
    /// of them (clearing `pending` by hand would leave the count of those judged pointing
    /// past the end, and the next records unjudged).
    pub fn clear_output(&mut self) {
        self.pending.clear();
        self.alerts.clear();
        self.judged = 0;
    }

    /// Sequence number of the last packet seen.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Analyses one captured frame.
    pub fn packet(&mut self, linktype: i32, frame: &[u8], ts: Micros, wire_len: u32) {
        self.observe(ts);
        self.summary.packets += 1;
        self.summary.wire_bytes += u64::from(wire_len);
        // Bytes the snap length cut off: they are missing from every layer.
        let missing = wire_len.saturating_sub(frame.len() as u32);
        self.layers(linktype, frame, ts, missing, None, 0, true);
        self.judge_new();
    }

    /// A packet another worker analyses: it still numbers the packets and moves the clock
    /// (timers fire at packet times, GUIDE §1).
    pub fn observe(&mut self, ts: Micros) {
        self.seq += 1;
        self.table.begin_layer(self.seq, 0);
        let pending = &mut self.pending;
        self.table.advance_to(ts, &mut |r| pending.push(r));
        self.judge_new();
    }

    /// Runs the timers due by `now` (packet time) without a packet: live capture's idle ticks.
    pub fn tick(&mut self, now: Micros) {
        let pending = &mut self.pending;
        self.table.advance(now, &mut |r| pending.push(r));
        self.judge_new();
        if self.judging {
            self.detector.expire_all(now, &mut self.alerts);
        }
    }

    /// Ends every connection still open and accounts it.
    pub fn finish(&mut self, reason: EndReason) {
        while !self.finish_some(reason, usize::MAX) {}
    }

    /// Ends up to `max` of the connections still open (in flow-id order) and accounts them;
    /// returns true, having finished the summary, when none is left.
    pub fn finish_some(&mut self, reason: EndReason, max: usize) -> bool {
        let pending = &mut self.pending;
        let done = self.table.flush_some(reason, max, &mut |r| pending.push(r));
        self.judge_new();
        if !done {
            return false;
        }
        if self.judging {
            self.detector.finish(&mut self.alerts);
            self.summary.detect = self.detector.stats;
            self.summary.scan = self.detector.scan_stats();
        }
        self.summary.flow_stats = self.table.stats;
        self.summary.defrag = self.defrag.stats;
        true
    }

    /// Judges the records written since the last call, in canonical order. (A worker's
    /// analyzer judges nothing: the check is inline, as it runs twice per packet.)
    #[inline]
    fn judge_new(&mut self) {
        if !self.judging {
            self.judged = self.pending.len();
            return;
        }
        self.judge_pending();
    }

    fn judge_pending(&mut self) {
        self.judged = self.judged.min(self.pending.len());
        if self.judged == self.pending.len() {
            return;
        }
        let (summary, detector, alerts) = (&mut self.summary, &mut self.detector, &mut self.alerts);
        if let Some(new) = self.pending.get_mut(self.judged..) {
            new.sort_unstable_by_key(ConnRecord::order);
            for r in new.iter() {
                judge(summary, detector, alerts, r);
            }
        }
        self.judged = self.pending.len();
    }

    /// Decodes `bytes` and whatever it carries: each layer is accounted to its connection, and
    /// a tunnel's inner packet names the outer connection as its parent.
    #[allow(clippy::too_many_arguments)]
    fn layers(
        &mut self,
        linktype: i32,
        frame: &[u8],
        ts: Micros,
        missing: u32,
        mut parent: Option<u64>,
        first_depth: usize,
        defrag_ok: bool,
    ) {
        let mut layer = (linktype, frame);
        let mut d = Decoded::EMPTY;
        for depth in first_depth..=MAX_TUNNEL_DEPTH {
            let (lt, bytes) = layer;
            let wire = (bytes.len() as u32).saturating_add(missing);
            match decode_into(lt, bytes, ts, wire, self.dopts, &mut d) {
                Ok(()) => {}
                Err(why) if depth == 0 => {
                    crate::counters::add(&mut self.summary.undecodable, why.index(), 1);
                    return;
                }
                Err(why) => {
                    crate::counters::add(&mut self.summary.inner_undecodable, why.index(), 1);
                    return;
                }
            };
            if depth == 0 && defrag_ok {
                self.summary.decoded += 1;
                if d.truncated {
                    self.summary.truncated_packets += 1;
                }
            }
            if d.fragmented && defrag_ok && missing == 0 {
                let ip = bytes.get(d.ip_off as usize..).unwrap_or(&[]);
                let mut buf = std::mem::take(&mut self.reassembled);
                let offer = self.defrag.offer(ip, ts, &mut buf);
                match offer {
                    Offer::Held => {}
                    Offer::Complete => {
                        self.layers(dlt::RAW, &buf, ts, 0, parent, depth, false);
                    }
                    Offer::Unusable => {
                        let pending = &mut self.pending;
                        self.table.begin_layer(self.seq, depth);
                        self.table
                            .packet(&d, parent, None, &mut |r| pending.push(r));
                    }
                }
                self.reassembled = buf;
                return;
            }
            if d.l4_checksum == ChecksumVerdict::Bad {
                self.summary.bad_l4_checksums += 1;
            }
            // A packet with a bad checksum is not opened (Zeek drops it before any analyzer).
            let inner = if d.l4_checksum == ChecksumVerdict::Bad {
                None
            } else {
                tunnel::inner(&d, bytes)
            };
            let pending = &mut self.pending;
            self.table.begin_layer(self.seq, depth);
            let id = self
                .table
                .packet(&d, parent, inner.map(|i| i.kind), &mut |r| pending.push(r));
            let Some(inner) = inner else { return };
            if depth == MAX_TUNNEL_DEPTH {
                self.summary.tunnel_too_deep += 1;
                return;
            }
            crate::counters::add(&mut self.summary.tunnelled, inner.kind.index(), 1);
            parent = id;
            layer = (inner.linktype, inner.bytes);
        }
    }
}

/// Tests' source of real records: the fixtures named, read in order by one analyzer with the
/// default settings and the built-in port database, every connection ended at end of input.
#[cfg(test)]
pub(crate) fn fixture_records(
    files: &[&str],
) -> (
    std::sync::Arc<crate::classify::ports::PortDb>,
    Vec<crate::flow::ConnRecord>,
) {
    let db = std::sync::Arc::new(crate::classify::ports::PortDb::builtin().unwrap());
    let mut an = Analyzer::new(
        crate::flow::TableConfig::default(),
        DecodeOptions::default(),
        Detector::new(db.clone(), crate::rules::Rules::default()),
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    for f in files {
        let mut cap = pcap::Capture::from_file(dir.join(f)).unwrap();
        let lt = cap.get_datalink().0;
        while let Ok(p) = cap.next_packet() {
            let ts = Micros::from_timeval(p.header.ts.tv_sec, p.header.ts.tv_usec);
            an.packet(lt, p.data, ts, p.header.len);
        }
    }
    an.finish(EndReason::EndOfInput);
    (db, an.pending)
}

#[cfg(test)]
mod tests {
    //! Hand-built packets (the kernel here has no GRE or IP-in-IP devices to record with).
    use super::*;
    use crate::classify::ports::PortDb;
    use crate::detect::Detector;
    use crate::rules::Rules;

    fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, id: u16, frag: u16, payload: &[u8]) -> Vec<u8> {
        let total = (20 + payload.len()) as u16;
        let mut p = vec![0x45, 0];
        p.extend_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&frag.to_be_bytes());
        p.extend_from_slice(&[64, proto, 0, 0]);
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(payload);
        p
    }

    fn udp(sport: u16, dport: u16, body: &[u8]) -> Vec<u8> {
        let mut u = Vec::new();
        u.extend_from_slice(&sport.to_be_bytes());
        u.extend_from_slice(&dport.to_be_bytes());
        u.extend_from_slice(&((8 + body.len()) as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend_from_slice(body);
        u
    }

    fn analyzer() -> Analyzer {
        let db = std::sync::Arc::new(PortDb::builtin().unwrap());
        Analyzer::new(
            TableConfig::default(),
            DecodeOptions::default(),
            Detector::new(db, Rules::default()),
        )
    }

    #[test]
    fn gre_inner_connection_names_the_outer_one() {
        let inner = ipv4(
            [192, 168, 0, 1],
            [192, 168, 0, 2],
            17,
            1,
            0,
            &udp(5000, 53, b"q"),
        );
        let mut gre = vec![0x00, 0x00, 0x08, 0x00];
        gre.extend_from_slice(&inner);
        let outer = ipv4([10, 0, 0, 1], [10, 0, 0, 2], 47, 2, 0, &gre);
        let mut an = analyzer();
        an.packet(dlt::RAW, &outer, Micros(1), outer.len() as u32);
        an.finish(EndReason::EndOfInput);
        assert_eq!(an.pending.len(), 2);
        let outer_rec = an.pending.iter().find(|r| r.ip_proto == 47).unwrap();
        let inner_rec = an.pending.iter().find(|r| r.ip_proto == 17).unwrap();
        assert_eq!(outer_rec.tunnel, Some(tunnel::TunnelKind::Gre));
        assert_eq!(inner_rec.parents.as_slice(), &[outer_rec.flow_id]);
        assert_eq!(inner_rec.resp.port, 53);
        assert_eq!(an.summary.tunnelled[tunnel::TunnelKind::Gre.index()], 1);
    }

    #[test]
    fn a_fragmented_datagram_is_one_packet_of_its_connection() {
        let body = udp(40000, 40001, &[7u8; 40]); // 48 bytes: fragments of 24 + 24
        let f1 = ipv4([10, 0, 0, 1], [10, 0, 0, 2], 17, 9, 0x2000, &body[..24]);
        let f2 = ipv4([10, 0, 0, 1], [10, 0, 0, 2], 17, 9, 3, &body[24..]);
        let mut an = analyzer();
        an.packet(dlt::RAW, &f2, Micros(1), f2.len() as u32);
        an.packet(dlt::RAW, &f1, Micros(2), f1.len() as u32);
        an.finish(EndReason::EndOfInput);
        assert_eq!(an.pending.len(), 1);
        let r = &an.pending[0];
        assert_eq!((r.orig.port, r.resp.port, r.orig_pkts), (40000, 40001, 1));
        assert_eq!(r.orig_bytes, 40);
        assert_eq!(an.summary.defrag.reassembled, 1);
        assert_eq!(an.summary.packets, 2);
    }

    #[test]
    fn tunnels_nest_only_so_deep() {
        // IP-in-IP six levels deep: four are opened, the rest counted.
        let mut p = ipv4([1, 1, 1, 1], [2, 2, 2, 2], 17, 1, 0, &udp(1, 2, b"x"));
        for i in 0..6u8 {
            p = ipv4([10, i, 0, 1], [10, i, 0, 2], 4, u16::from(i), 0, &p);
        }
        let mut an = analyzer();
        an.packet(dlt::RAW, &p, Micros(1), p.len() as u32);
        assert_eq!(an.summary.tunnel_too_deep, 1);
        assert_eq!(
            an.summary.tunnelled.iter().sum::<u64>(),
            MAX_TUNNEL_DEPTH as u64
        );
    }
}
