//! Suspicious-port alerts, decided by what the handshake shows (GUIDE §4).
//!
//! | rule | when | severity |
//! |---|---|---|
//! | `trojan-established` | TCP to a trojan/backdoor port, and the responder answered: a SYN-ACK, or data — something listens there | 1 high |
//! | `trojan-probe` | TCP to a trojan port, rejected (RST) or unanswered | 3 low |
//! | `risky-service-established` | an established TCP connection (handshake completed, or payload both ways) to a risky exposed service (telnet, NetBIOS, SMB, RPC, SNMP, TFTP, finger, RDP, MS-SQL, …), or UDP to one answered with UDP | 2 medium |
//! | `trojan-udp-answered` | UDP to a trojan UDP port, answered by the target with UDP | 1 high |
//! | `trojan-udp-unanswered` | UDP to a trojan UDP port, unanswered (an ICMP unreachable is not an answer) | 3 low |
//!
//! The port judged is the responder's (after Zeek's originator rules, so a connection picked up
//! midstream is judged by its server side).

use super::rule::Rule;
use crate::classify::ports::{Category, PortDb, PortEntry, PortProto};
use crate::flow::ConnRecord;
use crate::flow::key::proto;

/// Did the responder answer like a listening service? A SYN-ACK, or any payload from it.
fn responder_listened(r: &ConnRecord) -> bool {
    const SYN_ACK: u8 = 0x12;
    r.resp_tcp_flags & SYN_ACK == SYN_ACK || r.resp_bytes > 0
}

/// Was the connection established? The handshake completed, or (picked up midstream) both
/// sides sent payload. A SYN scan's half-open probe is not.
fn established(r: &ConnRecord) -> bool {
    r.handshake == crate::flow::Handshake::Completed || (r.orig_bytes > 0 && r.resp_bytes > 0)
}

/// Which rule, if any, a finished connection triggers, with the port entry it concerns.
pub fn judge<'a>(r: &ConnRecord, db: &'a PortDb) -> Option<(Rule, &'a PortEntry)> {
    match r.ip_proto {
        proto::TCP => {
            let e = db.lookup(PortProto::Tcp, r.resp.port)?;
            let listened = responder_listened(r);
            let rule = match (e.category, listened) {
                (Category::Trojan, true) => Rule::TrojanEstablished,
                (Category::Trojan, false) if r.orig_pkts > 0 => Rule::TrojanProbe,
                (Category::Risky, _) if established(r) => Rule::RiskyEstablished,
                _ => return None,
            };
            Some((rule, e))
        }
        proto::UDP => {
            let e = db.lookup(PortProto::Udp, r.resp.port)?;
            let answered = r.resp_pkts > 0;
            let rule = match (e.category, answered) {
                (Category::Trojan, true) => Rule::TrojanUdpAnswered,
                (Category::Trojan, false) => Rule::TrojanUdpUnanswered,
                (Category::Risky, true) => Rule::RiskyEstablished,
                _ => return None,
            };
            Some((rule, e))
        }
        _ => None,
    }
}
