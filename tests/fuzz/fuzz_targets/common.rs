// Shared by the fuzz targets: an analyzer with the built-in rules, and the link types to try.
use std::sync::Arc;

use synwatch::analyse::Analyzer;
use synwatch::classify::ports::PortDb;
use synwatch::decode::DecodeOptions;
use synwatch::detect::Detector;
use synwatch::flow::TableConfig;
use synwatch::rules::Rules;

/// Every link type synwatch decodes, and one it does not.
#[allow(dead_code)]
pub const LINKTYPES: [i32; 16] = [
    1, 0, 9, 10, 12, 14, 50, 51, 101, 105, 108, 113, 127, 228, 229, 276,
];

/// The port database, parsed once.
pub fn db() -> Arc<PortDb> {
    static DB: std::sync::OnceLock<Arc<PortDb>> = std::sync::OnceLock::new();
    DB.get_or_init(|| Arc::new(PortDb::builtin().unwrap()))
        .clone()
}

pub fn analyzer(verify: bool, max_flows: usize) -> Analyzer {
    // At most half the table whole (the rest embryos, kept as their first packet, or packed),
    // so that the fuzzers go through hatching, packing and unpacking too.
    analyzer_with(verify, max_flows, max_flows / 2)
}

pub fn analyzer_with(verify: bool, max_flows: usize, compact_after: usize) -> Analyzer {
    let db = db();
    Analyzer::new(
        TableConfig {
            max_flows,
            compact_after,
            ..TableConfig::default()
        },
        DecodeOptions {
            verify_checksums: verify,
        },
        Detector::new(db, Rules::default()),
    )
}

/// Writes every record and alert in every format, to exercise the writers.
pub fn write_all(an: &mut Analyzer) {
    let db = db();
    let mut sink = std::io::sink();
    let mut line = Vec::new();
    let mut bytes = Vec::new();
    let mut cache = synwatch::output::json::RecordCache::default();
    for r in &an.pending {
        synwatch::output::json::write_flow_into(&mut sink, r, &db, &mut bytes, &mut cache).unwrap();
        synwatch::output::zeek::write_row(&mut sink, r, &mut line, &db).unwrap();
    }
    let mut alert_cache = synwatch::output::alerts::AlertCache::default();
    for a in &an.alerts {
        bytes.clear();
        synwatch::output::alerts::write_json(&mut bytes, a, &db, &mut alert_cache).unwrap();
        synwatch::output::alerts::write_text(&mut sink, a, &db).unwrap();
    }
    let _ = an.summary.render();
}
