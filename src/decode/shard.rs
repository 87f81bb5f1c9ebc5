//! Which worker owns a frame: a symmetric hash of its outermost IP address pair.
//!
//! Sharding by the address pair (not the 5-tuple) keeps together everything whose analysis
//! must happen in one place: both directions of a connection, every fragment of a datagram
//! (later fragments carry no ports), and every connection inside one tunnel. Frames without an
//! IP layer synwatch can read go to worker 0, which counts them.
//!
//! The price: all traffic between one pair of hosts (or through one tunnel) lands on one
//! worker. Cross-flow detectors (scans, floods) do not care, because they run after the
//! workers, on the merged records (see `pipeline`).

use super::link::{self, NetLayer};

/// The worker (0..`workers`) that analyses this frame.
pub fn owner(linktype: i32, frame: &[u8], workers: usize) -> usize {
    if workers <= 1 {
        return 0;
    }
    let Some(h) = pair_hash(linktype, frame) else {
        return 0;
    };
    // Multiply-shift onto 0..workers (no division).
    ((u128::from(h) * workers as u128) >> 64) as usize
}

/// A hash of the frame's outermost IP addresses that is the same in both directions.
pub fn pair_hash(linktype: i32, frame: &[u8]) -> Option<u64> {
    let (net, ip, _) = link::strip(linktype, frame).ok()?;
    let version = ip.first()? >> 4;
    let (a, b) = match (net, version) {
        (NetLayer::Ipv4 | NetLayer::IpAny, 4) => {
            let src = u32::from_be_bytes(ip.get(12..16)?.try_into().ok()?);
            let dst = u32::from_be_bytes(ip.get(16..20)?.try_into().ok()?);
            (u64::from(src), u64::from(dst))
        }
        (NetLayer::Ipv6 | NetLayer::IpAny, 6) => (fold(ip.get(8..24)?)?, fold(ip.get(24..40)?)?),
        _ => return None,
    };
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    Some(mix(
        lo.rotate_left(29) ^ hi.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    ))
}

/// An IPv6 address folded to 64 bits.
fn fold(addr: &[u8]) -> Option<u64> {
    let hi = u64::from_be_bytes(addr.get(..8)?.try_into().ok()?);
    let lo = u64::from_be_bytes(addr.get(8..16)?.try_into().ok()?);
    Some(hi ^ lo.rotate_left(32))
}

/// The splitmix64 finaliser.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::link::dlt;

    fn v4(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 20, 0, 0, 0, 0, 64, 6, 0, 0];
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p
    }

    #[test]
    fn both_directions_have_one_owner() {
        for i in 0..200u8 {
            let a = [10, 0, i, 1];
            let b = [192, 168, 1, i.wrapping_mul(7)];
            for n in [2, 3, 4, 8] {
                assert_eq!(owner(dlt::RAW, &v4(a, b), n), owner(dlt::RAW, &v4(b, a), n));
            }
        }
    }

    #[test]
    fn pairs_spread_over_workers() {
        let mut count = [0usize; 4];
        for i in 0..4000u32 {
            let a = i.to_be_bytes();
            let w = owner(dlt::RAW, &v4(a, [10, 0, 0, 1]), 4);
            count[w] += 1;
        }
        for c in count {
            assert!((800..1200).contains(&c), "{count:?}");
        }
    }

    #[test]
    fn non_ip_goes_to_worker_zero() {
        assert_eq!(owner(dlt::RAW, &[0x00, 1, 2], 4), 0);
        assert_eq!(owner(dlt::EN10MB, &[0u8; 10], 4), 0);
    }
}
