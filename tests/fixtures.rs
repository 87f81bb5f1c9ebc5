//! Verdicts on the recorded fixtures (see fixtures/README.md): every connection's conn_state,
//! history and packet counts, and packet/connection totals that tshark and capinfos give for
//! the same files (fixtures/EXPECTED*.tsv, written by fixtures/record.sh from tshark's output,
//! not from synwatch's).

mod common;

use common::*;
use std::collections::HashMap;

fn recs_all_uids(got: &HashMap<String, Vec<&serde_json::Value>>) -> Vec<String> {
    got.values()
        .flatten()
        .filter_map(|r| r["flow"]["uid"].as_str().map(str::to_string))
        .collect()
}

fn key(proto: &str, a: &str, ap: &str, b: &str, bp: &str) -> String {
    format!("{} {}:{} > {}:{}", proto.to_lowercase(), a, ap, b, bp)
}

#[test]
fn every_expected_connection_has_its_verdict() {
    let expected = tsv(&fixture("EXPECTED-conns.tsv"));
    let mut by_file: HashMap<String, Vec<HashMap<String, String>>> = HashMap::new();
    for row in expected {
        by_file.entry(row["file"].clone()).or_default().push(row);
    }
    let mut checked = 0;
    let mut failures = Vec::new();
    for (file, rows) in &by_file {
        let path = fixture(file);
        let (_, recs, _, _) = read_json(&format!("fx-{file}"), &[&path], &[]);
        let mut got: HashMap<String, Vec<&serde_json::Value>> = HashMap::new();
        for r in &recs {
            let proto = match r["proto"].as_str() {
                Some("IPv6-ICMP") => "icmp".to_string(),
                Some(p) => p.to_lowercase(),
                None => r["proto"].to_string(),
            };
            let k = key(
                &proto,
                r["src_ip"].as_str().unwrap_or(""),
                &r["src_port"].to_string(),
                r["dest_ip"].as_str().unwrap_or(""),
                &r["dest_port"].to_string(),
            );
            got.entry(k).or_default().push(r);
        }
        for row in rows {
            let k = key(
                &row["proto"],
                &row["orig_ip"],
                &row["orig_port"],
                &row["resp_ip"],
                &row["resp_port"],
            );
            checked += 1;
            let Some(recs) = got.get(&k) else {
                failures.push(format!("{file}: {k}: no record"));
                continue;
            };
            let r = recs[0];
            let f = &r["flow"];
            let want_hist = if row["history"] == "-" {
                ""
            } else {
                row["history"].as_str()
            };
            let checks = [
                (
                    "conn_state",
                    f["conn_state"].as_str().unwrap_or("").to_string(),
                    row["expected_conn_state"].clone(),
                ),
                (
                    "history",
                    f["history"].as_str().unwrap_or("").to_string(),
                    want_hist.to_string(),
                ),
                (
                    "orig_pkts",
                    f["orig_pkts"].to_string(),
                    row["orig_pkts"].clone(),
                ),
                (
                    "resp_pkts",
                    f["resp_pkts"].to_string(),
                    row["resp_pkts"].clone(),
                ),
            ];
            for (what, got, want) in checks {
                if got != want {
                    failures.push(format!("{file}: {k}: {what} got {got} want {want}"));
                }
            }
            // Tunnels: an inner connection names its outer connection(s) as tunnel parents,
            // and each parent is a record of the same run; an outer one carries the tunnel.
            let parents: Vec<&str> = f["tunnel_parents"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                .unwrap_or_default();
            match row.get("tunnel").map(String::as_str) {
                Some("inner") => {
                    if parents.is_empty() {
                        failures.push(format!(
                            "{file}: {k}: inner connection without tunnel_parents"
                        ));
                    }
                    for p in &parents {
                        let outer = recs_all_uids(&got).iter().any(|u| u == p);
                        if !outer {
                            failures
                                .push(format!("{file}: {k}: tunnel parent {p} is not a record"));
                        }
                    }
                }
                Some("outer") => {
                    if f["tunnel"].as_str().is_none() {
                        failures.push(format!("{file}: {k}: outer connection without `tunnel`"));
                    }
                }
                _ => {
                    if !parents.is_empty() {
                        failures.push(format!(
                            "{file}: {k}: unexpected tunnel_parents {parents:?}"
                        ));
                    }
                }
            }
            if row["proto"] != "icmp" {
                for (what, col) in [("orig_bytes", "orig_bytes"), ("resp_bytes", "resp_bytes")] {
                    let got = f[what].to_string();
                    if got != row[col] {
                        failures.push(format!("{file}: {k}: {what} got {got} want {}", row[col]));
                    }
                }
            }
        }
    }
    assert!(
        checked >= 40,
        "the expected table lists only {checked} connections"
    );
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn packet_totals_match_capinfos() {
    let rows = tsv(&fixture("EXPECTED.tsv"));
    assert!(rows.len() >= 10);
    for row in rows {
        let file = &row["file"];
        let o = run(&["read", fixture(file).to_str().unwrap_or_default()]);
        let stdout = String::from_utf8_lossy(&o.stdout);
        let want: u64 = row["packets"].parse().expect("packets column");
        assert_eq!(
            summary_packets(&stdout),
            Some(want),
            "{file}: packets read\n{stdout}"
        );
    }
}

#[test]
fn connection_totals_match_tshark_conversations() {
    for row in tsv(&fixture("EXPECTED.tsv")) {
        let file = &row["file"];
        let (_, recs, _, _) = read_json(&format!("conv-{file}"), &[&fixture(file)], &[]);
        for (proto, col) in [("TCP", "tcp_conversations"), ("UDP", "udp_conversations")] {
            let want: usize = row[col].parse().expect("count column");
            let got = recs.iter().filter(|r| r["proto"] == proto).count();
            assert_eq!(got, want, "{file}: {proto} connections vs tshark's {col}");
        }
    }
}

#[test]
fn http_curl_three_completed_handshakes_with_timings() {
    let (code, recs, _, _) = read_json("curl", &[&fixture("http-curl.pcap")], &[]);
    assert_eq!(code, 0);
    let tcp: Vec<_> = recs.iter().filter(|r| r["proto"] == "TCP").collect();
    assert_eq!(tcp.len(), 3);
    for r in tcp {
        assert_eq!(r["event_type"], "flow");
        assert_eq!(r["dest_port"], 8080);
        assert_eq!(r["flow"]["conn_state"], "SF");
        assert_eq!(r["flow"]["handshake"], "completed");
        assert!(r["flow"]["syn_synack_us"].as_u64().is_some());
        assert!(r["flow"]["synack_ack_us"].as_u64().is_some());
        assert!(r["timestamp"].as_str().unwrap_or("").ends_with('Z'));
    }
}

#[test]
fn pcap_and_pcapng_give_the_same_records() {
    let (_, a, _, _) = read_json("pcap", &[&fixture("http-curl.pcap")], &[]);
    let (_, b, _, _) = read_json("pcapng", &[&fixture("http-curl.pcapng")], &[]);
    let strip = |v: &Vec<serde_json::Value>| -> Vec<String> {
        v.iter()
            .map(|r| {
                format!(
                    "{} {} {} {}",
                    r["src_port"],
                    r["flow"]["conn_state"],
                    r["flow"]["history"],
                    r["flow"]["orig_bytes"]
                )
            })
            .collect()
    };
    assert_eq!(strip(&a), strip(&b));
    assert!(!a.is_empty());
}

#[test]
fn several_files_are_one_stream_with_their_own_link_types() {
    let files = [
        fixture("cooked-any.pcap"),
        fixture("vlan.pcap"),
        fixture("cooked2-any.pcap"),
    ];
    let refs: Vec<&std::path::Path> = files.iter().map(|p| p.as_path()).collect();
    let (code, recs, stdout, _) = read_json("multi", &refs, &[]);
    assert_eq!(code, 0);
    let rows = tsv(&fixture("EXPECTED.tsv"));
    let total: u64 = rows
        .iter()
        .filter(|r| {
            ["cooked-any.pcap", "vlan.pcap", "cooked2-any.pcap"].contains(&r["file"].as_str())
        })
        .map(|r| r["packets"].parse::<u64>().unwrap_or(0))
        .sum();
    assert_eq!(summary_packets(&stdout), Some(total));
    assert!(
        stdout.contains("0 undecodable") || !stdout.contains("unsupported_link_type"),
        "{stdout}"
    );
    assert!(
        recs.iter().any(|r| r["vlan"] == serde_json::json!([100])),
        "VLAN id is reported"
    );
}

#[test]
fn qinq_tags_are_reported_outer_first() {
    let (_, recs, _, _) = read_json("qinq", &[&fixture("qinq.pcap")], &[]);
    let v = recs
        .iter()
        .find_map(|r| r.get("vlan"))
        .expect("a record with VLAN tags");
    assert_eq!(v.as_array().map(|a| a.len()), Some(2), "{v}");
}

#[test]
fn snaplen_cut_transfer_counts_wire_bytes() {
    let (_, recs, stdout, _) = read_json("snaplen", &[&fixture("snaplen-cut.pcap")], &[]);
    let r = recs
        .iter()
        .find(|r| r["proto"] == "TCP")
        .expect("the transfer");
    assert_eq!(r["flow"]["conn_state"], "SF");
    let resp = r["flow"]["resp_bytes"].as_u64().unwrap_or(0);
    assert!(resp > 150_000, "server sent ~200 KB, got {resp}");
    assert!(stdout.contains("cut by the snap length"));
}

#[test]
fn zeek_format_has_header_and_rows() {
    let dir = scratch("zeekfmt");
    let out = dir.join("conn.log");
    let o = run(&[
        "read",
        fixture("closed-port.pcap").to_str().unwrap_or_default(),
        "--conn",
        out.to_str().unwrap_or_default(),
        "--conn-format",
        "zeek",
        "-q",
    ]);
    assert!(o.status.success());
    let text = std::fs::read_to_string(&out).expect("conn.log written");
    assert!(text.starts_with("#separator \\x09\n"));
    let fields = text
        .lines()
        .find(|l| l.starts_with("#fields"))
        .expect("#fields");
    let cols: Vec<&str> = fields.split('\t').skip(1).collect();
    let state_col = cols
        .iter()
        .position(|c| *c == "conn_state")
        .expect("conn_state column");
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split('\t').collect())
        .collect();
    assert_eq!(rows.len(), 2);
    for r in rows {
        assert_eq!(r.len(), cols.len());
        assert_eq!(r[state_col], "REJ");
    }
    assert!(text.lines().last().unwrap_or("").starts_with("#close"));
}
