//! Threads and channels: capture thread → analysis → output thread (GUIDE §1).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::Arc;
use std::thread;

use crossbeam_channel::bounded;

use crate::analyse::Analyzer;
use crate::capture::PacketBatch;
use crate::capture::file::{SourceOutcome, read_offline};
use crate::classify::ports::PortDb;
use crate::decode::DecodeOptions;
use crate::detect::{Alert, Detector};
use crate::flow::{ConnRecord, EndReason, TableConfig};
use crate::output::ConnFormat;
use crate::output::alerts::{self, AlertFormat};
use crate::output::summary::Summary;
use crate::output::writer::ConnWriter;
use crate::rules::Rules;
use crate::time::Micros;

/// Batches in flight between the capture thread and analysis.
const PACKET_CHANNEL_DEPTH: usize = 8;
/// Records are handed to the output thread this many at a time.
const RECORD_CHUNK: usize = 1024;

/// Where connection records go.
#[derive(Clone, Debug)]
pub enum ConnTarget {
    None,
    Stdout,
    File(String),
}

impl ConnTarget {
    pub fn from_arg(s: Option<&str>) -> ConnTarget {
        match s {
            None => ConnTarget::None,
            Some("-") => ConnTarget::Stdout,
            Some(p) => ConnTarget::File(p.to_string()),
        }
    }
}

/// Everything `synwatch read` needs.
#[derive(Clone, Debug)]
pub struct ReadOptions {
    pub inputs: Vec<String>,
    pub conn: ConnTarget,
    pub conn_format: ConnFormat,
    pub decode: DecodeOptions,
    pub table: TableConfig,
    pub alerts: ConnTarget,
    pub alerts_format: AlertFormat,
    pub db: Arc<PortDb>,
    pub rules: Rules,
}

/// A failure that stops a run.
#[derive(Debug)]
pub enum RunError {
    Output { target: String, err: std::io::Error },
    AlertOutput { target: String, err: std::io::Error },
    Thread(&'static str),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Output { target, err } => {
                write!(f, "cannot write connection records to {target}: {err}")
            }
            RunError::AlertOutput { target, err } => {
                write!(f, "cannot write alerts to {target}: {err}")
            }
            RunError::Thread(which) => write!(f, "internal error: the {which} thread panicked"),
        }
    }
}

impl std::error::Error for RunError {}

/// How the run's inputs fared, for the exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputHealth {
    AllComplete,
    SomeDamaged,
    SomeUnreadable,
}

impl Summary {
    pub fn input_health(&self) -> InputHealth {
        let mut h = InputHealth::AllComplete;
        for s in &self.sources {
            match s.outcome {
                SourceOutcome::Unreadable(_) => return InputHealth::SomeUnreadable,
                SourceOutcome::Damaged(_) => h = InputHealth::SomeDamaged,
                SourceOutcome::Complete => {}
            }
        }
        h
    }
}

fn open_target(t: &ConnTarget) -> Result<Option<Box<dyn Write + Send>>, RunError> {
    Ok(match t {
        ConnTarget::None => None,
        ConnTarget::Stdout => Some(Box::new(std::io::stdout())),
        ConnTarget::File(p) => Some(Box::new(File::create(p).map_err(|err| {
            RunError::Output {
                target: p.clone(),
                err,
            }
        })?)),
    })
}

/// What the analysis hands to the output thread.
#[derive(Default)]
struct OutChunk {
    records: Vec<ConnRecord>,
    alerts: Vec<Alert>,
}

/// The output thread: connection records and alerts to their destinations.
struct Outputs {
    conn: Option<ConnWriter>,
    alerts: Option<BufWriter<Box<dyn Write + Send>>>,
    /// Alerts go to the connection writer's destination (both are standard output).
    alerts_share_conn: bool,
    alert_format: AlertFormat,
    db: Arc<PortDb>,
    last: Micros,
}

impl Outputs {
    fn write(&mut self, chunk: &OutChunk) -> Result<(), (bool, std::io::Error)> {
        if let Some(w) = self.conn.as_mut() {
            for r in &chunk.records {
                w.write(r).map_err(|e| (true, e))?;
                self.last = self.last.max(r.end);
            }
        }
        for a in &chunk.alerts {
            let sink: &mut dyn Write =
                match (self.alerts_share_conn, &mut self.conn, &mut self.alerts) {
                    (true, Some(w), _) => w.sink(),
                    (_, _, Some(a)) => a,
                    _ => continue,
                };
            let res = match self.alert_format {
                AlertFormat::Json => alerts::write_json(sink, a, &self.db),
                AlertFormat::Text => alerts::write_text(sink, a, &self.db),
            };
            res.map_err(|e| (self.alerts_share_conn, e))?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), (bool, std::io::Error)> {
        if let Some(w) = self.conn.as_mut() {
            w.finish(self.last).map_err(|e| (true, e))?;
        }
        if let Some(a) = self.alerts.as_mut() {
            a.flush().map_err(|e| (false, e))?;
        }
        Ok(())
    }
}

fn target_name(t: &ConnTarget) -> String {
    match t {
        ConnTarget::File(p) => p.clone(),
        _ => "standard output".to_string(),
    }
}

/// Reads the inputs, analyses every packet, writes the records and alerts; returns the summary.
pub fn run_read(opts: &ReadOptions) -> Result<Summary, RunError> {
    let conn_dest = open_target(&opts.conn)?;
    let share = matches!(
        (&opts.conn, &opts.alerts),
        (ConnTarget::Stdout, ConnTarget::Stdout)
    );
    let alert_dest = if share {
        None
    } else {
        open_target(&opts.alerts).map_err(|e| match e {
            RunError::Output { target, err } => RunError::AlertOutput { target, err },
            other => other,
        })?
    };

    let (pkt_tx, pkt_rx) = bounded::<PacketBatch>(PACKET_CHANNEL_DEPTH);
    let (back_tx, back_rx) = bounded::<PacketBatch>(PACKET_CHANNEL_DEPTH + 2);
    let (out_tx, out_rx) = bounded::<OutChunk>(4);
    let (out_back_tx, out_back_rx) = bounded::<OutChunk>(6);

    let inputs = opts.inputs.clone();
    let reader = thread::Builder::new()
        .name("capture".into())
        .spawn(move || read_offline(&inputs, &pkt_tx, &back_rx))
        .map_err(|_| RunError::Thread("capture"))?;

    let mut outputs = Outputs {
        conn: conn_dest.map(|d| ConnWriter::new(d, opts.conn_format, opts.db.clone())),
        alerts: alert_dest.map(|d| BufWriter::with_capacity(1 << 14, d)),
        alerts_share_conn: share,
        alert_format: opts.alerts_format,
        db: opts.db.clone(),
        last: Micros::ZERO,
    };
    let writer = thread::Builder::new()
        .name("output".into())
        .spawn(move || -> Result<(), (bool, std::io::Error)> {
            let mut result = Ok(());
            for mut chunk in out_rx.iter() {
                if result.is_ok() {
                    result = outputs.write(&chunk);
                }
                chunk.records.clear();
                chunk.alerts.clear();
                let _ = out_back_tx.try_send(chunk);
            }
            result?;
            outputs.finish()
        })
        .map_err(|_| RunError::Thread("output"))?;

    let detector = Detector::new(opts.db.clone(), opts.rules.clone());
    let mut an = Analyzer::new(opts.table, opts.decode, detector);
    let send = |an: &mut Analyzer| {
        if an.pending.is_empty() && an.alerts.is_empty() {
            return;
        }
        let mut chunk = out_back_rx.try_recv().unwrap_or_default();
        std::mem::swap(&mut chunk.records, &mut an.pending);
        std::mem::swap(&mut chunk.alerts, &mut an.alerts);
        if an.pending.capacity() == 0 {
            an.pending.reserve(RECORD_CHUNK);
        }
        let _ = out_tx.send(chunk);
    };

    for mut batch in pkt_rx.iter() {
        for (meta, bytes) in batch.iter() {
            an.packet(meta.linktype.0, bytes, meta.ts, meta.wire_len);
        }
        if an.pending.len() >= RECORD_CHUNK / 2 || !an.alerts.is_empty() {
            send(&mut an);
        }
        batch.clear();
        let _ = back_tx.try_send(batch);
    }
    an.finish(EndReason::EndOfInput);
    send(&mut an);
    drop(out_tx);
    let mut summary = an.summary;
    summary.top_alerts = an.detector.top_alerts();

    summary.sources = reader.join().map_err(|_| RunError::Thread("capture"))?;
    match writer.join().map_err(|_| RunError::Thread("output"))? {
        Ok(()) => {}
        Err((true, err)) => {
            return Err(RunError::Output {
                target: target_name(&opts.conn),
                err,
            });
        }
        Err((false, err)) => {
            return Err(RunError::AlertOutput {
                target: target_name(&opts.alerts),
                err,
            });
        }
    }
    Ok(summary)
}
