//! Scans, floods and backscatter on recorded fixtures (fixtures/EXPECTED-scans.tsv, written from
//! the packets by fixtures/record-scans.sh with tshark): the scanner, the technique, the number
//! of hosts and ports, the open ports found; floods' targets, sources and answers; backscatter's
//! victim and senders; and nothing at all on busy benign traffic.

mod common;

use common::*;
use std::collections::BTreeSet;

fn episodes(file: &str) -> Vec<serde_json::Value> {
    let dir = scratch(&format!("scan-{file}"));
    let out = dir.join("alerts.jsonl");
    let o = run(&[
        "read",
        "-q",
        fixture(file).to_str().unwrap(),
        "--alerts",
        out.to_str().unwrap(),
    ]);
    assert!(
        o.status.success(),
        "{file}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::read_to_string(&out)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|a| {
            matches!(
                a["alert"]["category"].as_str(),
                Some("port-scan" | "syn-flood" | "backscatter")
            )
        })
        .collect()
}

/// nmap's ACK and window scans send the same packets; synwatch names both `ACK/window`.
fn technique_name(t: &str) -> &str {
    match t {
        "ACK" | "window" => "ACK/window",
        other => other,
    }
}

fn kv(s: &str, key: &str) -> Option<u64> {
    s.split(',')
        .find_map(|p| p.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
}

#[test]
fn every_scan_flood_and_backscatter_fixture_gets_its_verdict() {
    let rows = tsv(&fixture("EXPECTED-scans.tsv"));
    assert!(rows.len() >= 15, "only {} rows", rows.len());
    let mut failures = Vec::new();
    for row in &rows {
        let file = row["file"].as_str();
        let got = episodes(file);
        let cat = row["category"].as_str();
        let mut fail = |m: String| failures.push(format!("{file}: {m}"));
        if cat == "none" {
            if !got.is_empty() {
                fail(format!("expected no episode, got {got:?}"));
            }
            continue;
        }
        if got.len() != 1 || got[0]["alert"]["category"] != cat {
            fail(format!("expected one {cat} alert, got {got:?}"));
            continue;
        }
        let a = &got[0];
        let targets: u64 = row["targets"].parse().unwrap();
        match cat {
            "port-scan" => {
                let s = &a["scan"];
                if s["scanner"] != row["actor"].as_str() {
                    fail(format!("scanner {} want {}", s["scanner"], row["actor"]));
                }
                let want_t = technique_name(&row["technique"]);
                if s["technique"] != want_t {
                    fail(format!("technique {} want {want_t}", s["technique"]));
                }
                if s["targets"] != targets {
                    fail(format!("targets {} want {targets}", s["targets"]));
                }
                let ports: u64 = row["ports"].parse().unwrap();
                if s["ports"] != ports {
                    fail(format!("ports {} want {ports}", s["ports"]));
                }
                let want_open: BTreeSet<String> = if row["open"] == "-" {
                    BTreeSet::new()
                } else {
                    row["open"].split(',').map(str::to_string).collect()
                };
                let got_open: BTreeSet<String> = s["open"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|o| {
                        format!(
                            "{}/{}",
                            o["port"],
                            o["proto"].as_str().unwrap().to_lowercase()
                        )
                    })
                    .collect();
                if got_open != want_open {
                    fail(format!("open {got_open:?} want {want_open:?}"));
                }
            }
            "syn-flood" => {
                let f = &a["flood"];
                let actor = format!("{}:{}", f["target"].as_str().unwrap(), f["port"]);
                if actor != row["actor"] {
                    fail(format!("target {actor} want {}", row["actor"]));
                }
                if f["sources"] != targets {
                    fail(format!("sources {} want {targets}", f["sources"]));
                }
                if let Some(n) = kv(&row["open"], "synack")
                    && f["answered"] != n
                {
                    fail(format!("answered {} want {n}", f["answered"]));
                }
            }
            "backscatter" => {
                let b = &a["backscatter"];
                if b["victim"] != row["actor"].as_str() {
                    fail(format!("victim {} want {}", b["victim"], row["actor"]));
                }
                if b["senders"] != targets {
                    fail(format!("senders {} want {targets}", b["senders"]));
                }
                for key in ["synack", "rst"] {
                    let field = if key == "synack" { "synacks" } else { "resets" };
                    if let Some(n) = kv(&row["open"], key)
                        && b[field] != n
                    {
                        fail(format!("{field} {} want {n}", b[field]));
                    }
                }
            }
            other => fail(format!("unknown category {other}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
