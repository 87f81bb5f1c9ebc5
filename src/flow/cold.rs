//! Where the flow table keeps packed connections (`super::pack`): one growing array of
//! 16-byte units, each connection a run of them behind a small fixed header ([`ColdHead`] and
//! the length), and a free list per run length. Packed connections are much alike in length
//! (an established one that went quiet takes 6 units), so runs freed are soon reused whole;
//! nothing is merged or moved.

use crate::time::{MaybeMicros, Micros};

/// Bytes per unit.
const UNIT: usize = 16;
/// Bytes in front of each connection: its length (2) and its [`ColdHead`] (16).
const LEN_BYTES: usize = 18;

/// What the table reads and changes of a packed connection without unpacking it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColdHead {
    /// The connection's `timers.expire` (not in its byte form).
    pub expire: MaybeMicros,
    /// [`super::Connection::quiet_until`] when it was packed.
    pub quiet_until: Micros,
}

impl ColdHead {
    fn to_bytes(self) -> [u8; 16] {
        let expire = self.expire.get().map_or(i64::MIN, |t| t.0);
        let mut b = [0; 16];
        let (e, q) = b.split_at_mut(8);
        e.copy_from_slice(&expire.to_le_bytes());
        q.copy_from_slice(&self.quiet_until.0.to_le_bytes());
        b
    }

    fn from_bytes(b: &[u8]) -> Option<ColdHead> {
        let word = |at: usize| -> Option<i64> {
            Some(i64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
        };
        let expire = word(0)?;
        Some(ColdHead {
            expire: MaybeMicros::from((expire != i64::MIN).then_some(Micros(expire))),
            quiet_until: Micros(word(8)?),
        })
    }
}
/// Longest run kept: room for the longest byte form a `Writer` makes.
const MAX_UNITS: usize = (super::pack::MAX_PACKED + LEN_BYTES).div_ceil(UNIT);

#[derive(Default)]
pub struct ColdStore {
    units: Vec<[u8; UNIT]>,
    /// Free runs by their length in units.
    free: Vec<Vec<u32>>,
    /// Runs in use, and their units (for the table's statistics).
    pub live: usize,
    pub live_units: usize,
}

fn units_for(len: usize) -> usize {
    (len + LEN_BYTES).div_ceil(UNIT)
}

impl ColdStore {
    pub fn new() -> Self {
        ColdStore {
            free: vec![Vec::new(); MAX_UNITS + 1],
            ..ColdStore::default()
        }
    }

    /// Stores `bytes` behind `head`; returns where, or None when they are longer than a run
    /// can hold.
    pub fn put(&mut self, head: ColdHead, bytes: &[u8]) -> Option<u32> {
        let n = units_for(bytes.len());
        if n > MAX_UNITS {
            return None;
        }
        let at = match self.free.get_mut(n).and_then(Vec::pop) {
            Some(at) => at,
            None => {
                let at = u32::try_from(self.units.len()).ok()?;
                self.units.resize(self.units.len() + n, [0; UNIT]);
                at
            }
        };
        let start = at as usize * UNIT;
        let dst = self
            .units
            .as_flattened_mut()
            .get_mut(start..start + LEN_BYTES + bytes.len())?;
        let (front, body) = dst.split_at_mut(LEN_BYTES);
        let (len, h) = front.split_at_mut(2);
        len.copy_from_slice(&(bytes.len() as u16).to_le_bytes());
        h.copy_from_slice(&head.to_bytes());
        body.copy_from_slice(bytes);
        self.live += 1;
        self.live_units += n;
        Some(at)
    }

    /// The bytes stored at `at`.
    pub fn get(&self, at: u32) -> Option<&[u8]> {
        let start = at as usize * UNIT;
        let flat = self.units.as_flattened();
        let len = flat.get(start..start + 2)?;
        let len = usize::from(u16::from_le_bytes([*len.first()?, *len.get(1)?]));
        flat.get(start + LEN_BYTES..start + LEN_BYTES + len)
    }

    /// The header stored at `at`.
    pub fn head(&self, at: u32) -> Option<ColdHead> {
        let start = at as usize * UNIT + 2;
        ColdHead::from_bytes(self.units.as_flattened().get(start..start + 16)?)
    }

    /// Changes the `expire` time in the header at `at`.
    pub fn set_expire(&mut self, at: u32, expire: MaybeMicros) {
        let start = at as usize * UNIT + 2;
        if let Some(b) = self.units.as_flattened_mut().get_mut(start..start + 8) {
            b.copy_from_slice(&expire.get().map_or(i64::MIN, |t| t.0).to_le_bytes());
        }
    }

    /// Gives the run at `at` back.
    pub fn free(&mut self, at: u32) {
        let Some(len) = self.get(at).map(<[u8]>::len) else {
            return;
        };
        let n = units_for(len);
        if let Some(list) = self.free.get_mut(n) {
            list.push(at);
            self.live -= 1;
            self.live_units -= n;
        }
    }

    /// The first unit of what is stored at `at` (for prefetching).
    pub fn first_unit(&self, at: u32) -> Option<&[u8; UNIT]> {
        self.units.get(at as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: ColdHead = ColdHead {
        expire: MaybeMicros::NONE,
        quiet_until: Micros(i64::MIN),
    };

    #[test]
    fn runs_are_stored_freed_and_reused() {
        let mut s = ColdStore::new();
        let a = s.put(HEAD, &[1; 14]).expect("fits");
        let b = s.put(HEAD, &[2; 100]).expect("fits");
        assert_eq!(s.get(a), Some(&[1u8; 14][..]));
        assert_eq!(s.get(b), Some(&[2u8; 100][..]));
        s.free(a);
        assert_eq!((s.live, s.live_units), (1, 8));
        let c = s.put(HEAD, &[3; 10]).expect("fits");
        assert_eq!(c, a, "a freed run of the same length is reused");
        assert_eq!(s.get(b), Some(&[2u8; 100][..]), "neighbours untouched");
        assert_eq!(
            s.put(HEAD, &[0; MAX_UNITS * UNIT]),
            None,
            "too long to keep"
        );
        assert!(s.put(HEAD, &[0; super::super::pack::MAX_PACKED]).is_some());
    }

    #[test]
    fn the_header_is_kept_and_changed_in_place() {
        let mut s = ColdStore::new();
        let head = ColdHead {
            expire: Some(Micros(1_700_000_000_000_000)).into(),
            quiet_until: Micros(-5),
        };
        let a = s.put(head, &[7; 40]).expect("fits");
        assert_eq!(s.head(a), Some(head));
        s.set_expire(a, MaybeMicros::NONE);
        assert_eq!(s.head(a).map(|h| h.expire), Some(MaybeMicros::NONE));
        assert_eq!(s.get(a), Some(&[7u8; 40][..]), "the bytes are untouched");
    }
}
