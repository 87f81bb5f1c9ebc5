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
    pub const PPP: i32 = 9;
    pub const FDDI: i32 = 10;
    pub const PPP_SERIAL: i32 = 50;
    pub const PPP_ETHER: i32 = 51;
    pub const IEEE802_11: i32 = 105;
    pub const IEEE802_11_RADIOTAP: i32 = 127;
}

pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const VLAN: u16 = 0x8100;
    pub const IPV6: u16 = 0x86DD;
    pub const QINQ: u16 = 0x88A8;
    pub const QINQ_OLD: u16 = 0x9100;
    pub const MPLS: u16 = 0x8847;
    pub const MPLS_MULTICAST: u16 = 0x8848;
    pub const PPPOE_SESSION: u16 = 0x8864;
    pub const PBB: u16 = 0x88E7;
    pub const VNTAG: u16 = 0x8926;
    pub const FABRICPATH: u16 = 0x8903;
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

/// True for the link types [`strip`] decodes.
pub fn is_supported(linktype: i32) -> bool {
    matches!(
        linktype,
        dlt::EN10MB
            | dlt::FDDI
            | dlt::PPP
            | dlt::PPP_SERIAL
            | dlt::PPP_ETHER
            | dlt::IEEE802_11
            | dlt::IEEE802_11_RADIOTAP
            | dlt::LINUX_SLL
            | dlt::LINUX_SLL2
            | dlt::RAW
            | dlt::RAW_BSD
            | dlt::RAW_OPENBSD
            | dlt::IPV4
            | dlt::IPV6
            | dlt::NULL
            | dlt::LOOP
    )
}

/// Strips the link layer. Returns what follows and the VLAN tags seen.
pub fn strip(linktype: i32, frame: &[u8]) -> Result<(NetLayer, &[u8], Vlans), Undecodable> {
    let mut vlans = Vlans::default();
    match linktype {
        dlt::EN10MB => ethernet(frame, &mut vlans),
        dlt::FDDI => {
            // Frame control (1), destination (6), source (6), then LLC.
            let rest = frame.get(13..).ok_or(Undecodable::TruncatedLink)?;
            let (et, rest) = llc_snap(rest)?;
            after_ethertype(et, rest, &mut vlans, 0)
        }
        dlt::PPP | dlt::PPP_SERIAL | dlt::PPP_ETHER => {
            let rest = if dlt::PPP_ETHER == linktype {
                // PPPoE without Ethernet: version/type, code, session id, length.
                frame.get(6..).ok_or(Undecodable::TruncatedLink)?
            } else {
                frame
            };
            let (net, rest) = ppp(rest)?;
            Ok((net, rest, vlans))
        }
        dlt::LINUX_SLL => {
            // 16 bytes: packet type, ARPHRD type, address length, address (8), protocol.
            let proto = be16(frame, 14).ok_or(Undecodable::TruncatedLink)?;
            let rest = frame.get(16..).ok_or(Undecodable::TruncatedLink)?;
            after_ethertype(proto, rest, &mut vlans, 0)
        }
        dlt::LINUX_SLL2 => {
            // 20 bytes: protocol, reserved, ifindex, ARPHRD type, packet type, addr len, addr (8).
            let proto = be16(frame, 0).ok_or(Undecodable::TruncatedLink)?;
            let rest = frame.get(20..).ok_or(Undecodable::TruncatedLink)?;
            after_ethertype(proto, rest, &mut vlans, 0)
        }
        dlt::IEEE802_11 => {
            let (et, rest) = ieee802_11(frame)?;
            after_ethertype(et, rest, &mut vlans, 0)
        }
        dlt::IEEE802_11_RADIOTAP => {
            // Radiotap: version, pad, length (little-endian), present flags...
            let len = frame
                .get(2..4)
                .and_then(|b| match b {
                    [x, y] => Some(usize::from(u16::from_le_bytes([*x, *y]))),
                    _ => None,
                })
                .ok_or(Undecodable::TruncatedLink)?;
            let rest = frame.get(len..).ok_or(Undecodable::TruncatedLink)?;
            let (et, rest) = ieee802_11(rest)?;
            after_ethertype(et, rest, &mut vlans, 0)
        }
        dlt::RAW | dlt::RAW_BSD | dlt::RAW_OPENBSD => Ok((NetLayer::IpAny, frame, vlans)),
        dlt::IPV4 => Ok((NetLayer::Ipv4, frame, vlans)),
        dlt::IPV6 => Ok((NetLayer::Ipv6, frame, vlans)),
        dlt::NULL | dlt::LOOP => {
            let &[h0, h1, h2, h3, ..] = frame else {
                return Err(Undecodable::TruncatedLink);
            };
            // NULL is in the capturing host's byte order, LOOP in network order; the family
            // values are small, so whichever end holds a non-zero byte tells the order.
            let family = if h0 == 0 && h1 == 0 {
                u32::from(h3) | (u32::from(h2) << 8)
            } else {
                u32::from(h0) | (u32::from(h1) << 8)
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

/// Ethernet II (or 802.3 with LLC/SNAP) and whatever tags and shims follow.
fn ethernet<'a>(
    frame: &'a [u8],
    vlans: &mut Vlans,
) -> Result<(NetLayer, &'a [u8], Vlans), Undecodable> {
    let et = be16(frame, 12).ok_or(Undecodable::TruncatedLink)?;
    let rest = frame.get(14..).ok_or(Undecodable::TruncatedLink)?;
    // Untagged IP, most frames: what `after_ethertype` gives them, without its loop.
    match et {
        ethertype::IPV4 => return Ok((NetLayer::Ipv4, rest, *vlans)),
        ethertype::IPV6 => return Ok((NetLayer::Ipv6, rest, *vlans)),
        _ => {}
    }
    if et < 0x0600 {
        // An 802.3 length field: LLC follows.
        let (et, rest) = llc_snap(rest)?;
        return after_ethertype(et, rest, vlans, 0);
    }
    after_ethertype(et, rest, vlans, 0)
}

/// LLC with a SNAP header carrying an EtherType (AA AA 03, OUI, type).
fn llc_snap(b: &[u8]) -> Result<(u16, &[u8]), Undecodable> {
    match b {
        [0xaa, 0xaa, 0x03, _, _, _, t0, t1, rest @ ..] => {
            Ok((u16::from_be_bytes([*t0, *t1]), rest))
        }
        [_, _, _, ..] => Err(Undecodable::NonIp),
        _ => Err(Undecodable::TruncatedLink),
    }
}

/// An IEEE 802.11 data frame: MAC header (3 or 4 addresses, QoS and HT control when present),
/// then LLC/SNAP. Management, control, null-data and protected (encrypted) frames carry no IP
/// we can read. For an A-MSDU only the first subframe is taken.
fn ieee802_11(b: &[u8]) -> Result<(u16, &[u8]), Undecodable> {
    let (fc0, fc1) = match b {
        [a, b, ..] => (*a, *b),
        _ => return Err(Undecodable::TruncatedLink),
    };
    let frame_type = (fc0 >> 2) & 3;
    let subtype = fc0 >> 4;
    if frame_type != 2 || subtype & 0x4 != 0 || fc1 & 0x40 != 0 {
        return Err(Undecodable::NonIp);
    }
    let mut hdr = 24;
    if fc1 & 0x03 == 0x03 {
        hdr += 6; // WDS: a fourth address
    }
    let qos = subtype & 0x8 != 0;
    let mut amsdu = false;
    if qos {
        amsdu = b.get(hdr).ok_or(Undecodable::TruncatedLink)? & 0x80 != 0;
        hdr += 2;
        if fc1 & 0x80 != 0 {
            hdr += 4; // HT control
        }
    }
    let mut body = b.get(hdr..).ok_or(Undecodable::TruncatedLink)?;
    if amsdu {
        // Subframe header: destination, source, length; then LLC/SNAP.
        body = body.get(14..).ok_or(Undecodable::TruncatedLink)?;
    }
    llc_snap(body)
}

/// PPP protocol field (with or without the FF 03 address/control bytes, 1- or 2-byte protocol).
fn ppp(b: &[u8]) -> Result<(NetLayer, &[u8]), Undecodable> {
    let b = match b {
        [0xff, 0x03, rest @ ..] => rest,
        _ => b,
    };
    let (proto, rest) = match b {
        [p, rest @ ..] if p & 1 == 1 => (u16::from(*p), rest),
        [p0, p1, rest @ ..] => (u16::from_be_bytes([*p0, *p1]), rest),
        _ => return Err(Undecodable::TruncatedLink),
    };
    match proto {
        0x0021 => Ok((NetLayer::Ipv4, rest)),
        0x0057 => Ok((NetLayer::Ipv6, rest)),
        _ => Err(Undecodable::NonIp),
    }
}

/// Follows an EtherType through VLAN tags, MPLS labels, PPPoE, PBB and VN-Tag to IP.
fn after_ethertype<'a>(
    mut et: u16,
    mut rest: &'a [u8],
    vlans: &mut Vlans,
    mut depth: u32,
) -> Result<(NetLayer, &'a [u8], Vlans), Undecodable> {
    loop {
        depth += 1;
        if depth > 16 {
            return Err(Undecodable::TooManyVlanTags);
        }
        match et {
            ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_OLD => {
                let tci = be16(rest, 0).ok_or(Undecodable::TruncatedLink)?;
                if vlans.outer == 0 {
                    vlans.outer = tci & 0x0fff;
                } else if vlans.inner == 0 {
                    vlans.inner = tci & 0x0fff;
                }
                et = be16(rest, 2).ok_or(Undecodable::TruncatedLink)?;
                rest = rest.get(4..).ok_or(Undecodable::TruncatedLink)?;
            }
            ethertype::FABRICPATH => {
                // Cisco FabricPath: FTag/TTL (2), then the whole classic Ethernet frame.
                et = be16(rest, 14).ok_or(Undecodable::TruncatedLink)?;
                rest = rest.get(16..).ok_or(Undecodable::TruncatedLink)?;
            }
            ethertype::VNTAG => {
                et = be16(rest, 4).ok_or(Undecodable::TruncatedLink)?;
                rest = rest.get(6..).ok_or(Undecodable::TruncatedLink)?;
            }
            ethertype::PBB => {
                // I-TAG (4), then the customer's destination and source MACs and EtherType.
                et = be16(rest, 16).ok_or(Undecodable::TruncatedLink)?;
                rest = rest.get(18..).ok_or(Undecodable::TruncatedLink)?;
            }
            ethertype::MPLS | ethertype::MPLS_MULTICAST => {
                // Labels until the bottom-of-stack bit, then IP (version nibble decides).
                let mut off = 0;
                loop {
                    let b2 = *rest.get(off + 2).ok_or(Undecodable::TruncatedLink)?;
                    off += 4;
                    if b2 & 1 == 1 {
                        break;
                    }
                    if off > 64 {
                        return Err(Undecodable::TooManyVlanTags);
                    }
                }
                let rest = rest.get(off..).ok_or(Undecodable::TruncatedLink)?;
                return Ok((NetLayer::IpAny, rest, *vlans));
            }
            ethertype::PPPOE_SESSION => {
                let body = rest.get(6..).ok_or(Undecodable::TruncatedLink)?;
                let (net, body) = ppp(body)?;
                return Ok((net, body, *vlans));
            }
            _ => return Ok((ether_net(et)?, rest, *vlans)),
        }
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
    fn mpls_pppoe_and_llc_snap() {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x88, 0x47, 0, 0, 0, 64, 0, 0, 1, 64, 0x45]);
        assert_eq!(strip(dlt::EN10MB, &f).unwrap().0, NetLayer::IpAny);
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x88, 0x64, 0x11, 0, 0, 1, 0, 10, 0x00, 0x57, 0x60]);
        let (net, rest, _) = strip(dlt::EN10MB, &f).unwrap();
        assert_eq!((net, rest), (NetLayer::Ipv6, &[0x60u8][..]));
        let mut f = vec![0x50u8; 13];
        f.extend_from_slice(&[0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00, 0x45]);
        assert_eq!(strip(dlt::FDDI, &f).unwrap().0, NetLayer::Ipv4);
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
        for lt in [
            dlt::EN10MB,
            dlt::LINUX_SLL,
            dlt::LINUX_SLL2,
            dlt::NULL,
            dlt::FDDI,
            dlt::PPP,
        ] {
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
