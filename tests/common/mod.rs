//! Helpers shared by the integration tests: run the real binary, read its JSON lines.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_synwatch")
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// A fresh scratch directory for one test.
pub fn scratch(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("synwatch-test-{}-{}", test, std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create scratch dir");
    d
}

pub fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("run synwatch")
}

/// Runs `synwatch read FILES --conn OUT` and returns (exit code, JSON records, stdout, stderr).
pub fn read_json(
    test: &str,
    files: &[&Path],
    extra: &[&str],
) -> (i32, Vec<serde_json::Value>, String, String) {
    let dir = scratch(test);
    let out = dir.join("conn.jsonl");
    let mut args: Vec<String> = vec!["read".into()];
    args.extend(files.iter().map(|p| p.display().to_string()));
    args.push("--conn".into());
    args.push(out.display().to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    let o = Command::new(bin())
        .args(&args)
        .output()
        .expect("run synwatch");
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let recs = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect();
    (
        o.status.code().unwrap_or(-1),
        recs,
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Reads a TSV with a header line into maps.
pub fn tsv(path: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let text = std::fs::read_to_string(path).expect("read TSV");
    let mut lines = text.lines();
    let hdr: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split('\t')
        .map(str::to_string)
        .collect();
    lines
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            hdr.iter()
                .cloned()
                .zip(l.split('\t').map(str::to_string))
                .collect()
        })
        .collect()
}

/// A summary line's number: `synwatch summary` prints "input  1 file, N packets, ...".
pub fn summary_packets(stdout: &str) -> Option<u64> {
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("input"))?;
    let before = line.split(" packets").next()?;
    before.rsplit(' ').next()?.parse().ok()
}
