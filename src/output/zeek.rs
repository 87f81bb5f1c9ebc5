//! Zeek's tab-separated conn.log, so tools that read conn.log read ours (ZEEK-SEMANTICS §1).

use std::fmt::Write as _;
use std::io::Write;

use super::uid;
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

/// Writes one conn.log row. `line` is a scratch buffer reused between calls.
pub fn write_row(
    out: &mut impl Write,
    r: &ConnRecord,
    line: &mut String,
    db: &PortDb,
) -> std::io::Result<()> {
    line.clear();
    r.start.write_epoch(line);
    let proto_s = match r.ip_proto {
        proto::TCP => "tcp",
        proto::UDP => "udp",
        proto::ICMP | proto::ICMPV6 => "icmp",
        _ => "unknown_transport",
    };
    let _ = write!(
        line,
        "\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
        uid(r.flow_id),
        r.orig.addr.to_ip(),
        r.orig.port,
        r.resp.addr.to_ip(),
        r.resp.port,
        proto_s,
        // A tunnel's own name, else the port database's IANA service for the responder port.
        r.tunnel.map(|t| t.name()).unwrap_or_else(|| db
            .lookup_ip(r.ip_proto, r.resp.port)
            .and_then(|e| e.service.as_deref())
            .unwrap_or("-")),
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
        line.push_str(&uid(*p));
    }
    let _ = write!(line, "\t{}", r.ip_proto);
    line.push('\n');
    out.write_all(line.as_bytes())
}
