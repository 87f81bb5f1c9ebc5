//! A progress line on standard error while `read` works through its inputs (only when standard
//! error is a terminal and the summary is not turned off): bytes done of the total, packets per
//! second, time left; a count and a spinner when reading standard input.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What the capture thread has read so far.
#[derive(Debug, Default)]
pub struct ReadProgress {
    /// File bytes read (headers and records).
    pub bytes: AtomicU64,
    pub packets: AtomicU64,
}

fn human(b: f64) -> String {
    const U: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < U.len() {
        v /= 1000.0;
        i += 1;
    }
    format!("{v:.1} {}", U.get(i).copied().unwrap_or("B"))
}

/// One progress line: `[#####-----]  48%  1.2 GB of 2.5 GB  1.3 Mpkt/s  ETA 12 s`.
pub fn line(done: u64, total: Option<u64>, packets: u64, elapsed: Duration, tick: usize) -> String {
    let secs = elapsed.as_secs_f64().max(1e-3);
    let rate = packets as f64 / secs;
    let rate_s = if rate >= 1e6 {
        format!("{:.1} Mpkt/s", rate / 1e6)
    } else {
        format!("{:.0} kpkt/s", rate / 1e3)
    };
    match total {
        Some(t) if t > 0 => {
            let frac = (done as f64 / t as f64).clamp(0.0, 1.0);
            let width = 24;
            let filled = (frac * width as f64).round() as usize;
            let eta = if done > 0 && frac < 1.0 {
                let left = secs * (1.0 - frac) / frac;
                format!("ETA {left:.0} s")
            } else {
                String::from("ETA -")
            };
            format!(
                "[{}{}] {:>3.0}%  {} of {}  {}  {}",
                "#".repeat(filled),
                "-".repeat(width - filled),
                frac * 100.0,
                human(done as f64),
                human(t as f64),
                rate_s,
                eta
            )
        }
        _ => {
            let spin = ['|', '/', '-', '\\'];
            format!(
                "{} {} packets, {} read  {}",
                spin.get(tick % 4).copied().unwrap_or('|'),
                packets,
                human(done as f64),
                rate_s
            )
        }
    }
}

/// Draws the line every 200 ms until `stop`; clears it at the end.
pub fn run(p: Arc<ReadProgress>, total: Option<u64>, stop: Arc<AtomicBool>) {
    let start = Instant::now();
    let mut tick = 0usize;
    let mut err = std::io::stderr();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
        tick += 1;
        let l = line(
            p.bytes.load(Ordering::Relaxed),
            total,
            p.packets.load(Ordering::Relaxed),
            start.elapsed(),
            tick,
        );
        let _ = write!(err, "\r\x1b[2K{l}");
        let _ = err.flush();
    }
    let _ = write!(err, "\r\x1b[2K");
    let _ = err.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_for_files_and_for_stdin() {
        let l = line(
            500_000_000,
            Some(1_000_000_000),
            2_000_000,
            Duration::from_secs(2),
            0,
        );
        assert!(l.starts_with("[############------------]  50%"), "{l}");
        assert!(
            l.contains("500.0 MB of 1.0 GB") && l.contains("1.0 Mpkt/s") && l.contains("ETA 2 s"),
            "{l}"
        );
        let s = line(1000, None, 10, Duration::from_secs(1), 1);
        assert!(s.starts_with("/ 10 packets, 1.0 kB read"), "{s}");
    }
}
