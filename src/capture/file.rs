//! Offline input: pcap and pcapng files (and standard input) read through libpcap.
//!
//! Several inputs form one stream in the order given (rotated captures); each keeps its own link
//! type. A file cut short is analysed up to the damage and the damage is reported; a file that is
//! not a capture is reported and skipped.

use crossbeam_channel::{Receiver, Sender};

use super::batch::{Linktype, PacketBatch};
use crate::time::Micros;

/// How reading one input ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceOutcome {
    /// Read to its end.
    Complete,
    /// Read up to a damaged or truncated record; packets before it were analysed.
    Damaged(String),
    /// Could not be read at all (missing, not a capture, unsupported).
    Unreadable(String),
}

/// What the reader saw in one input.
#[derive(Clone, Debug)]
pub struct SourceReport {
    pub name: String,
    pub linktype: Option<Linktype>,
    pub packets: u64,
    pub wire_bytes: u64,
    pub outcome: SourceOutcome,
}

impl SourceReport {
    /// One line for a person: what happened to this input.
    pub fn describe(&self) -> Option<String> {
        match &self.outcome {
            SourceOutcome::Complete => None,
            SourceOutcome::Damaged(why) => Some(format!(
                "{}: damaged after record {} ({} packets analysed up to the damage): {}",
                self.name, self.packets, self.packets, why
            )),
            SourceOutcome::Unreadable(why) => Some(format!("{}: {}", self.name, why)),
        }
    }
}

/// Turns libpcap's open error into a sentence that names what is wrong.
fn explain_open_error(name: &str, err: &pcap::Error) -> String {
    let msg = match err {
        pcap::Error::PcapError(s) => s.clone(),
        other => other.to_string(),
    };
    let lower = msg.to_ascii_lowercase();
    if lower.contains("unknown file format") || lower.contains("bad dump file format") {
        format!("not a pcap or pcapng capture ({msg})")
    } else if lower.contains("no such file") {
        "no such file".to_string()
    } else if lower.contains("permission denied") {
        "permission denied (check the file's mode or run as a user who may read it)".to_string()
    } else if lower.contains("is a directory") {
        "is a directory, not a capture file".to_string()
    } else if lower.contains("truncated dump file") && lower.contains("file header") {
        "not a pcap or pcapng capture (empty or shorter than a capture file header)".to_string()
    } else {
        let _ = name;
        format!("cannot open as a capture: {msg}")
    }
}

/// Reads every input in order and sends full batches to `tx`; emptied batches come back on
/// `recycle`. Returns one report per input. Blocks when the channel is full (nothing is lost).
pub fn read_offline(
    inputs: &[String],
    tx: &Sender<PacketBatch>,
    recycle: &Receiver<PacketBatch>,
) -> Vec<SourceReport> {
    let mut reports = Vec::with_capacity(inputs.len());
    let mut batch = recycle.try_recv().unwrap_or_else(|_| PacketBatch::new());
    for (idx, name) in inputs.iter().enumerate() {
        let source = u16::try_from(idx).unwrap_or(u16::MAX);
        let display = if name == "-" {
            "<stdin>".to_string()
        } else {
            name.clone()
        };
        let mut report = SourceReport {
            name: display.clone(),
            linktype: None,
            packets: 0,
            wire_bytes: 0,
            outcome: SourceOutcome::Complete,
        };
        let mut cap = match pcap::Capture::from_file(name) {
            Ok(c) => c,
            Err(e) => {
                report.outcome = SourceOutcome::Unreadable(explain_open_error(&display, &e));
                reports.push(report);
                continue;
            }
        };
        let linktype = Linktype(cap.get_datalink().0);
        report.linktype = Some(linktype);
        loop {
            match cap.next_packet() {
                Ok(p) => {
                    let ts = Micros::from_timeval(p.header.ts.tv_sec, p.header.ts.tv_usec);
                    batch.push(ts, p.header.len, p.data, linktype, source);
                    report.packets += 1;
                    report.wire_bytes += u64::from(p.header.len);
                    if batch.is_full() {
                        let next = recycle.try_recv().unwrap_or_else(|_| PacketBatch::new());
                        let full = std::mem::replace(&mut batch, next);
                        if tx.send(full).is_err() {
                            // Analysis has gone away; nothing more to do.
                            reports.push(report);
                            return reports;
                        }
                    }
                }
                Err(pcap::Error::NoMorePackets) => break,
                Err(e) => {
                    let msg = match e {
                        pcap::Error::PcapError(s) => s,
                        other => other.to_string(),
                    };
                    report.outcome = SourceOutcome::Damaged(msg);
                    break;
                }
            }
        }
        reports.push(report);
    }
    if !batch.is_empty() {
        let _ = tx.send(batch);
    }
    reports
}
