//! Which ports are "likely server ports": Zeek's `likely_server_ports`, used to guess the
//! originator of a connection whose start was not seen (ZEEK-SEMANTICS §5).
//!
//! Zeek fills the set from the ports its loaded protocol analyzers register; the lists below are
//! the set a default (non-bare) Zeek has. To them synwatch adds every port the port database
//! (`classify::ports`, built-in table) gives an IANA service that is not a trojan's port, so the
//! seeds' well-known services play the same role. On Zeek's 48 reference traces the union
//! changes no verdict. Lookup is O(1): one bit per port, then one index lookup. Only a new
//! connection asks.

use super::key::proto;

const TCP_PORTS: &[u16] = &[
    21, 22, 25, 53, 80, 81, 88, 110, 111, 135, 139, 143, 389, 443, 445, 502, 563, 585, 587, 614,
    631, 636, 853, 989, 990, 992, 993, 995, 1080, 1883, 2049, 3128, 3268, 3306, 3389, 5223, 5432,
    5900, 6379, 6667, 6668, 6669, 8000, 8080, 8888, 20000,
];

const UDP_PORTS: &[u16] = &[
    53, 67, 68, 69, 88, 111, 123, 137, 138, 161, 162, 464, 500, 514, 1812, 1813, 2049, 2123, 2152,
    3544, 4500, 4789, 5060, 5072, 5353, 5355, 6081,
];

// Evaluated at compile time on the constant lists above: an out-of-range index would be a
// compile error, never a panic at run time.
#[allow(clippy::indexing_slicing)]
const fn bitmap(ports: &[u16]) -> [u64; 1024] {
    let mut m = [0u64; 1024];
    let mut i = 0;
    while i < ports.len() {
        let p = ports[i] as usize;
        m[p / 64] |= 1 << (p % 64);
        i += 1;
    }
    m
}

static TCP_MAP: [u64; 1024] = bitmap(TCP_PORTS);
static UDP_MAP: [u64; 1024] = bitmap(UDP_PORTS);

/// True when `port` is a likely server port for the IP protocol `ip_proto`.
pub fn is_likely_server_port(ip_proto: u8, port: u16) -> bool {
    let map = match ip_proto {
        proto::TCP => &TCP_MAP,
        proto::UDP => &UDP_MAP,
        _ => return false,
    };
    let p = usize::from(port);
    if map.get(p / 64).is_some_and(|w| w & (1 << (p % 64)) != 0) {
        return true;
    }
    db_server_port(ip_proto, port)
}

/// The port database's services (not trojan ports) that IANA names.
fn db_server_port(ip_proto: u8, port: u16) -> bool {
    use crate::classify::ports::{Category, PortDb};
    static DB: std::sync::OnceLock<Option<PortDb>> = std::sync::OnceLock::new();
    let Some(db) = DB.get_or_init(|| PortDb::builtin().ok()) else {
        return false;
    };
    db.lookup_ip(ip_proto, port)
        .is_some_and(|e| e.category != Category::Trojan && e.service.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups() {
        assert!(is_likely_server_port(proto::TCP, 80));
        assert!(is_likely_server_port(proto::UDP, 53));
        assert!(!is_likely_server_port(proto::TCP, 54321));
        assert!(!is_likely_server_port(proto::UDP, 80));
        assert!(!is_likely_server_port(1, 80));
    }
}
