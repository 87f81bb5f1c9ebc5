//! Alerts on the recorded fixtures (fixtures/EXPECTED-alerts.tsv), the port database against
//! the seeds' trojan list (tests/data/seed_trojan_ports.txt), `synwatch ports` and the rules
//! file.

mod common;

use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use synwatch::classify::ports::{PortDb, PortProto};

/// Runs `read FILES --alerts OUT` and returns the alert objects.
fn alerts_of(test: &str, files: &[&Path], extra: &[&str]) -> Vec<serde_json::Value> {
    let dir = scratch(test);
    let out = dir.join("alerts.jsonl");
    let mut args: Vec<String> = vec!["read".into(), "-q".into()];
    args.extend(files.iter().map(|p| p.display().to_string()));
    args.push("--alerts".into());
    args.push(out.display().to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    let o = std::process::Command::new(bin())
        .args(&args)
        .output()
        .expect("run synwatch");
    // 0, or 3 for a damaged input (analysed up to the damage).
    assert!(
        matches!(o.status.code(), Some(0 | 3)),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::read_to_string(&out)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("alert lines are JSON"))
        .collect()
}

fn summary(a: &serde_json::Value) -> String {
    format!(
        "{} {} {} {} {} {} {}",
        a["alert"]["rule"].as_str().unwrap_or("?"),
        a["alert"]["severity"],
        a["proto"].as_str().unwrap_or("?").to_lowercase(),
        a["src_ip"].as_str().unwrap_or("?"),
        a["dest_ip"].as_str().unwrap_or("?"),
        a["dest_port"],
        a["alert"]["count"],
    )
}

#[test]
fn every_fixture_raises_exactly_its_expected_alerts() {
    let mut want: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in tsv(&fixture("EXPECTED-alerts.tsv")) {
        want.entry(row["file"].clone()).or_default().push(format!(
            "{} {} {} {} {} {} {}",
            row["rule"],
            row["severity"],
            row["proto"],
            row["src_ip"],
            row["dst_ip"],
            row["dst_port"],
            row["count"]
        ));
    }
    // Every fixture with connections is checked: those without rows must raise nothing.
    let files: BTreeSet<String> = tsv(&fixture("EXPECTED-conns.tsv"))
        .into_iter()
        .map(|r| r["file"].clone())
        .collect();
    assert!(files.len() >= 20, "only {} fixtures", files.len());
    let mut failures = Vec::new();
    for f in &files {
        // Port rules only: scans, floods and backscatter are checked in tests/scans.rs.
        let got: Vec<String> = alerts_of(&format!("al-{f}"), &[&fixture(f)], &[])
            .iter()
            .filter(|a| {
                a["alert"]["category"] == "trojan-port" || a["alert"]["category"] == "risky-service"
            })
            .map(summary)
            .collect();
        let mut got_sorted = got.clone();
        got_sorted.sort();
        let mut w = want.get(f).cloned().unwrap_or_default();
        w.sort();
        if got_sorted != w {
            failures.push(format!("{f}: got {got_sorted:?} want {w:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn alert_json_carries_rule_port_entry_and_flow() {
    let a = alerts_of("al-json", &[&fixture("trojan-31337-open.pcap")], &[]);
    assert_eq!(a.len(), 1);
    let a = &a[0];
    assert_eq!(a["event_type"], "alert");
    assert_eq!(a["alert"]["signature_id"], 9_000_001);
    assert_eq!(a["alert"]["category"], "trojan-port");
    assert!(
        a["alert"]["signature"]
            .as_str()
            .unwrap()
            .contains("Back Orifice")
    );
    assert_eq!(a["port"]["category"], "trojan");
    assert_eq!(a["port"]["range"], "registered");
    assert!(
        a["port"]["names"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "Back Orifice")
    );
    assert_eq!(a["flow"]["conn_state"], "SF");
    assert_eq!(a["flow"]["handshake"], "completed");
    assert_eq!(
        a["flow"]["orig_pkts"].as_u64().unwrap() + a["flow"]["resp_pkts"].as_u64().unwrap(),
        a["alert"]["pkts"].as_u64().unwrap()
    );
}

#[test]
fn repeats_fold_into_one_alert_with_a_count() {
    // The same capture twice: the second copy is a new connection on the same 5-tuple.
    let f = fixture("trojan-27374-closed.pcap");
    let a = alerts_of("al-fold", &[&f, &f], &[]);
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0]["alert"]["count"], 2);
    assert_eq!(a[0]["alert"]["pkts"], 4);
}

#[test]
fn rules_file_allows_raises_severity_and_adds_ports() {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/rules-example.toml");
    let rules = rules.display().to_string();
    // The allow entry silences the telnet alert from 10.232.0.1.
    let a = alerts_of(
        "al-allow",
        &[&fixture("telnet-23.pcap")],
        &["--rules", &rules],
    );
    assert!(a.is_empty(), "{a:?}");
    // [severity] trojan-probe = 2.
    let a = alerts_of(
        "al-sev",
        &[&fixture("trojan-27374-closed.pcap")],
        &["--rules", &rules],
    );
    assert_eq!(a[0]["alert"]["severity"], 2);
    // The added port shows in `synwatch ports`.
    let o = run(&["ports", "4444", "--rules", &rules]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("Metasploit default handler"), "{text}");
}

#[test]
fn rules_check_accepts_good_files_and_points_at_mistakes() {
    let good = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/rules-example.toml");
    let o = run(&["rules", "check", &good.display().to_string()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("ok: 1 port entry, 1 allow entry"));

    let dir = scratch("rules-bad");
    let bad = dir.join("bad.toml");
    let text = std::fs::read_to_string(&good)
        .unwrap()
        .replace("port = 23", "port = 70000");
    std::fs::write(&bad, text).unwrap();
    let o = run(&["rules", "check", &bad.display().to_string()]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.toml:19:"), "{err}");
    assert!(err.contains("port"), "{err}");
}

#[test]
fn every_trojan_port_the_seeds_name_is_in_the_database() {
    let db = PortDb::builtin().expect("built-in table");
    let list = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/seed_trojan_ports.txt"),
    )
    .unwrap();
    let mut n = 0;
    let mut missing = Vec::new();
    for line in list
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let mut parts = line.splitn(3, ' ');
        let (proto, port, name) = (
            parts.next().unwrap(),
            parts.next().unwrap().parse::<u16>().unwrap(),
            parts.next().unwrap_or("").trim(),
        );
        let proto = PortProto::parse(proto).unwrap();
        n += 1;
        match db.lookup(proto, port) {
            Some(e) if e.names.iter().any(|x| x == name) => {}
            _ => missing.push(line.to_string()),
        }
    }
    assert!(
        n >= 100,
        "the seeds name over 100 trojan ports; the list has {n}"
    );
    assert!(missing.is_empty(), "not in the database: {missing:?}");
}

#[test]
fn ports_command_answers_the_lookups() {
    let o = run(&["ports", "31337"]);
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(
        t.contains("Back Orifice") && t.contains("tcp") && t.contains("udp"),
        "{t}"
    );

    let o = run(&["ports", "137-139", "--proto", "udp", "--json"]);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 2);
    assert!(lines.iter().all(|l| l["proto"] == "udp"));
    assert!(lines.iter().any(|l| l["service"] == "netbios-ns"));

    let o = run(&["ports", "--search", "netbus"]);
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(t.contains("12345") && t.contains("12346"), "{t}");

    let o = run(&["ports", "--category", "trojan", "--json"]);
    let n = String::from_utf8_lossy(&o.stdout).lines().count();
    assert!(n >= 100, "{n} trojan entries");

    let o = run(&["ports", "99999"]);
    assert_eq!(o.status.code(), Some(2));
}
