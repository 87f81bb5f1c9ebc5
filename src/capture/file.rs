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
    /// Read, but its link type is not one synwatch decodes: packets counted, not analysed.
    Unsupported(String),
}

/// What the reader saw in one input.
#[derive(Clone, Debug)]
pub struct SourceReport {
    pub name: String,
    pub linktype: Option<Linktype>,
    pub packets: u64,
    pub wire_bytes: u64,
    pub outcome: SourceOutcome,
    /// Oddities that did not stop the reading (each said once, with where it first happened).
    pub warnings: Vec<String>,
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
            SourceOutcome::Unsupported(why) => Some(format!("{}: {}", self.name, why)),
        }
    }

    /// Every line for a person: the outcome, then the warnings.
    pub fn messages(&self) -> Vec<String> {
        let mut v: Vec<String> = self.describe().into_iter().collect();
        v.extend(self.warnings.iter().map(|w| format!("{}: {w}", self.name)));
        v
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

/// An open savefile: through a mapped stream (`mapped`, a regular file: see
/// `src/capture/mapped.rs`), or through libpcap's own stream and the stdio buffer below.
///
/// libpcap reads a savefile with two `fread`s per record (header, then data). Through a
/// default stream that costs a 4 KiB `read` system call every few packets, and, once the
/// process has a second thread, glibc's stream lock taken and released around every `fread`.
/// The stream is this thread's alone, so its locking is turned off (`__fsetlocking`,
/// `FSETLOCKING_BYCALLER`), and a regular file gets a 1 MiB buffer (`setvbuf`; glibc first
/// seeks back over what it had buffered, so nothing is skipped).
///
/// Field order matters: `cap`, whose drop closes the stream, is dropped before `mapped` and
/// `_buf`, which the stream uses.
struct Savefile {
    cap: pcap::Capture<pcap::Offline>,
    mapped: Option<super::mapped::Mapped>,
    _buf: Option<Box<[u8]>>,
}

impl Savefile {
    const BUFFER: usize = 1 << 20;

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn new(cap: pcap::Capture<pcap::Offline>, regular_file: bool) -> Savefile {
        use std::ffi::{c_char, c_int, c_void};
        unsafe extern "C" {
            /// libpcap: the savefile's `FILE *` (null for a live capture).
            fn pcap_file(p: *mut c_void) -> *mut c_void;
            /// glibc (`stdio_ext.h`): sets the stream's locking mode.
            fn __fsetlocking(stream: *mut c_void, kind: c_int) -> c_int;
            /// C: gives the stream a buffer.
            fn setvbuf(stream: *mut c_void, buf: *mut c_char, mode: c_int, size: usize) -> c_int;
        }
        const FSETLOCKING_BYCALLER: c_int = 2;
        const IOFBF: c_int = 0;
        // Only a regular file: glibc gives back what it had buffered by seeking, and on a
        // pipe, where that fails, it would drop those bytes and take the new buffer anyway.
        let mut buf = regular_file.then(|| vec![0u8; Self::BUFFER].into_boxed_slice());
        // SAFETY: `cap.as_ptr()` is the live `pcap_t` this `Capture` owns and `pcap_file`
        // only reads its stream pointer. The stream is used by libpcap from this thread alone
        // (the `Capture` is never shared), the condition for caller-side locking, which may be
        // set on an open stream at any time. The buffer handed to `setvbuf` is heap memory
        // that does not move and outlives the stream: it is dropped after `cap` (field order),
        // and `fclose` in `pcap_close` does not free a caller's buffer. Should `setvbuf` fail,
        // the stream keeps its own buffer and nothing else changes.
        unsafe {
            let fp = pcap_file(cap.as_ptr().cast());
            if !fp.is_null() {
                __fsetlocking(fp, FSETLOCKING_BYCALLER);
                if let Some(b) = buf.as_mut() {
                    // A failure leaves the stream's own buffer in place: nothing to undo.
                    let _ = setvbuf(fp, b.as_mut_ptr().cast(), IOFBF, b.len());
                }
            }
        }
        Savefile {
            cap,
            mapped: None,
            _buf: buf,
        }
    }

    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    fn new(cap: pcap::Capture<pcap::Offline>, _regular_file: bool) -> Savefile {
        Savefile {
            cap,
            mapped: None,
            _buf: None,
        }
    }
}

/// libpcap's largest snap length.
const MAX_SNAPLEN: u32 = 262_144;

/// The snap length in a classic pcap file's header (None for pcapng or unreadable files).
fn classic_snaplen(path: &str) -> Option<u32> {
    use std::io::Read;
    let mut h = [0u8; 24];
    std::fs::File::open(path).ok()?.read_exact(&mut h).ok()?;
    let magic = [h[0], h[1], h[2], h[3]];
    let s = [h[16], h[17], h[18], h[19]];
    match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => Some(u32::from_le_bytes(s)),
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => Some(u32::from_be_bytes(s)),
        _ => None,
    }
}

/// Odd records that do not stop the reading: counted, and the first of each kind remembered.
#[derive(Default)]
struct Oddities {
    last_ts: Option<Micros>,
    backwards: (u64, u64),
    zero_len: (u64, u64),
    over_snaplen: (u64, u64),
}

impl Oddities {
    fn see(&mut self, record: u64, ts: Micros, caplen: u32, snaplen: Option<u32>) {
        let bump = |c: &mut (u64, u64)| {
            if c.0 == 0 {
                c.1 = record;
            }
            c.0 += 1;
        };
        if self.last_ts.is_some_and(|t| ts < t) {
            bump(&mut self.backwards);
        }
        self.last_ts = Some(self.last_ts.map_or(ts, |t| t.max(ts)));
        if caplen == 0 {
            bump(&mut self.zero_len);
        }
        if snaplen.is_some_and(|s| s > 0 && caplen > s) {
            bump(&mut self.over_snaplen);
        }
    }

    fn report(&self, r: &mut SourceReport) {
        let (n, first) = self.backwards;
        if n > 0 {
            r.warnings.push(format!(
                "timestamps go backwards {n} times (first at record {first}); timers keep the latest time seen"
            ));
        }
        let (n, first) = self.zero_len;
        if n > 0 {
            r.warnings.push(format!(
                "{n} zero-length records (first at record {first}), counted as undecodable"
            ));
        }
        let (n, first) = self.over_snaplen;
        if n > 0 {
            r.warnings.push(format!(
                "{n} records longer than the file's snap length (first at record {first}); read as they are"
            ));
        }
    }
}

/// The accounting of one file's packets as they are committed (see [`commit`]).
#[derive(Default)]
struct Accounts {
    snaplen: Option<u32>,
    odd: Oddities,
    /// Bytes and packets read but not yet added to the progress counters: they are added a
    /// batch at a time (two atomic additions per packet were 5% of this thread).
    unshown: (u64, u64),
}

/// Accounts the packets of `batch` from `from` on to `report`. From a mapped file they are
/// first checked against the file's size ([`super::mapped::Mapped::check`]): those that end
/// past it were read from a page the file was cut inside, as zeros, and are dropped from the
/// batch. Returns the size when that happened.
fn commit(
    batch: &mut PacketBatch,
    from: usize,
    file: &Savefile,
    ends: &mut Vec<u64>,
    report: &mut SourceReport,
    acct: &mut Accounts,
) -> Option<u64> {
    let mut cut = None;
    if let Some(m) = &file.mapped
        && let Some((whole, size)) = m.check(ends)
    {
        batch.truncate(from + whole);
        cut = Some(size);
    }
    ends.clear();
    for m in batch.metas().get(from..).unwrap_or(&[]) {
        acct.odd
            .see(report.packets + 1, m.ts, m.caplen, acct.snaplen);
        // Record header and data: exact for pcap, close for pcapng.
        acct.unshown.0 += 16 + u64::from(m.caplen);
        acct.unshown.1 += 1;
        report.packets += 1;
        report.wire_bytes += u64::from(m.wire_len);
    }
    cut
}

/// Reads every input in order and sends full batches to `tx`; emptied batches come back on
/// `recycle`. Returns one report per input. Blocks when the channel is full (nothing is lost).
pub fn read_offline(
    inputs: &[String],
    tx: &Sender<PacketBatch>,
    recycle: &Receiver<PacketBatch>,
    progress: &crate::output::progress::ReadProgress,
) -> Vec<SourceReport> {
    use std::sync::atomic::Ordering;
    let mut reports = Vec::with_capacity(inputs.len());
    let mut batch = recycle.try_recv().unwrap_or_else(|_| PacketBatch::new());
    let mut acct = Accounts::default();
    // Where each pending record of a mapped file ends in it (see `commit`).
    let mut ends: Vec<u64> = Vec::with_capacity(PacketBatch::MAX_PACKETS);
    let show = |u: &mut (u64, u64)| {
        progress.bytes.fetch_add(u.0, Ordering::Relaxed);
        progress.packets.fetch_add(u.1, Ordering::Relaxed);
        *u = (0, 0);
    };
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
            warnings: Vec::new(),
        };
        // A regular file can be read twice and seeked in; a pipe given by name
        // (`<(zcat f.pcap.gz)`, a FIFO, /dev/stdin) cannot, and must reach libpcap untouched.
        let regular = name != "-" && std::fs::metadata(name).is_ok_and(|m| m.is_file());
        // The classic pcap header's snap length, read directly (libpcap clamps it silently).
        let header_snaplen = if regular { classic_snaplen(name) } else { None };
        if let Some(s) = header_snaplen
            && (s == 0 || s > MAX_SNAPLEN)
        {
            report.warnings.push(format!(
                "the file header's snap length {s} is not valid (0 or over {MAX_SNAPLEN}); packets read anyway"
            ));
        }
        acct.snaplen = header_snaplen;
        acct.odd = Oddities::default();
        // A regular file is read through a mapping (`mapped`); should that not open, or for
        // anything else, libpcap opens it, and reports why it cannot be read.
        let opened = match regular.then(|| super::mapped::open(name)).flatten() {
            Some((cap, m)) => Ok(Savefile {
                cap,
                mapped: Some(m),
                _buf: None,
            }),
            None => pcap::Capture::from_file(name).map(|c| Savefile::new(c, regular)),
        };
        let mut file = match opened {
            Ok(f) => f,
            Err(e) => {
                report.outcome = SourceOutcome::Unreadable(explain_open_error(&display, &e));
                reports.push(report);
                continue;
            }
        };
        let linktype = Linktype(file.cap.get_datalink().0);
        report.linktype = Some(linktype);
        progress.bytes.fetch_add(24, Ordering::Relaxed);
        // Packets of this file in `batch` from `from` on are read but not yet accounted:
        // from a mapped file they are first checked against its size (`commit`).
        let mut from = batch.len();
        ends.clear();
        let mut faulted = false;
        let mut cut_at = None;
        loop {
            let next = file.cap.next_packet();
            if file.mapped.is_some() && super::mapped::shrank() {
                // The record being read met a page the file no longer has: not kept. The
                // records before it are checked against the size in `commit`.
                faulted = true;
                break;
            }
            match next {
                Ok(p) => {
                    let ts = Micros::from_timeval(p.header.ts.tv_sec, p.header.ts.tv_usec);
                    batch.push(ts, p.header.len, p.data, linktype, source);
                    if let Some(m) = &file.mapped {
                        ends.push(m.offset());
                    }
                    if batch.is_full() {
                        cut_at = commit(&mut batch, from, &file, &mut ends, &mut report, &mut acct);
                        show(&mut acct.unshown);
                        if let Some(m) = file.mapped.as_mut() {
                            m.trim();
                        }
                        let next = recycle.try_recv().unwrap_or_else(|_| PacketBatch::new());
                        let full = std::mem::replace(&mut batch, next);
                        from = 0;
                        if tx.send(full).is_err() {
                            // Analysis has gone away; nothing more to do.
                            reports.push(report);
                            return reports;
                        }
                        if cut_at.is_some() {
                            break;
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
        let last = commit(&mut batch, from, &file, &mut ends, &mut report, &mut acct);
        if let Some(size) = last.or(cut_at) {
            report.outcome = SourceOutcome::Damaged(format!(
                "the file shrank to {size} bytes while it was being read (truncated by another process?)"
            ));
        } else if faulted {
            report.outcome = SourceOutcome::Damaged(
                "the file shrank while it was being read (truncated by another process?)"
                    .to_string(),
            );
        }
        show(&mut acct.unshown);
        acct.odd.report(&mut report);
        if !crate::decode::link::is_supported(linktype.0)
            && report.outcome == SourceOutcome::Complete
        {
            report.outcome = SourceOutcome::Unsupported(format!(
                "link type {} is not one synwatch decodes: {} packets counted, not analysed",
                linktype.0, report.packets
            ));
        }
        reports.push(report);
    }
    if !batch.is_empty() {
        let _ = tx.send(batch);
    }
    reports
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    /// Reads `path` on a thread; after the first batch arrives, cuts the file to `cut` bytes.
    /// Returns the packets delivered (their first bytes: the record index's low byte) and the
    /// file's report.
    fn read_and_cut(path: &std::path::Path, cut: u64) -> (Vec<u32>, SourceReport) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let (_back, recycle) = crossbeam_channel::unbounded();
        let name = path.to_str().unwrap().to_string();
        let reader = std::thread::spawn(move || {
            let progress = crate::output::progress::ReadProgress::default();
            read_offline(&[name], &tx, &recycle, &progress)
        });
        let mut got = Vec::new();
        let mut first = true;
        for b in rx.iter() {
            let b: PacketBatch = b;
            for (_, d) in b.iter() {
                got.push(u32::from(d[0]));
            }
            if first {
                first = false;
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .unwrap()
                    .set_len(cut)
                    .unwrap();
            }
        }
        let mut reports = reader.join().unwrap();
        (got, reports.remove(0))
    }

    #[test]
    fn a_file_cut_inside_a_page_while_read_keeps_only_its_whole_records() {
        let dir = crate::capture::mapped::tests::scratch("cut");
        // Cut in the middle of a page, far past what the reader can have read ahead (it is
        // at most two batches, about 2 MB, ahead of the first), and inside the last page.
        let size = 24 + 40_000 * 1016u64;
        for (i, cut) in [(10u64 << 20) + 2000, size - 1000].into_iter().enumerate() {
            let path = dir.join(format!("f{i}.pcap"));
            crate::capture::mapped::tests::write_pcap(&path, 40_000, 1000);
            let (got, report) = read_and_cut(&path, cut);
            let whole = ((cut - 24) / 1016) as u32;
            let want: Vec<u32> = (0..whole).map(|i| u32::from(i as u8)).collect();
            assert_eq!(got, want, "cut at {cut}");
            assert_eq!(report.packets, u64::from(whole));
            match &report.outcome {
                SourceOutcome::Damaged(m) => assert!(m.contains("shrank"), "{m}"),
                o => panic!("cut at {cut}: {o:?}"),
            }
            assert!(
                report.warnings.is_empty(),
                "no zeros read as records: {:?}",
                report.warnings
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
