//! The byte form of a connection that has gone quiet (see `FlowTable`'s cold connections in
//! `src/flow/table.rs`): variable-length integers, with the fields that are zero for most
//! connections left out behind a bit mask. An established connection that has stopped sending
//! takes about 100 bytes this way instead of the 552 of a [`super::Connection`].
//!
//! Each type packs and unpacks its own fields next to its definition (`pack`/`unpack` in
//! `conn.rs`, `tcp.rs`, `content.rs`, `history.rs`, `key.rs`), destructuring itself so that
//! a field added later cannot be forgotten here without a compile error. Unpacking gives back
//! exactly what was packed (`tests` below and `tests/workers.rs::compact_flows_write_the_same`).

use crate::decode::tunnel::TunnelKind;
use crate::time::{MaybeMicros, Micros};

/// Longest byte form a [`Writer`] holds; a connection longer than this is not packed.
pub const MAX_PACKED: usize = 1024;

/// Writes the byte form of values into a fixed buffer (a `Vec` reloads its length and
/// pointer after every byte stored through it; this keeps both in registers).
pub struct Writer {
    buf: [u8; MAX_PACKED],
    len: usize,
    overflow: bool,
}

impl Default for Writer {
    fn default() -> Self {
        Writer {
            buf: [0; MAX_PACKED],
            len: 0,
            overflow: false,
        }
    }
}

impl Writer {
    pub fn clear(&mut self) {
        self.len = 0;
        self.overflow = false;
    }

    /// What was written, or None when it did not fit.
    pub fn finish(&self) -> Option<&[u8]> {
        if self.overflow {
            return None;
        }
        self.buf.get(..self.len)
    }

    #[inline]
    pub fn u8(&mut self, v: u8) {
        match self.buf.get_mut(self.len) {
            Some(b) => {
                *b = v;
                self.len += 1;
            }
            None => self.overflow = true,
        }
    }

    pub fn bytes(&mut self, b: &[u8]) {
        match self.buf.get_mut(self.len..self.len + b.len()) {
            Some(dst) => {
                dst.copy_from_slice(b);
                self.len += b.len();
            }
            None => self.overflow = true,
        }
    }

    /// LEB128: seven bits a byte, low first.
    #[inline]
    pub fn var(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.u8(v as u8 | 0x80);
            v >>= 7;
        }
        self.u8(v as u8);
    }

    /// A signed value, zigzag-encoded so that small negative numbers stay short.
    pub fn ivar(&mut self, v: i64) {
        self.var(zigzag(v));
    }

    /// Up to 64 values: a mask of the non-zero ones, then those.
    pub fn sparse(&mut self, values: &[u64]) {
        let mut mask = 0u64;
        for (i, &v) in values.iter().enumerate().take(64) {
            if v != 0 {
                mask |= 1 << i;
            }
        }
        self.var(mask);
        for &v in values.iter().take(64) {
            if v != 0 {
                self.var(v);
            }
        }
    }
}

/// Reads back what a [`Writer`] wrote; every read is `None` past the end.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.buf.split_first()?;
        self.buf = rest;
        Some(b)
    }

    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let (b, rest) = self.buf.split_at_checked(n)?;
        self.buf = rest;
        Some(b)
    }

    pub fn var(&mut self) -> Option<u64> {
        let mut v = 0u64;
        let mut shift = 0u32;
        loop {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                return Some(v);
            }
            shift += 7;
            if shift >= 70 {
                return None;
            }
        }
    }

    pub fn ivar(&mut self) -> Option<i64> {
        self.var().map(unzigzag)
    }

    /// `N` values written by [`Writer::sparse`].
    pub fn sparse<const N: usize>(&mut self) -> Option<[u64; N]> {
        let mask = self.var()?;
        let mut out = [0u64; N];
        for (i, v) in out.iter_mut().enumerate() {
            if mask & (1 << i) != 0 {
                *v = self.var()?;
            }
        }
        Some(out)
    }
}

pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// A u32 value as it fits an `i64` slot of [`Writer::sparse`] after a wrapping difference:
/// sequence numbers a little below their base stay short.
pub fn seq_delta(v: u32, base: u32) -> u64 {
    zigzag(i64::from(v.wrapping_sub(base) as i32))
}

/// Inverse of [`seq_delta`].
pub fn seq_undelta(d: u64, base: u32) -> u32 {
    base.wrapping_add(unzigzag(d) as i32 as u32)
}

/// A value of a fieldless enum as its place in `all` (every variant, in a fixed order).
pub fn code_of<T: PartialEq>(all: &[T], v: &T) -> u64 {
    all.iter().position(|x| x == v).map_or(0, |i| i as u64)
}

/// Inverse of [`code_of`]; None for a code past the end.
pub fn of_code<T: Copy>(all: &[T], code: u64) -> Option<T> {
    all.get(usize::try_from(code).ok()?).copied()
}

/// An optional tunnel kind: 0 for none, else its code + 1.
pub fn tunnel_code(t: Option<TunnelKind>) -> u64 {
    t.map_or(0, |t| code_of(&TunnelKind::ALL, &t) + 1)
}

/// Inverse of [`tunnel_code`]; None for a code past the end.
pub fn tunnel_of(code: u64) -> Option<Option<TunnelKind>> {
    match code {
        0 => Some(None),
        c => of_code(&TunnelKind::ALL, c - 1).map(Some),
    }
}

/// A time as its (wrapping, zigzagged) distance from `base`: exact for any two times.
pub fn time_delta(t: Micros, base: Micros) -> u64 {
    zigzag(t.0.wrapping_sub(base.0))
}

/// Inverse of [`time_delta`].
pub fn time_undelta(d: u64, base: Micros) -> Micros {
    Micros(base.0.wrapping_add(unzigzag(d)))
}

/// An optional time: (whether present, [`time_delta`] or 0).
pub fn maybe_delta(t: MaybeMicros, base: Micros) -> (bool, u64) {
    t.get().map_or((false, 0), |t| (true, time_delta(t, base)))
}

/// Inverse of [`maybe_delta`].
pub fn maybe_undelta(present: bool, d: u64, base: Micros) -> MaybeMicros {
    MaybeMicros::from(present.then(|| time_undelta(d, base)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_come_back_as_written() {
        let mut w = Writer::default();
        let values = [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX];
        for v in values {
            w.var(v);
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX, -300] {
            w.ivar(v);
        }
        w.sparse(&[0, 5, 0, u64::MAX]);
        let mut r = Reader::new(w.finish().expect("fits"));
        for v in values {
            assert_eq!(r.var(), Some(v));
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX, -300] {
            assert_eq!(r.ivar(), Some(v));
        }
        assert_eq!(r.sparse::<4>(), Some([0, 5, 0, u64::MAX]));
        assert_eq!(r.u8(), None, "nothing left over");
    }

    #[test]
    fn sequence_deltas_wrap() {
        for (v, base) in [(5u32, 3u32), (3, 5), (1, u32::MAX), (u32::MAX, 1), (0, 0)] {
            assert_eq!(seq_undelta(seq_delta(v, base), base), v);
        }
        assert!(seq_delta(1, u32::MAX) < 8, "across the wrap is short");
    }

    #[test]
    fn overflow_is_reported_not_cut() {
        let mut w = Writer::default();
        w.bytes(&[1; MAX_PACKED - 1]);
        assert!(w.finish().is_some());
        w.var(300);
        assert_eq!(w.finish(), None);
        w.clear();
        w.var(300);
        assert_eq!(w.finish(), Some(&[0xac, 0x02][..]));
    }

    #[test]
    fn truncated_input_reads_as_none() {
        let mut r = Reader::new(&[0x80, 0x80]);
        assert_eq!(r.var(), None);
        let mut r = Reader::new(&[0xff; 11]);
        assert_eq!(r.var(), None, "an over-long varint is refused");
    }
}
