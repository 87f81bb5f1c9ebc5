//! Reusable packet batches: one byte arena plus per-packet metadata.
//!
//! The capture thread fills a batch, sends it over a bounded channel, and the analysis side
//! sends the emptied batch back. In steady state no memory is allocated per packet.

use crate::time::Micros;

/// A libpcap link-layer type (DLT value as `pcap_datalink` returns it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Linktype(pub i32);

/// What we know of one captured packet besides its bytes.
#[derive(Clone, Copy, Debug)]
pub struct PacketMeta {
    pub ts: Micros,
    /// Bytes on the wire (the record's original length).
    pub wire_len: u32,
    /// Start of the captured bytes in the batch arena.
    pub offset: u32,
    /// Captured bytes (may be less than `wire_len` when cut by the snap length).
    pub caplen: u32,
    pub linktype: Linktype,
    /// Index of the input (file) this packet came from.
    pub source: u16,
    /// The worker that analyses it, when there are several (set by the dispatcher; 0 until).
    pub owner: u16,
}

/// Packets are copied into `data`; `pkts` describes them.
#[derive(Debug, Default)]
pub struct PacketBatch {
    data: Vec<u8>,
    pkts: Vec<PacketMeta>,
}

impl PacketBatch {
    /// Most packets a batch carries before it is sent.
    pub const MAX_PACKETS: usize = 1024;
    /// Most arena bytes a batch carries before it is sent.
    pub const MAX_BYTES: usize = 1 << 20;

    pub fn new() -> Self {
        PacketBatch {
            data: Vec::with_capacity(Self::MAX_BYTES + 65_536),
            pkts: Vec::with_capacity(Self::MAX_PACKETS),
        }
    }

    pub fn clear(&mut self) {
        self.data.clear();
        self.pkts.clear();
    }

    pub fn len(&self) -> usize {
        self.pkts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pkts.is_empty()
    }

    /// True when the batch should be sent before another packet is added.
    pub fn is_full(&self) -> bool {
        self.pkts.len() >= Self::MAX_PACKETS || self.data.len() >= Self::MAX_BYTES
    }

    pub fn push(
        &mut self,
        ts: Micros,
        wire_len: u32,
        bytes: &[u8],
        linktype: Linktype,
        source: u16,
    ) {
        let offset = self.data.len() as u32;
        self.data.extend_from_slice(bytes);
        self.pkts.push(PacketMeta {
            ts,
            wire_len,
            offset,
            caplen: bytes.len() as u32,
            linktype,
            source,
            owner: 0,
        });
    }

    /// Calls `f` with each packet's metadata, to change, and its bytes.
    pub fn for_each_mut(&mut self, mut f: impl FnMut(&mut PacketMeta, &[u8])) {
        for m in &mut self.pkts {
            let start = m.offset as usize;
            let end = start + m.caplen as usize;
            f(m, self.data.get(start..end).unwrap_or(&[]));
        }
    }

    /// The packets' metadata, in capture order.
    pub fn metas(&self) -> &[PacketMeta] {
        &self.pkts
    }

    /// Keeps the first `n` packets.
    pub fn truncate(&mut self, n: usize) {
        if let Some(m) = self.pkts.get(n) {
            self.data.truncate(m.offset as usize);
            self.pkts.truncate(n);
        }
    }

    /// The packets in capture order, with their bytes.
    pub fn iter(&self) -> impl Iterator<Item = (&PacketMeta, &[u8])> + '_ {
        self.pkts.iter().map(move |m| {
            let start = m.offset as usize;
            let end = start + m.caplen as usize;
            (m, self.data.get(start..end).unwrap_or(&[]))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_and_iterate_keeps_order_and_bytes() {
        let mut b = PacketBatch::new();
        b.push(Micros(1), 10, &[1, 2, 3], Linktype(1), 0);
        b.push(Micros(2), 2, &[4, 5], Linktype(113), 1);
        let v: Vec<_> = b
            .iter()
            .map(|(m, d)| (m.ts.0, m.wire_len, d.to_vec(), m.linktype.0))
            .collect();
        assert_eq!(v, vec![(1, 10, vec![1, 2, 3], 1), (2, 2, vec![4, 5], 113)]);
        let cap = b.data.capacity();
        b.clear();
        assert!(b.is_empty());
        assert_eq!(b.data.capacity(), cap, "clear keeps the arena");
    }
}
