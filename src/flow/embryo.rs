//! A flow that has seen one packet, kept as the byte form of that packet (about 45 bytes for
//! IPv4) instead of a 552-byte [`super::Connection`]. Half-open floods, scans of filtered ports
//! and one-way datagrams make most of the open flows a sensor holds at its peak, and most of
//! them never see a second packet.
//!
//! The connection is made by replaying the packet through exactly the calls that made it in
//! the first place (`FlowTable::fresh`, with the clock of that moment), so nothing about it can
//! differ. The byte form starts like a packed connection's (`super::pack`): the flow key, then
//! the flow id, so that the table reads either the same way. The packet's addresses are not
//! kept twice: they are the key's, in an order one bit gives.

use super::key::{Directed, FlowKey};
use super::pack::{
    Reader, Writer, code_of, of_code, time_delta, time_undelta, tunnel_code, tunnel_of,
};
use crate::decode::tunnel::TunnelKind;
use crate::decode::{ChecksumVerdict, Decoded, TcpSegment, Transport, Vlans};
use crate::time::Micros;

/// What an embryo holds.
#[derive(Clone, Copy, Debug)]
pub struct Embryo {
    pub flow_id: u64,
    pub first: Decoded,
    /// The table's clock when the packet came.
    pub clock: Micros,
    /// The outer connection (tunnels).
    pub parent: Option<u64>,
    pub carries: Option<TunnelKind>,
}

const CHECKSUMS: [ChecksumVerdict; 3] = [
    ChecksumVerdict::Unchecked,
    ChecksumVerdict::Good,
    ChecksumVerdict::Bad,
];

/// `Transport` variants by their code in the byte form.
const TCP: u64 = 0;
const UDP: u64 = 1;
const ICMP: u64 = 2;
const OTHER: u64 = 3;
const FRAGMENT: u64 = 4;
const TCP_HEADER_CUT: u64 = 5;

/// A `Transport`'s fields as the byte form holds them; those a kind lacks are 0 (and left
/// out by the mask).
#[derive(Default)]
struct TransportFields {
    tag: u64,
    /// Ports, or ICMP type and code.
    a: u64,
    b: u64,
    /// TCP sequence number; ICMP: whether ICMPv6.
    seq: u64,
    ack: u64,
    flags: u64,
    window: u64,
    /// Window scale + 1, 0 for none.
    wscale: u64,
    payload: u64,
}

impl TransportFields {
    fn of(t: &Transport) -> TransportFields {
        match *t {
            Transport::Tcp(TcpSegment {
                sport,
                dport,
                seq,
                ack,
                flags,
                window,
                wscale,
                payload_len,
            }) => TransportFields {
                tag: TCP,
                a: u64::from(sport),
                b: u64::from(dport),
                seq: u64::from(seq),
                ack: u64::from(ack),
                flags: u64::from(flags),
                window: u64::from(window),
                wscale: wscale.map_or(0, |s| u64::from(s) + 1),
                payload: u64::from(payload_len),
            },
            Transport::Udp {
                sport,
                dport,
                payload_len,
            } => TransportFields {
                tag: UDP,
                a: u64::from(sport),
                b: u64::from(dport),
                payload: u64::from(payload_len),
                ..TransportFields::default()
            },
            Transport::Icmp {
                v6,
                icmp_type,
                code,
                payload_len,
            } => TransportFields {
                tag: ICMP,
                a: u64::from(icmp_type),
                b: u64::from(code),
                seq: u64::from(v6),
                payload: u64::from(payload_len),
                ..TransportFields::default()
            },
            Transport::Other => TransportFields {
                tag: OTHER,
                ..TransportFields::default()
            },
            Transport::Fragment => TransportFields {
                tag: FRAGMENT,
                ..TransportFields::default()
            },
            Transport::TcpHeaderCut { sport, dport } => TransportFields {
                tag: TCP_HEADER_CUT,
                a: u64::from(sport),
                b: u64::from(dport),
                ..TransportFields::default()
            },
        }
    }
}

impl Embryo {
    /// Appends the byte form; None when the packet has no flow (a non-first fragment).
    /// Times are relative to `epoch`, which [`Embryo::unpack`] is given again.
    pub fn pack(&self, w: &mut Writer, epoch: Micros) -> Option<()> {
        let Embryo {
            flow_id,
            first:
                Decoded {
                    ts,
                    src,
                    dst,
                    ip_proto: _, // the key's
                    ip_len,
                    transport,
                    vlans: Vlans { outer, inner },
                    l4_checksum,
                    truncated,
                    udp_reply,
                    ip_off,
                    fragmented,
                    payload_off,
                },
            clock,
            parent,
            carries,
        } = self;
        let dir = Directed::of(&self.first)?;
        let key = dir.key;
        let src_is_lo = key.lo.addr == *src && key.hi.addr == *dst;
        let src_is_hi = key.hi.addr == *src && key.lo.addr == *dst;
        if !(src_is_lo || src_is_hi) {
            return None;
        }
        let t = TransportFields::of(transport);
        let bits = u64::from(src_is_lo)
            | u64::from(*truncated) << 1
            | u64::from(*udp_reply) << 2
            | u64::from(*fragmented) << 3
            | code_of(&CHECKSUMS, l4_checksum) << 4
            | t.tag << 6;
        key.pack(w);
        w.var(*flow_id);
        w.sparse(&[
            bits,
            time_delta(*clock, epoch),
            time_delta(*ts, *clock),
            parent.map_or(0, |p| p.wrapping_add(1)),
            tunnel_code(*carries),
            u64::from(*ip_len),
            u64::from(*outer),
            u64::from(*inner),
            u64::from(*ip_off),
            u64::from(*payload_off),
            t.a,
            t.b,
            t.seq,
            t.ack,
            t.flags,
            t.window,
            t.wscale,
            t.payload,
        ]);
        Some(())
    }

    /// The embryo [`Embryo::pack`] wrote, or None if `bytes` are not one.
    pub fn unpack(bytes: &[u8], epoch: Micros) -> Option<Embryo> {
        let mut r = Reader::new(bytes);
        let key = FlowKey::unpack(&mut r)?;
        let flow_id = r.var()?;
        let [
            bits,
            clock,
            ts,
            parent,
            carries,
            ip_len,
            outer,
            inner,
            ip_off,
            payload_off,
            a,
            b,
            seq,
            ack,
            flags,
            window,
            wscale,
            payload,
        ] = r.sparse::<18>()?;
        let u16_ = |v: u64| u16::try_from(v).ok();
        let u32_ = |v: u64| u32::try_from(v).ok();
        let u8_ = |v: u64| u8::try_from(v).ok();
        let transport = match bits >> 6 {
            TCP => Transport::Tcp(TcpSegment {
                sport: u16_(a)?,
                dport: u16_(b)?,
                seq: u32_(seq)?,
                ack: u32_(ack)?,
                flags: u8_(flags)?,
                window: u16_(window)?,
                wscale: match wscale {
                    0 => None,
                    s => Some(u8_(s - 1)?),
                },
                payload_len: u32_(payload)?,
            }),
            UDP => Transport::Udp {
                sport: u16_(a)?,
                dport: u16_(b)?,
                payload_len: u32_(payload)?,
            },
            ICMP => Transport::Icmp {
                v6: seq != 0,
                icmp_type: u8_(a)?,
                code: u8_(b)?,
                payload_len: u32_(payload)?,
            },
            OTHER => Transport::Other,
            FRAGMENT => Transport::Fragment,
            TCP_HEADER_CUT => Transport::TcpHeaderCut {
                sport: u16_(a)?,
                dport: u16_(b)?,
            },
            _ => return None,
        };
        let (src, dst) = if bits & 1 != 0 {
            (key.lo.addr, key.hi.addr)
        } else {
            (key.hi.addr, key.lo.addr)
        };
        let clock = time_undelta(clock, epoch);
        Some(Embryo {
            flow_id,
            first: Decoded {
                ts: time_undelta(ts, clock),
                src,
                dst,
                ip_proto: key.proto,
                ip_len: u32_(ip_len)?,
                transport,
                vlans: Vlans {
                    outer: u16_(outer)?,
                    inner: u16_(inner)?,
                },
                l4_checksum: of_code(&CHECKSUMS, bits >> 4 & 3)?,
                truncated: bits & 2 != 0,
                udp_reply: bits & 4 != 0,
                ip_off: u32_(ip_off)?,
                fragmented: bits & 8 != 0,
                payload_off: u32_(payload_off)?,
            },
            clock,
            parent: parent.checked_sub(1),
            carries: tunnel_of(carries)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Addr;

    fn packet(transport: Transport, v6: bool) -> Decoded {
        let (src, dst) = if v6 {
            (Addr::v6([0xfe; 16]), Addr::v6([0x20; 16]))
        } else {
            (Addr::v4([192, 0, 2, 9]), Addr::v4([10, 0, 0, 1]))
        };
        Decoded {
            ts: Micros(1_700_000_000_123_456),
            src,
            dst,
            ip_proto: match transport {
                Transport::Udp { .. } => 17,
                Transport::Icmp { v6: true, .. } => 58,
                Transport::Icmp { .. } => 1,
                Transport::Other => 47,
                _ => 6,
            },
            ip_len: 60,
            transport,
            vlans: Vlans { outer: 7, inner: 0 },
            l4_checksum: ChecksumVerdict::Bad,
            truncated: true,
            udp_reply: false,
            ip_off: 18,
            fragmented: false,
            payload_off: 58,
        }
    }

    #[test]
    fn every_kind_of_first_packet_comes_back() {
        let tcp = Transport::Tcp(TcpSegment {
            sport: 40_000,
            dport: 80,
            seq: u32::MAX,
            ack: 0,
            flags: 0x02,
            window: 64_240,
            wscale: Some(0),
            payload_len: 0,
        });
        let kinds = [
            tcp,
            Transport::Udp {
                sport: 53,
                dport: 5353,
                payload_len: 40,
            },
            Transport::Icmp {
                v6: true,
                icmp_type: 128,
                code: 0,
                payload_len: 56,
            },
            Transport::Icmp {
                v6: false,
                icmp_type: 3,
                code: 13,
                payload_len: 0,
            },
            Transport::Other,
            Transport::TcpHeaderCut { sport: 1, dport: 2 },
        ];
        let epoch = Micros(1_699_999_000_000_000);
        for (i, t) in kinds.into_iter().enumerate() {
            for v6 in [false, true] {
                let e = Embryo {
                    flow_id: 77 + i as u64,
                    first: packet(t, v6),
                    clock: Micros(1_700_000_000_200_000),
                    parent: (i % 2 == 0).then_some(u64::MAX - 1),
                    carries: (i == 1).then_some(TunnelKind::Vxlan),
                };
                let mut w = Writer::default();
                e.pack(&mut w, epoch).expect("has a flow");
                let bytes = w.finish().expect("fits");
                let back = Embryo::unpack(bytes, epoch).expect("comes back");
                assert_eq!(format!("{e:?}"), format!("{back:?}"));
            }
        }
        // A flood's SYN, as a SYN scan or a hping3 flood sends it, fits 3 units of the cold
        // store with its 2 bytes of length (README, Performance).
        let mut syn = packet(tcp, false);
        syn.vlans = Vlans::default();
        syn.ip_off = 14;
        syn.payload_off = 54;
        syn.l4_checksum = ChecksumVerdict::Unchecked;
        let e = Embryo {
            flow_id: 3_000_000_001,
            first: syn,
            clock: syn.ts,
            parent: None,
            carries: None,
        };
        let mut w = Writer::default();
        e.pack(&mut w, Micros(syn.ts.0 - 3_600_000_000))
            .expect("has a flow");
        let len = w.finish().expect("fits").len();
        assert!(len <= 46, "{len} bytes");
    }
}
