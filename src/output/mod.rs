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

/// Appends the uid of `flow_id` to `s`.
pub fn write_uid(s: &mut impl text::Text, flow_id: u64) {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    // Mix the id so consecutive flows do not get look-alike uids (splitmix64 finaliser).
    let mut x = flow_id.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    let mut buf = [b'C'; 18];
    for d in buf.iter_mut().skip(1) {
        *d = *ALPHABET.get((x % 62) as usize).unwrap_or(&b'0');
        x /= 62;
        if x == 0 {
            x = flow_id.rotate_left(17) | 1;
        }
    }
    s.put_ascii(&buf);
}
