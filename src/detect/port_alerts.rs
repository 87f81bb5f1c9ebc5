//! Suspicious-port alerts, decided by what the handshake shows (GUIDE §4).
//!
//! | rule | when | severity |
//! |---|---|---|
//! | `trojan-established` | TCP to a trojan/backdoor port, and the responder answered: a SYN-ACK, or data — something listens there | 1 high |
//! | `trojan-probe` | TCP to a trojan port, rejected (RST) or unanswered | 3 low |
//! | `risky-service-established` | TCP or UDP to a risky exposed service (telnet, NetBIOS, SMB, RPC, SNMP, TFTP, finger, RDP, MS-SQL, …), answered | 2 medium |
//! | `trojan-udp-answered` | UDP to a trojan UDP port, answered by the target with UDP | 1 high |
//! | `trojan-udp-unanswered` | UDP to a trojan UDP port, unanswered (an ICMP unreachable is not an answer) | 3 low |
//!
//! The port judged is the responder's (after Zeek's originator rules, so a connection picked up
//! midstream is judged by its server side).

use crate::classify::ports::{Category, PortDb, PortEntry, PortProto};
use crate::flow::ConnRecord;
use crate::flow::key::proto;

/// The port alert rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortRule {
    TrojanEstablished,
    TrojanProbe,
    RiskyEstablished,
    TrojanUdpAnswered,
    TrojanUdpUnanswered,
}

impl PortRule {
    pub const ALL: [PortRule; 5] = [
        PortRule::TrojanEstablished,
        PortRule::TrojanProbe,
        PortRule::RiskyEstablished,
        PortRule::TrojanUdpAnswered,
        PortRule::TrojanUdpUnanswered,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    /// The rule's id (in alerts' `alert.rule` and in rules files).
    pub fn id(self) -> &'static str {
        match self {
            PortRule::TrojanEstablished => "trojan-established",
            PortRule::TrojanProbe => "trojan-probe",
            PortRule::RiskyEstablished => "risky-service-established",
            PortRule::TrojanUdpAnswered => "trojan-udp-answered",
            PortRule::TrojanUdpUnanswered => "trojan-udp-unanswered",
        }
    }

    pub fn parse(s: &str) -> Option<PortRule> {
        PortRule::ALL.into_iter().find(|r| r.id() == s.trim())
    }

    pub fn names() -> Vec<&'static str> {
        PortRule::ALL.iter().map(|r| r.id()).collect()
    }

    /// Suricata-style signature id (a private range: 9 000 000 and up).
    pub fn signature_id(self) -> u32 {
        9_000_001 + self as u32
    }

    /// 1 high, 2 medium, 3 low.
    pub fn default_severity(self) -> u8 {
        match self {
            PortRule::TrojanEstablished | PortRule::TrojanUdpAnswered => 1,
            PortRule::RiskyEstablished => 2,
            PortRule::TrojanProbe | PortRule::TrojanUdpUnanswered => 3,
        }
    }

    /// `alert.category`.
    pub fn category(self) -> &'static str {
        match self {
            PortRule::RiskyEstablished => "risky-service",
            _ => "trojan-port",
        }
    }

    /// `alert.signature`: one line a person reads.
    pub fn signature(self, e: &PortEntry, port: u16) -> String {
        let p = e.proto.name();
        let name = e.display_name();
        match self {
            PortRule::TrojanEstablished => {
                format!("Connection established to trojan/backdoor port {port}/{p} ({name})")
            }
            PortRule::TrojanProbe => {
                format!("Probe of trojan/backdoor port {port}/{p} ({name}), not answered")
            }
            PortRule::RiskyEstablished => format!("Risky service answered on {port}/{p} ({name})"),
            PortRule::TrojanUdpAnswered => {
                format!("UDP to trojan/backdoor port {port}/{p} ({name}) answered by the target")
            }
            PortRule::TrojanUdpUnanswered => {
                format!("UDP to trojan/backdoor port {port}/{p} ({name}), no UDP answer")
            }
        }
    }
}

/// Did the responder answer like a listening service? A SYN-ACK, or any payload from it.
fn responder_listened(r: &ConnRecord) -> bool {
    const SYN_ACK: u8 = 0x12;
    r.resp_tcp_flags & SYN_ACK == SYN_ACK || r.resp_bytes > 0
}

/// Which rule, if any, a finished connection triggers, with the port entry it concerns.
pub fn judge<'a>(r: &ConnRecord, db: &'a PortDb) -> Option<(PortRule, &'a PortEntry)> {
    match r.ip_proto {
        proto::TCP => {
            let e = db.lookup(PortProto::Tcp, r.resp.port)?;
            let listened = responder_listened(r);
            let rule = match (e.category, listened) {
                (Category::Trojan, true) => PortRule::TrojanEstablished,
                (Category::Trojan, false) if r.orig_pkts > 0 => PortRule::TrojanProbe,
                (Category::Risky, true) => PortRule::RiskyEstablished,
                _ => return None,
            };
            Some((rule, e))
        }
        proto::UDP => {
            let e = db.lookup(PortProto::Udp, r.resp.port)?;
            let answered = r.resp_pkts > 0;
            let rule = match (e.category, answered) {
                (Category::Trojan, true) => PortRule::TrojanUdpAnswered,
                (Category::Trojan, false) => PortRule::TrojanUdpUnanswered,
                (Category::Risky, true) => PortRule::RiskyEstablished,
                _ => return None,
            };
            Some((rule, e))
        }
        _ => None,
    }
}
