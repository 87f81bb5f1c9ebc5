//! Counting distinct values in bounded memory: exact while small, HyperLogLog beyond.
//!
//! Scan detection counts distinct ports per target, hosts per port and (host, port) pairs per
//! scanner. An exact set answers "1036 ports" exactly for any real scan of a few thousand
//! ports; past [`EXACT_MAX`] values the set turns into a HyperLogLog sketch of
//! [`HLL_REGISTERS`] registers (1 KiB, standard error about 3 %), so a flood of distinct
//! values costs at most that.

/// Values kept exactly before switching to the sketch.
pub const EXACT_MAX: usize = 2048;
/// HyperLogLog registers (a power of two).
pub const HLL_REGISTERS: usize = 1024;
const HLL_BITS: u32 = HLL_REGISTERS.trailing_zeros();

/// Values kept in a sorted array inside the set, allocating nothing: most sets (a flood's
/// sources from one address, the ports a scanner tried on most hosts) never hold more. The
/// array takes no more room than the hash set's variant already does.
const INLINE_MAX: usize = 5;

/// Values kept in a sorted vector before they move to a hash set: most sets (a host's ports,
/// a port's hosts) stay this small, and a vector is cheaper to make, search and drop.
const SMALL_MAX: usize = 64;

/// The exact values past [`SMALL_MAX`]: a hash set (a sorted vector moved up to 16 KiB on
/// every insert of a random-order port scan).
type Exact = hashbrown::HashSet<u64, foldhash::fast::FixedState>;

#[derive(Clone, Debug)]
enum Repr {
    /// The first `len` values, sorted.
    Inline {
        len: u8,
        vals: [u64; INLINE_MAX],
    },
    Small(Vec<u64>),
    Exact(Exact),
    Sketch(Box<[u8; HLL_REGISTERS]>),
}

/// A set of u64 values that only answers "how many distinct" (and, while exact, "which").
#[derive(Clone, Debug)]
pub struct DistinctSet {
    repr: Repr,
}

impl Default for DistinctSet {
    fn default() -> Self {
        DistinctSet {
            repr: Repr::Inline {
                len: 0,
                vals: [0; INLINE_MAX],
            },
        }
    }
}

fn mix(mut x: u64) -> u64 {
    // splitmix64's finaliser: a good spread for small integers such as ports.
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl DistinctSet {
    /// Adds a value; returns true when it was (as far as the set can tell) new.
    pub fn insert(&mut self, v: u64) -> bool {
        match &mut self.repr {
            Repr::Inline { len, vals } => {
                let n = usize::from(*len);
                let Err(at) = vals.get(..n).unwrap_or(&[]).binary_search(&v) else {
                    return false;
                };
                if n < INLINE_MAX {
                    // at <= n < INLINE_MAX: the shift stays inside the array.
                    vals.copy_within(at..n, at + 1);
                    if let Some(slot) = vals.get_mut(at) {
                        *slot = v;
                    }
                    *len += 1;
                } else {
                    let mut spilled = Vec::with_capacity(4 * INLINE_MAX);
                    spilled.extend_from_slice(vals);
                    spilled.insert(at, v);
                    self.repr = Repr::Small(spilled);
                }
                true
            }
            Repr::Small(vals) => match vals.binary_search(&v) {
                Ok(_) => false,
                Err(at) => {
                    if vals.len() < SMALL_MAX {
                        vals.insert(at, v);
                    } else {
                        let mut set =
                            Exact::with_hasher(foldhash::fast::FixedState::with_seed(0xd157));
                        set.extend(vals.iter().copied());
                        set.insert(v);
                        self.repr = Repr::Exact(set);
                    }
                    true
                }
            },
            Repr::Exact(vals) => {
                if vals.len() < EXACT_MAX {
                    vals.insert(v)
                } else if vals.contains(&v) {
                    false
                } else {
                    let mut regs = Box::new([0u8; HLL_REGISTERS]);
                    for &x in vals.iter() {
                        add_hash(&mut regs, mix(x));
                    }
                    add_hash(&mut regs, mix(v));
                    self.repr = Repr::Sketch(regs);
                    true
                }
            }
            Repr::Sketch(regs) => add_hash(regs, mix(v)),
        }
    }

    /// How many distinct values (exact, or the sketch's estimate).
    pub fn len(&self) -> u64 {
        match &self.repr {
            Repr::Inline { len, .. } => u64::from(*len),
            Repr::Small(v) => v.len() as u64,
            Repr::Exact(v) => v.len() as u64,
            Repr::Sketch(regs) => estimate(regs),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True while the count is exact.
    pub fn is_exact(&self) -> bool {
        !matches!(self.repr, Repr::Sketch(_))
    }

    /// The `n` smallest values, smallest first, while exact (none once it is a sketch).
    pub fn smallest(&self, n: usize) -> Vec<u64> {
        match &self.repr {
            Repr::Inline { len, vals } => vals
                .iter()
                .take(n.min(usize::from(*len)))
                .copied()
                .collect(),
            Repr::Small(v) => v.iter().take(n).copied().collect(),
            Repr::Exact(v) => {
                let mut all: Vec<u64> = v.iter().copied().collect();
                all.sort_unstable();
                all.truncate(n);
                all
            }
            Repr::Sketch(_) => Vec::new(),
        }
    }

    /// Heap bytes used, for the detector's memory budget.
    pub fn bytes(&self) -> usize {
        match &self.repr {
            Repr::Inline { .. } => 0,
            Repr::Small(v) => v.capacity() * 8,
            Repr::Exact(v) => v.allocation_size(),
            Repr::Sketch(_) => HLL_REGISTERS,
        }
    }
}

fn add_hash(regs: &mut [u8; HLL_REGISTERS], h: u64) -> bool {
    let idx = (h >> (64 - HLL_BITS)) as usize;
    let rest = (h << HLL_BITS) | (1 << (HLL_BITS - 1));
    let rank = rest.leading_zeros() as u8 + 1;
    match regs.get_mut(idx) {
        Some(r) if rank > *r => {
            *r = rank;
            true
        }
        _ => false,
    }
}

fn estimate(regs: &[u8; HLL_REGISTERS]) -> u64 {
    let m = HLL_REGISTERS as f64;
    let alpha = 0.7213 / (1.0 + 1.079 / m);
    let mut sum = 0.0;
    let mut zeros = 0usize;
    for &r in regs.iter() {
        sum += 2f64.powi(-i32::from(r));
        if r == 0 {
            zeros += 1;
        }
    }
    let raw = alpha * m * m / sum;
    let e = if raw <= 2.5 * m && zeros > 0 {
        m * (m / zeros as f64).ln() // linear counting for small cardinalities
    } else {
        raw
    };
    e.round().max(0.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against a sorted, deduplicated vector: every size through the inline array, the vector
    /// and the hash set, values in rising, falling and mixed order.
    #[test]
    fn counts_and_smallest_agree_with_a_sorted_vector() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for round in 0..300u64 {
            let mut s = DistinctSet::default();
            let mut want: Vec<u64> = Vec::new();
            let n = round % 150;
            for i in 0..n {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let v = match round % 3 {
                    0 => i,
                    1 => 1000 - i,
                    _ => x % 40,
                };
                let fresh = !want.contains(&v);
                assert_eq!(s.insert(v), fresh, "round {round}, value {v}");
                if fresh {
                    want.push(v);
                    want.sort_unstable();
                }
                assert_eq!(s.len(), want.len() as u64);
                assert_eq!(
                    s.smallest(7),
                    want.iter().take(7).copied().collect::<Vec<_>>()
                );
            }
            assert!(s.is_exact());
        }
        assert!(std::mem::size_of::<DistinctSet>() <= 48);
    }

    #[test]
    fn exact_while_small() {
        let mut s = DistinctSet::default();
        assert!(s.insert(22));
        assert!(!s.insert(22));
        assert!(s.insert(80));
        assert_eq!(s.len(), 2);
        assert_eq!(s.smallest(10), vec![22, 80]);
        assert!(s.is_exact());
    }

    #[test]
    fn sketch_stays_close_and_small() {
        let mut s = DistinctSet::default();
        for v in 0..100_000u64 {
            s.insert(v);
            s.insert(v); // repeats do not count
        }
        assert!(!s.is_exact());
        let n = s.len() as f64;
        assert!((n - 100_000.0).abs() / 100_000.0 < 0.1, "estimate {n}");
        assert!(s.bytes() <= HLL_REGISTERS);
        // Just past the switch the estimate is still near the truth.
        let mut t = DistinctSet::default();
        for v in 0..(EXACT_MAX as u64 + 100) {
            t.insert(v * 7919);
        }
        let n = t.len() as f64;
        let want = (EXACT_MAX + 100) as f64;
        assert!((n - want).abs() / want < 0.1, "estimate {n}");
    }
}
