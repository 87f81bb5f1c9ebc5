//! Where the flow table keeps packed connections (`super::pack`) and embryos
//! (`super::embryo`): one growing array of 16-byte units, each flow a run of them behind its
//! length and, for connections, a small fixed header ([`ColdHead`]); and a free list per run
//! length. Flows of one kind are much alike in length (an established connection that went
//! quiet takes 6 units, a SYN's embryo 3), so runs freed are soon reused whole; nothing is
//! merged or moved.

use crate::time::{MaybeMicros, Micros};

/// Bytes per unit.
const UNIT: usize = 16;
/// Places (units) a store can name.
pub const MAX_PLACES: usize = 1 << 30;
/// Bytes of length in front of each run; the top bit says a [`ColdHead`] follows.
const LEN_BYTES: usize = 2;
const HAS_HEAD: u16 = 0x8000;
const HEAD_BYTES: usize = 16;

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
const MAX_UNITS: usize = (super::pack::MAX_PACKED + LEN_BYTES + HEAD_BYTES).div_ceil(UNIT);

#[derive(Default)]
pub struct ColdStore {
    units: Vec<[u8; UNIT]>,
    /// Free runs by their length in units.
    free: Vec<Vec<u32>>,
    /// Runs in use, and their units (for the table's statistics).
    pub live: usize,
    pub live_units: usize,
}

fn units_for(len: usize, head: bool) -> usize {
    (len + LEN_BYTES + if head { HEAD_BYTES } else { 0 }).div_ceil(UNIT)
}

impl ColdStore {
    pub fn new() -> Self {
        ColdStore {
            free: vec![Vec::new(); MAX_UNITS + 1],
            ..ColdStore::default()
        }
    }

    /// Stores `bytes` (behind `head`, if any); returns where, or None when they are longer
    /// than a run can hold.
    pub fn put(&mut self, head: Option<ColdHead>, bytes: &[u8]) -> Option<u32> {
        let n = units_for(bytes.len(), head.is_some());
        if n > MAX_UNITS {
            return None;
        }
        let at = match self.free.get_mut(n).and_then(Vec::pop) {
            Some(at) => at,
            None => {
                if self.is_full() {
                    return None;
                }
                let at = u32::try_from(self.units.len()).ok()?;
                self.units.resize(self.units.len() + n, [0; UNIT]);
                at
            }
        };
        let start = at as usize * UNIT;
        let dst = self
            .units
            .as_flattened_mut()
            .get_mut(start..start + n * UNIT)?;
        let (len, rest) = dst.split_at_mut(LEN_BYTES);
        let flag = if head.is_some() { HAS_HEAD } else { 0 };
        len.copy_from_slice(&(bytes.len() as u16 | flag).to_le_bytes());
        let body = match head {
            Some(h) => {
                let (hb, body) = rest.split_at_mut(HEAD_BYTES);
                hb.copy_from_slice(&h.to_bytes());
                body
            }
            None => rest,
        };
        body.get_mut(..bytes.len())?.copy_from_slice(bytes);
        self.live += 1;
        self.live_units += n;
        Some(at)
    }

    /// (byte length, whether a header is there) of the run at `at`.
    fn len_at(&self, at: u32) -> Option<(usize, bool)> {
        let start = at as usize * UNIT;
        let b = self.units.as_flattened().get(start..start + LEN_BYTES)?;
        let v = u16::from_le_bytes([*b.first()?, *b.get(1)?]);
        Some((usize::from(v & !HAS_HEAD), v & HAS_HEAD != 0))
    }

    /// Whether the store has grown as far as places can be named: the flow table keeps them
    /// in 30 bits beside its flags (16 GiB of units). Runs freed are still reused.
    pub fn is_full(&self) -> bool {
        self.units.len() + MAX_UNITS > MAX_PLACES
    }

    /// The bytes stored at `at`.
    pub fn get(&self, at: u32) -> Option<&[u8]> {
        let (len, head) = self.len_at(at)?;
        let start = at as usize * UNIT + LEN_BYTES + if head { HEAD_BYTES } else { 0 };
        self.units.as_flattened().get(start..start + len)
    }

    /// The header stored at `at`, if there is one.
    pub fn head(&self, at: u32) -> Option<ColdHead> {
        if !self.len_at(at)?.1 {
            return None;
        }
        let start = at as usize * UNIT + LEN_BYTES;
        ColdHead::from_bytes(self.units.as_flattened().get(start..start + HEAD_BYTES)?)
    }

    /// Changes the `expire` time in the header at `at` (if there is one).
    pub fn set_expire(&mut self, at: u32, expire: MaybeMicros) {
        if !self.len_at(at).is_some_and(|(_, head)| head) {
            return;
        }
        let start = at as usize * UNIT + LEN_BYTES;
        if let Some(b) = self.units.as_flattened_mut().get_mut(start..start + 8) {
            b.copy_from_slice(&expire.get().map_or(i64::MIN, |t| t.0).to_le_bytes());
        }
    }

    /// Gives the run at `at` back.
    pub fn free(&mut self, at: u32) {
        let Some((len, head)) = self.len_at(at) else {
            return;
        };
        let n = units_for(len, head);
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

    const HEAD: Option<ColdHead> = Some(ColdHead {
        expire: MaybeMicros::NONE,
        quiet_until: Micros(i64::MIN),
    });

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
        let too_long = [0; MAX_UNITS * UNIT];
        assert_eq!(s.put(HEAD, &too_long), None, "too long to keep");
        assert!(s.put(HEAD, &[0; super::super::pack::MAX_PACKED]).is_some());
        let d = s.put(None, &[4; 30]).expect("fits");
        assert_eq!(s.get(d), Some(&[4u8; 30][..]));
        assert_eq!(s.head(d), None);
        s.set_expire(d, MaybeMicros::NONE);
        assert_eq!(s.get(d), Some(&[4u8; 30][..]), "no header to change");
        s.free(d);
        assert_eq!(s.put(None, &[5; 20]), Some(d), "2 units each");
    }

    #[test]
    fn the_header_is_kept_and_changed_in_place() {
        let mut s = ColdStore::new();
        let head = ColdHead {
            expire: Some(Micros(1_700_000_000_000_000)).into(),
            quiet_until: Micros(-5),
        };
        let a = s.put(Some(head), &[7; 40]).expect("fits");
        assert_eq!(s.head(a), Some(head));
        s.set_expire(a, MaybeMicros::NONE);
        assert_eq!(s.head(a).map(|h| h.expire), Some(MaybeMicros::NONE));
        assert_eq!(s.get(a), Some(&[7u8; 40][..]), "the bytes are untouched");
    }
}
