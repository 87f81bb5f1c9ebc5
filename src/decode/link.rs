//! Link layers: from a captured frame to the network-layer bytes it carries.
//!
//! Handles the link types real captures use (GUIDE §2): Ethernet with 802.1Q / 802.1ad / QinQ
//! tags, Linux cooked SLL and SLL2, raw IP, IPv4 / IPv6 link types, BSD NULL and LOOP.

use super::Undecodable;

/// DLT values as libpcap reports them (`pcap_datalink`).
pub mod dlt {
    pub const NULL: i32 = 0;
    pub const EN10MB: i32 = 1;
    pub const RAW_BSD: i32 = 12;
    pub const RAW_OPENBSD: i32 = 14;
    pub const RAW: i32 = 101;
    pub const LOOP: i32 = 108;
    pub const LINUX_SLL: i32 = 113;
    pub const IPV4: i32 = 228;
    pub const IPV6: i32 = 229;
    pub const LINUX_SLL2: i32 = 276;
}

pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const VLAN: u16 = 0x8100;
    pub const IPV6: u16 = 0x86DD;
    pub const QINQ: u16 = 0x88A8;
    pub const QINQ_OLD: u16 = 0x9100;
}

/// Up to two VLAN ids, outermost first (0 = none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Vlans {
    pub outer: u16,
    pub inner: u16,
}

/// What a frame carries at the network layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetLayer {
    Ipv4,
    Ipv6,
    /// An IP version nibble decides (raw IP link types).
    IpAny,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Strips the link layer. Returns what follows and the VLAN tags seen.
pub fn strip(linktype: i32, frame: &[u8]) -> Result<(NetLayer, &[u8], Vlans), Undecodable> {
    let mut vlans = Vlans::default();
    match linktype {
        dlt::EN10MB => {
            let mut et = be16(frame, 12).ok_or(Undecodable::TruncatedLink)?;
            let mut off = 14;
            let mut tags = 0;
            while matches!(et, ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_OLD) {
                let tci = be16(frame, off).ok_or(Undecodable::TruncatedLink)?;
                et = be16(frame, off + 2).ok_or(Undecodable::TruncatedLink)?;
                match tags {
                    0 => vlans.outer = tci & 0x0fff,
                    1 => vlans.inner = tci & 0x0fff,
                    _ => {}
                }
                tags += 1;
                off += 4;
                if tags > 8 {
                    return Err(Undecodable::TooManyVlanTags);
                }
            }
            let rest = frame.get(off..).ok_or(Undecodable::TruncatedLink)?;
            Ok((ether_net(et)?, rest, vlans))
        }
        dlt::LINUX_SLL => {
            // 16 bytes: packet type, ARPHRD type, address length, address (8), protocol.
            let proto = be16(frame, 14).ok_or(Undecodable::TruncatedLink)?;
            let rest = frame.get(16..).ok_or(Undecodable::TruncatedLink)?;
            Ok((ether_net(proto)?, rest, vlans))
        }
        dlt::LINUX_SLL2 => {
            // 20 bytes: protocol, reserved, ifindex, ARPHRD type, packet type, addr len, addr (8).
            let proto = be16(frame, 0).ok_or(Undecodable::TruncatedLink)?;
            let rest = frame.get(20..).ok_or(Undecodable::TruncatedLink)?;
            Ok((ether_net(proto)?, rest, vlans))
        }
        dlt::RAW | dlt::RAW_BSD | dlt::RAW_OPENBSD => Ok((NetLayer::IpAny, frame, vlans)),
        dlt::IPV4 => Ok((NetLayer::Ipv4, frame, vlans)),
        dlt::IPV6 => Ok((NetLayer::Ipv6, frame, vlans)),
        dlt::NULL | dlt::LOOP => {
            let h = frame.get(..4).ok_or(Undecodable::TruncatedLink)?;
            // NULL is in the capturing host's byte order, LOOP in network order; the family
            // values are small, so whichever end holds a non-zero byte tells the order.
            let family = if h[0] == 0 && h[1] == 0 {
                u32::from(h[3]) | (u32::from(h[2]) << 8)
            } else {
                u32::from(h[0]) | (u32::from(h[1]) << 8)
            };
            let net = match family {
                2 => NetLayer::Ipv4,
                10 | 24 | 28 | 30 => NetLayer::Ipv6,
                _ => return Err(Undecodable::NonIp),
            };
            Ok((net, frame.get(4..).unwrap_or(&[]), vlans))
        }
        _ => Err(Undecodable::UnsupportedLinktype),
    }
}

fn ether_net(et: u16) -> Result<NetLayer, Undecodable> {
    match et {
        ethertype::IPV4 => Ok(NetLayer::Ipv4),
        ethertype::IPV6 => Ok(NetLayer::Ipv6),
        ethertype::ARP => Err(Undecodable::Arp),
        _ => Err(Undecodable::NonIp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qinq_tags_are_read_outermost_first() {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[
            0x88, 0xa8, 0x00, 0x64, 0x81, 0x00, 0x20, 0x0a, 0x08, 0x00, 0x45,
        ]);
        let (net, rest, v) = strip(dlt::EN10MB, &f).unwrap();
        assert_eq!(net, NetLayer::Ipv4);
        assert_eq!(rest, &[0x45]);
        assert_eq!(
            v,
            Vlans {
                outer: 100,
                inner: 10
            }
        );
    }

    #[test]
    fn null_family_in_either_byte_order() {
        assert_eq!(
            strip(dlt::NULL, &[2, 0, 0, 0, 0x45]).unwrap().0,
            NetLayer::Ipv4
        );
        assert_eq!(
            strip(dlt::LOOP, &[0, 0, 0, 30, 0x60]).unwrap().0,
            NetLayer::Ipv6
        );
        assert_eq!(
            strip(dlt::NULL, &[7, 0, 0, 0]).unwrap_err(),
            Undecodable::NonIp
        );
    }

    #[test]
    fn short_frames_are_errors_not_panics() {
        for lt in [dlt::EN10MB, dlt::LINUX_SLL, dlt::LINUX_SLL2, dlt::NULL] {
            for n in 0..4 {
                assert!(strip(lt, &vec![0x81; n]).is_err());
            }
        }
        assert_eq!(
            strip(999, &[1, 2]).unwrap_err(),
            Undecodable::UnsupportedLinktype
        );
    }
}
