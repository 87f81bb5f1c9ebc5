//! Bad input gets a clear one-line error naming the file, a documented exit code, and never a
//! panic; a truncated capture is analysed up to the damage.

mod common;

use common::*;
use std::io::Write;
use std::process::{Command, Stdio};

fn stderr_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn empty_file_is_not_a_capture() {
    let d = scratch("empty");
    let f = d.join("empty.pcap");
    std::fs::write(&f, b"").unwrap();
    let o = run(&["read", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr_of(&o);
    assert!(
        e.contains("empty.pcap") && e.contains("not a pcap or pcapng capture"),
        "{e}"
    );
    assert!(!e.contains("panicked"));
}

#[test]
fn random_bytes_are_not_a_capture() {
    let d = scratch("random");
    let f = d.join("noise.bin");
    let mut x: u64 = 0x1234_5678;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&f, bytes).unwrap();
    let o = run(&["read", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr_of(&o);
    assert!(e.contains("noise.bin: not a pcap or pcapng capture"), "{e}");
    assert_eq!(e.lines().count(), 1, "one line: {e}");
}

#[test]
fn text_file_fixture_is_rejected() {
    let o = run(&["read", fixture("not-a-capture.txt").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr_of(&o).contains("not-a-capture.txt: not a pcap or pcapng capture"));
}

#[test]
fn missing_file_is_named() {
    let o = run(&["read", "/nonexistent/dir/x.pcap"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr_of(&o).contains("/nonexistent/dir/x.pcap: no such file"),
        "{}",
        stderr_of(&o)
    );
}

#[test]
fn truncated_capture_is_analysed_up_to_the_damage() {
    let (code, recs, stdout, stderr) = read_json("trunc", &[&fixture("truncated-tail.pcap")], &[]);
    assert_eq!(code, 3, "damaged input has its own exit code");
    assert!(
        stderr.contains("truncated-tail.pcap: damaged after record 29"),
        "{stderr}"
    );
    assert!(stdout.contains("read error"), "{stdout}");
    assert_eq!(summary_packets(&stdout), Some(29));
    // The three connections before the damage are all there.
    assert_eq!(recs.iter().filter(|r| r["proto"] == "TCP").count(), 3);
}

#[test]
fn truncation_at_every_offset_never_panics() {
    let full = std::fs::read(fixture("closed-port.pcap")).unwrap();
    let d = scratch("every-offset");
    for cut in 0..full.len() {
        let f = d.join("cut.pcap");
        std::fs::write(&f, &full[..cut]).unwrap();
        let o = run(&["read", f.to_str().unwrap(), "-q"]);
        let code = o.status.code();
        assert!(
            matches!(code, Some(0) | Some(1) | Some(3)),
            "cut at {cut}: exit {code:?} {}",
            stderr_of(&o)
        );
        assert!(!stderr_of(&o).contains("panicked"), "cut at {cut}");
    }
}

#[test]
fn a_bad_file_among_good_ones_is_reported_and_the_rest_analysed() {
    let (code, recs, _, stderr) = read_json(
        "mixed",
        &[
            &fixture("closed-port.pcap"),
            &fixture("not-a-capture.txt"),
            &fixture("http-curl.pcap"),
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(stderr.contains("not-a-capture.txt"));
    assert_eq!(
        recs.iter()
            .filter(|r| r["flow"]["conn_state"] == "REJ")
            .count(),
        2
    );
    assert_eq!(
        recs.iter()
            .filter(|r| r["flow"]["conn_state"] == "SF")
            .count(),
        3
    );
}

/// Runs synwatch with `args`, `bytes` written to its standard input (a pipe) from a thread.
fn run_with_stdin(args: &[&str], bytes: Vec<u8>) -> std::process::Output {
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&bytes));
    let o = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    o
}

#[test]
fn standard_input_is_read_with_dash() {
    let bytes = std::fs::read(fixture("closed-port.pcap")).unwrap();
    let o = run_with_stdin(&["read", "-", "--conn", "-", "-q"], bytes);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let states: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(states.len(), 2);
    assert!(states.iter().all(|r| r["flow"]["conn_state"] == "REJ"));
}

/// A pipe given by name (`<(zcat f.pcap.gz)`, a FIFO, /dev/stdin) is read like a file: nothing
/// may read its first bytes before libpcap does, and the 1 MiB stdio buffer given to regular
/// files (glibc would drop what it had buffered on a stream it cannot seek) is not used.
#[test]
fn a_pipe_given_by_name_gives_the_same_records_as_the_file() {
    let f = fixture("veth-mixed.pcap");
    let from_file = run(&["read", f.to_str().unwrap(), "--conn", "-", "-q"]);
    assert!(from_file.status.success(), "{}", stderr_of(&from_file));
    let bytes = std::fs::read(&f).unwrap();
    let o = run_with_stdin(&["read", "/dev/stdin", "--conn", "-", "-q"], bytes);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert_eq!(o.stdout.iter().filter(|&&b| b == b'\n').count(), 8);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&from_file.stdout)
    );
}

#[test]
fn unwritable_output_is_an_error() {
    let o = run(&[
        "read",
        fixture("closed-port.pcap").to_str().unwrap(),
        "--conn",
        "/nonexistent/dir/conn.jsonl",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr_of(&o).contains("/nonexistent/dir/conn.jsonl"));
}

/// A classic little-endian pcap file, hand-built: header (snap length, link type) and records
/// (seconds, captured bytes, original length).
fn pcap(snaplen: u32, linktype: u32, recs: &[(u32, &[u8], u32)]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&4u16.to_le_bytes());
    for v in [0u32, 0, snaplen, linktype] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    for (secs, data, orig) in recs {
        for v in [*secs, 0, data.len() as u32, *orig] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(data);
    }
    b
}

/// An Ethernet frame with an IPv4/TCP SYN from 10.0.0.1:40000 to 10.0.0.2:80.
fn syn() -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&[
        0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ]);
    f.extend_from_slice(&[
        0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0x04, 0, 0, 0, 0, 0,
    ]);
    f
}

fn read_hand_built(test: &str, bytes: &[u8]) -> (i32, String, String) {
    let d = scratch(test);
    let f = d.join(format!("{test}.pcap"));
    std::fs::write(&f, bytes).unwrap();
    let conn = d.join("conn.jsonl");
    let o = run(&[
        "read",
        f.to_str().unwrap(),
        "--conn",
        conn.to_str().unwrap(),
    ]);
    let e = stderr_of(&o);
    assert!(!e.contains("panicked"), "{e}");
    (
        o.status.code().unwrap_or(-1),
        e,
        std::fs::read_to_string(conn).unwrap_or_default(),
    )
}

#[test]
fn an_absurd_snap_length_in_the_header_is_reported_and_packets_still_read() {
    let s = syn();
    let (code, e, conn) = read_hand_built("snaplen", &pcap(u32::MAX, 1, &[(1, &s, 54)]));
    assert_eq!(code, 0, "{e}");
    assert!(
        e.contains("snaplen.pcap: the file header's snap length 4294967295 is not valid (0 or over 262144); packets read anyway"),
        "{e}"
    );
    assert!(conn.contains("\"dest_port\":80"), "{conn}");
}

#[test]
fn a_record_longer_than_libpcap_allows_stops_the_file_at_that_record() {
    let s = syn();
    let mut b = pcap(65535, 1, &[(1, &s, 54)]);
    for v in [2u32, 0, 0x7fff_ffff, 0x7fff_ffff] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(b"abc");
    let (code, e, conn) = read_hand_built("hugecap", &b);
    assert_eq!(code, 3, "{e}");
    assert!(
        e.contains("hugecap.pcap: damaged after record 1 (1 packets analysed up to the damage): invalid packet capture length 2147483647"),
        "{e}"
    );
    assert!(
        conn.contains("\"dest_port\":80"),
        "the record before the damage: {conn}"
    );
}

#[test]
fn a_record_longer_than_the_files_snap_length_is_read_as_libpcap_gives_it() {
    // libpcap cuts such a record to the file's snap length; synwatch analyses what it gets.
    let s = syn();
    let (code, e, conn) = read_hand_built("oversnap", &pcap(40, 1, &[(1, &s, 54)]));
    assert_eq!(code, 0, "{e}");
    assert!(
        conn.is_empty() || conn.contains("\"event_type\":\"flow\""),
        "{conn}"
    );
}

#[test]
fn zero_length_records_are_counted_and_reported() {
    let s = syn();
    let (code, e, conn) = read_hand_built("zero", &pcap(65535, 1, &[(1, &[], 0), (2, &s, 54)]));
    assert_eq!(code, 0, "{e}");
    assert!(
        e.contains("zero.pcap: 1 zero-length records (first at record 1), counted as undecodable"),
        "{e}"
    );
    assert!(conn.contains("\"dest_port\":80"), "{conn}");
}

#[test]
fn an_unknown_link_type_is_reported_with_exit_3() {
    let s = syn();
    let (code, e, _) = read_hand_built("user0", &pcap(65535, 147, &[(1, &s, 54)]));
    assert_eq!(code, 3, "{e}");
    assert!(
        e.contains(
            "user0.pcap: link type 147 is not one synwatch decodes: 1 packets counted, not analysed"
        ),
        "{e}"
    );
}

#[test]
fn timestamps_going_backwards_or_jumping_years_keep_the_analysis_sane() {
    let s = syn();
    let mut later = s.clone();
    later[37] = 81; // another destination port: another connection
    let recs: Vec<(u32, &[u8], u32)> = vec![
        (1_000_000_000, &s, 54),
        (999_999_000, &later, 54), // 1000 s back
        (2_000_000_000, &s, 54),   // 31 years ahead
    ];
    let (code, e, conn) = read_hand_built("backwards", &pcap(65535, 1, &recs));
    assert_eq!(code, 0, "{e}");
    assert!(
        e.contains("backwards.pcap: timestamps go backwards 1 times (first at record 2); timers keep the latest time seen"),
        "{e}"
    );
    let recs: Vec<serde_json::Value> = conn
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The jump ends the first two as attempts; the third SYN is a new attempt of its own.
    assert_eq!(recs.len(), 3, "{conn}");
    for r in &recs {
        assert!(r["flow"]["duration"].as_f64().unwrap() >= 0.0);
        assert_eq!(r["flow"]["conn_state"], "S0");
    }
}

#[test]
fn completions_and_the_manual_page_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let o = run(&["completions", shell]);
        assert!(o.status.success());
        let s = String::from_utf8_lossy(&o.stdout);
        assert!(
            s.contains("synwatch") && s.contains("alerts-format"),
            "{shell}"
        );
    }
    let o = run(&["man"]);
    assert!(o.status.success());
    let m = String::from_utf8_lossy(&o.stdout);
    for want in [
        ".TH synwatch 1",
        "SYNWATCH LIVE",
        "SYNWATCH READ",
        "rotate\\-size",
        "alerts\\-format",
    ] {
        assert!(m.contains(want), "man page lacks {want}");
    }
}
