//! Content gaps without content: Zeek's `TCP_Reassembler`, keeping only sequence ranges.
//!
//! Zeek finds a content gap when the peer acknowledges data that never arrived (the sender's
//! in-order stream stops short of the acknowledgement). Each gap adds a scaled `G`/`g` to the
//! history and its length to `missed_bytes` — but only while both endpoints are established or
//! closing cleanly (`established_or_cleanly_closing` in TCP_Reassembler.cc), so that gaps "seen"
//! through a RST's or a partial connection's sequence numbers are not reported. synwatch keeps
//! no payload: it tracks where the in-order data ends, up to [`MAX_BLOCKS`] out-of-order ranges
//! above it, and how far the peer has acknowledged. Sequence numbers here are relative (the
//! first data octet is 1), 64-bit, so they do not wrap.

use super::pack::{Reader, Writer};

/// How many out-of-order ranges are remembered per direction. When more arrive, the two
/// closest neighbouring ranges are merged, which can hide the hole between them (counted in
/// [`ContentTracker::merged`]).
pub const MAX_BLOCKS: usize = 4;

/// One direction's reassembly state.
#[derive(Clone, Debug)]
pub struct ContentTracker {
    /// End of the contiguous data seen (Zeek's `last_reassem_seq`).
    last_reassem: u64,
    /// Acknowledged up to here (Zeek's `trim_seq`).
    trim: u64,
    /// Out-of-order ranges, allocated when the first one arrives and kept for the life of the
    /// connection (most connections never see one, and the tracker stays small for them).
    ooo: Option<Box<Ranges>>,
    /// Times two ranges were merged because the table was full.
    pub merged: u32,
}

/// Out-of-order ranges `[seq, upper)` above `last_reassem`, sorted, disjoint.
#[derive(Clone, Debug, Default)]
struct Ranges {
    blocks: [(u64, u64); MAX_BLOCKS],
    n: u8,
}

impl Default for ContentTracker {
    fn default() -> Self {
        ContentTracker {
            last_reassem: 1,
            trim: 1,
            ooo: None,
            merged: 0,
        }
    }
}

/// A hole found when an acknowledgement passed data never seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gap {
    pub seq: u64,
    pub len: u64,
}

impl ContentTracker {
    /// Byte form (`super::pack`).
    pub fn pack(&self, w: &mut Writer) {
        let ContentTracker {
            last_reassem,
            trim,
            ooo,
            merged,
        } = self;
        // A table allocated and since emptied is kept as such (n + 1; 0 for none).
        let ranges = ooo.as_ref().map_or(0, |r| u64::from(r.n) + 1);
        w.sparse(&[
            last_reassem.wrapping_sub(1),
            trim.wrapping_sub(1),
            u64::from(*merged),
            ranges,
        ]);
        for &(seq, upper) in self.blocks() {
            w.var(seq);
            w.var(upper.wrapping_sub(seq));
        }
    }

    pub fn unpack(r: &mut Reader) -> Option<ContentTracker> {
        let [last_reassem, trim, merged, ranges] = r.sparse::<4>()?;
        let ooo = match ranges {
            0 => None,
            n => {
                let mut t = Box::<Ranges>::default();
                t.n = u8::try_from(n - 1).ok()?;
                for b in t.blocks.get_mut(..usize::from(t.n))? {
                    let seq = r.var()?;
                    *b = (seq, seq.wrapping_add(r.var()?));
                }
                Some(t)
            }
        };
        Some(ContentTracker {
            last_reassem: last_reassem.wrapping_add(1),
            trim: trim.wrapping_add(1),
            ooo,
            merged: u32::try_from(merged).ok()?,
        })
    }

    fn blocks(&self) -> &[(u64, u64)] {
        match &self.ooo {
            Some(r) => r.blocks.get(..usize::from(r.n)).unwrap_or(&[]),
            None => &[],
        }
    }

    /// Data `[seq, seq + len)` was sent (Zeek's `TCP_Reassembler::DataSent` and `NewBlock`);
    /// `acked` is how far the peer had acknowledged this direction.
    pub fn data_sent(&mut self, mut seq: u64, len: u64, acked: u64) {
        let mut upper = seq.saturating_add(len);
        if len == 0 {
            return;
        }
        if seq < acked {
            if upper <= acked {
                return; // delivered and acknowledged already
            }
            seq = acked;
        }
        if upper <= self.trim {
            return;
        }
        seq = seq.max(self.trim);
        if seq <= self.last_reassem {
            // Extends the in-order stream, then swallows any range it now reaches.
            self.last_reassem = self.last_reassem.max(upper);
            self.absorb_blocks();
            return;
        }
        // Out of order: merge with overlapping or touching ranges, keep sorted.
        let mut i = 0;
        while let Some(&(bs, bu)) = self.blocks().get(i) {
            if bu < seq || bs > upper {
                i += 1;
                continue;
            }
            seq = seq.min(bs);
            upper = upper.max(bu);
            self.remove_block(i);
        }
        self.insert_block(seq, upper);
    }

    fn absorb_blocks(&mut self) {
        while let Some(&(bs, bu)) = self.blocks().first() {
            if bs > self.last_reassem {
                break;
            }
            self.last_reassem = self.last_reassem.max(bu);
            self.remove_block(0);
        }
    }

    fn remove_block(&mut self, i: usize) {
        let Some(r) = self.ooo.as_mut() else {
            return;
        };
        let n = usize::from(r.n);
        // `i < n` makes the tail non-empty, so rotating it by one is fine.
        if let Some(tail) = r.blocks.get_mut(i..n).filter(|t| !t.is_empty()) {
            tail.rotate_left(1);
            r.n -= 1;
        }
    }

    fn insert_block(&mut self, seq: u64, upper: u64) {
        let r = self.ooo.get_or_insert_with(Box::default);
        if usize::from(r.n) == MAX_BLOCKS {
            // Merge the two neighbours with the smallest hole between them.
            let mut best = 0;
            let mut best_hole = u64::MAX;
            for (i, w) in r.blocks.windows(2).enumerate() {
                if let [a, b] = w {
                    let hole = b.0.saturating_sub(a.1);
                    if hole < best_hole {
                        best_hole = hole;
                        best = i;
                    }
                }
            }
            let next_upper = r.blocks.get(best + 1).map(|b| b.1);
            if let (Some(u), Some(b)) = (next_upper, r.blocks.get_mut(best)) {
                b.1 = u;
            }
            // Drop range `best + 1` (now inside `best`).
            if let Some(tail) = r.blocks.get_mut(best + 1..).filter(|t| !t.is_empty()) {
                tail.rotate_left(1);
                r.n -= 1;
            }
            self.merged = self.merged.saturating_add(1);
        }
        let n = usize::from(r.n);
        if let Some(slot) = r.blocks.get_mut(n) {
            *slot = (seq, upper);
            r.n += 1;
        }
        // The ranges are disjoint, so sorting by start keeps them in order.
        if let Some(used) = r.blocks.get_mut(..=n) {
            used.sort_unstable();
        }
    }

    /// The peer acknowledged up to `seq` (Zeek's `TCP_Reassembler::AckReceived` → `TrimToSeq` →
    /// `Undelivered`). `fin_seq` is the sequence number just past this direction's FIN, if one
    /// was sent (acknowledging the FIN itself is not a gap); `partial` is Zeek's `IsPartial()`.
    /// Calls `gap` for every hole, in order.
    pub fn ack_received(
        &mut self,
        mut seq: u64,
        fin_seq: Option<u64>,
        partial: bool,
        mut gap: impl FnMut(Gap),
    ) {
        if let Some(f) = fin_seq
            && seq >= f
        {
            seq = f.saturating_sub(1);
        }
        if seq <= self.trim {
            return;
        }
        if seq > self.last_reassem {
            if seq <= 2 && partial {
                // Zeek's faked-up start of a partial connection: not a gap (and, as in Zeek,
                // the in-order position is left where it was).
            } else {
                while let Some(&(bs, bu)) = self.blocks().first() {
                    if bs >= seq {
                        break;
                    }
                    if bs > self.last_reassem {
                        gap(Gap {
                            seq: self.last_reassem,
                            len: bs - self.last_reassem,
                        });
                    }
                    self.last_reassem = self.last_reassem.max(bu);
                    self.remove_block(0);
                }
                if seq > self.last_reassem {
                    gap(Gap {
                        seq: self.last_reassem,
                        len: seq - self.last_reassem,
                    });
                    self.last_reassem = seq;
                }
            }
        }
        self.trim = seq;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gaps(t: &mut ContentTracker, ack: u64, fin: Option<u64>) -> Vec<(u64, u64)> {
        let mut v = Vec::new();
        t.ack_received(ack, fin, false, |g| v.push((g.seq, g.len)));
        v
    }

    #[test]
    fn in_order_data_then_ack_has_no_gap() {
        let mut t = ContentTracker::default();
        t.data_sent(1, 100, 1);
        t.data_sent(101, 50, 1);
        assert!(gaps(&mut t, 151, None).is_empty());
    }

    #[test]
    fn ack_beyond_seen_data_is_a_gap() {
        let mut t = ContentTracker::default();
        t.data_sent(1, 100, 1);
        assert_eq!(gaps(&mut t, 301, None), vec![(101, 200)]);
        // The same hole is not reported twice.
        assert!(gaps(&mut t, 301, None).is_empty());
    }

    #[test]
    fn holes_between_out_of_order_blocks_each_count() {
        let mut t = ContentTracker::default();
        t.data_sent(1, 10, 1); // 1..11
        t.data_sent(21, 10, 1); // 21..31
        t.data_sent(41, 10, 1); // 41..51
        assert_eq!(gaps(&mut t, 51, None), vec![(11, 10), (31, 10)]);
    }

    #[test]
    fn filling_a_hole_before_the_ack_removes_the_gap() {
        let mut t = ContentTracker::default();
        t.data_sent(21, 10, 1);
        t.data_sent(1, 20, 1);
        assert!(gaps(&mut t, 31, None).is_empty());
    }

    #[test]
    fn the_fin_octet_is_not_a_gap() {
        // Data 1..2903 never seen, FIN at 2903: the ack of 2904 reveals 2902 missing bytes.
        let mut t = ContentTracker::default();
        assert_eq!(gaps(&mut t, 2904, Some(2904)), vec![(1, 2902)]);
    }

    #[test]
    fn partial_start_is_not_a_gap() {
        let mut t = ContentTracker::default();
        let mut v = Vec::new();
        t.ack_received(2, None, true, |g| v.push(g));
        assert!(v.is_empty());
    }

    #[test]
    fn many_out_of_order_blocks_stay_bounded() {
        let mut t = ContentTracker::default();
        for k in 0..100u64 {
            t.data_sent(1000 - k * 10, 5, 1);
        }
        assert!(t.blocks().len() <= MAX_BLOCKS);
        assert!(t.merged > 0);
        let g = gaps(&mut t, 2000, None);
        assert!(!g.is_empty());
        assert!(g.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
