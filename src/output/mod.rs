//! Output: connection records as JSON lines or a Zeek conn.log, and the run summary.

pub mod alerts;
pub mod json;
pub mod ports;
pub mod progress;
pub mod report;
pub mod sink;
pub mod summary;
pub mod text;
pub mod tops;
pub mod writer;
pub mod zeek;

use crate::flow::key::proto;

/// How connection records are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ConnFormat {
    /// One EVE-like JSON object per line.
    Json,
    /// Zeek's tab-separated conn.log.
    Zeek,
}

/// The protocol name used in JSON (`proto`): Suricata's names for the transports synwatch
/// analyses, and Zeek's `unknown_transport` for every other IP protocol (whose number is in
/// `ip_proto`).
pub fn proto_name(p: u8) -> &'static str {
    match p {
        proto::TCP => "TCP",
        proto::UDP => "UDP",
        proto::ICMP => "ICMP",
        proto::ICMPV6 => "IPv6-ICMP",
        _ => "unknown_transport",
    }
}

/// A Zeek-style uid (`C` + base62) derived from the flow id; stable within a run.
pub fn uid(flow_id: u64) -> String {
    let mut s = String::with_capacity(18);
    write_uid(&mut s, flow_id);
    s
}

/// The base-62 digits, in the order of their values.
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The two base-62 digit characters of every number under 62², least significant first.
// Built at compile time, where an index out of bounds would be a build error.
#[allow(clippy::indexing_slicing)]
const PAIRS: [[u8; 2]; 3844] = {
    let mut t = [[0u8; 2]; 3844];
    let mut i = 0;
    while i < 3844 {
        t[i] = [ALPHABET[i % 62], ALPHABET[i / 62]];
        i += 1;
    }
    t
};

/// Appends the uid of `flow_id` to `s`: `C` and 17 base-62 digits of the mixed id, least
/// significant first; when the mixed id runs out of digits, those of the id rotated
/// (`rotate_left(17) | 1`) follow, as many times as needed.
pub fn write_uid(s: &mut impl text::Text, flow_id: u64) {
    /// 62^5, under 2^32: five digits at a time come from one 64-bit division, and each
    /// digit from a 32-bit one (17 64-bit divisions were 2.4 % of a run on small packets).
    const P5: u64 = 916_132_832;
    // Mix the id so consecutive flows do not get look-alike uids (splitmix64 finaliser).
    let mut x = flow_id.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    // `C`, 17 digits, and room for the end of a group of five that runs past them (the uid
    // is the first 18 bytes).
    let mut buf = [b'C'; 22];
    let mut n = 1;
    let mut v = x;
    while n < 18 {
        if v >= P5 {
            // Five digits: two pairs of characters from the table, then one, stored at once.
            let r = (v % P5) as u32;
            v /= P5;
            let pair = |x: u32| PAIRS.get((x % 3844) as usize).copied().unwrap_or(*b"00");
            let [a, b] = pair(r);
            let [c, d] = pair(r / 3844);
            let e = ALPHABET
                .get((r / (3844 * 3844)) as usize)
                .copied()
                .unwrap_or(b'0');
            if let Some(dst) = buf.get_mut(n..n + 5) {
                dst.copy_from_slice(&[a, b, c, d, e]);
            }
            n += 5;
        } else {
            let mut r = v as u32;
            loop {
                if let Some(slot) = buf.get_mut(n) {
                    *slot = ALPHABET.get((r % 62) as usize).copied().unwrap_or(b'0');
                }
                n += 1;
                r /= 62;
                if r == 0 {
                    break;
                }
            }
            v = flow_id.rotate_left(17) | 1;
        }
    }
    if let Some(uid) = buf.first_chunk::<18>() {
        s.put_ascii(uid);
    }
}

#[cfg(test)]
mod uid_tests {
    /// The uid as first written: one digit and one 64-bit division at a time.
    fn reference(flow_id: u64) -> String {
        const ALPHABET: &[u8; 62] =
            b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let mut x = flow_id.wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        let mut buf = [b'C'; 18];
        for d in buf.iter_mut().skip(1) {
            *d = ALPHABET[(x % 62) as usize];
            x /= 62;
            if x == 0 {
                x = flow_id.rotate_left(17) | 1;
            }
        }
        String::from_utf8(buf.to_vec()).unwrap()
    }

    #[test]
    fn uids_are_the_same_as_before() {
        let mut ids: Vec<u64> = (0..200_000).collect();
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ids.push(x);
            ids.push(x >> (x % 64));
        }
        ids.extend([u64::MAX, u64::MAX - 1, 1 << 63]);
        // Every uid runs out of the mixed id's digits (at most 11) and goes on with the
        // rotated id's; small ids make rotated ids under 62^5 (the last branch).
        for id in ids {
            assert_eq!(super::uid(id), reference(id), "flow id {id}");
        }
    }
}
