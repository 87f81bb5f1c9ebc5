//! Fixed arrays of counters indexed by an enum's index, without indexing that could panic.

/// Adds `n` to `a[i]` (nothing when `i` is out of range, which the enums' `index()` never is).
#[inline]
pub fn add<const N: usize>(a: &mut [u64; N], i: usize, n: u64) {
    if let Some(x) = a.get_mut(i) {
        *x = x.saturating_add(n);
    }
}

/// `a[i]`, or 0 out of range.
#[inline]
pub fn get<const N: usize>(a: &[u64; N], i: usize) -> u64 {
    a.get(i).copied().unwrap_or(0)
}
