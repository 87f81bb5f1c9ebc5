//! The machine-readable summary (`--summary-json`) says what the fixture tables say: packets as
//! capinfos counts them, connections per conn_state as the expected table lists them, and the
//! top lists.

mod common;

use common::*;
use std::collections::BTreeMap;

#[test]
fn summary_json_matches_the_expected_tables() {
    let packets: BTreeMap<String, u64> = tsv(&fixture("EXPECTED.tsv"))
        .into_iter()
        .map(|r| (r["file"].clone(), r["packets"].parse().unwrap()))
        .collect();
    let mut states: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for r in tsv(&fixture("EXPECTED-conns.tsv")) {
        *states
            .entry(r["file"].clone())
            .or_default()
            .entry(r["expected_conn_state"].clone())
            .or_default() += 1;
    }
    for file in [
        "nmap-syn.pcap",
        "veth-mixed.pcap",
        "scan-udp.pcap",
        "benign-busy.pcap",
    ] {
        let o = run(&[
            "read",
            fixture(file).to_str().unwrap(),
            "-q",
            "--summary-json",
            "-",
        ]);
        assert!(o.status.success());
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(j["input"]["packets"], packets[file], "{file}");
        let want = &states[file];
        let got: BTreeMap<String, u64> = j["connections"]["by_state"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
            .collect();
        assert_eq!(&got, want, "{file}");
        assert_eq!(
            j["connections"]["total"].as_u64().unwrap(),
            want.values().sum::<u64>(),
            "{file}"
        );
    }
    let o = run(&[
        "read",
        fixture("benign-busy.pcap").to_str().unwrap(),
        "-q",
        "--top",
        "2",
        "--summary-json",
        "-",
    ]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ports = j["top_ports"].as_array().unwrap();
    assert_eq!(ports.len(), 2);
    assert_eq!(ports[0]["port"], 80);
    assert_eq!(ports[0]["service"], "http");
    assert_eq!(ports[0]["connections"], 200);
    assert_eq!(ports[1]["port"], 53);
    let talkers = j["top_talkers"].as_array().unwrap();
    assert_eq!(talkers.len(), 2);
    assert_eq!(j["alerts"]["total"], 0);
}

/// Files given out of time order (or overlapping merged captures) keep their verdicts: timers
/// run from the latest time seen, so a connection from an older file is not found already
/// timed out.
#[test]
fn files_out_of_time_order_keep_their_verdicts() {
    let states = |files: &[&str]| -> BTreeMap<String, u64> {
        let mut args = vec![
            "read".to_string(),
            "-q".into(),
            "--summary-json".into(),
            "-".into(),
        ];
        args.extend(files.iter().map(|f| fixture(f).display().to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = run(&args);
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        j["connections"]["by_state"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
            .collect()
    };
    // flood-syn-closed.pcap was recorded before benign-busy.pcap.
    let mut separate = states(&["flood-syn-closed.pcap"]);
    for (k, v) in states(&["benign-busy.pcap"]) {
        *separate.entry(k).or_default() += v;
    }
    assert_eq!(
        states(&["flood-syn-closed.pcap", "benign-busy.pcap"]),
        separate
    );
    assert_eq!(
        states(&["benign-busy.pcap", "flood-syn-closed.pcap"]),
        separate
    );
}
