//! "Top N" lists for the summary, in bounded memory whatever the traffic.
//!
//! Destination ports are counted exactly (one counter per TCP and UDP port). Talkers (hosts)
//! are counted with a Count-Min sketch (4 rows × 4 096 counters) and a short list of
//! candidates: a spoofed flood from millions of addresses costs 256 KiB, and the hosts that
//! really talk most are still the ones listed (their counts may be slightly over, never under).

use std::collections::HashMap;

use crate::decode::Addr;

const ROWS: usize = 4;
const COLS: usize = 4096;
/// Candidates kept for the top lists.
const CANDIDATES: usize = 64;

/// The sketch's column in each row: 12-bit pieces of one 64-bit hash of the address (a
/// byte-at-a-time hash per row was most of the cost of counting a connection).
fn columns(a: &Addr) -> [usize; ROWS] {
    use std::hash::BuildHasher;
    const _: () = assert!(COLS == 1 << 12 && ROWS * 12 <= 64);
    let h = foldhash::fast::FixedState::with_seed(0x70b5_c0de).hash_one(a);
    std::array::from_fn(|row| ((h >> (12 * row)) as usize) & (COLS - 1))
}

/// One counter of the sketch: the connections and bytes of the addresses hashed to it, side
/// by side, so that counting touches one cache line per row (they were two tables, two lines).
#[derive(Clone, Copy, Default)]
struct Cell {
    bytes: u64,
    conns: u32,
}

/// Heavy hitters by address: connections and bytes.
pub struct TopHosts {
    cells: Box<[[Cell; COLS]; ROWS]>,
    candidates: HashMap<Addr, (u64, u64), foldhash::fast::FixedState>,
    /// The weakest candidate (recomputed only after a replacement), so that the common case,
    /// a host counting less than every candidate, costs one comparison.
    weakest: Option<(Addr, (u64, u64))>,
}

impl Default for TopHosts {
    fn default() -> Self {
        TopHosts {
            cells: Box::new([[Cell::default(); COLS]; ROWS]),
            candidates: HashMap::with_hasher(foldhash::fast::FixedState::with_seed(0x70b5)),
            weakest: None,
        }
    }
}

impl TopHosts {
    /// Counts one connection of `bytes` bytes for `a`.
    pub fn add(&mut self, a: &Addr, bytes: u64) {
        let mut c_est = u64::MAX;
        let mut b_est = u64::MAX;
        for (row, col) in columns(a).into_iter().enumerate() {
            if let Some(cell) = self.cells.get_mut(row).and_then(|r| r.get_mut(col)) {
                cell.conns = cell.conns.saturating_add(1);
                c_est = c_est.min(u64::from(cell.conns));
                cell.bytes = cell.bytes.saturating_add(bytes);
                b_est = b_est.min(cell.bytes);
            }
        }
        // A candidate's estimate only grows, so it is never below the weakest candidate's
        // stored counts: a host below them is no candidate and cannot replace one. Most hosts
        // stop here, without the candidate lookup (a second hash of the address).
        if let Some((_, w)) = self.weakest
            && (c_est, b_est) < w
        {
            return;
        }
        if let Some(e) = self.candidates.get_mut(a) {
            *e = (c_est, b_est);
            if self.weakest.is_some_and(|(k, _)| k == *a) {
                self.weakest = None; // it grew: find the weakest again when needed
            }
            return;
        }
        if self.candidates.len() < CANDIDATES {
            self.candidates.insert(*a, (c_est, b_est));
            self.weakest = None;
            return;
        }
        if self.weakest.is_none() {
            self.weakest = self
                .candidates
                .iter()
                .min_by_key(|(_, v)| **v)
                .map(|(k, v)| (*k, *v));
        }
        // Replace the weakest candidate when this one now counts more.
        if let Some((k, w)) = self.weakest
            && (c_est, b_est) > w
        {
            self.candidates.remove(&k);
            self.candidates.insert(*a, (c_est, b_est));
            self.weakest = None;
        }
    }

    /// The `n` hosts with the most connections: (address, connections, bytes).
    pub fn top(&self, n: usize) -> Vec<(Addr, u64, u64)> {
        let mut v: Vec<(Addr, u64, u64)> = self
            .candidates
            .iter()
            .map(|(a, (c, b))| (*a, *c, *b))
            .collect();
        v.sort_by(|x, y| (y.1, y.2, x.0).cmp(&(x.1, x.2, y.0)));
        v.truncate(n);
        v
    }
}

/// Connections per destination port, TCP and UDP, exactly.
pub struct TopPorts {
    tcp: Box<[u32; 65536]>,
    udp: Box<[u32; 65536]>,
}

impl Default for TopPorts {
    fn default() -> Self {
        TopPorts {
            tcp: Box::new([0; 65536]),
            udp: Box::new([0; 65536]),
        }
    }
}

impl TopPorts {
    pub fn add(&mut self, ip_proto: u8, port: u16) {
        let table = match ip_proto {
            6 => &mut self.tcp,
            17 => &mut self.udp,
            _ => return,
        };
        if let Some(c) = table.get_mut(usize::from(port)) {
            *c = c.saturating_add(1);
        }
    }

    /// The `n` busiest (protocol number, port, connections).
    pub fn top(&self, n: usize) -> Vec<(u8, u16, u64)> {
        let mut v: Vec<(u8, u16, u64)> = Vec::new();
        for (proto, table) in [(6u8, &self.tcp), (17u8, &self.udp)] {
            for (port, &c) in table.iter().enumerate() {
                if c > 0 {
                    v.push((proto, port as u16, u64::from(c)));
                }
            }
        }
        v.sort_by(|a, b| (b.2, a.0, a.1).cmp(&(a.2, b.0, b.1)));
        v.truncate(n);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heavy_hitters_survive_a_flood_of_one_time_sources() {
        let mut t = TopHosts::default();
        let big = Addr::v4([10, 0, 0, 1]);
        let mid = Addr::v4([10, 0, 0, 2]);
        for i in 0..200_000u32 {
            let noise = Addr::v4([
                (i >> 24) as u8 | 100,
                (i >> 16) as u8,
                (i >> 8) as u8,
                i as u8,
            ]);
            t.add(&noise, 60);
            if i % 100 == 0 {
                t.add(&big, 1000);
            }
            if i % 400 == 0 {
                t.add(&mid, 10);
            }
        }
        let top = t.top(2);
        assert_eq!(top[0].0, big);
        assert!(top[0].1 >= 2000);
        assert_eq!(top[1].0, mid);
    }

    #[test]
    fn ports_are_exact() {
        let mut p = TopPorts::default();
        for _ in 0..3 {
            p.add(6, 443);
        }
        p.add(17, 53);
        p.add(1, 7); // not TCP/UDP
        assert_eq!(p.top(5), vec![(6, 443, 3), (17, 53, 1)]);
    }
}
