//! Zeek's tab-separated conn.log, so tools that read conn.log read ours (ZEEK-SEMANTICS §1).

use std::io::Write;

use crate::classify::ports::PortDb;
use crate::flow::ConnRecord;
use crate::flow::key::proto;
use crate::time::Micros;

const FIELDS: &str = "ts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents\tip_proto";
const TYPES: &str = "time\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\tbool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]\tcount";

fn open_stamp(t: Micros) -> String {
    // Zeek writes #open/#close as YYYY-MM-DD-HH-MM-SS.
    let s = t.to_rfc3339();
    let b = s.as_bytes();
    let part = |a: usize, z: usize| s.get(a..z).unwrap_or("00");
    if b.len() >= 19 {
        format!(
            "{}-{}-{}-{}-{}-{}",
            part(0, 4),
            part(5, 7),
            part(8, 10),
            part(11, 13),
            part(14, 16),
            part(17, 19)
        )
    } else {
        s
    }
}

pub fn write_header(out: &mut impl Write, now: Micros) -> std::io::Result<()> {
    writeln!(out, "#separator \\x09")?;
    writeln!(out, "#set_separator\t,")?;
    writeln!(out, "#empty_field\t(empty)")?;
    writeln!(out, "#unset_field\t-")?;
    writeln!(out, "#path\tconn")?;
    writeln!(out, "#open\t{}", open_stamp(now))?;
    writeln!(out, "#fields\t{FIELDS}")?;
    writeln!(out, "#types\t{TYPES}")
}

pub fn write_footer(out: &mut impl Write, now: Micros) -> std::io::Result<()> {
    writeln!(out, "#close\t{}", open_stamp(now))
}

/// Durations under this many microseconds (about 31 years) are written exactly from their
/// integer microseconds, which is what `{:.6}` of their `f64` seconds prints; longer ones
/// (crafted timestamps only) through the `f64`, as always.
const EXACT_DURATION: i64 = 1_000_000_000_000_000;

/// Writes one conn.log row. `line` is a scratch buffer reused between calls. Built by hand
/// from the record writer's pieces (`text`): through `write!` this row cost more than the
/// JSON line three times its length.
pub fn write_row(
    out: &mut impl Write,
    r: &ConnRecord,
    line: &mut Vec<u8>,
    db: &PortDb,
) -> std::io::Result<()> {
    use super::text::{Text, push_ip, push_secs6, push_u64};
    line.clear();
    r.start.write_epoch(line);
    let proto_s = match r.ip_proto {
        proto::TCP => "tcp",
        proto::UDP => "udp",
        proto::ICMP | proto::ICMPV6 => "icmp",
        _ => "unknown_transport",
    };
    line.put("\t");
    super::write_uid(line, r.flow_id);
    for (addr, port) in [(&r.orig.addr, r.orig.port), (&r.resp.addr, r.resp.port)] {
        line.put("\t");
        push_ip(line, addr);
        line.put("\t");
        push_u64(line, u64::from(port));
    }
    line.put("\t");
    line.put(proto_s);
    line.put("\t");
    // A tunnel's own name, else the port database's IANA service for the responder port.
    line.put(r.tunnel.map(|t| t.name()).unwrap_or_else(|| {
        db.lookup_ip(r.ip_proto, r.resp.port)
            .and_then(|e| e.service.as_deref())
            .unwrap_or("-")
    }));
    let dur = r.duration();
    if dur.0 > 0 {
        line.put("\t");
        if dur.0 < EXACT_DURATION {
            push_secs6(line, dur.0);
        } else {
            let _ = write!(line, "{:.6}", dur.as_secs_f64());
        }
        line.put("\t");
        push_u64(line, r.orig_bytes);
        line.put("\t");
        push_u64(line, r.resp_bytes);
    } else {
        line.put("\t-\t-\t-");
    }
    line.put("\t");
    line.put(r.conn_state.name());
    line.put("\t-\t-\t");
    push_u64(line, r.missed_bytes);
    line.put("\t");
    if r.history.is_empty() {
        line.put("-");
    } else {
        line.put_ascii(r.history.as_bytes());
    }
    for v in [r.orig_pkts, r.orig_ip_bytes, r.resp_pkts, r.resp_ip_bytes] {
        line.put("\t");
        push_u64(line, v);
    }
    line.put("\t");
    if r.parents.is_empty() {
        line.put("-");
    }
    for (n, p) in r.parents.as_slice().iter().enumerate() {
        if n > 0 {
            line.put(",");
        }
        super::write_uid(line, *p);
    }
    line.put("\t");
    push_u64(line, u64::from(r.ip_proto));
    line.put("\n");
    out.write_all(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write as _;

    /// The row as `write!` wrote it before the row was built by hand.
    fn reference(r: &ConnRecord, db: &PortDb) -> String {
        let mut line = String::new();
        let _ = write!(line, "{}.{:06}", r.start.secs(), r.start.subsec_micros());
        let proto_s = match r.ip_proto {
            proto::TCP => "tcp",
            proto::UDP => "udp",
            proto::ICMP | proto::ICMPV6 => "icmp",
            _ => "unknown_transport",
        };
        let service = r.tunnel.map(|t| t.name()).unwrap_or_else(|| {
            db.lookup_ip(r.ip_proto, r.resp.port)
                .and_then(|e| e.service.as_deref())
                .unwrap_or("-")
        });
        let _ = write!(
            line,
            "\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            super::super::uid(r.flow_id),
            r.orig.addr.to_ip(),
            r.orig.port,
            r.resp.addr.to_ip(),
            r.resp.port,
            proto_s,
            service
        );
        let dur = r.duration();
        if dur.0 > 0 {
            let _ = write!(
                line,
                "\t{:.6}\t{}\t{}",
                dur.as_secs_f64(),
                r.orig_bytes,
                r.resp_bytes
            );
        } else {
            line.push_str("\t-\t-\t-");
        }
        let hist = if r.history.is_empty() {
            "-"
        } else {
            r.history.as_str()
        };
        let _ = write!(
            line,
            "\t{}\t-\t-\t{}\t{}\t{}\t{}\t{}\t{}\t",
            r.conn_state.name(),
            r.missed_bytes,
            hist,
            r.orig_pkts,
            r.orig_ip_bytes,
            r.resp_pkts,
            r.resp_ip_bytes,
        );
        if r.parents.is_empty() {
            line.push('-');
        }
        for (n, p) in r.parents.as_slice().iter().enumerate() {
            if n > 0 {
                line.push(',');
            }
            line.push_str(&super::super::uid(*p));
        }
        let _ = writeln!(line, "\t{}", r.ip_proto);
        line
    }

    /// Rows built by hand say what `write!` said: real records (tunnels and their parents,
    /// VLANs, TCP, UDP, ICMP, IPv6), then times and durations at the edges (before 1970, a
    /// zero and a huge duration, fractions near a whole second).
    #[test]
    fn hand_built_rows_match_the_write_reference() {
        let (db, mut records) = crate::analyse::fixture_records(&[
            "vlan.pcap",
            "tunnel-vxlan.pcap",
            "tunnel-vxlan6.pcap",
            "udp-31337-unreachable.pcap",
            "scan-syn6.pcap",
            "http-curl.pcap",
        ]);
        assert!(records.len() > 10, "{}", records.len());
        let base = records[0];
        for (start, end) in [
            (-1_500_000, -1_000_000),
            (-1, 0),
            (0, 0),
            (1_700_000_000_999_999, 1_700_000_001_000_000),
            (1_700_000_000_000_000, 1_700_000_000_000_001),
            (0, EXACT_DURATION - 1),
            (0, EXACT_DURATION),
            (i64::MIN / 2, i64::MAX / 2),
        ] {
            records.push(ConnRecord {
                start: Micros(start),
                end: Micros(end),
                ..base
            });
        }
        let mut line = Vec::new();
        for r in &records {
            let mut got = Vec::new();
            write_row(&mut got, r, &mut line, &db).unwrap();
            assert_eq!(String::from_utf8(got).unwrap(), reference(r, &db));
        }
    }
}
