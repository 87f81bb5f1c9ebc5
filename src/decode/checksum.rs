//! Internet checksums (RFC 1071) for `--checksums verify`.

/// Adds `data` to a running one's-complement sum (not yet folded).
pub fn sum(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        if let [a, b] = c {
            acc = acc.wrapping_add(u32::from(u16::from_be_bytes([*a, *b])));
        }
    }
    if let [last] = chunks.remainder() {
        acc = acc.wrapping_add(u32::from(*last) << 8);
    }
    acc
}

pub fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// True when `data` (which includes its checksum field) sums to all ones.
pub fn valid(acc: u32, data: &[u8]) -> bool {
    fold(sum(acc, data)) == 0xffff
}

/// The pseudo-header sum for TCP/UDP/ICMPv6 over IPv4 or IPv6.
pub fn pseudo_header(src: &[u8], dst: &[u8], proto: u8, len: u32) -> u32 {
    let mut acc = sum(0, src);
    acc = sum(acc, dst);
    acc = acc.wrapping_add(u32::from(proto));
    acc.wrapping_add(len >> 16).wrapping_add(len & 0xffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // The example from RFC 1071 section 3: sum of these words is 0xddf2.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(0, &d)), 0xddf2);
    }

    #[test]
    fn ipv4_header_checksum() {
        // A real IPv4 header (127.0.0.1 -> 127.0.0.1, TCP) with a correct checksum.
        let h = [
            0x45, 0x00, 0x00, 0x3c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x06, 0x20, 0x74, 0x7f, 0x00,
            0x00, 0x01, 0x7f, 0x00, 0x00, 0x01,
        ];
        assert!(valid(0, &h));
        let mut bad = h;
        bad[11] ^= 1;
        assert!(!valid(0, &bad));
    }
}
