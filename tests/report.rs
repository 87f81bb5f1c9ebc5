//! The HTML report: written, self-contained, and rendered by headless Chromium (when it is
//! installed: CI installs Debian's `chromium`) without console errors and with the figures of
//! the summary.

mod common;

use common::*;
use std::process::Command;

fn chromium() -> Option<&'static str> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
}

#[test]
fn report_renders_in_chromium_with_the_summary_figures() {
    let dir = scratch("report");
    let html = dir.join("report.html");
    let summary = dir.join("summary.json");
    let o = run(&[
        "read",
        fixture("nmap-syn.pcap").to_str().unwrap(),
        fixture("trojan-31337-open.pcap").to_str().unwrap(),
        "-q",
        "--report",
        html.to_str().unwrap(),
        "--summary-json",
        summary.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let page = std::fs::read_to_string(&html).unwrap();
    for bad in ["<script", "src=", "<link", "url(", "@import"] {
        assert!(
            !page.contains(bad),
            "the report must be self-contained: {bad}"
        );
    }
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    let packets = j["input"]["packets"].as_u64().unwrap();
    let conns = j["connections"]["total"].as_u64().unwrap();
    assert_eq!(packets, 51);
    let Some(chrome) = chromium() else {
        println!("report: chromium not installed; skipped the rendering check");
        return;
    };
    let profile = dir.join("profile");
    let out = Command::new(chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        !log.contains("CONSOLE(") && !log.contains("Uncaught"),
        "console messages: {log}"
    );
    assert!(
        dom.contains(&format!(r#"<b id="packets">{packets}</b>"#)),
        "{dom}"
    );
    assert!(dom.contains(&format!(r#"<b id="connections">{conns}</b>"#)));
    assert!(dom.contains("port-scan") && dom.contains("trojan-established"));
    assert!(dom.contains("<svg"), "the plots are there");
}
