//! Flow keys: (protocol, addresses, ports), the same for both directions of a connection.

use super::pack::{Reader, Writer};
use crate::decode::{Addr, Decoded, Transport};

/// IP protocol numbers synwatch treats specially.
pub mod proto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;
    pub const GRE: u8 = 47;
}

/// One endpoint of a flow: an address and a port (ICMP: type or code, as Zeek does).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Endpoint {
    pub addr: Addr,
    pub port: u16,
}

/// A direction-independent key: the lower endpoint first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowKey {
    pub proto: u8,
    pub lo: Endpoint,
    pub hi: Endpoint,
}

/// Five words per key (a derive would feed the hasher a dozen small pieces): the flow table
/// hashes one key per packet.
impl std::hash::Hash for FlowKey {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let (a, b) = self.lo.addr.words();
        let (c, d) = self.hi.addr.words();
        state.write_u64(a);
        state.write_u64(b);
        state.write_u64(c);
        state.write_u64(d);
        state.write_u64(
            u64::from(self.proto)
                | u64::from(self.lo.addr.v6) << 8
                | u64::from(self.hi.addr.v6) << 9
                | u64::from(self.lo.port) << 16
                | u64::from(self.hi.port) << 32,
        );
    }
}

impl FlowKey {
    /// Byte form (`super::pack`): protocol, a byte of address families, the addresses' octets,
    /// the ports.
    pub fn pack(&self, w: &mut Writer) {
        let FlowKey { proto, lo, hi } = self;
        w.u8(*proto);
        w.u8(u8::from(lo.addr.v6) | u8::from(hi.addr.v6) << 1);
        for e in [lo, hi] {
            w.bytes(e.addr.octets());
            w.bytes(&e.port.to_le_bytes());
        }
    }

    pub fn unpack(r: &mut Reader) -> Option<FlowKey> {
        let proto = r.u8()?;
        let families = r.u8()?;
        let mut end = |v6: bool| -> Option<Endpoint> {
            let addr = if v6 {
                Addr::v6(r.bytes(16)?.try_into().ok()?)
            } else {
                Addr::v4(r.bytes(4)?.try_into().ok()?)
            };
            let port = u16::from_le_bytes(r.bytes(2)?.try_into().ok()?);
            Some(Endpoint { addr, port })
        };
        let lo = end(families & 1 != 0)?;
        let hi = end(families & 2 != 0)?;
        Some(FlowKey { proto, lo, hi })
    }
}

/// A packet's endpoints as sent (source, destination) and the key they map to.
#[derive(Clone, Copy, Debug)]
pub struct Directed {
    pub key: FlowKey,
    pub src: Endpoint,
    pub dst: Endpoint,
}

impl Directed {
    pub fn of(d: &Decoded) -> Option<Directed> {
        let (sport, dport) = match d.transport {
            Transport::Tcp(t) => (t.sport, t.dport),
            Transport::TcpHeaderCut { sport, dport } => (sport, dport),
            Transport::Udp { sport, dport, .. } => (sport, dport),
            Transport::Icmp {
                v6,
                icmp_type,
                code,
                ..
            } => (
                u16::from(icmp_type),
                u16::from(icmp_counterpart(v6, icmp_type, code).0),
            ),
            Transport::Other => (0, 0),
            Transport::Fragment => return None,
        };
        let src = Endpoint {
            addr: d.src,
            port: sport,
        };
        let dst = Endpoint {
            addr: d.dst,
            port: dport,
        };
        let (lo, hi) = if src <= dst { (src, dst) } else { (dst, src) };
        Some(Directed {
            key: FlowKey {
                proto: d.ip_proto,
                lo,
                hi,
            },
            src,
            dst,
        })
    }
}

/// Zeek's ICMP "counterpart": the type of the matching reply for request/reply messages, or the
/// code for one-way messages (ICMP.cc `ICMP4_counterpart` / `ICMP6_counterpart`). Returns
/// (value, one_way).
pub fn icmp_counterpart(v6: bool, icmp_type: u8, code: u8) -> (u8, bool) {
    let pair = if v6 {
        match icmp_type {
            128 => Some(129), // echo request / reply
            129 => Some(128),
            133 => Some(134), // router solicitation / advertisement
            134 => Some(133),
            135 => Some(136), // neighbour solicitation / advertisement
            136 => Some(135),
            130 => Some(131), // multicast listener query / report
            131 => Some(130),
            139 => Some(140), // node information query / response
            140 => Some(139),
            144 => Some(145), // home agent address discovery
            145 => Some(144),
            _ => None,
        }
    } else {
        match icmp_type {
            8 => Some(0), // echo
            0 => Some(8),
            13 => Some(14), // timestamp
            14 => Some(13),
            15 => Some(16), // information
            16 => Some(15),
            10 => Some(9), // router solicitation / advertisement
            9 => Some(10),
            17 => Some(18), // address mask
            18 => Some(17),
            _ => None,
        }
    };
    match pair {
        Some(t) => (t, false),
        None => (code, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{ChecksumVerdict, Vlans};
    use crate::time::Micros;

    fn icmp(src: [u8; 4], dst: [u8; 4], t: u8) -> Decoded {
        Decoded {
            ts: Micros(0),
            src: Addr::v4(src),
            dst: Addr::v4(dst),
            ip_proto: proto::ICMP,
            ip_len: 84,
            transport: Transport::Icmp {
                v6: false,
                icmp_type: t,
                code: 0,
                payload_len: 56,
            },
            vlans: Vlans::default(),
            l4_checksum: ChecksumVerdict::Unchecked,
            truncated: false,
            fragmented: false,
            udp_reply: false,
            ip_off: 0,
            payload_off: 0,
        }
    }

    #[test]
    fn echo_request_and_reply_share_a_key() {
        let a = Directed::of(&icmp([10, 0, 0, 1], [10, 0, 0, 2], 8)).unwrap();
        let b = Directed::of(&icmp([10, 0, 0, 2], [10, 0, 0, 1], 0)).unwrap();
        assert_eq!(a.key, b.key);
        assert_eq!((a.src.port, a.dst.port), (8, 0));
    }

    #[test]
    fn one_way_icmp_uses_the_code() {
        assert_eq!(icmp_counterpart(false, 3, 3), (3, true));
        assert_eq!(icmp_counterpart(true, 1, 4), (4, true));
    }
}
