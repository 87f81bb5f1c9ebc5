//! Alert rule ids: names, Suricata-style signature ids, default severities, categories.

use crate::classify::ports::PortEntry;

/// Every alert rule: the port rules (`port_alerts`) and the episode rules (`scan`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    TrojanEstablished,
    TrojanProbe,
    RiskyEstablished,
    TrojanUdpAnswered,
    TrojanUdpUnanswered,
    PortScan,
    SynFlood,
    Backscatter,
}

impl Rule {
    pub const ALL: [Rule; 8] = [
        Rule::TrojanEstablished,
        Rule::TrojanProbe,
        Rule::RiskyEstablished,
        Rule::TrojanUdpAnswered,
        Rule::TrojanUdpUnanswered,
        Rule::PortScan,
        Rule::SynFlood,
        Rule::Backscatter,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    /// The rule's id (in alerts' `alert.rule` and in rules files).
    pub fn id(self) -> &'static str {
        match self {
            Rule::TrojanEstablished => "trojan-established",
            Rule::TrojanProbe => "trojan-probe",
            Rule::RiskyEstablished => "risky-service-established",
            Rule::TrojanUdpAnswered => "trojan-udp-answered",
            Rule::TrojanUdpUnanswered => "trojan-udp-unanswered",
            Rule::PortScan => "port-scan",
            Rule::SynFlood => "syn-flood",
            Rule::Backscatter => "backscatter",
        }
    }

    pub fn parse(s: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.id() == s.trim())
    }

    pub fn names() -> Vec<&'static str> {
        Rule::ALL.iter().map(|r| r.id()).collect()
    }

    /// Suricata-style signature id (a private range: 9 000 000 and up): 9000001-9000005 for the
    /// port rules, 9000101-9000103 for scans, floods and backscatter.
    pub fn signature_id(self) -> u32 {
        match self {
            Rule::PortScan => 9_000_101,
            Rule::SynFlood => 9_000_102,
            Rule::Backscatter => 9_000_103,
            r => 9_000_001 + r as u32,
        }
    }

    /// 1 high, 2 medium, 3 low.
    pub fn default_severity(self) -> u8 {
        match self {
            Rule::TrojanEstablished | Rule::TrojanUdpAnswered => 1,
            Rule::RiskyEstablished => 2,
            Rule::TrojanProbe | Rule::TrojanUdpUnanswered => 3,
            Rule::PortScan => 2,
            Rule::SynFlood => 1,
            Rule::Backscatter => 3,
        }
    }

    /// `alert.category`.
    pub fn category(self) -> &'static str {
        match self {
            Rule::RiskyEstablished => "risky-service",
            Rule::PortScan => "port-scan",
            Rule::SynFlood => "syn-flood",
            Rule::Backscatter => "backscatter",
            _ => "trojan-port",
        }
    }

    /// `alert.signature` of a port rule: one line a person reads.
    pub fn signature(self, e: &PortEntry, port: u16) -> String {
        let p = e.proto.name();
        let name = e.display_name();
        match self {
            Rule::TrojanEstablished => {
                format!("Connection established to trojan/backdoor port {port}/{p} ({name})")
            }
            Rule::TrojanProbe => {
                format!("Probe of trojan/backdoor port {port}/{p} ({name}), not answered")
            }
            Rule::RiskyEstablished => format!("Risky service answered on {port}/{p} ({name})"),
            Rule::TrojanUdpAnswered => {
                format!("UDP to trojan/backdoor port {port}/{p} ({name}) answered by the target")
            }
            Rule::TrojanUdpUnanswered => {
                format!("UDP to trojan/backdoor port {port}/{p} ({name}), no UDP answer")
            }
            Rule::PortScan | Rule::SynFlood | Rule::Backscatter => self.id().to_string(),
        }
    }
}
