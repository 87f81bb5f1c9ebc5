//! Threads and channels: capture thread → analysis → output thread (GUIDE §1).

use std::fs::File;
use std::io::Write;
use std::thread;

use crossbeam_channel::bounded;

use crate::capture::PacketBatch;
use crate::capture::file::{SourceOutcome, read_offline};
use crate::decode::{DecodeOptions, decode, tunnel};
use crate::flow::{ConnRecord, EndReason, FlowTable, TableConfig};
use crate::output::ConnFormat;
use crate::output::summary::Summary;
use crate::output::writer::ConnWriter;

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
}

/// A failure that stops a run.
#[derive(Debug)]
pub enum RunError {
    Output { target: String, err: std::io::Error },
    Thread(&'static str),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Output { target, err } => {
                write!(f, "cannot write connection records to {target}: {err}")
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

/// How many tunnels deep synwatch looks (Zeek's `Tunnel::max_depth` is 2).
pub const MAX_TUNNEL_DEPTH: usize = 4;

/// Decodes one captured frame and accounts it, then whatever tunnels it carries, each inner
/// packet tracked as its own connection with the outer one as its tunnel parent.
#[allow(clippy::too_many_arguments)]
fn analyse(
    linktype: i32,
    frame: &[u8],
    ts: crate::time::Micros,
    wire_len: u32,
    dopts: DecodeOptions,
    table: &mut FlowTable,
    summary: &mut Summary,
    pending: &mut Vec<ConnRecord>,
) {
    // Bytes the snap length cut off: they are missing from every layer.
    let missing = wire_len.saturating_sub(frame.len() as u32);
    let mut layer = (linktype, frame);
    let mut parent = None;
    for depth in 0..=MAX_TUNNEL_DEPTH {
        let (lt, bytes) = layer;
        let wire = (bytes.len() as u32).saturating_add(missing);
        let d = match decode(lt, bytes, ts, wire, dopts) {
            Ok(d) => d,
            Err(why) if depth == 0 => {
                summary.undecodable[why.index()] += 1;
                return;
            }
            Err(why) => {
                summary.inner_undecodable[why.index()] += 1;
                return;
            }
        };
        if depth == 0 {
            summary.decoded += 1;
            if d.truncated {
                summary.truncated_packets += 1;
            }
        }
        if d.l4_checksum == crate::decode::ChecksumVerdict::Bad {
            summary.bad_l4_checksums += 1;
        }
        // A packet with a bad checksum is not opened (Zeek drops it before any analyzer).
        let inner = if d.l4_checksum == crate::decode::ChecksumVerdict::Bad {
            None
        } else {
            tunnel::inner(&d, bytes)
        };
        let id = table.packet(&d, parent, inner.map(|i| i.kind), &mut |r| {
            summary.record(&r);
            pending.push(r);
        });
        let Some(inner) = inner else { return };
        if depth == MAX_TUNNEL_DEPTH {
            summary.tunnel_too_deep += 1;
            return;
        }
        summary.tunnelled[inner.kind.index()] += 1;
        parent = id;
        layer = (inner.linktype, inner.bytes);
    }
}

/// Reads the inputs, analyses every packet, writes the records; returns the summary.
pub fn run_read(opts: &ReadOptions) -> Result<Summary, RunError> {
    let dest = open_target(&opts.conn)?;
    let target_name = match &opts.conn {
        ConnTarget::File(p) => p.clone(),
        _ => "standard output".to_string(),
    };

    let (pkt_tx, pkt_rx) = bounded::<PacketBatch>(PACKET_CHANNEL_DEPTH);
    let (back_tx, back_rx) = bounded::<PacketBatch>(PACKET_CHANNEL_DEPTH + 2);
    let (rec_tx, rec_rx) = bounded::<Vec<ConnRecord>>(4);
    let (rec_back_tx, rec_back_rx) = bounded::<Vec<ConnRecord>>(6);

    let inputs = opts.inputs.clone();
    let reader = thread::Builder::new()
        .name("capture".into())
        .spawn(move || read_offline(&inputs, &pkt_tx, &back_rx))
        .map_err(|_| RunError::Thread("capture"))?;

    let format = opts.conn_format;
    let writer = thread::Builder::new()
        .name("output".into())
        .spawn(move || -> std::io::Result<u64> {
            let mut w = dest.map(|d| ConnWriter::new(d, format));
            let mut last = crate::time::Micros::ZERO;
            let mut result = Ok(());
            for mut chunk in rec_rx.iter() {
                if let (Some(w), Ok(())) = (w.as_mut(), &result) {
                    for r in &chunk {
                        if let Err(e) = w.write(r) {
                            result = Err(e);
                            break;
                        }
                        last = last.max(r.end);
                    }
                }
                chunk.clear();
                let _ = rec_back_tx.try_send(chunk);
            }
            result?;
            match w {
                Some(mut w) => {
                    w.finish(last)?;
                    Ok(w.written)
                }
                None => Ok(0),
            }
        })
        .map_err(|_| RunError::Thread("output"))?;

    let mut summary = Summary::default();
    let mut table = FlowTable::new(opts.table);
    let mut pending: Vec<ConnRecord> = Vec::with_capacity(RECORD_CHUNK);
    let send_pending = |pending: &mut Vec<ConnRecord>| {
        if pending.is_empty() {
            return;
        }
        let fresh = rec_back_rx
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(RECORD_CHUNK));
        let full = std::mem::replace(pending, fresh);
        let _ = rec_tx.send(full);
    };

    for mut batch in pkt_rx.iter() {
        for (meta, bytes) in batch.iter() {
            summary.packets += 1;
            summary.wire_bytes += u64::from(meta.wire_len);
            analyse(
                meta.linktype.0,
                bytes,
                meta.ts,
                meta.wire_len,
                opts.decode,
                &mut table,
                &mut summary,
                &mut pending,
            );
        }
        if pending.len() >= RECORD_CHUNK / 2 {
            send_pending(&mut pending);
        }
        batch.clear();
        let _ = back_tx.try_send(batch);
    }
    table.flush(EndReason::EndOfInput, &mut |r| {
        summary.record(&r);
        pending.push(r);
    });
    send_pending(&mut pending);
    drop(rec_tx);
    summary.flow_stats = table.stats;

    summary.sources = reader.join().map_err(|_| RunError::Thread("capture"))?;
    match writer.join().map_err(|_| RunError::Thread("output"))? {
        Ok(_) => {}
        Err(err) => {
            return Err(RunError::Output {
                target: target_name,
                err,
            });
        }
    }
    Ok(summary)
}
