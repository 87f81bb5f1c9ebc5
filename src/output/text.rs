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
}

/// Appends `v` in decimal.
#[inline]
pub fn push_u64(s: &mut impl Text, v: u64) {
    s.put(itoa::Buffer::new().format(v));
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

/// Appends an IP address as `std::net::IpAddr`'s `Display` writes it (IPv4 by hand; IPv6,
/// whose compression rules are longer, through `Display`).
pub fn push_ip(s: &mut impl Text, a: &Addr) {
    match a.to_ip() {
        std::net::IpAddr::V4(v4) => {
            let mut buf = [0u8; 15];
            let mut n = 0;
            for (i, &o) in v4.octets().iter().enumerate() {
                if i > 0 {
                    put(&mut buf, &mut n, b'.');
                }
                if o >= 100 {
                    put(&mut buf, &mut n, b'0' + o / 100);
                }
                if o >= 10 {
                    put(&mut buf, &mut n, b'0' + o / 10 % 10);
                }
                put(&mut buf, &mut n, b'0' + o % 10);
            }
            s.put_ascii(buf.get(..n).unwrap_or(&[]));
        }
        std::net::IpAddr::V6(v6) => {
            // Display's compression rules, into a stack buffer: no allocation per record.
            use std::io::Write as _;
            let mut buf = [0u8; 48];
            let mut cur = std::io::Cursor::new(&mut buf[..]);
            if write!(cur, "{v6}").is_ok() {
                let n = cur.position() as usize;
                s.put_ascii(buf.get(..n).unwrap_or(&[]));
            }
        }
    }
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
    let mut buf = *b".000000Z";
    let mut v = micros;
    for i in (1..7).rev() {
        if let Some(d) = buf.get_mut(i) {
            *d = b'0' + (v % 10) as u8;
        }
        v /= 10;
    }
    s.put_ascii(&buf);
}

/// Appends microseconds as seconds with six decimals (`{:.6}` of the seconds).
pub fn push_secs6(s: &mut impl Text, micros: i64) {
    if micros < 0 {
        s.put("-");
    }
    let m = micros.unsigned_abs();
    push_u64(s, m / 1_000_000);
    s.put(".");
    push_padded(s, m % 1_000_000, 6);
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

    #[test]
    fn addresses_match_display() {
        for a in [
            Addr::v4([0, 0, 0, 0]),
            Addr::v4([192, 168, 10, 255]),
            Addr::v6([0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
        ] {
            let mut s = String::new();
            push_ip(&mut s, &a);
            assert_eq!(s, a.to_ip().to_string());
        }
    }
}
