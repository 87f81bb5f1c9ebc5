//! Numbers, addresses and times rendered without `core::fmt`: the record writers call these
//! for every field of every record, and `write!` costs several times more. They append to a
//! `String` or to a byte buffer ([`Text`]); the JSON record writer uses bytes, which spares a
//! UTF-8 check on every piece it builds itself.

use crate::decode::Addr;

/// Where rendered text is appended.
pub trait Text {
    fn put(&mut self, s: &str);
    /// ASCII bytes made by the caller (a `String` checks them; nothing else is ever passed).
    fn put_ascii(&mut self, b: &[u8]);
    /// `v` in decimal.
    #[inline]
    fn put_u64(&mut self, v: u64) {
        self.put(itoa::Buffer::new().format(v));
    }
    /// The first `len` bytes of `b` (ASCII made by the caller; all of `b` if `len` is more).
    #[inline]
    fn put_prefix<const N: usize>(&mut self, b: &[u8; N], len: usize) {
        self.put_ascii(b.get(..len).unwrap_or(b));
    }
}

impl Text for String {
    #[inline]
    fn put(&mut self, s: &str) {
        self.push_str(s);
    }
    #[inline]
    fn put_ascii(&mut self, b: &[u8]) {
        if let Ok(t) = std::str::from_utf8(b) {
            self.push_str(t);
        }
    }
}

impl Text for Vec<u8> {
    #[inline]
    fn put(&mut self, s: &str) {
        self.extend_from_slice(s.as_bytes());
    }
    #[inline]
    fn put_ascii(&mut self, b: &[u8]) {
        self.extend_from_slice(b);
    }
    /// One and two digits (most counts) are stored directly; longer numbers go out of line
    /// ([`put_u64_wide`]).
    #[inline]
    fn put_u64(&mut self, v: u64) {
        if v < 10 {
            self.push(b'0' + v as u8);
        } else if v < 100 {
            self.extend_from_slice(&TWO_DIGITS.get(v as usize).copied().unwrap_or(*b"??"));
        } else {
            put_u64_wide(self, v);
        }
    }
    /// All `N` bytes are appended and cut back to `len`: for the short pieces of a record
    /// (addresses, the history, the date), a fixed-size copy is a few stores where a copy of
    /// the exact length was a call to `memcpy`.
    #[inline]
    fn put_prefix<const N: usize>(&mut self, b: &[u8; N], len: usize) {
        let at = self.len();
        self.extend_from_slice(b);
        self.truncate(at + len.min(N));
    }
}

/// [`Text::put_u64`] of a `Vec` for numbers of three digits or more. Up to 8 digits (the
/// ports and counts of almost every record) are appended as all 8 bytes of their word and cut
/// back: a fixed-size copy is one store, where a copy of the exact length was a call to
/// `memcpy`. Longer numbers go through `itoa`.
#[inline(never)]
fn put_u64_wide(line: &mut Vec<u8>, v: u64) {
    match u32::try_from(v) {
        Ok(small) if small < 100_000_000 => {
            let (digits, n) = digits8(small);
            let len = line.len();
            line.extend_from_slice(&digits);
            line.truncate(len + n);
        }
        _ => line.put(itoa::Buffer::new().format(v)),
    }
}

/// The decimal digits of `v` (under 10^8) at the start of the array, and how many. They are
/// made least significant first, each pair going in at the bottom of a little-endian word
/// (the first bytes) and pushing the digits made before it up.
#[inline]
fn digits8(v: u32) -> ([u8; 8], usize) {
    let pair = |x: u32| {
        u64::from(u16::from_le_bytes(
            TWO_DIGITS.get(x as usize).copied().unwrap_or(*b"??"),
        ))
    };
    let (mut x, mut word, mut n) = (v, 0u64, 0usize);
    while x >= 100 {
        word = (word << 16) | pair(x % 100);
        x /= 100;
        n += 2;
    }
    if x >= 10 {
        word = (word << 16) | pair(x);
        n += 2;
    } else {
        word = (word << 8) | u64::from(b'0' + x as u8);
        n += 1;
    }
    (word.to_le_bytes(), n)
}

/// Appends `v` in decimal.
#[inline]
pub fn push_u64(s: &mut impl Text, v: u64) {
    s.put_u64(v);
}

/// Appends each key (JSON text ending in `:`) followed by its number: the runs of counters in
/// the record and alert writers.
#[inline]
pub fn push_fields(s: &mut impl Text, fields: &[(&str, u64)]) {
    for &(key, v) in fields {
        s.put(key);
        push_u64(s, v);
    }
}

/// Appends `v` in decimal with at least `width` digits (zero-padded).
pub fn push_padded(s: &mut impl Text, v: u64, width: usize) {
    let mut b = itoa::Buffer::new();
    let digits = b.format(v);
    for _ in digits.len()..width {
        s.put("0");
    }
    s.put(digits);
}

/// Each octet's decimal digits (left-aligned) and, in the last byte, how many there are.
// Built at compile time, where an index out of bounds would be a build error.
#[allow(clippy::indexing_slicing)]
const OCTETS: [[u8; 4]; 256] = {
    let mut t = [[0u8; 4]; 256];
    let mut i = 0;
    while i < 256 {
        let o = i as u8;
        t[i] = if o >= 100 {
            [b'0' + o / 100, b'0' + o / 10 % 10, b'0' + o % 10, 3]
        } else if o >= 10 {
            [b'0' + o / 10, b'0' + o % 10, 0, 2]
        } else {
            [b'0' + o, 0, 0, 1]
        };
        i += 1;
    }
    t
};

/// Appends an IP address as `std::net::IpAddr`'s `Display` writes it (IPv4 with each octet's
/// digits from a table; IPv6 by [`push_ipv6`]).
pub fn push_ip(s: &mut impl Text, a: &Addr) {
    match a.to_ip() {
        std::net::IpAddr::V4(v4) => {
            // Room for 15 characters and the spare bytes of a whole table entry.
            let mut buf = [0u8; 19];
            let mut n = 0;
            for &o in &v4.octets() {
                let [a, b, c, len] = OCTETS.get(usize::from(o)).copied().unwrap_or_default();
                if let Some(dst) = buf.get_mut(n..n + 3) {
                    dst.copy_from_slice(&[a, b, c]);
                }
                // The next octet's digits start after this one's and its dot.
                n += usize::from(len) + 1;
                if let Some(dot) = buf.get_mut(n - 1) {
                    *dot = b'.';
                }
            }
            s.put_prefix(&buf, n - 1);
        }
        std::net::IpAddr::V6(v6) => push_ipv6(s, &v6),
    }
}

/// Appends an IPv6 address as `Display` writes it (RFC 5952): groups in lower-case hex
/// without leading zeros, the first longest run of two or more zero groups as `::`, and an
/// IPv4-mapped address (`::ffff:0:0/96`) with its last 32 bits dotted.
fn push_ipv6(s: &mut impl Text, a: &std::net::Ipv6Addr) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    if let Some(v4) = a.to_ipv4_mapped() {
        s.put("::ffff:");
        return push_ip(s, &Addr::v4(v4.octets()));
    }
    let groups = a.segments();
    // The first longest run of zero groups, if two or more long.
    let (mut run_at, mut run_len) = (0, 0);
    let mut i = 0;
    while i < 8 {
        let mut j = i;
        while groups.get(j) == Some(&0) {
            j += 1;
        }
        if j - i > run_len {
            (run_at, run_len) = (i, j - i);
        }
        i = j + 1;
    }
    if run_len < 2 {
        run_len = 0;
    }
    let mut buf = [0u8; 40];
    let mut n = 0;
    let mut k = 0;
    while k < 8 {
        if run_len > 0 && k == run_at {
            put(&mut buf, &mut n, b':');
            put(&mut buf, &mut n, b':');
            k += run_len;
            continue;
        }
        if k > 0 && !(run_len > 0 && k == run_at + run_len) {
            put(&mut buf, &mut n, b':');
        }
        let g = groups.get(k).copied().unwrap_or(0);
        let digits = (4 - g.leading_zeros() / 4).max(1);
        for d in (0..digits).rev() {
            let digit = HEX.get(usize::from((g >> (4 * d)) as u8 & 15));
            put(&mut buf, &mut n, digit.copied().unwrap_or(b'0'));
        }
        k += 1;
    }
    s.put_prefix(&buf, n);
}

/// Stores `b` at `buf[*n]` and moves `n` on (nothing when full).
#[inline]
fn put<const N: usize>(buf: &mut [u8; N], n: &mut usize, b: u8) {
    if let Some(slot) = buf.get_mut(*n) {
        *slot = b;
        *n += 1;
    }
}

/// Appends `.ffffffZ`: the microseconds of an RFC 3339 time and its zone.
pub fn push_micros_z(s: &mut impl Text, micros: u32) {
    let [a, b, c, d, e, f] = six_digits(micros);
    s.put_ascii(&[b'.', a, b, c, d, e, f, b'Z']);
}

/// Appends `.ffffff`: six decimals of a fraction given in millionths (under 10^6).
pub fn push_fraction6(s: &mut impl Text, v: u32) {
    let [a, b, c, d, e, f] = six_digits(v);
    s.put_ascii(&[b'.', a, b, c, d, e, f]);
}

/// The last six decimal digits of `v`, zero-padded, two at a time from a table.
#[inline]
fn six_digits(v: u32) -> [u8; 6] {
    let two = |x: u32| {
        TWO_DIGITS
            .get((x % 100) as usize)
            .copied()
            .unwrap_or(*b"??")
    };
    let [a, b] = two(v / 10_000);
    let [c, d] = two(v / 100);
    let [e, f] = two(v);
    [a, b, c, d, e, f]
}

/// The two decimal digits of every number under 100.
// Built at compile time, where an index out of bounds would be a build error.
#[allow(clippy::indexing_slicing)]
const TWO_DIGITS: [[u8; 2]; 100] = {
    let mut t = [[0u8; 2]; 100];
    let mut i = 0;
    while i < 100 {
        t[i] = [b'0' + (i / 10) as u8, b'0' + (i % 10) as u8];
        i += 1;
    }
    t
};

/// Appends `THH:MM:SS` for a second of the day (`sod` under 86 400).
pub fn push_time_of_day(s: &mut impl Text, sod: u32) {
    let two = |v: u32| TWO_DIGITS.get(v as usize).copied().unwrap_or(*b"??");
    let [h0, h1] = two(sod / 3600);
    let [m0, m1] = two(sod / 60 % 60);
    let [s0, s1] = two(sod % 60);
    s.put_ascii(&[b'T', h0, h1, b':', m0, m1, b':', s0, s1]);
}

/// Appends microseconds as seconds with six decimals (`{:.6}` of the seconds).
pub fn push_secs6(s: &mut impl Text, micros: i64) {
    if micros < 0 {
        s.put("-");
    }
    let m = micros.unsigned_abs();
    push_u64(s, m / 1_000_000);
    push_fraction6(s, (m % 1_000_000) as u32);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_format() {
        for v in [
            0u64,
            1,
            9,
            10,
            99,
            100,
            12345,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut s = String::new();
            push_u64(&mut s, v);
            assert_eq!(s, v.to_string());
            let mut p = String::new();
            push_padded(&mut p, v, 6);
            assert_eq!(p, format!("{v:06}"));
        }
        for m in [0i64, 1, 999_999, 1_000_000, 1_393_203_138, -1, -1_500_000] {
            let mut s = String::new();
            push_secs6(&mut s, m);
            assert_eq!(s, format!("{:.6}", m as f64 / 1e6), "{m}");
        }
    }

    /// Numbers of every width, at the edges of the 8-digit fast path, in bytes and text.
    #[test]
    fn numbers_of_every_width_match_format() {
        let mut values = vec![0u64, u64::MAX, u64::from(u32::MAX), u64::from(u32::MAX) + 1];
        for p in 0..20u32 {
            let t = 10u64.pow(p);
            values.extend([t - 1, t, t + 1, t.saturating_mul(4).saturating_add(7)]);
        }
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push(x >> (x % 64));
        }
        let mut b = b"ab".to_vec();
        let mut want = String::from("ab");
        for v in values {
            push_u64(&mut b, v);
            b.push(b',');
            want.push_str(&format!("{v},"));
        }
        assert_eq!(std::str::from_utf8(&b).unwrap(), want);
    }

    #[test]
    fn addresses_match_display() {
        let mut all = vec![
            Addr::v4([0, 0, 0, 0]),
            Addr::v4([192, 168, 10, 255]),
            Addr::v4([255, 255, 255, 255]),
            Addr::v6([0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
        ];
        // Every octet value in every place, with one-, two- and three-digit neighbours.
        for o in 0..=255u8 {
            all.push(Addr::v4([o, 7, o, 100]));
            all.push(Addr::v4([99, o, 10, o]));
        }
        // IPv6: zero runs of every length at every place, the first of two equal runs, one
        // zero group alone (not compressed), IPv4-mapped and -compatible forms, and digits of
        // every width.
        let groups = [0u16, 0, 1, 0xab, 0xfff, 0xffff, 0x1000, 0x10];
        for mask in 0u32..(1 << 8) {
            for pick in 0..4 {
                let mut g = [0u16; 8];
                for (k, v) in g.iter_mut().enumerate() {
                    if mask & (1 << k) != 0 {
                        *v = groups[(k + pick * 3) % groups.len()].max(1);
                    }
                }
                all.push(Addr::v6(std::net::Ipv6Addr::from(g).octets()));
            }
        }
        for v4 in [[0, 0, 0, 0], [10, 1, 2, 3], [255, 255, 255, 255]] {
            let b = std::net::Ipv4Addr::from(v4);
            all.push(Addr::v6(b.to_ipv6_mapped().octets()));
            all.push(Addr::v6(b.to_ipv6_compatible().octets()));
        }
        for a in all {
            let mut s = String::new();
            push_ip(&mut s, &a);
            assert_eq!(s, a.to_ip().to_string());
            let mut b = Vec::new();
            push_ip(&mut b, &a);
            assert_eq!(b, s.as_bytes());
        }
    }
}
