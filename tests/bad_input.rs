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

#[test]
fn standard_input_is_read_with_dash() {
    let bytes = std::fs::read(fixture("closed-port.pcap")).unwrap();
    let mut child = Command::new(bin())
        .args(["read", "-", "--conn", "-", "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr_of(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let states: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(states.len(), 2);
    assert!(states.iter().all(|r| r["flow"]["conn_state"] == "REJ"));
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
