//! Live input: packets from a network interface through libpcap.
//!
//! The device is opened (and the BPF filter compiled and checked) before any thread starts, so
//! a bad interface or filter is a clear error and nothing else. The capture thread then reads
//! with a short libpcap timeout, fills batches, and hands each to analysis **without waiting**:
//! when the channel is full the batch is dropped and its packets counted as synwatch drops
//! (the kernel's and the interface's drops, from `pcap_stats`, are counted separately). A
//! partly filled batch is sent after at most [`FLUSH_AFTER`], so quiet links are analysed
//! promptly. The thread stops on the stop flag (signals), after `--count` packets or after
//! `--duration`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::batch::{Linktype, PacketBatch};
use crate::time::Micros;

/// A partly filled batch is sent after this long.
pub const FLUSH_AFTER: Duration = Duration::from_millis(100);

/// How to open the interface.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    pub interface: String,
    pub filter: Option<String>,
    pub snaplen: i32,
    pub promisc: bool,
    pub immediate: bool,
    /// Kernel buffer, bytes.
    pub buffer_size: i32,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
}

/// Counters the capture thread keeps, readable while it runs (for `stats` events).
#[derive(Debug, Default)]
pub struct LiveCounters {
    /// Packets read from libpcap.
    pub captured: AtomicU64,
    /// Packets dropped by synwatch because analysis was behind (channel full).
    pub dropped: AtomicU64,
    /// From `pcap_stats`: received by the filter, dropped by the kernel, dropped by the
    /// interface or driver.
    pub pcap_received: AtomicU64,
    pub kernel_dropped: AtomicU64,
    pub if_dropped: AtomicU64,
}

/// How the capture ended.
#[derive(Clone, Debug, Default)]
pub struct LiveReport {
    pub interface: String,
    pub linktype: Option<Linktype>,
    pub captured: u64,
    pub dropped: u64,
    pub pcap_received: u64,
    pub kernel_dropped: u64,
    pub if_dropped: u64,
    /// A read error that ended the capture early, if any.
    pub error: Option<String>,
}

/// One line for a person about an open failure, with what to do.
fn explain(iface: &str, err: &pcap::Error) -> String {
    let msg = match err {
        pcap::Error::PcapError(s) => s.clone(),
        other => other.to_string(),
    };
    let lower = msg.to_ascii_lowercase();
    if lower.contains("permission") || lower.contains("operation not permitted") {
        format!(
            "permission denied opening {iface}: run as root or grant CAP_NET_RAW and CAP_NET_ADMIN (setcap cap_net_raw,cap_net_admin=eip synwatch)"
        )
    } else if lower.contains("no such device") || lower.contains("doesn't exist") {
        format!("no such interface {iface} (see `synwatch interfaces`)")
    } else {
        format!("cannot open {iface} for capture: {msg}")
    }
}

/// Opens the interface and installs the filter. Errors name the interface or the filter.
pub fn open(opts: &LiveOptions) -> Result<pcap::Capture<pcap::Active>, String> {
    let inactive = pcap::Capture::from_device(opts.interface.as_str())
        .map_err(|e| explain(&opts.interface, &e))?
        .promisc(opts.promisc)
        .snaplen(opts.snaplen)
        .immediate_mode(opts.immediate)
        .buffer_size(opts.buffer_size)
        .timeout(50);
    // Non-blocking, with our own poll(): libpcap's read timeout does not apply in immediate
    // mode, and the thread must notice a stop request and flush partial batches on quiet links.
    let mut cap = inactive
        .open()
        .map_err(|e| explain(&opts.interface, &e))?
        .setnonblock()
        .map_err(|e| explain(&opts.interface, &e))?;
    if let Some(f) = &opts.filter {
        cap.filter(f, true).map_err(|e| {
            let msg = match e {
                pcap::Error::PcapError(s) => s,
                other => other.to_string(),
            };
            format!("bad capture filter `{f}`: {msg}")
        })?;
    }
    Ok(cap)
}

/// Reads packets until stopped; see the module documentation for the drop policy.
pub fn run(
    mut cap: pcap::Capture<pcap::Active>,
    opts: &LiveOptions,
    tx: &Sender<PacketBatch>,
    recycle: &Receiver<PacketBatch>,
    stop: &AtomicBool,
    counters: &Arc<LiveCounters>,
) -> LiveReport {
    let linktype = Linktype(cap.get_datalink().0);
    let mut report = LiveReport {
        interface: opts.interface.clone(),
        linktype: Some(linktype),
        ..LiveReport::default()
    };
    let started = Instant::now();
    let mut batch = recycle.try_recv().unwrap_or_else(|_| PacketBatch::new());
    let mut batch_started = Instant::now();
    let mut last_stats = Instant::now();
    // Hands a batch over without blocking; a full channel costs the batch, counted.
    let send = |batch: &mut PacketBatch, report: &mut LiveReport| -> bool {
        if batch.is_empty() {
            return true;
        }
        let next = recycle.try_recv().unwrap_or_else(|_| PacketBatch::new());
        let full = std::mem::replace(batch, next);
        match tx.try_send(full) {
            Ok(()) => true,
            Err(TrySendError::Full(mut b)) => {
                report.dropped += b.len() as u64;
                counters
                    .dropped
                    .fetch_add(b.len() as u64, Ordering::Relaxed);
                b.clear();
                *batch = b;
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    };
    loop {
        if stop.load(Ordering::Relaxed)
            || opts.count.is_some_and(|c| report.captured >= c)
            || opts.duration.is_some_and(|d| started.elapsed() >= d)
        {
            break;
        }
        match cap.next_packet() {
            Ok(p) => {
                let ts = Micros::from_timeval(p.header.ts.tv_sec, p.header.ts.tv_usec);
                if batch.is_empty() {
                    batch_started = Instant::now();
                }
                batch.push(ts, p.header.len, p.data, linktype, 0);
                report.captured += 1;
                counters.captured.fetch_add(1, Ordering::Relaxed);
                if batch.is_full() && !send(&mut batch, &mut report) {
                    break;
                }
            }
            Err(pcap::Error::TimeoutExpired) => wait_readable(&cap, 50),
            Err(e) => {
                report.error = Some(match e {
                    pcap::Error::PcapError(s) => s,
                    other => other.to_string(),
                });
                break;
            }
        }
        if !batch.is_empty()
            && batch_started.elapsed() >= FLUSH_AFTER
            && !send(&mut batch, &mut report)
        {
            break;
        }
        if last_stats.elapsed() >= Duration::from_secs(1) {
            last_stats = Instant::now();
            read_stats(&mut cap, &mut report, counters);
        }
    }
    let _ = send(&mut batch, &mut report);
    read_stats(&mut cap, &mut report, counters);
    report
}

/// Waits up to `ms` milliseconds for the capture descriptor to become readable.
fn wait_readable(cap: &pcap::Capture<pcap::Active>, ms: u16) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(cap.as_fd(), PollFlags::POLLIN)];
    let _ = poll(&mut fds, PollTimeout::from(ms));
}

fn read_stats(cap: &mut pcap::Capture<pcap::Active>, report: &mut LiveReport, c: &LiveCounters) {
    if let Ok(s) = cap.stats() {
        report.pcap_received = u64::from(s.received);
        report.kernel_dropped = u64::from(s.dropped);
        report.if_dropped = u64::from(s.if_dropped);
        c.pcap_received
            .store(report.pcap_received, Ordering::Relaxed);
        c.kernel_dropped
            .store(report.kernel_dropped, Ordering::Relaxed);
        c.if_dropped.store(report.if_dropped, Ordering::Relaxed);
    }
}

/// `synwatch interfaces`: every capture device with its addresses and flags.
pub fn list_interfaces() -> Result<String, String> {
    use std::fmt::Write as _;
    let devs = pcap::Device::list().map_err(|e| format!("cannot list interfaces: {e}"))?;
    let mut s = String::new();
    for (i, d) in devs.iter().enumerate() {
        let f = &d.flags.if_flags;
        let mut flags = Vec::new();
        if f.contains(pcap::IfFlags::UP) {
            flags.push("up");
        }
        if f.contains(pcap::IfFlags::RUNNING) {
            flags.push("running");
        }
        if f.contains(pcap::IfFlags::LOOPBACK) {
            flags.push("loopback");
        }
        if f.contains(pcap::IfFlags::WIRELESS) {
            flags.push("wireless");
        }
        let _ = write!(s, "{}. {}", i + 1, d.name);
        if let Some(desc) = &d.desc {
            let _ = write!(s, " ({desc})");
        }
        if !flags.is_empty() {
            let _ = write!(s, " [{}]", flags.join(", "));
        }
        s.push('\n');
        for a in &d.addresses {
            let _ = write!(s, "     {}", a.addr);
            if let Some(m) = a.netmask {
                let _ = write!(s, " netmask {m}");
            }
            s.push('\n');
        }
    }
    Ok(s)
}
