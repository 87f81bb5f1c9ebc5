//! Tunnels: finding the packet inside a decoded packet.
//!
//! Cloud traffic mirroring hands sensors VXLAN, Geneve and GRE/ERSPAN; mobile cores carry
//! GTP-U; IPv6 transition uses Teredo, AYIYA, 6in4. For each the outer packet is accounted to
//! its own connection (a UDP flow, or the IP-protocol flow for GRE and IP-in-IP), and the inner
//! packet is decoded again and tracked with `tunnel_parents` naming the outer connection — as
//! Zeek does (its packet analyzers `VXLAN`, `Geneve`, `GRE`, `IPTunnel`, `GTPv1`, `Teredo`,
//! `AYIYA`). Which UDP ports mean which tunnel follows Zeek's defaults
//! (`Tunnel::vxlan_ports`, `geneve_ports`, `teredo_ports`, `ayiya_ports`, `gtpv1`'s 2152, and
//! 4754 for GRE-in-UDP, RFC 8086); Teredo is also recognised by content on any port, with
//! Zeek's own test (`TeredoAnalyzer::DetectProtocol`).
//!
//! Nothing here allocates or panics: a header that does not parse means "no tunnel", and the
//! outer packet is still counted for what it is.

use super::link::dlt;
use super::{Decoded, Transport};
use crate::flow::key::proto;

/// The kinds of encapsulation synwatch opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TunnelKind {
    Vxlan,
    Geneve,
    /// GRE carrying IP or Ethernet (RFC 2784/2890), also inside UDP (RFC 8086).
    Gre,
    /// Cisco ERSPAN type I, II or III inside GRE: mirrored Ethernet frames.
    Erspan,
    /// PPTP's enhanced GRE (version 1) carrying PPP.
    Pptp,
    /// Aruba access points' GRE carrying 802.11 frames.
    Aruba,
    GtpU,
    Teredo,
    Ayiya,
    /// IPv4 or IPv6 directly inside IPv4 or IPv6 (IP protocols 4 and 41, which covers 6in4).
    IpInIp,
}

impl TunnelKind {
    pub const ALL: [TunnelKind; 10] = [
        TunnelKind::Vxlan,
        TunnelKind::Geneve,
        TunnelKind::Gre,
        TunnelKind::Erspan,
        TunnelKind::Pptp,
        TunnelKind::Aruba,
        TunnelKind::GtpU,
        TunnelKind::Teredo,
        TunnelKind::Ayiya,
        TunnelKind::IpInIp,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    /// Stable machine name (also what Zeek logs as the outer connection's service).
    pub fn name(self) -> &'static str {
        match self {
            TunnelKind::Vxlan => "vxlan",
            TunnelKind::Geneve => "geneve",
            TunnelKind::Gre => "gre",
            TunnelKind::Erspan => "erspan",
            TunnelKind::Pptp => "pptp",
            TunnelKind::Aruba => "aruba",
            TunnelKind::GtpU => "gtpv1",
            TunnelKind::Teredo => "teredo",
            TunnelKind::Ayiya => "ayiya",
            TunnelKind::IpInIp => "ip-in-ip",
        }
    }
}

/// UDP ports that mean a tunnel (either side).
pub mod port {
    pub const VXLAN: u16 = 4789;
    pub const GENEVE: u16 = 6081;
    pub const GTP_U: u16 = 2152;
    pub const TEREDO: u16 = 3544;
    pub const AYIYA: u16 = 5072;
    pub const GRE_IN_UDP: u16 = 4754;
}

/// The packet inside a tunnel: its link type (as a DLT) and bytes.
#[derive(Clone, Copy, Debug)]
pub struct Inner<'a> {
    pub kind: TunnelKind,
    pub linktype: i32,
    pub bytes: &'a [u8],
}

/// Looks for a tunnel in `d`, whose bytes are `frame` (as given to `decode`).
pub fn inner<'a>(d: &Decoded, frame: &'a [u8]) -> Option<Inner<'a>> {
    if d.fragmented {
        return None; // the payload is not the whole datagram
    }
    let payload = frame.get(d.payload_off as usize..)?;
    match d.transport {
        Transport::Udp { sport, dport, .. } => udp(sport, dport, payload),
        Transport::Other => match d.ip_proto {
            4 => Some(Inner {
                kind: TunnelKind::IpInIp,
                linktype: dlt::IPV4,
                bytes: payload,
            }),
            41 => Some(Inner {
                kind: TunnelKind::IpInIp,
                linktype: dlt::IPV6,
                bytes: payload,
            }),
            proto::GRE => gre(payload),
            _ => None,
        },
        _ => None,
    }
}

fn either(sport: u16, dport: u16, p: u16) -> bool {
    sport == p || dport == p
}

fn udp(sport: u16, dport: u16, b: &[u8]) -> Option<Inner<'_>> {
    if either(sport, dport, port::VXLAN) {
        return vxlan(b);
    }
    if either(sport, dport, port::GENEVE) {
        return geneve(b);
    }
    if either(sport, dport, port::GTP_U) {
        return gtp_u(b);
    }
    if either(sport, dport, port::AYIYA) {
        return ayiya(b);
    }
    if either(sport, dport, port::GRE_IN_UDP) {
        return gre(b);
    }
    if either(sport, dport, port::TEREDO) || looks_like_teredo(b) {
        return teredo(b);
    }
    None
}

/// VXLAN (RFC 7348): 8 bytes (flags with the I bit, VNI), then an Ethernet frame.
fn vxlan(b: &[u8]) -> Option<Inner<'_>> {
    let rest = b.get(8..)?;
    if rest.len() < 14 {
        return None;
    }
    Some(Inner {
        kind: TunnelKind::Vxlan,
        linktype: dlt::EN10MB,
        bytes: rest,
    })
}

/// Geneve (RFC 8926): version 0, options length in 4-byte words, protocol type.
fn geneve(b: &[u8]) -> Option<Inner<'_>> {
    let (b0, ptype) = match b {
        [b0, _, p0, p1, ..] => (*b0, u16::from_be_bytes([*p0, *p1])),
        _ => return None,
    };
    if b0 >> 6 != 0 {
        return None;
    }
    let hdr = 8 + usize::from(b0 & 0x3f) * 4;
    let rest = b.get(hdr..)?;
    ethertype_inner(TunnelKind::Geneve, ptype, rest)
}

/// The inner link type for a protocol given as an EtherType (GRE, Geneve).
fn ethertype_inner(kind: TunnelKind, et: u16, rest: &[u8]) -> Option<Inner<'_>> {
    let linktype = match et {
        0x6558 => dlt::EN10MB, // transparent Ethernet bridging
        0x0800 => dlt::IPV4,
        0x86dd => dlt::IPV6,
        _ => return None,
    };
    Some(Inner {
        kind,
        linktype,
        bytes: rest,
    })
}

/// GRE (RFC 2784, 2890) and what rides in it, as Zeek's GRE analyzer reads it: version 0 with
/// IP, Ethernet (0x6558), ERSPAN I/II (0x88be), ERSPAN III (0x22eb) or Aruba 802.11; version 1
/// is PPTP's enhanced GRE carrying PPP. Routing (deprecated) and unknown flags are refused.
fn gre(b: &[u8]) -> Option<Inner<'_>> {
    let (flags, ptype) = match b {
        [f0, f1, p0, p1, ..] => (
            u16::from_be_bytes([*f0, *f1]),
            u16::from_be_bytes([*p0, *p1]),
        ),
        _ => return None,
    };
    let version = flags & 0x7;
    if version > 1 || flags & 0x4000 != 0 || flags & 0x0078 != 0 {
        return None;
    }
    let mut len = 4;
    for bit in [0x8000, 0x2000, 0x1000, 0x0080] {
        if flags & bit != 0 {
            len += 4;
        }
    }
    let rest = b.get(len..)?;
    if version == 1 {
        if ptype != 0x880b {
            return None;
        }
        return Some(Inner {
            kind: TunnelKind::Pptp,
            linktype: dlt::PPP,
            bytes: rest,
        });
    }
    match ptype {
        0x88be => {
            // ERSPAN type I has no header of its own; type II (sequence bit set) has 8 bytes.
            let skip = if flags & 0x1000 != 0 { 8 } else { 0 };
            let rest = rest.get(skip..)?;
            (rest.len() > 14).then_some(Inner {
                kind: TunnelKind::Erspan,
                linktype: dlt::EN10MB,
                bytes: rest,
            })
        }
        0x22eb => {
            // ERSPAN type III: 12 bytes, and an 8-byte platform sub-header when O is set.
            let o_flag = rest.get(11)? & 0x01 != 0;
            let skip = if o_flag { 20 } else { 12 };
            let rest = rest.get(skip..)?;
            (rest.len() > 14).then_some(Inner {
                kind: TunnelKind::Erspan,
                linktype: dlt::EN10MB,
                bytes: rest,
            })
        }
        t if (t & 0x8200 == 0x8200 && t & 0x0f == 0)
            || (t & 0x8300 == 0x8300 && t & 0x0f == 0 && t <= 0x8370)
            || t == 0x9000 =>
        {
            (!rest.is_empty()).then_some(Inner {
                kind: TunnelKind::Aruba,
                linktype: dlt::IEEE802_11,
                bytes: rest,
            })
        }
        t => ethertype_inner(TunnelKind::Gre, t, rest),
    }
}

/// GTP-U version 1 (3GPP TS 29.281): only G-PDUs (message type 255) carry user packets; the
/// optional fields and the extension header chain are skipped.
fn gtp_u(b: &[u8]) -> Option<Inner<'_>> {
    let (flags, msg_type) = match b {
        [f, t, ..] => (*f, *t),
        _ => return None,
    };
    if flags >> 5 != 1 || flags & 0x10 == 0 || msg_type != 0xff {
        return None;
    }
    let mut off = 8;
    if flags & 0x07 != 0 {
        off = 12; // sequence number, N-PDU number, next extension header type
        let mut next = *b.get(11)?;
        let mut hops = 0;
        while next != 0 {
            hops += 1;
            if hops > 16 {
                return None;
            }
            let words = usize::from(*b.get(off)?);
            if words == 0 {
                return None;
            }
            off += words * 4;
            next = *b.get(off.checked_sub(1)?)?;
        }
    }
    let rest = b.get(off..)?;
    match rest.first()? >> 4 {
        4 | 6 => Some(Inner {
            kind: TunnelKind::GtpU,
            linktype: dlt::RAW,
            bytes: rest,
        }),
        _ => None,
    }
}

/// AYIYA ("anything in anything"): identity and signature of announced lengths, opcode 1
/// (forward) carrying IPv4 or IPv6.
fn ayiya(b: &[u8]) -> Option<Inner<'_>> {
    let (id_len, sig_len, op, next) = match b {
        [i, s, o, n, ..] => (i >> 4, s >> 4, o & 0x0f, *n),
        _ => return None,
    };
    if op != 1 {
        return None;
    }
    let linktype = match next {
        4 => dlt::IPV4,
        41 => dlt::IPV6,
        _ => return None,
    };
    let hdr = 8 + (1usize << id_len) + usize::from(sig_len) * 4;
    Some(Inner {
        kind: TunnelKind::Ayiya,
        linktype,
        bytes: b.get(hdr..)?,
    })
}

/// Teredo (RFC 4380): optional authentication and origin indication headers, then IPv6. The
/// inner packet must fit; a "bubble" (no next header, no payload) may carry trailing bytes.
fn teredo(b: &[u8]) -> Option<Inner<'_>> {
    let mut rest = b;
    let mut seen_auth = false;
    let mut seen_origin = false;
    loop {
        match rest {
            [0x00, 0x00, ..] if !seen_origin => {
                seen_origin = true;
                rest = rest.get(8..)?;
            }
            [0x00, 0x01, id_len, au_len, ..] if !seen_auth && !seen_origin => {
                seen_auth = true;
                let total = 4 + usize::from(*id_len) + usize::from(*au_len) + 9;
                rest = rest.get(total..)?;
            }
            [v, ..] if v >> 4 == 6 => break,
            _ => return None,
        }
    }
    if rest.len() < 40 {
        return None;
    }
    let &[_, _, _, _, l0, l1, next_header, ..] = rest else {
        return None;
    };
    let payload_len = usize::from(u16::from_be_bytes([l0, l1]));
    let fits = 40 + payload_len <= rest.len();
    let bubble = next_header == 59 && payload_len == 0;
    if !fits && !bubble {
        return None;
    }
    Some(Inner {
        kind: TunnelKind::Teredo,
        linktype: dlt::IPV6,
        bytes: rest,
    })
}

/// Zeek's content test for Teredo on ports other than 3544: an IPv6 header whose source or
/// destination is in 2001:0000::/32, or authentication / origin indication headers followed by
/// IPv6.
fn looks_like_teredo(b: &[u8]) -> bool {
    if b.len() < 40 {
        return false;
    }
    let &[b0, b1, b2, b3, ..] = b else {
        return false;
    };
    if b0 >> 4 == 6 {
        let prefix = [0x20, 0x01, 0x00, 0x00];
        return b.get(8..12) == Some(&prefix[..]) || b.get(24..28) == Some(&prefix[..]);
    }
    if b0 != 0 {
        return false;
    }
    let mut rest = b;
    if b1 == 1 {
        let skip = 13 + usize::from(b2) + usize::from(b3);
        match rest.get(skip..) {
            Some(r) if r.len() >= 40 => rest = r,
            _ => return false,
        }
        if rest.get(..2) != Some(&[0, 0][..]) {
            return false;
        }
    } else if b1 != 0 {
        return false;
    }
    match rest.get(8..) {
        Some(r) if r.len() >= 40 => r.first().is_some_and(|v| v >> 4 == 6),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gre_header_lengths_follow_the_flags() {
        // C and K set: 4 + 4 + 4 bytes, then IPv4.
        let mut b = vec![0xa0, 0x00, 0x08, 0x00, 0, 0, 0, 0, 0, 0, 0, 1];
        b.extend_from_slice(&[0x45; 20]);
        let i = gre(&b).unwrap();
        assert_eq!(i.kind, TunnelKind::Gre);
        assert_eq!(i.linktype, dlt::IPV4);
        assert_eq!(i.bytes.len(), 20);
        // Routing bit: refused; version 2: refused.
        assert!(gre(&[0x40, 0, 0x08, 0, 0, 0, 0, 0]).is_none());
        assert!(gre(&[0x00, 0x02, 0x08, 0x00, 0x45]).is_none());
        // Version 1 must be PPP.
        assert!(gre(&[0x30, 0x81, 0x08, 0x00, 0, 0, 0, 0, 0, 0, 0, 0]).is_none());
        let pptp = [
            0x30, 0x81, 0x88, 0x0b, 0, 4, 0, 1, 0, 0, 0, 1, 0xff, 0x03, 0x00, 0x21,
        ];
        let i = gre(&pptp).unwrap();
        assert_eq!((i.kind, i.linktype), (TunnelKind::Pptp, dlt::PPP));
    }

    #[test]
    fn short_or_odd_headers_are_not_tunnels() {
        for n in 0..40 {
            let b = vec![0u8; n];
            assert!(vxlan(&b).is_none() || n >= 22);
            let _ = geneve(&b);
            let _ = gtp_u(&b);
            let _ = ayiya(&b);
            let _ = teredo(&b);
            let _ = gre(&b);
            assert!(!looks_like_teredo(&b));
        }
        // GTP-U echo request (type 1) carries no user packet.
        assert!(gtp_u(&[0x32, 0x01, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0x45]).is_none());
        // An extension header chain that never ends within the packet.
        assert!(gtp_u(&[0x34, 0xff, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0x85, 1, 0, 0, 0x85]).is_none());
    }

    #[test]
    fn teredo_bubble_may_carry_trailing_bytes_other_packets_must_fit() {
        let mut ip6 = vec![0x60, 0, 0, 0, 0, 0, 59, 64];
        ip6.extend_from_slice(&[0u8; 32]);
        let mut with_tail = ip6.clone();
        with_tail.extend_from_slice(b"tail");
        assert!(teredo(&with_tail).is_some());
        // Claims 100 bytes of UDP payload but has none.
        let mut bad = ip6.clone();
        bad[4] = 0;
        bad[5] = 100;
        bad[6] = 17;
        assert!(teredo(&bad).is_none());
        // Origin indication, then the bubble.
        let mut oi = vec![0, 0, 0xaa, 0xbb, 1, 2, 3, 4];
        oi.extend_from_slice(&ip6);
        assert_eq!(teredo(&oi).unwrap().bytes.len(), 40);
    }
}
