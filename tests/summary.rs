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
