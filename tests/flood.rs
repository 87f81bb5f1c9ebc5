//! A spoofed SYN flood from 300 000 random sources (generated here by scripts/gen-synflood.py,
//! not committed) with three real connections inside: memory stays bounded, evictions are
//! counted, the flood is one alert, and the real connections keep their verdicts.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

#[test]
fn spoofed_flood_keeps_memory_bounded_and_real_verdicts_right() {
    let dir = scratch("flood");
    let cap = dir.join("flood.pcap");
    let generator = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gen-synflood.py");
    let ok = Command::new("python3")
        .arg(&generator)
        .args(["300000", cap.to_str().unwrap()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        println!("flood: skipped: python3 could not generate the capture");
        return;
    }
    let conn = dir.join("conn.jsonl");
    let alerts = dir.join("alerts.jsonl");
    let before = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .map(|u| u.max_rss())
        .unwrap_or(0);
    let o = run(&[
        "read",
        cap.to_str().unwrap(),
        "--max-flows",
        "20000",
        "--conn",
        conn.to_str().unwrap(),
        "--alerts",
        alerts.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // ru_maxrss of the children is in KiB on Linux (the largest child so far).
    let rss_kib = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .map(|u| u.max_rss())
        .unwrap_or(0);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(rss_kib >= before);
    assert!(rss_kib < 200 * 1024, "peak RSS {rss_kib} KiB\n{out}");
    assert!(out.contains("evicted"), "evictions are counted:\n{out}");
    assert!(
        out.contains("tracked sources ended early by the limits"),
        "{out}"
    );
    let real: Vec<serde_json::Value> = std::fs::read_to_string(&conn)
        .unwrap()
        .lines()
        .filter(|l| l.contains("192.168.1.5"))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(real.len(), 3);
    for r in &real {
        assert_eq!(r["flow"]["conn_state"], "SF", "{r}");
        assert_eq!(r["flow"]["history"], "ShADdFf", "{r}");
    }
    let al: Vec<serde_json::Value> = std::fs::read_to_string(&alerts)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let floods: Vec<_> = al
        .iter()
        .filter(|a| a["alert"]["rule"] == "syn-flood")
        .collect();
    assert_eq!(floods.len(), 1, "{al:?}");
    assert_eq!(floods[0]["flood"]["attempts"], 300_000);
    let sources = floods[0]["flood"]["sources"].as_u64().unwrap();
    assert!(sources > 270_000 && sources < 330_000, "{sources}");
    assert!(
        al.iter().all(|a| a["alert"]["rule"] != "port-scan"),
        "a flood is not a scan"
    );
}
