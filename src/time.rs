//! Packet time: microseconds since the Unix epoch, and its RFC 3339 rendering.
//!
//! Every timer in synwatch runs on packet time (GUIDE §1), so offline and live analysis of the
//! same packets give the same verdicts.

use std::fmt::Write;

/// A capture timestamp in microseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Micros(pub i64);

impl Micros {
    pub const ZERO: Micros = Micros(0);
    pub const MAX: Micros = Micros(i64::MAX);

    pub const fn from_secs(s: i64) -> Micros {
        Micros(s.saturating_mul(1_000_000))
    }

    pub fn from_timeval(sec: i64, usec: i64) -> Micros {
        Micros(sec.saturating_mul(1_000_000).saturating_add(usec))
    }

    pub fn saturating_add(self, d: Micros) -> Micros {
        Micros(self.0.saturating_add(d.0))
    }

    pub fn saturating_sub(self, d: Micros) -> Micros {
        Micros(self.0.saturating_sub(d.0))
    }

    /// Seconds as a float (for durations).
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }

    /// Whole seconds since the epoch (rounded down).
    pub fn secs(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    /// Microseconds past [`Micros::secs`].
    pub fn subsec_micros(self) -> u32 {
        self.0.rem_euclid(1_000_000) as u32
    }

    /// Writes `YYYY-MM-DDTHH:MM:SS.ffffffZ` (RFC 3339, UTC, microseconds) into `out`; the
    /// `.ffffffZ` is always the last 8 bytes, whatever the year's width. Through a
    /// [`DateCache`] kept per thread; the record writer keeps its own.
    pub fn write_rfc3339(self, out: &mut impl crate::output::text::Text) {
        thread_local! {
            static LAST: std::cell::RefCell<DateCache> = const {
                std::cell::RefCell::new(DateCache::new())
            };
        }
        LAST.with_borrow_mut(|c| c.write(self, out));
    }

    pub fn to_rfc3339(self) -> String {
        let mut s = String::with_capacity(27);
        self.write_rfc3339(&mut s);
        s
    }

    /// `1234567890.123456`, the form Zeek's `ts` column uses (`{secs}.{micros:06}`, with
    /// the seconds rounded down: `-2.500000` is -1.5 s).
    pub fn write_epoch(self, out: &mut impl crate::output::text::Text) {
        let secs = self.secs();
        if secs < 0 {
            out.put("-");
        }
        crate::output::text::push_u64(out, secs.unsigned_abs());
        crate::output::text::push_fraction6(out, self.subsec_micros());
    }
}

/// The date and time of day of the last second written, for [`Micros::write_rfc3339`].
///
/// Times come in bursts within the same second, so only the microseconds are rendered anew;
/// a new second of the same day keeps the date and writes the time of day. The text is kept
/// in a fixed-size array too, appended whole and cut back (`Text::put_prefix`).
pub struct DateCache {
    secs: i64,
    day: i64,
    head: String,
    fixed: [u8; 32],
}

impl Default for DateCache {
    fn default() -> Self {
        DateCache::new()
    }
}

impl DateCache {
    pub const fn new() -> Self {
        DateCache {
            secs: i64::MIN,
            day: i64::MIN,
            head: String::new(),
            fixed: [0; 32],
        }
    }

    /// Appends `t` as [`Micros::write_rfc3339`] does.
    #[inline]
    pub fn write(&mut self, t: Micros, out: &mut impl crate::output::text::Text) {
        let secs = t.secs();
        if self.secs != secs {
            self.set(secs);
        }
        if self.head.len() <= self.fixed.len() {
            out.put_prefix(&self.fixed, self.head.len());
        } else {
            out.put(&self.head);
        }
        crate::output::text::push_micros_z(out, t.subsec_micros());
    }

    /// Renders the date and time of day of `secs`.
    fn set(&mut self, secs: i64) {
        let day = secs.div_euclid(86_400);
        // Another second of the same day (most changes): the date stays.
        let date_len = self.head.len().saturating_sub(9);
        if day == self.day && self.head.is_char_boundary(date_len) {
            self.head.truncate(date_len);
            let sod = secs.rem_euclid(86_400) as u32;
            crate::output::text::push_time_of_day(&mut self.head, sod);
        } else {
            self.head.clear();
            date_time(secs, &mut self.head);
        }
        self.secs = secs;
        self.day = day;
        if let Some(d) = self.fixed.get_mut(..self.head.len()) {
            d.copy_from_slice(self.head.as_bytes());
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS` of a second since the epoch.
fn date_time(secs: i64, out: &mut String) {
    use crate::output::text::push_padded;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    if (0..=9999).contains(&y) {
        push_padded(out, y as u64, 4);
    } else {
        let _ = write!(out, "{y:04}");
    }
    for v in [m, d] {
        out.push('-');
        push_padded(out, u64::from(v), 2);
    }
    crate::output::text::push_time_of_day(out, sod as u32);
}

/// An optional packet time in 8 bytes (`Option<Micros>` takes 16, and a connection holds six):
/// `i64::MIN`, which no capture timestamp can be, stands for none. The methods mirror
/// `Option`'s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaybeMicros(i64);

impl Default for MaybeMicros {
    fn default() -> Self {
        MaybeMicros::NONE
    }
}

impl From<Option<Micros>> for MaybeMicros {
    fn from(v: Option<Micros>) -> Self {
        match v {
            Some(Micros(t)) if t != i64::MIN => MaybeMicros(t),
            // The one value without a slot of its own: the earliest representable time.
            Some(_) => MaybeMicros(i64::MIN + 1),
            None => MaybeMicros::NONE,
        }
    }
}

impl MaybeMicros {
    pub const NONE: MaybeMicros = MaybeMicros(i64::MIN);

    pub fn get(self) -> Option<Micros> {
        (self.0 != i64::MIN).then_some(Micros(self.0))
    }

    pub fn is_some(self) -> bool {
        self.0 != i64::MIN
    }

    pub fn is_none(self) -> bool {
        self.0 == i64::MIN
    }

    pub fn is_some_and(self, f: impl FnOnce(Micros) -> bool) -> bool {
        self.get().is_some_and(f)
    }

    pub fn map_or<U>(self, default: U, f: impl FnOnce(Micros) -> U) -> U {
        self.get().map_or(default, f)
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_values() {
        assert_eq!(Micros(0).to_rfc3339(), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            Micros::from_timeval(1_300_475_167, 96_535).to_rfc3339(),
            "2011-03-18T19:06:07.096535Z"
        );
        assert_eq!(
            Micros::from_timeval(951_782_400, 1).to_rfc3339(),
            "2000-02-29T00:00:00.000001Z"
        );
        assert_eq!(Micros(-1).to_rfc3339(), "1969-12-31T23:59:59.999999Z");
    }

    #[test]
    fn rfc3339_cache_follows_the_second() {
        let t = Micros::from_timeval(1_300_475_167, 0);
        for (m, want) in [
            (t, "2011-03-18T19:06:07.000000Z"),
            (Micros(t.0 + 5), "2011-03-18T19:06:07.000005Z"),
            (Micros(t.0 + 1_000_001), "2011-03-18T19:06:08.000001Z"),
            (t, "2011-03-18T19:06:07.000000Z"),
            (
                Micros::from_secs(253_402_300_800),
                "10000-01-01T00:00:00.000000Z",
            ),
            (Micros(t.0 + 7), "2011-03-18T19:06:07.000007Z"),
        ] {
            assert_eq!(m.to_rfc3339(), want);
        }
    }

    /// The cache of the last second and day against the date written out whole, over a walk
    /// of times: the same second, other seconds of the same day, other days, far years.
    #[test]
    fn rfc3339_cache_follows_seconds_and_days() {
        let whole = |m: Micros| {
            let secs = m.secs();
            let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
            let sod = secs.rem_euclid(86_400);
            format!(
                "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
                sod / 3600,
                sod / 60 % 60,
                sod % 60,
                m.subsec_micros()
            )
        };
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut t: i64 = 1_300_475_167_000_000;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            t = match x % 8 {
                0 => t + (x >> 40) as i64 % 1_000_000,
                1 | 2 => t + (x >> 40) as i64 % 100_000_000,
                3 => t - (x >> 40) as i64 % 100_000_000,
                4 => t + (x >> 20) as i64 % 86_400_000_000_000,
                5 => -((x >> 8) as i64 % 400_000_000_000_000),
                6 => (x >> 1) as i64 % i64::MAX,
                _ => t,
            };
            let m = Micros(t);
            assert_eq!(m.to_rfc3339(), whole(m), "{t}");
        }
    }

    #[test]
    fn maybe_micros_is_an_option() {
        assert_eq!(MaybeMicros::default().get(), None);
        assert_eq!(MaybeMicros::from(Some(Micros(5))).get(), Some(Micros(5)));
        assert_eq!(MaybeMicros::from(Some(Micros(-5))).get(), Some(Micros(-5)));
        assert_eq!(MaybeMicros::from(None).get(), None);
        assert!(MaybeMicros::from(Some(Micros(i64::MIN))).is_some());
        assert_eq!(std::mem::size_of::<MaybeMicros>(), 8);
    }

    #[test]
    fn epoch_form() {
        let mut s = String::new();
        Micros::from_timeval(12, 5).write_epoch(&mut s);
        assert_eq!(s, "12.000005");
    }
}
