//! `synwatch ports`: the port database as a table for people or JSON lines.

use std::fmt::Write as _;

use serde::Serialize;

use crate::classify::ports::{Category, PortDb, PortEntry, PortProto, RangeClass};

/// What to list.
#[derive(Clone, Debug, Default)]
pub struct PortQuery {
    /// Inclusive ranges asked for (empty: every port).
    pub ranges: Vec<(u16, u16)>,
    pub proto: Option<PortProto>,
    pub search: Option<String>,
    pub category: Option<Category>,
}

/// One answer: an entry, or a port the database does not know.
#[derive(Debug)]
pub enum PortAnswer<'a> {
    Known(&'a PortEntry),
    Unknown(u16),
}

impl PortQuery {
    fn entry_matches(&self, e: &PortEntry) -> bool {
        if self.proto.is_some_and(|p| p != e.proto)
            || self.category.is_some_and(|c| c != e.category)
        {
            return false;
        }
        if let Some(s) = &self.search {
            let s = s.to_lowercase();
            let hit = e.names.iter().any(|n| n.to_lowercase().contains(&s))
                || e.service
                    .as_deref()
                    .is_some_and(|x| x.to_lowercase().contains(&s))
                || e.advice
                    .as_deref()
                    .is_some_and(|x| x.to_lowercase().contains(&s));
            if !hit {
                return false;
            }
        }
        self.ranges.is_empty() || self.ranges.iter().any(|&(lo, hi)| e.lo <= hi && lo <= e.hi)
    }

    /// The answers in port order. A single port asked for by number that the database does
    /// not know is answered as unknown (with its range), unless other filters were given.
    pub fn run<'a>(&self, db: &'a PortDb) -> Vec<PortAnswer<'a>> {
        let mut found: Vec<&PortEntry> = db.entries().filter(|e| self.entry_matches(e)).collect();
        found.sort_by_key(|e| (e.lo, e.proto));
        let mut out: Vec<PortAnswer<'a>> = found.iter().map(|e| PortAnswer::Known(e)).collect();
        if self.search.is_none() && self.category.is_none() {
            for &(lo, hi) in &self.ranges {
                if lo == hi && !found.iter().any(|e| e.lo <= lo && lo <= e.hi) {
                    out.push(PortAnswer::Unknown(lo));
                }
            }
        }
        out
    }
}

#[derive(Serialize)]
struct Row<'a> {
    port: String,
    proto: Option<&'static str>,
    range: &'static str,
    known: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    entry: Option<&'a PortEntry>,
}

/// JSON lines, one per answer.
pub fn render_json(answers: &[PortAnswer<'_>]) -> String {
    let mut s = String::new();
    for a in answers {
        let row = match a {
            PortAnswer::Known(e) => Row {
                port: if e.lo == e.hi {
                    e.lo.to_string()
                } else {
                    format!("{}-{}", e.lo, e.hi)
                },
                proto: Some(e.proto.name()),
                range: RangeClass::of(e.lo).name(),
                known: true,
                entry: Some(e),
            },
            PortAnswer::Unknown(p) => Row {
                port: p.to_string(),
                proto: None,
                range: RangeClass::of(*p).name(),
                known: false,
                entry: None,
            },
        };
        if let Ok(line) = serde_json::to_string(&row) {
            s.push_str(&line);
            s.push('\n');
        }
    }
    s
}

/// A table for people; `long` adds advice, corrections and sources under each entry.
pub fn render_table(answers: &[PortAnswer<'_>], long: bool) -> String {
    let mut s = String::new();
    if answers.is_empty() {
        s.push_str("no matching ports\n");
        return s;
    }
    let long = long || answers.len() <= 3;
    let _ = writeln!(
        s,
        "{:<12} {:<5} {:<11} {:<8} {:<16} NAMES",
        "PORT", "PROTO", "RANGE", "CATEGORY", "SERVICE"
    );
    for a in answers {
        match a {
            PortAnswer::Known(e) => {
                let port = if e.lo == e.hi {
                    e.lo.to_string()
                } else {
                    format!("{}-{}", e.lo, e.hi)
                };
                let _ = writeln!(
                    s,
                    "{:<12} {:<5} {:<11} {:<8} {:<16} {}",
                    port,
                    e.proto.name(),
                    RangeClass::of(e.lo).name(),
                    e.category.name(),
                    e.service.as_deref().unwrap_or("-"),
                    if e.names.is_empty() {
                        "-".to_string()
                    } else {
                        e.names.join(", ")
                    }
                );
                if long {
                    if let Some(x) = &e.advice {
                        let _ = writeln!(s, "             advice:     {x}");
                    }
                    if let Some(x) = &e.correction {
                        let _ = writeln!(s, "             correction: {x}");
                    }
                    if let Some(sev) = e.severity {
                        let _ = writeln!(s, "             severity:   {sev} (rules file)");
                    }
                    let _ = writeln!(s, "             sources:    {}", e.sources.join(", "));
                }
            }
            PortAnswer::Unknown(p) => {
                let _ = writeln!(
                    s,
                    "{:<12} {:<5} {:<11} {:<8} {:<16} not in the port database",
                    p,
                    "-",
                    RangeClass::of(*p).name(),
                    "-",
                    "-"
                );
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q() -> PortQuery {
        PortQuery::default()
    }

    #[test]
    fn lookups_from_the_issue() {
        let db = PortDb::builtin().unwrap();
        let bo = PortQuery {
            ranges: vec![(31337, 31337)],
            ..q()
        }
        .run(&db);
        assert_eq!(bo.len(), 2); // tcp and udp
        let nb = PortQuery {
            ranges: vec![(137, 139)],
            proto: Some(PortProto::Udp),
            ..q()
        }
        .run(&db);
        assert!(nb.len() >= 2);
        assert!(
            nb.iter()
                .all(|a| matches!(a, PortAnswer::Known(e) if e.proto == PortProto::Udp))
        );
        let netbus = PortQuery {
            search: Some("NETBUS".into()),
            ..q()
        }
        .run(&db);
        let ports: Vec<u16> = netbus
            .iter()
            .filter_map(|a| match a {
                PortAnswer::Known(e) => Some(e.lo),
                _ => None,
            })
            .collect();
        assert!(
            ports.contains(&12345) && ports.contains(&12346),
            "{ports:?}"
        );
        let trojans = PortQuery {
            category: Some(Category::Trojan),
            ..q()
        }
        .run(&db);
        assert!(trojans.len() >= 100);
        let unknown = PortQuery {
            ranges: vec![(47123, 47123)],
            ..q()
        }
        .run(&db);
        assert!(matches!(unknown[..], [PortAnswer::Unknown(47123)]));
        assert!(render_table(&unknown, false).contains("not in the port database"));
        assert!(render_json(&bo).contains("\"Back Orifice\""));
    }
}
