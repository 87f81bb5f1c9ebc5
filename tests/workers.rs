//! The number of analysis workers changes nothing: every fixture read together (recorded
//! captures of many kinds, out of time order across files, tunnels, fragments, scans and
//! floods) gives byte-identical connection logs, alerts and summaries with 1, 2 and 4 workers.

mod common;

use common::{bin, scratch};
use std::path::Path;
use std::process::Command;

fn fixtures() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut v: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("pcap" | "pcapng")
            )
        })
        .map(|p| p.display().to_string())
        .collect();
    v.sort();
    assert!(v.len() >= 30, "fixtures: {}", v.len());
    v
}

/// Runs `read` over every fixture with `workers`; returns (conn JSON, conn Zeek, alerts,
/// summary JSON).
fn run(workers: u32, extra: &[&str]) -> (String, String, String, String) {
    let dir = scratch(&format!("workers-{workers}-{}", extra.join("_")));
    let p = |n: &str| dir.join(n).display().to_string();
    let mut args = vec!["read".to_string()];
    args.extend(fixtures());
    for a in [
        "--workers",
        &workers.to_string(),
        "--conn",
        &p("conn.json"),
        "--alerts",
        &p("alerts.json"),
        "--summary-json",
        &p("summary.json"),
        "-q",
    ] {
        args.push(a.to_string());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = Command::new(bin()).args(&args).output().unwrap();
    // truncated-tail.pcap is damaged on purpose: exit 3, everything before the damage kept.
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = std::fs::read_to_string(p("conn.json")).unwrap();
    let alerts = std::fs::read_to_string(p("alerts.json")).unwrap();
    let summary = std::fs::read_to_string(p("summary.json")).unwrap();
    // The same run once more in Zeek's format.
    let mut zargs = args.clone();
    let i = zargs.iter().position(|a| a == "--conn").unwrap();
    zargs[i + 1] = p("conn.log");
    zargs.extend(["--conn-format".to_string(), "zeek".to_string()]);
    let out = Command::new(bin()).args(&zargs).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let zeek = std::fs::read_to_string(p("conn.log")).unwrap();
    // #open/#close carry the wall-clock time of the run.
    let zeek = zeek
        .lines()
        .filter(|l| !l.starts_with("#open") && !l.starts_with("#close"))
        .collect::<Vec<_>>()
        .join("\n");
    let _ = std::fs::remove_dir_all(&dir);
    (json, zeek, alerts, summary)
}

#[test]
fn one_two_and_four_workers_write_the_same() {
    let one = run(1, &[]);
    assert!(one.0.lines().count() > 3000, "{}", one.0.lines().count());
    assert!(one.2.lines().count() >= 10, "alerts: {}", one.2);
    for w in [2, 4] {
        let many = run(w, &[]);
        assert!(one.0 == many.0, "conn JSON differs with {w} workers");
        assert!(one.1 == many.1, "conn Zeek differs with {w} workers");
        assert_eq!(one.2, many.2, "alerts differ with {w} workers");
        assert_eq!(one.3, many.3, "summary differs with {w} workers");
    }
}

#[test]
fn equal_with_checksums_verified_and_short_timers() {
    // Other settings change the records; the workers still change nothing.
    let extra = [
        "--checksums",
        "verify",
        "--timeout",
        "tcp_inactivity_timeout=2",
        "--timeout",
        "udp_inactivity_timeout=1",
    ];
    let one = run(1, &extra);
    let four = run(4, &extra);
    assert!(one.0 == four.0, "conn JSON differs with 4 workers");
    assert_eq!(one.2, four.2, "alerts differ with 4 workers");
    assert_eq!(one.3, four.3, "summary differs with 4 workers");
}

/// Flows kept as their first packet until they see a second ([`--compact-after`], every flow
/// here with 0) end exactly as connections kept whole from the start, with eviction under
/// `--max-flows` too.
#[test]
fn compact_flows_write_the_same() {
    for extra in [&[][..], &["--max-flows", "40"][..]] {
        let args = |n: &'static str| {
            let mut v = vec!["--compact-after", n];
            v.extend_from_slice(extra);
            v
        };
        let whole = run(1, &args("100000000"));
        let compact = run(1, &args("0"));
        assert!(whole.0.lines().count() > 3000);
        assert!(whole.0 == compact.0, "conn JSON differs ({extra:?})");
        assert!(whole.1 == compact.1, "conn Zeek differs ({extra:?})");
        assert_eq!(whole.2, compact.2, "alerts differ ({extra:?})");
        assert_eq!(whole.3, compact.3, "summary differs ({extra:?})");
    }
}
