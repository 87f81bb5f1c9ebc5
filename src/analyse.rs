//! The analysis of one captured frame: decode, reassemble fragments, open tunnels, account to
//! connections. Everything per packet that is not capture or output happens here, on one
//! thread, without allocating (fragment reassembly allocates only for fragmented traffic).

use crate::decode::defrag::{DefragConfig, Defragmenter, Offer};
use crate::decode::link::dlt;
use crate::decode::{ChecksumVerdict, DecodeOptions, decode, tunnel};
use crate::detect::{Alert, Detector};
use crate::flow::{ConnRecord, EndReason, FlowTable, TableConfig};
use crate::output::summary::Summary;
use crate::time::Micros;

/// How many tunnels deep synwatch looks (Zeek's `Tunnel::max_depth` is 2).
pub const MAX_TUNNEL_DEPTH: usize = 4;

/// Per-packet analysis state: the flow table, the fragment reassembler and the summary.
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
}

impl Analyzer {
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
        }
    }

    /// Analyses one captured frame.
    pub fn packet(&mut self, linktype: i32, frame: &[u8], ts: Micros, wire_len: u32) {
        self.summary.packets += 1;
        self.summary.wire_bytes += u64::from(wire_len);
        // Bytes the snap length cut off: they are missing from every layer.
        let missing = wire_len.saturating_sub(frame.len() as u32);
        self.layers(linktype, frame, ts, missing, None, 0, true);
    }

    /// Ends every connection still open and accounts it.
    pub fn finish(&mut self, reason: EndReason) {
        let (summary, pending) = (&mut self.summary, &mut self.pending);
        let (detector, alerts) = (&mut self.detector, &mut self.alerts);
        self.table.flush(reason, &mut |r| {
            summary.record(&r);
            detector.on_record(&r, alerts);
            pending.push(r);
        });
        self.detector.finish(&mut self.alerts);
        self.summary.flow_stats = self.table.stats;
        self.summary.defrag = self.defrag.stats;
        self.summary.detect = self.detector.stats;
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
        for depth in first_depth..=MAX_TUNNEL_DEPTH {
            let (lt, bytes) = layer;
            let wire = (bytes.len() as u32).saturating_add(missing);
            let d = match decode(lt, bytes, ts, wire, self.dopts) {
                Ok(d) => d,
                Err(why) if depth == 0 => {
                    self.summary.undecodable[why.index()] += 1;
                    return;
                }
                Err(why) => {
                    self.summary.inner_undecodable[why.index()] += 1;
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
                        let (summary, pending) = (&mut self.summary, &mut self.pending);
                        let (detector, alerts) = (&mut self.detector, &mut self.alerts);
                        self.table.packet(&d, parent, None, &mut |r| {
                            summary.record(&r);
                            detector.on_record(&r, alerts);
                            pending.push(r);
                        });
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
            let (summary, pending) = (&mut self.summary, &mut self.pending);
            let (detector, alerts) = (&mut self.detector, &mut self.alerts);
            let id = self
                .table
                .packet(&d, parent, inner.map(|i| i.kind), &mut |r| {
                    summary.record(&r);
                    detector.on_record(&r, alerts);
                    pending.push(r);
                });
            let Some(inner) = inner else { return };
            if depth == MAX_TUNNEL_DEPTH {
                self.summary.tunnel_too_deep += 1;
                return;
            }
            self.summary.tunnelled[inner.kind.index()] += 1;
            parent = id;
            layer = (inner.linktype, inner.bytes);
        }
    }
}
