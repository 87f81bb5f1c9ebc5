//! IP fragment reassembly, bounded.
//!
//! Zeek reassembles IPv4 and IPv6 fragments before any transport analysis, so a fragmented
//! datagram counts as one packet of its connection, and a tunnel whose outer packets are
//! fragmented (GTP-U over a small MTU) is opened whole. synwatch does the same. An attacker
//! controls fragments, so everything here is bounded: at most [`DefragConfig::max_pending`]
//! datagrams and [`DefragConfig::max_bytes`] buffered bytes (oldest dropped first, counted),
//! a datagram not completed within [`DefragConfig::timeout`] of packet time is dropped (counted),
//! and a datagram may not exceed 65 535 bytes. Where fragments overlap, the bytes that arrived
//! first are kept (as Zeek's reassembler does) and the overlap is counted.
//!
//! Buffers of finished datagrams are reused; memory is only allocated when fragmented traffic
//! arrives, never for ordinary packets.

use std::collections::{HashMap, VecDeque};

use etherparse::LaxIpSlice;

use super::Addr;
use super::checksum;
use crate::time::Micros;

/// Limits of the reassembler.
#[derive(Clone, Copy, Debug)]
pub struct DefragConfig {
    pub max_pending: usize,
    pub max_bytes: usize,
    pub timeout: Micros,
}

impl Default for DefragConfig {
    fn default() -> Self {
        DefragConfig {
            max_pending: 8192,
            max_bytes: 32 << 20,
            // Linux keeps fragments 30 s (ipfrag_time); Zeek keeps them until the connection
            // ends. One minute of packet time is generous and bounded.
            timeout: Micros::from_secs(60),
        }
    }
}

/// What reassembly did, for the summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DefragStats {
    /// Fragments offered.
    pub fragments: u64,
    /// Datagrams completed.
    pub reassembled: u64,
    /// Datagrams dropped incomplete after the timeout.
    pub timed_out: u64,
    /// Datagrams dropped incomplete because the limits were reached.
    pub evicted: u64,
    /// Fragments that could not be used (bad lengths, beyond 65 535 bytes, conflicting ends).
    pub malformed: u64,
    /// Fragments that overlapped data already received.
    pub overlaps: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FragKey {
    src: Addr,
    dst: Addr,
    id: u32,
    proto: u8,
}

/// Largest reassembled payload (IPv4's total length is 16 bits).
const MAX_PAYLOAD: usize = 65_535;
/// One bit per 8-byte fragment unit.
const UNIT_WORDS: usize = MAX_PAYLOAD.div_ceil(8).div_ceil(64);

struct Pending {
    data: Vec<u8>,
    have: [u64; UNIT_WORDS],
    /// Payload length, once the last fragment has been seen.
    end: Option<usize>,
    first_ts: Micros,
    generation: u64,
}

/// The result of offering one fragment.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    /// Kept; the datagram is not complete yet.
    Held,
    /// The datagram is complete and was written to the output buffer as an IP packet.
    Complete,
    /// Not usable (counted in [`DefragStats::malformed`]); the caller analyses it as it is.
    Unusable,
}

type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

pub struct Defragmenter {
    pending: FastMap<FragKey, Pending>,
    /// Datagrams by arrival, for timeouts and eviction (stale entries skipped).
    order: VecDeque<(FragKey, u64)>,
    bytes: usize,
    spare: Vec<Vec<u8>>,
    next_generation: u64,
    cfg: DefragConfig,
    pub stats: DefragStats,
}

impl Defragmenter {
    pub fn new(cfg: DefragConfig) -> Self {
        Defragmenter {
            pending: FastMap::with_hasher(foldhash::fast::FixedState::with_seed(0xf7a9)),
            order: VecDeque::new(),
            bytes: 0,
            spare: Vec::new(),
            next_generation: 0,
            cfg,
            stats: DefragStats::default(),
        }
    }

    /// Datagrams waiting for fragments.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Offers the IP packet `ip` (a fragment) seen at `ts`. When it completes a datagram, the
    /// whole datagram is written to `out` as an IP packet (a fresh minimal header, then the
    /// payload) and [`Offer::Complete`] is returned.
    pub fn offer(&mut self, ip: &[u8], ts: Micros, out: &mut Vec<u8>) -> Offer {
        self.stats.fragments += 1;
        self.expire(ts);
        let Some((key, offset, more, payload)) = fragment_of(ip) else {
            self.stats.malformed += 1;
            return Offer::Unusable;
        };
        let end = offset + payload.len();
        if end > MAX_PAYLOAD || (more && payload.len() % 8 != 0) {
            self.stats.malformed += 1;
            return Offer::Unusable;
        }
        if !self.pending.contains_key(&key) {
            self.make_room(end);
            let generation = self.next_generation;
            self.next_generation += 1;
            let data = self.spare.pop().unwrap_or_default();
            self.pending.insert(
                key,
                Pending {
                    data,
                    have: [0; UNIT_WORDS],
                    end: None,
                    first_ts: ts,
                    generation,
                },
            );
            self.order.push_back((key, generation));
        }
        let Some(p) = self.pending.get_mut(&key) else {
            return Offer::Unusable;
        };
        if let Some(e) = p.end
            && (end > e || (!more && end != e))
        {
            self.stats.malformed += 1;
            return Offer::Unusable;
        }
        if !more {
            p.end = Some(end);
        }
        if p.data.len() < end {
            self.bytes += end - p.data.len();
            p.data.resize(end, 0);
        }
        // Copy unit by unit; units already present keep the bytes that came first.
        let mut overlapped = false;
        for (i, chunk) in payload.chunks(8).enumerate() {
            let unit = offset / 8 + i;
            let (w, b) = (unit / 64, unit % 64);
            let Some(word) = p.have.get_mut(w) else { break };
            if *word & (1 << b) != 0 {
                overlapped = true;
                continue;
            }
            *word |= 1 << b;
            let at = unit * 8;
            if let Some(dst) = p.data.get_mut(at..at + chunk.len()) {
                dst.copy_from_slice(chunk);
            }
        }
        if overlapped {
            self.stats.overlaps += 1;
        }
        let Some(total) = p.end else {
            return Offer::Held;
        };
        let units = total.div_ceil(8);
        let complete =
            (0..units).all(|u| p.have.get(u / 64).is_some_and(|w| w & (1 << (u % 64)) != 0));
        if !complete {
            return Offer::Held;
        }
        if let Some(p) = self.pending.remove(&key) {
            self.bytes = self.bytes.saturating_sub(p.data.len());
            build_packet(&key, p.data.get(..total).unwrap_or(&p.data), out);
            self.recycle(p.data);
            self.stats.reassembled += 1;
            return Offer::Complete;
        }
        Offer::Unusable
    }

    fn recycle(&mut self, mut data: Vec<u8>) {
        if self.spare.len() < 64 {
            data.clear();
            self.spare.push(data);
        }
    }

    /// Drops datagrams older than the timeout.
    fn expire(&mut self, now: Micros) {
        while let Some(&(key, generation)) = self.order.front() {
            match self.pending.get(&key) {
                Some(p) if p.generation == generation => {
                    if p.first_ts.saturating_add(self.cfg.timeout) > now {
                        break;
                    }
                    self.drop_front();
                    self.stats.timed_out += 1;
                }
                _ => {
                    self.order.pop_front(); // completed or replaced
                }
            }
        }
    }

    /// Drops the oldest datagrams until one more of up to `need` bytes fits the limits.
    fn make_room(&mut self, need: usize) {
        while self.pending.len() >= self.cfg.max_pending.max(1)
            || (self.bytes + need > self.cfg.max_bytes && !self.pending.is_empty())
        {
            if !self.drop_front() {
                break;
            }
            self.stats.evicted += 1;
        }
    }

    /// Removes the oldest live datagram; false when there is none.
    fn drop_front(&mut self) -> bool {
        while let Some((key, generation)) = self.order.pop_front() {
            if self
                .pending
                .get(&key)
                .is_some_and(|p| p.generation == generation)
                && let Some(p) = self.pending.remove(&key)
            {
                self.bytes = self.bytes.saturating_sub(p.data.len());
                self.recycle(p.data);
                return true;
            }
        }
        false
    }
}

/// Reads a fragment: its datagram key, byte offset, more-fragments flag and payload.
fn fragment_of(ip: &[u8]) -> Option<(FragKey, usize, bool, &[u8])> {
    let (slice, _) = LaxIpSlice::from_slice(ip).ok()?;
    let payload = slice.payload();
    match &slice {
        LaxIpSlice::Ipv4(v4) => {
            let h = v4.header();
            Some((
                FragKey {
                    src: Addr::v4(h.source()),
                    dst: Addr::v4(h.destination()),
                    id: u32::from(h.identification()),
                    proto: payload.ip_number.0,
                },
                usize::from(h.fragments_offset().byte_offset()),
                h.more_fragments(),
                payload.payload,
            ))
        }
        LaxIpSlice::Ipv6(v6) => {
            let h = v6.header();
            let frag = super::ipv6_fragment(ip)?;
            Some((
                FragKey {
                    src: Addr::v6(h.source()),
                    dst: Addr::v6(h.destination()),
                    id: frag.id,
                    proto: payload.ip_number.0,
                },
                usize::from(frag.offset),
                frag.more,
                payload.payload,
            ))
        }
    }
}

/// Writes the reassembled datagram as an unfragmented IP packet.
fn build_packet(key: &FragKey, payload: &[u8], out: &mut Vec<u8>) {
    out.clear();
    if key.src.v6 {
        let plen = (payload.len() as u16).to_be_bytes();
        out.extend_from_slice(&[0x60, 0, 0, 0, plen[0], plen[1], key.proto, 64]);
        out.extend_from_slice(&key.src.bytes);
        out.extend_from_slice(&key.dst.bytes);
    } else {
        let total = ((payload.len() + 20) as u16).to_be_bytes();
        let id = (key.id as u16).to_be_bytes();
        let mut h = [
            0x45, 0, total[0], total[1], id[0], id[1], 0, 0, 64, key.proto, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0,
        ];
        h[12..16].copy_from_slice(key.src.octets());
        h[16..20].copy_from_slice(key.dst.octets());
        let c = !checksum::fold(checksum::sum(0, &h));
        h[10..12].copy_from_slice(&c.to_be_bytes());
        out.extend_from_slice(&h);
    }
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 fragment of a UDP datagram: offset in bytes, more-fragments flag, payload.
    fn v4_frag(id: u16, offset: usize, more: bool, payload: &[u8]) -> Vec<u8> {
        let total = (20 + payload.len()) as u16;
        let fo = (offset / 8) as u16 | if more { 0x2000 } else { 0 };
        let mut p = vec![0x45, 0];
        p.extend_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&fo.to_be_bytes());
        p.extend_from_slice(&[64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn fragments_in_any_order_make_one_datagram() {
        let mut d = Defragmenter::new(DefragConfig::default());
        let body: Vec<u8> = (0..40u8).collect();
        let mut out = Vec::new();
        let t = Micros(1);
        assert_eq!(
            d.offer(&v4_frag(7, 24, false, &body[24..]), t, &mut out),
            Offer::Held
        );
        assert_eq!(
            d.offer(&v4_frag(7, 0, true, &body[..8]), t, &mut out),
            Offer::Held
        );
        assert_eq!(
            d.offer(&v4_frag(7, 8, true, &body[8..24]), t, &mut out),
            Offer::Complete
        );
        assert_eq!(&out[20..], &body[..]);
        assert!(checksum::valid(0, &out[..20]));
        assert_eq!(u16::from_be_bytes([out[2], out[3]]), 60);
        assert_eq!(d.pending(), 0);
        assert_eq!(d.stats.reassembled, 1);
    }

    #[test]
    fn first_data_wins_on_overlap() {
        let mut d = Defragmenter::new(DefragConfig::default());
        let mut out = Vec::new();
        d.offer(&v4_frag(1, 0, true, &[1; 8]), Micros(1), &mut out);
        d.offer(&v4_frag(1, 0, true, &[2; 8]), Micros(1), &mut out);
        assert_eq!(
            d.offer(&v4_frag(1, 8, false, &[3; 4]), Micros(1), &mut out),
            Offer::Complete
        );
        assert_eq!(&out[20..], &[1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3]);
        assert_eq!(d.stats.overlaps, 1);
    }

    #[test]
    fn incomplete_datagrams_time_out_and_are_bounded() {
        let cfg = DefragConfig {
            max_pending: 10,
            max_bytes: 1 << 20,
            timeout: Micros::from_secs(60),
        };
        let mut d = Defragmenter::new(cfg);
        let mut out = Vec::new();
        for id in 0..100u16 {
            d.offer(&v4_frag(id, 0, true, &[0; 8]), Micros(1), &mut out);
        }
        assert_eq!(d.pending(), 10);
        assert_eq!(d.stats.evicted, 90);
        d.offer(
            &v4_frag(999, 0, true, &[0; 8]),
            Micros::from_secs(120),
            &mut out,
        );
        assert_eq!(d.stats.timed_out, 10);
        assert_eq!(d.pending(), 1);
    }

    #[test]
    fn bad_fragments_are_unusable_not_panics() {
        let mut d = Defragmenter::new(DefragConfig::default());
        let mut out = Vec::new();
        // Unaligned middle fragment, a datagram beyond 64 KiB, garbage.
        assert_eq!(
            d.offer(&v4_frag(1, 0, true, &[0; 7]), Micros(1), &mut out),
            Offer::Unusable
        );
        assert_eq!(
            d.offer(&v4_frag(2, 65528, false, &[0; 16]), Micros(1), &mut out),
            Offer::Unusable
        );
        assert_eq!(d.offer(&[0x45, 0, 0], Micros(1), &mut out), Offer::Unusable);
        // A last fragment that contradicts the known end.
        d.offer(&v4_frag(3, 16, false, &[0; 8]), Micros(1), &mut out);
        assert_eq!(
            d.offer(&v4_frag(3, 32, false, &[0; 8]), Micros(1), &mut out),
            Offer::Unusable
        );
    }
}
