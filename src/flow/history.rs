//! Zeek's connection `history` string (ZEEK-SEMANTICS §3).
//!
//! Upper case letters for the originator, lower case for the responder. A, D, I, Q are recorded
//! once per direction; S, H, F, R again only when the sequence number changes (the caller decides
//! that); C, G, T, W logarithmically — at the 1st, 10th, 100th, … occurrence.

use super::pack::{Reader, Writer};

/// Capacity of the inline history; longer histories are cut and marked (never allocated).
pub const HISTORY_CAP: usize = 64;

/// Letters whose "seen once" bit is kept per direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Once {
    Syn = 0x01,
    Fin = 0x02,
    Rst = 0x04,
    FinRst = 0x08,
    Ack = 0x10,
    Data = 0x20,
    Corrupt = 0x40,
    MultiFlag = 0x80,
}

/// The history letters of one connection, stored inline.
#[derive(Clone, Copy)]
pub struct History {
    buf: [u8; HISTORY_CAP],
    len: u8,
    /// `Once` bits: originator in the low 16 bits, responder in the high 16.
    seen: u32,
}

impl Default for History {
    fn default() -> Self {
        History {
            buf: [0; HISTORY_CAP],
            len: 0,
            seen: 0,
        }
    }
}

impl History {
    /// Byte form (`super::pack`): the letters, then the seen bits.
    pub fn pack(&self, w: &mut Writer) {
        let History {
            buf: _,
            len: _,
            seen,
        } = self;
        let letters = self.as_bytes();
        w.u8(letters.len() as u8);
        w.bytes(letters);
        w.var(u64::from(*seen));
    }

    pub fn unpack(r: &mut Reader) -> Option<History> {
        let mut h = History::default();
        let n = usize::from(r.u8()?);
        for &b in r.bytes(n)? {
            h.push_raw(b);
        }
        h.seen = u32::try_from(r.var()?).ok()?;
        Some(h)
    }
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl History {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    /// The letters as ASCII bytes (without `as_str`'s UTF-8 check).
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// The letters at the start of a fixed-size array, and how many (see
    /// `output::text::Text::put_prefix`).
    pub fn padded(&self) -> (&[u8; HISTORY_CAP], usize) {
        (&self.buf, usize::from(self.len))
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends a letter, in the case of the direction it came from.
    pub fn add(&mut self, letter: u8, from_orig: bool) {
        let c = if from_orig {
            letter.to_ascii_uppercase()
        } else {
            letter.to_ascii_lowercase()
        };
        self.push_raw(c);
    }

    /// Appends a byte as it is (used for `^`).
    pub fn push_raw(&mut self, c: u8) {
        let at = usize::from(self.len);
        if let Some(slot) = self.buf.get_mut(at) {
            *slot = c;
            self.len += 1;
        }
    }

    /// Replaces the whole string (Zeek's `ReplaceHistory`), keeping the seen bits.
    pub fn replace(&mut self, s: &str) {
        self.len = 0;
        for &b in s.as_bytes() {
            self.push_raw(b);
        }
    }

    /// Records `letter` the first time this kind is seen from this direction. Returns true when
    /// the kind had been seen before (and nothing was added) — Zeek's `CheckHistory`.
    pub fn check(&mut self, kind: Once, letter: u8, from_orig: bool) -> bool {
        let bit = if from_orig {
            kind as u32
        } else {
            (kind as u32) << 16
        };
        if self.seen & bit == 0 {
            self.seen |= bit;
            self.add(letter, from_orig);
            false
        } else {
            true
        }
    }

    /// Whether `kind` was seen from the given direction.
    pub fn has_seen(&self, kind: Once, from_orig: bool) -> bool {
        let bit = if from_orig {
            kind as u32
        } else {
            (kind as u32) << 16
        };
        self.seen & bit != 0
    }
}

/// A counter for the logarithmic letters (C, G, T, W): records at 1, 10, 100, … occurrences
/// (Zeek keeps a threshold that it multiplies by 10; the count alone says the same, in half
/// the space, and a connection has ten of these).
#[derive(Clone, Copy, Debug, Default)]
pub struct Scaled {
    count: u32,
}

impl Scaled {
    /// Counts one occurrence; adds `letter` to `h` when the count reaches a power of ten.
    pub fn hit(&mut self, h: &mut History, letter: u8, from_orig: bool) -> bool {
        self.count = self.count.saturating_add(1);
        let power_of_ten = matches!(
            self.count,
            1 | 10
                | 100
                | 1_000
                | 10_000
                | 100_000
                | 1_000_000
                | 10_000_000
                | 100_000_000
                | 1_000_000_000
        );
        if power_of_ten {
            h.add(letter, from_orig);
        }
        power_of_ten
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// A counter that has counted `count` (for unpacking).
    pub fn with_count(count: u32) -> Scaled {
        Scaled { count }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_letters_per_direction() {
        let mut h = History::default();
        assert!(!h.check(Once::Ack, b'A', true));
        assert!(h.check(Once::Ack, b'A', true));
        assert!(!h.check(Once::Ack, b'A', false));
        assert_eq!(h.as_str(), "Aa");
    }

    #[test]
    fn scaled_letters_at_powers_of_ten() {
        let mut h = History::default();
        let mut t = Scaled::default();
        for _ in 0..150 {
            t.hit(&mut h, b't', true);
        }
        assert_eq!(h.as_str(), "TTT");
        assert_eq!(t.count(), 150);
    }

    #[test]
    fn overflow_is_cut_not_panicking() {
        let mut h = History::default();
        for _ in 0..1000 {
            h.push_raw(b'R');
        }
        assert_eq!(h.as_str().len(), HISTORY_CAP);
    }
}
