//! Decode: from captured bytes to the few header fields flow tracking needs.
//!
//! Link layers are stripped in [`link`]; IP (with IPv4 options, IPv6 extension headers and
//! fragments) and the transport headers are read with `etherparse`'s slices. Nothing here
//! allocates, and nothing panics on any input: what cannot be decoded is reported as an
//! [`Undecodable`] reason and counted by the caller.

pub mod checksum;
pub mod defrag;
pub mod link;
pub mod shard;
pub mod tunnel;

use etherparse::{IpNumber, Ipv4HeaderSlice, LaxIpPayloadSlice, LaxIpSlice, LenSource, TcpSlice};

use crate::time::Micros;
use link::NetLayer;
pub use link::Vlans;

/// Why a packet could not be decoded into a flow observation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Undecodable {
    UnsupportedLinktype,
    TruncatedLink,
    TooManyVlanTags,
    Arp,
    NonIp,
    TruncatedIp,
    BadIpHeader,
    TruncatedTransport,
    BadTransportHeader,
    BadIpChecksum,
}

impl Undecodable {
    pub const ALL: [Undecodable; 10] = [
        Undecodable::UnsupportedLinktype,
        Undecodable::TruncatedLink,
        Undecodable::TooManyVlanTags,
        Undecodable::Arp,
        Undecodable::NonIp,
        Undecodable::TruncatedIp,
        Undecodable::BadIpHeader,
        Undecodable::TruncatedTransport,
        Undecodable::BadTransportHeader,
        Undecodable::BadIpChecksum,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    /// Stable machine name, used in the summary and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Undecodable::UnsupportedLinktype => "unsupported_link_type",
            Undecodable::TruncatedLink => "truncated_link_header",
            Undecodable::TooManyVlanTags => "too_many_vlan_tags",
            Undecodable::Arp => "arp",
            Undecodable::NonIp => "non_ip",
            Undecodable::TruncatedIp => "truncated_ip_header",
            Undecodable::BadIpHeader => "bad_ip_header",
            Undecodable::TruncatedTransport => "truncated_transport_header",
            Undecodable::BadTransportHeader => "bad_transport_header",
            Undecodable::BadIpChecksum => "bad_ip_checksum",
        }
    }
}

/// An IPv4 or IPv6 address in 16 bytes (IPv4 in the first four, `v6` false).
///
/// Ordered by the bytes, then `v6` (what a derive would give); hashed and compared as two
/// words rather than byte by byte (flow keys and every per-address table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Addr {
    pub bytes: [u8; 16],
    pub v6: bool,
}

impl Ord for Addr {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        u128::from_be_bytes(self.bytes)
            .cmp(&u128::from_be_bytes(other.bytes))
            .then(self.v6.cmp(&other.v6))
    }
}

impl PartialOrd for Addr {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::hash::Hash for Addr {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let (lo, hi) = self.words();
        state.write_u64(lo);
        state.write_u64(hi ^ u64::from(self.v6));
    }
}

impl Addr {
    /// The 16 bytes as two native-endian words (for hashing).
    #[inline]
    pub fn words(&self) -> (u64, u64) {
        let w = u128::from_ne_bytes(self.bytes);
        (w as u64, (w >> 64) as u64)
    }

    pub fn v4(b: [u8; 4]) -> Addr {
        let mut bytes = [0u8; 16];
        bytes[..4].copy_from_slice(&b);
        Addr { bytes, v6: false }
    }

    pub fn v6(b: [u8; 16]) -> Addr {
        Addr { bytes: b, v6: true }
    }

    pub fn octets(&self) -> &[u8] {
        if self.v6 {
            &self.bytes
        } else {
            &self.bytes[..4]
        }
    }

    pub fn to_ip(self) -> std::net::IpAddr {
        if self.v6 {
            std::net::IpAddr::from(self.bytes)
        } else {
            std::net::IpAddr::from([self.bytes[0], self.bytes[1], self.bytes[2], self.bytes[3]])
        }
    }

    /// IPv4 224.0.0.0/4 or IPv6 ff00::/8.
    pub fn is_multicast(&self) -> bool {
        if self.v6 {
            self.bytes[0] == 0xff
        } else {
            self.bytes[0] & 0xf0 == 0xe0
        }
    }

    pub fn is_v4_broadcast(&self) -> bool {
        !self.v6 && self.bytes[..4] == [255, 255, 255, 255]
    }
}

/// TCP flag bits as in the header's 13th byte.
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
}

/// The TCP header fields the state machine reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpSegment {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    /// Window scale option (SYN only), if present.
    pub wscale: Option<u8>,
    /// Payload bytes on the wire (from the IP length, not the captured length).
    pub payload_len: u32,
}

impl TcpSegment {
    pub fn syn(&self) -> bool {
        self.flags & tcp_flags::SYN != 0
    }
    pub fn ack_flag(&self) -> bool {
        self.flags & tcp_flags::ACK != 0
    }
    pub fn fin(&self) -> bool {
        self.flags & tcp_flags::FIN != 0
    }
    pub fn rst(&self) -> bool {
        self.flags & tcp_flags::RST != 0
    }
}

/// The transport layer of a decoded packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Tcp(TcpSegment),
    Udp {
        sport: u16,
        dport: u16,
        payload_len: u32,
    },
    Icmp {
        v6: bool,
        icmp_type: u8,
        code: u8,
        payload_len: u32,
    },
    /// Any other IP protocol: tracked by addresses and protocol number.
    Other,
    /// A non-first IP fragment: it carries no transport header, so it has no ports.
    Fragment,
    /// A TCP header cut by the snap length after the ports: the connection exists, but the
    /// segment cannot be analysed (Zeek creates the connection and counts nothing).
    TcpHeaderCut {
        sport: u16,
        dport: u16,
    },
}

/// Result of checksum verification for a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ChecksumVerdict {
    /// Not checked (checking is off, or the packet was cut by the snap length).
    #[default]
    Unchecked,
    Good,
    Bad,
}

/// One decoded packet: everything analysis needs, nothing borrowed.
#[derive(Clone, Copy, Debug)]
pub struct Decoded {
    pub ts: Micros,
    pub src: Addr,
    pub dst: Addr,
    pub ip_proto: u8,
    /// The IP header's length (total length; IPv6: 40 + payload length), for `*_ip_bytes`.
    pub ip_len: u32,
    pub transport: Transport,
    pub vlans: Vlans,
    /// Transport checksum (TCP/UDP/ICMP) verdict.
    pub l4_checksum: ChecksumVerdict,
    /// True when the packet was cut by the snap length.
    pub truncated: bool,
    /// A UDP payload that is recognisably a reply: a DNS response (QR set) on a DNS port or
    /// an NTP server-mode packet on port 123. Zeek's DNS and NTP analyzers flip a connection
    /// whose first packet is such a reply; synwatch does the same without parsing further.
    pub udp_reply: bool,
    /// Where the IP header starts in the bytes given to [`decode`].
    pub ip_off: u32,
    /// True for any IP fragment (first or not): its payload is not the whole datagram.
    pub fragmented: bool,
    /// Where the transport payload starts in the bytes given to [`decode`] (after the UDP
    /// header; after the IP headers for protocols other than TCP/UDP/ICMP). Tunnels are found
    /// there (see [`tunnel`]).
    pub payload_off: u32,
}

impl Decoded {
    /// A packet with nothing in it, to decode into.
    pub const EMPTY: Decoded = Decoded {
        ts: Micros(0),
        src: Addr {
            bytes: [0; 16],
            v6: false,
        },
        dst: Addr {
            bytes: [0; 16],
            v6: false,
        },
        ip_proto: 0,
        ip_len: 0,
        transport: Transport::Other,
        vlans: Vlans { outer: 0, inner: 0 },
        l4_checksum: ChecksumVerdict::Unchecked,
        truncated: false,
        udp_reply: false,
        ip_off: 0,
        fragmented: false,
        payload_off: 0,
    };
}

/// Options that change decoding.
#[derive(Clone, Copy, Debug, Default)]
pub struct DecodeOptions {
    pub verify_checksums: bool,
}

/// Decodes one captured frame.
pub fn decode(
    linktype: i32,
    frame: &[u8],
    ts: Micros,
    wire_len: u32,
    opts: DecodeOptions,
) -> Result<Decoded, Undecodable> {
    let mut d = Decoded::EMPTY;
    decode_into(linktype, frame, ts, wire_len, opts, &mut d).map(|()| d)
}

/// [`decode`] into a packet the caller keeps: the analyzer's per-packet path. A `Decoded` is
/// about a hundred bytes, and returning it by value copied it out of each function and the
/// `Result` on every packet (a tenth of a worker's instructions on small packets).
pub fn decode_into(
    linktype: i32,
    frame: &[u8],
    ts: Micros,
    wire_len: u32,
    opts: DecodeOptions,
    d: &mut Decoded,
) -> Result<(), Undecodable> {
    let (net, ip_bytes, vlans) = link::strip(linktype, frame)?;
    // How many bytes of the IP packet the wire had beyond what was captured.
    let missing = wire_len.saturating_sub(frame.len() as u32);
    let version = ip_bytes
        .first()
        .map(|b| b >> 4)
        .ok_or(Undecodable::TruncatedIp)?;
    match (net, version) {
        (NetLayer::Ipv4 | NetLayer::IpAny, 4) | (NetLayer::Ipv6 | NetLayer::IpAny, 6) => {}
        (NetLayer::IpAny, _) => return Err(Undecodable::NonIp),
        _ => return Err(Undecodable::BadIpHeader),
    }
    decode_ip_into(ip_bytes, missing, ts, vlans, opts, d)?;
    let link_len = (ip_bytes.as_ptr() as usize).saturating_sub(frame.as_ptr() as usize);
    d.payload_off = d.payload_off.saturating_add(link_len as u32);
    d.ip_off = link_len as u32;
    Ok(())
}

/// Decodes an IP packet (the part after the link layer) into `d`. `missing` is how many bytes
/// of the frame the snap length cut off.
fn decode_ip_into(
    ip_bytes: &[u8],
    missing: u32,
    ts: Micros,
    vlans: Vlans,
    opts: DecodeOptions,
    d: &mut Decoded,
) -> Result<(), Undecodable> {
    let ip = match ipv4_layer(ip_bytes, missing) {
        Some(ip) => ip,
        None => lax_layer(ip_bytes, missing)?,
    };
    let IpLayer {
        src,
        dst,
        ip_len,
        eff_len,
        first_fragment,
        ..
    } = ip;
    let truncated = missing > 0;
    if opts.verify_checksums
        && !truncated
        && ip.v4_header_len > 0
        && !checksum::valid(0, ip_bytes.get(..ip.v4_header_len).unwrap_or_default())
    {
        return Err(Undecodable::BadIpChecksum);
    }
    let payload = ip.payload;
    let ip_proto = payload.ip_number.0;
    // Bytes of transport data on the wire: the IP length minus everything before the payload.
    let header_bytes =
        (payload.payload.as_ptr() as usize).saturating_sub(ip_bytes.as_ptr() as usize) as u32;
    let l4_wire_len = eff_len.saturating_sub(header_bytes);
    let complete = !truncated && !payload.incomplete;

    *d = Decoded {
        ts,
        src,
        dst,
        ip_proto,
        ip_len,
        transport: Transport::Other,
        vlans,
        l4_checksum: ChecksumVerdict::Unchecked,
        truncated,
        udp_reply: false,
        ip_off: 0,
        fragmented: payload.fragmented,
        payload_off: header_bytes,
    };
    if payload.fragmented && !first_fragment {
        d.transport = Transport::Fragment;
        return Ok(());
    }
    // Checksums of a fragment's transport header cover the reassembled datagram: not checked.
    let verify = opts.verify_checksums && complete && !payload.fragmented;
    let seg = payload.payload;
    let pseudo = |len: u32| checksum::pseudo_header(src.octets(), dst.octets(), ip_proto, len);
    match payload.ip_number {
        IpNumber::TCP => {
            let tcp = match TcpSlice::from_slice(seg) {
                Ok(t) => t,
                Err(etherparse::err::tcp::HeaderSliceError::Len(_)) => {
                    if let [a, b, c, e, ..] = seg {
                        d.transport = Transport::TcpHeaderCut {
                            sport: u16::from_be_bytes([*a, *b]),
                            dport: u16::from_be_bytes([*c, *e]),
                        };
                        return Ok(());
                    }
                    return Err(Undecodable::TruncatedTransport);
                }
                Err(etherparse::err::tcp::HeaderSliceError::Content(_)) => {
                    return Err(Undecodable::BadTransportHeader);
                }
            };
            let hdr_len = u32::from(tcp.data_offset()) * 4;
            let flags = tcp.header_slice().get(13).copied().unwrap_or(0);
            let wscale = if flags & tcp_flags::SYN != 0 {
                window_scale(tcp.options())
            } else {
                None
            };
            d.transport = Transport::Tcp(TcpSegment {
                sport: tcp.source_port(),
                dport: tcp.destination_port(),
                seq: tcp.sequence_number(),
                ack: tcp.acknowledgment_number(),
                flags,
                window: tcp.window_size(),
                wscale,
                payload_len: l4_wire_len.saturating_sub(hdr_len),
            });
            if verify {
                d.l4_checksum = verdict(checksum::valid(pseudo(seg.len() as u32), seg));
            }
        }
        IpNumber::UDP => {
            let udp = etherparse::UdpSlice::from_slice_lax(seg)
                .map_err(|_| Undecodable::TruncatedTransport)?;
            let ulen = u32::from(udp.length());
            // Zeek takes the UDP length when it is plausible, else what IP says.
            let payload_len = if ulen >= 8 && ulen <= l4_wire_len {
                ulen - 8
            } else {
                l4_wire_len.saturating_sub(8)
            };
            d.payload_off = header_bytes.saturating_add(8);
            d.udp_reply = is_udp_reply(udp.source_port(), udp.destination_port(), udp.payload());
            d.transport = Transport::Udp {
                sport: udp.source_port(),
                dport: udp.destination_port(),
                payload_len,
            };
            if verify && (src.v6 || udp.checksum() != 0) {
                d.l4_checksum = verdict(checksum::valid(pseudo(seg.len() as u32), seg));
            }
        }
        IpNumber::ICMP | IpNumber::IPV6_ICMP => {
            let v6 = payload.ip_number == IpNumber::IPV6_ICMP;
            let (&icmp_type, &code) = match (seg.first(), seg.get(1)) {
                (Some(t), Some(c)) => (t, c),
                _ => return Err(Undecodable::TruncatedTransport),
            };
            d.transport = Transport::Icmp {
                v6,
                icmp_type,
                code,
                payload_len: l4_wire_len.saturating_sub(8),
            };
            if verify {
                let ok = if v6 {
                    checksum::valid(pseudo(seg.len() as u32), seg)
                } else {
                    checksum::valid(0, seg)
                };
                d.l4_checksum = verdict(ok);
            }
        }
        _ => {}
    }
    Ok(())
}

/// What the IP layer of a packet says, however it was read.
#[derive(Clone, Debug, PartialEq, Eq)]
struct IpLayer<'a> {
    src: Addr,
    dst: Addr,
    /// The IP header's length field (IPv6: 40 + payload length), for `*_ip_bytes`.
    ip_len: u32,
    /// The length the transport bytes are reckoned from (see [`ipv4_layer`]).
    eff_len: u32,
    first_fragment: bool,
    /// IPv4: the header's length with options, for its checksum; IPv6: 0 (it has none).
    v4_header_len: usize,
    payload: LaxIpPayloadSlice<'a>,
}

/// Plain IPv4 (no authentication header) read through etherparse's header slice: the
/// packets of nearly every capture. It gives what [`lax_layer`] gives for them (a test holds
/// the two together) without building and matching the lax slice's larger enum, about a
/// sixth of decoding a small packet. None for anything else, which goes the lax way.
#[inline]
fn ipv4_layer(ip_bytes: &[u8], missing: u32) -> Option<IpLayer<'_>> {
    let h = Ipv4HeaderSlice::from_slice(ip_bytes).ok()?;
    let ip_number = h.protocol();
    if ip_number == IpNumber::AUTHENTICATION_HEADER {
        return None;
    }
    let header_len = h.slice().len();
    let total = usize::from(h.total_len());
    // As etherparse's lax slice: a total length under the header's is ignored (the captured
    // bytes are the payload); one past the captured bytes makes the payload incomplete.
    let (end, incomplete, len_source) = if total < header_len {
        (ip_bytes.len(), false, LenSource::Slice)
    } else if ip_bytes.len() < total {
        (ip_bytes.len(), true, LenSource::Slice)
    } else {
        (total, false, LenSource::Ipv4HeaderTotalLen)
    };
    Some(IpLayer {
        src: Addr::v4(h.source()),
        dst: Addr::v4(h.destination()),
        ip_len: total as u32,
        eff_len: v4_eff_len(total as u32, header_len as u32, ip_bytes, missing),
        first_fragment: h.fragments_offset().value() == 0,
        v4_header_len: header_len,
        payload: LaxIpPayloadSlice {
            incomplete,
            ip_number,
            fragmented: h.is_fragmenting_payload(),
            len_source,
            payload: ip_bytes.get(header_len..end)?,
        },
    })
}

/// A zero or too-small total length happens with segmentation offload; then the captured
/// bytes are all we know of the payload. `*_ip_bytes` still count what the header says, as
/// Zeek's `IP_Hdr::TotalLen` does.
fn v4_eff_len(total: u32, header_len: u32, ip_bytes: &[u8], missing: u32) -> u32 {
    if total >= header_len {
        total
    } else {
        ip_bytes.len() as u32 + missing
    }
}

/// Any IP packet, through etherparse's lax slice (IPv6 with its extension headers, IPv4
/// with an authentication header, and the errors of both).
fn lax_layer(ip_bytes: &[u8], missing: u32) -> Result<IpLayer<'_>, Undecodable> {
    let (ip, _ext_err) = LaxIpSlice::from_slice(ip_bytes).map_err(|e| match e {
        etherparse::err::ip::LaxHeaderSliceError::Len(_) => Undecodable::TruncatedIp,
        etherparse::err::ip::LaxHeaderSliceError::Content(_) => Undecodable::BadIpHeader,
    })?;
    Ok(match &ip {
        LaxIpSlice::Ipv4(v4) => {
            let h = v4.header();
            let total = u32::from(h.total_len());
            IpLayer {
                src: Addr::v4(h.source()),
                dst: Addr::v4(h.destination()),
                ip_len: total,
                eff_len: v4_eff_len(total, u32::from(h.ihl()) * 4, ip_bytes, missing),
                first_fragment: h.fragments_offset().value() == 0,
                v4_header_len: h.slice().len(),
                payload: ip.payload().clone(),
            }
        }
        LaxIpSlice::Ipv6(v6) => {
            let h = v6.header();
            // Zeek takes the header's word for it, even a zero payload length.
            let ip_len = 40 + u32::from(h.payload_length());
            IpLayer {
                src: Addr::v6(h.source()),
                dst: Addr::v6(h.destination()),
                ip_len,
                eff_len: ip_len,
                first_fragment: ipv6_fragment(ip_bytes).is_none_or(|f| f.offset == 0),
                v4_header_len: 0,
                payload: ip.payload().clone(),
            }
        }
    })
}

/// An IPv6 Fragment extension header's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Fragment {
    /// Offset in bytes.
    pub offset: u16,
    pub more: bool,
    pub id: u32,
}

/// Walks the IPv6 extension header chain of the packet `ip` (starting at the fixed header) to
/// its Fragment header, with every length checked against the bytes present.
///
/// synwatch does this itself rather than through etherparse's `Ipv6ExtensionSliceIter`:
/// fuzzing found that iterator reading past the end of a lax slice whose last extension header
/// is cut short (etherparse 0.21, `Ipv6RawExtHeaderSlice::from_slice_unchecked`).
pub fn ipv6_fragment(ip: &[u8]) -> Option<Ipv6Fragment> {
    let mut next = *ip.get(6)?;
    let mut off = 40usize;
    for _ in 0..16 {
        match next {
            // Hop-by-hop, routing, destination options, mobility, HIP, shim6: 8-byte units.
            0 | 43 | 60 | 135 | 139 | 140 => {
                let len = usize::from(*ip.get(off + 1)?);
                next = *ip.get(off)?;
                off = off.checked_add((len + 1) * 8)?;
            }
            // Authentication header: 4-byte units, plus 2.
            51 => {
                let len = usize::from(*ip.get(off + 1)?);
                next = *ip.get(off)?;
                off = off.checked_add((len + 2) * 4)?;
            }
            44 => {
                let h = ip.get(off..off + 8)?;
                let (b2, b3) = (*h.get(2)?, *h.get(3)?);
                let fo = u16::from_be_bytes([b2, b3]);
                let id = h.get(4..8)?;
                return Some(Ipv6Fragment {
                    offset: fo & 0xfff8,
                    more: fo & 1 != 0,
                    id: u32::from_be_bytes([*id.first()?, *id.get(1)?, *id.get(2)?, *id.get(3)?]),
                });
            }
            _ => return None,
        }
    }
    None
}

/// DNS-family ports (DNS, mDNS, LLMNR, NetBIOS name service) and NTP.
fn is_udp_reply(sport: u16, dport: u16, payload: &[u8]) -> bool {
    let on = |p: u16| sport == p || dport == p;
    if on(53) || on(5353) || on(5355) || on(137) {
        // DNS header: id (2), flags (QR is the top bit), four counts.
        return payload.len() >= 12 && payload.get(2).is_some_and(|f| f & 0x80 != 0);
    }
    if on(123) {
        // NTP: LI/VN/mode; mode 4 = server.
        return payload.len() >= 48 && payload.first().is_some_and(|b| b & 0x07 == 4);
    }
    false
}

fn verdict(ok: bool) -> ChecksumVerdict {
    if ok {
        ChecksumVerdict::Good
    } else {
        ChecksumVerdict::Bad
    }
}

/// Reads the window-scale option (kind 3) from TCP options.
fn window_scale(mut opts: &[u8]) -> Option<u8> {
    while let Some(&kind) = opts.first() {
        match kind {
            0 => return None,
            1 => opts = opts.get(1..)?,
            _ => {
                let len = usize::from(*opts.get(1)?);
                if len < 2 {
                    return None;
                }
                if kind == 3 && len >= 3 {
                    return opts.get(2).copied();
                }
                opts = opts.get(len..)?;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    /// Inputs the fuzzers found (tests/fuzz), each once a crash: the first byte chose the link
    /// type in the fuzz target (0: Ethernet); decoding must return without reading out of
    /// bounds or panicking.
    const FUZZ_ETHERNET: &[&[u8]] = &[
        // An IPv6 packet whose hop-by-hop header is cut short: etherparse's extension iterator
        // read past the slice (heap-buffer-overflow under AddressSanitizer).
        &[
            0x00, 0x02, 0x00, 0x00, 0x34, 0x00, 0x02, 0x02, 0xe1, 0x00, 0x34, 0x00, 0x01, 0x86,
            0xdd, 0x60, 0x00, 0x00, 0x00, 0x00, 0x18, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x9d, 0xda, 0x00, 0x08, 0x6b, 0x69, 0xb5, 0x8f,
            0x00, 0x00, 0x00, 0x00, 0x60, 0x02, 0x04, 0xa0, 0x02, 0xfd, 0x5c, 0xc6, 0x99, 0x00,
            0x00, 0x28, 0x91, 0x60, 0x0a, 0xcd, 0x35, 0x00, 0x28, 0x06, 0x40, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x01, 0x1f, 0x04, 0x05, 0xb4,
        ],
    ];

    #[test]
    fn fuzz_regressions_decode_without_panicking() {
        for input in FUZZ_ETHERNET {
            let frame = input.get(1..).unwrap();
            for verify in [false, true] {
                let _ = decode(
                    link::dlt::EN10MB,
                    frame,
                    Micros(0),
                    frame.len() as u32,
                    DecodeOptions {
                        verify_checksums: verify,
                    },
                );
            }
            let _ = ipv6_fragment(frame.get(14..).unwrap_or(&[]));
        }
    }

    #[test]
    fn ipv6_fragment_header_is_found_behind_other_headers() {
        // Fixed header (next: hop-by-hop), hop-by-hop (next: fragment, 8 bytes), fragment.
        let mut p = vec![0x60, 0, 0, 0, 0, 16, 0, 64];
        p.extend_from_slice(&[0u8; 32]);
        p.extend_from_slice(&[44, 0, 1, 4, 0, 0, 0, 0]);
        p.extend_from_slice(&[17, 0, 0x05, 0x01, 0xde, 0xad, 0xbe, 0xef]);
        let f = ipv6_fragment(&p).unwrap();
        assert_eq!((f.offset, f.more, f.id), (0x0500, true, 0xdead_beef));
        // Cut anywhere: never a panic, and no fragment invented.
        for n in 0..p.len() {
            assert!(ipv6_fragment(&p[..n]).is_none());
        }
    }

    use super::*;

    fn ipv4_tcp(flags: u8, payload: &[u8], total_len_extra: u16) -> Vec<u8> {
        let total = (20 + 20 + payload.len()) as u16 + total_len_extra;
        let mut p = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            1,
            0x40,
            0,
            64,
            6,
            0,
            0,
            10,
            0,
            0,
            1,
            10,
            0,
            0,
            2,
        ];
        let s = checksum::fold(checksum::sum(0, &p));
        let c = !s;
        p[10] = (c >> 8) as u8;
        p[11] = c as u8;
        p.extend_from_slice(&[
            0x30, 0x39, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0,
        ]);
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn tcp_over_raw_ip() {
        let p = ipv4_tcp(tcp_flags::SYN, &[], 0);
        let d = decode(
            link::dlt::RAW,
            &p,
            Micros(5),
            p.len() as u32,
            DecodeOptions::default(),
        )
        .unwrap();
        assert_eq!(d.ip_len, 40);
        match d.transport {
            Transport::Tcp(t) => {
                assert_eq!(
                    (t.sport, t.dport, t.seq, t.flags, t.payload_len),
                    (12345, 80, 1, tcp_flags::SYN, 0)
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn snaplen_cut_counts_wire_payload() {
        let p = ipv4_tcp(tcp_flags::ACK, &[7u8; 1000], 0);
        let cut = &p[..60];
        let d = decode(
            link::dlt::RAW,
            cut,
            Micros(0),
            p.len() as u32,
            DecodeOptions {
                verify_checksums: true,
            },
        )
        .unwrap();
        assert!(d.truncated);
        assert_eq!(d.ip_len, 1040);
        assert_eq!(d.l4_checksum, ChecksumVerdict::Unchecked);
        match d.transport {
            Transport::Tcp(t) => assert_eq!(t.payload_len, 1000),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_tcp_checksum_is_flagged_only_when_verifying() {
        let p = ipv4_tcp(tcp_flags::SYN, &[], 0);
        let on = DecodeOptions {
            verify_checksums: true,
        };
        let d = decode(link::dlt::RAW, &p, Micros(0), p.len() as u32, on).unwrap();
        assert_eq!(
            d.l4_checksum,
            ChecksumVerdict::Bad,
            "checksum field is zero"
        );
        let d = decode(
            link::dlt::RAW,
            &p,
            Micros(0),
            p.len() as u32,
            DecodeOptions::default(),
        )
        .unwrap();
        assert_eq!(d.l4_checksum, ChecksumVerdict::Unchecked);
    }

    /// Plain IPv4 read the fast way gives what the lax slice gives: on every IPv4 packet of
    /// the fixtures and on mutations of them (cut short, total lengths and header lengths of
    /// every size, flags and fragment offsets, other protocols and the authentication header,
    /// bytes changed anywhere), with and without bytes missing past the snap length.
    #[test]
    fn fast_ipv4_layer_agrees_with_the_lax_slice() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let mut packets = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if !path
                .extension()
                .is_some_and(|e| e == "pcap" || e == "pcapng")
            {
                continue;
            }
            let Ok(mut cap) = pcap::Capture::from_file(&path) else {
                continue;
            };
            let lt = cap.get_datalink().0;
            while let Ok(p) = cap.next_packet() {
                if let Ok((_, ip, _)) = link::strip(lt, p.data)
                    && ip.first().is_some_and(|b| b >> 4 == 4)
                {
                    packets.push(ip.to_vec());
                }
            }
        }
        assert!(packets.len() > 1000, "{} IPv4 packets", packets.len());
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let (mut fast, mut lax_only, mut checked) = (0, 0, 0);
        for p in &packets {
            for round in 0..9u64 {
                let mut q = p.clone();
                let r = next();
                match round {
                    0 => {}
                    1 => q.truncate((r % (q.len() as u64 + 1)) as usize),
                    2 => {
                        let total = if r % 2 == 0 { r % 100 } else { r % 65536 } as u16;
                        q[2..4].copy_from_slice(&total.to_be_bytes());
                    }
                    3 => q[0] = 0x40 | (r % 16) as u8,
                    4 => {
                        q[6] = r as u8;
                        q[7] = (r >> 8) as u8;
                    }
                    5 => q[9] = if r % 2 == 0 { 51 } else { (r >> 8) as u8 },
                    6 => {
                        let at = (r % q.len() as u64) as usize;
                        q[at] = (r >> 32) as u8;
                    }
                    7 => {
                        q[0] = 0x40 | (5 + r % 11) as u8;
                        let total = (r >> 8) as u16 % 200;
                        q[2..4].copy_from_slice(&total.to_be_bytes());
                        q.truncate((r >> 24) as usize % (q.len() + 1));
                    }
                    _ => {
                        // An authentication header in front of the transport (RFC 4302):
                        // next header, length in 4-byte units minus 2, reserved, SPI, sequence.
                        let ihl = usize::from(q[0] & 0x0f) * 4;
                        let next_header = q[9];
                        q[9] = 51;
                        let ah = [
                            next_header,
                            4,
                            0,
                            0,
                            1,
                            2,
                            3,
                            4,
                            0,
                            0,
                            0,
                            9,
                            0,
                            0,
                            0,
                            0,
                            0,
                            0,
                        ];
                        q.splice(ihl..ihl, ah);
                        let total = u16::from_be_bytes([q[2], q[3]]).saturating_add(24);
                        q[2..4].copy_from_slice(&total.to_be_bytes());
                    }
                }
                let missing = (r >> 40) as u32 % 3 * 100;
                checked += 1;
                match ipv4_layer(&q, missing) {
                    Some(got) => {
                        fast += 1;
                        assert_eq!(
                            Ok(got),
                            lax_layer(&q, missing),
                            "{q:02x?} missing {missing}"
                        );
                    }
                    None => lax_only += 1,
                }
            }
        }
        // Most take the fast way; the rest (cut, bad header lengths, the authentication
        // header) the lax one.
        assert!(
            fast > checked / 2 && lax_only > checked / 20,
            "{fast} {lax_only} {checked}"
        );
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u32 = 12345;
        for len in 0..200usize {
            let mut buf = vec![0u8; len];
            for b in buf.iter_mut() {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                *b = (x >> 16) as u8;
            }
            if len > 0 {
                buf[0] = if len % 2 == 0 { 0x45 } else { 0x60 };
            }
            for lt in [0, 1, 101, 113, 228, 229, 276] {
                let _ = decode(
                    lt,
                    &buf,
                    Micros(0),
                    len as u32 + 3,
                    DecodeOptions {
                        verify_checksums: true,
                    },
                );
            }
        }
    }

    #[test]
    fn window_scale_option() {
        assert_eq!(window_scale(&[2, 4, 5, 0xb4, 1, 3, 3, 7]), Some(7));
        assert_eq!(window_scale(&[1, 1, 0, 3, 3, 7]), None);
        assert_eq!(window_scale(&[3]), None);
        assert_eq!(window_scale(&[3, 0, 3]), None);
    }
}
