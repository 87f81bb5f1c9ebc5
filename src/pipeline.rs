//! Threads and channels: capture thread → analysis → output thread (GUIDE §1).
//!
//! The same wiring serves offline reading (`run_read`: the capture thread blocks when analysis
//! is behind, nothing is lost) and live capture (`run_live`: the capture thread never waits,
//! see `capture::live`). In live mode the analysis thread also wakes every few hundred
//! milliseconds without packets, to run timers in packet time (the last packet's time plus the
//! wall-clock time since), to write `stats` events, and to notice signals.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};
use serde::Serialize;

use crate::analyse::{Analyzer, judge};
use crate::capture::PacketBatch;
use crate::capture::file::{SourceOutcome, read_offline};
use crate::capture::live::{self, LiveCounters, LiveOptions, LiveReport};
use crate::classify::ports::PortDb;
use crate::decode::{DecodeOptions, shard};
use crate::detect::{Alert, Detector};
use crate::flow::{ConnRecord, EndReason, TableConfig};
use crate::output::ConnFormat;
use crate::output::alerts::{self, AlertFormat};
use crate::output::progress::ReadProgress;
use crate::output::sink::Sink;
use crate::output::summary::Summary;
use crate::output::writer::ConnWriter;
use crate::rules::Rules;
use crate::time::Micros;

/// Batches in flight between the capture thread and analysis.
const PACKET_CHANNEL_DEPTH: usize = 8;
/// Room reserved for a worker's records between two sends.
const RECORD_CHUNK: usize = 1024;
/// Batches queued for each worker.
const WORKER_CHANNEL_DEPTH: usize = 4;

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
    /// Length of the summary's top lists.
    pub top_n: usize,
    /// Draw a progress line on standard error (read only).
    pub progress: bool,
    /// Analysis workers (flows sharded by address pair; see `decode::shard`).
    pub workers: usize,
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
                SourceOutcome::Damaged(_) | SourceOutcome::Unsupported(_) => {
                    h = InputHealth::SomeDamaged
                }
                SourceOutcome::Complete => {}
            }
        }
        h
    }
}

fn open_sink(t: &ConnTarget, append: bool) -> std::io::Result<Option<Sink>> {
    match t {
        ConnTarget::None => Ok(None),
        ConnTarget::Stdout => Sink::open(None, append).map(Some),
        ConnTarget::File(p) => Sink::open(Some(p), append).map(Some),
    }
}

/// A `stats` event (live capture, every `--stats-interval`).
#[derive(Clone, Debug, Serialize)]
pub struct StatsEvent {
    pub timestamp: String,
    pub event_type: &'static str,
    pub stats: StatsBody,
}

#[derive(Clone, Debug, Serialize)]
pub struct StatsBody {
    pub uptime_s: f64,
    pub packets_captured: u64,
    pub packets_received_by_filter: u64,
    pub kernel_drops: u64,
    pub interface_drops: u64,
    pub synwatch_drops: u64,
    pub packets_analysed: u64,
    pub flows_active: u64,
    pub flows_created: u64,
    pub flows_evicted: u64,
    pub alerts: u64,
    pub channel_depth: u64,
    pub handshake_rtt_us: RttBody,
}

#[derive(Clone, Debug, Serialize)]
pub struct RttBody {
    pub handshakes: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

/// What the analysis hands to the output thread.
#[derive(Default)]
struct OutChunk {
    records: Vec<ConnRecord>,
    alerts: Vec<Alert>,
    stats: Vec<StatsEvent>,
}

/// The output thread: connection records, alerts and stats to their destinations.
struct Outputs {
    conn: Option<ConnWriter>,
    alerts: Option<Sink>,
    /// Alerts go to the connection writer's destination (both are standard output).
    alerts_share_conn: bool,
    alert_format: AlertFormat,
    /// Stats events go to the alert log when it is JSON, else to a JSON connection log.
    stats_to_alerts: bool,
    stats_to_conn: bool,
    db: Arc<PortDb>,
    last: Micros,
    rotate_size: u64,
    /// One alert, rendered before it is written in one piece: serde writing each small
    /// piece through the log's `dyn Write` cost more than the rendering.
    alert_buf: Vec<u8>,
    alert_cache: alerts::AlertCache,
}

/// An output failure: which log (true: connections) and the error.
type OutError = (bool, std::io::Error);

impl Outputs {
    fn write(&mut self, chunk: &OutChunk) -> Result<(), OutError> {
        if let Some(w) = self.conn.as_mut() {
            for r in &chunk.records {
                w.write(r).map_err(|e| (true, e))?;
                self.last = self.last.max(r.end);
            }
            // Alerts and stats may share the sink: the records go first.
            w.drain().map_err(|e| (true, e))?;
        }
        for a in &chunk.alerts {
            let sink: &mut dyn Write =
                match (self.alerts_share_conn, &mut self.conn, &mut self.alerts) {
                    (true, Some(w), _) => w.sink(),
                    (_, _, Some(a)) => a,
                    _ => continue,
                };
            self.alert_buf.clear();
            let res = match self.alert_format {
                AlertFormat::Json => {
                    alerts::write_json(&mut self.alert_buf, a, &self.db, &mut self.alert_cache)
                }
                AlertFormat::Text => alerts::write_text(&mut self.alert_buf, a, &self.db),
            };
            res.and_then(|()| sink.write_all(&self.alert_buf))
                .map_err(|e| (self.alerts_share_conn, e))?;
        }
        for st in &chunk.stats {
            let (sink, is_conn): (&mut dyn Write, bool) = if self.stats_to_alerts {
                match (self.alerts_share_conn, &mut self.conn, &mut self.alerts) {
                    (true, Some(w), _) => (w.sink(), true),
                    (_, _, Some(a)) => (a, false),
                    _ => continue,
                }
            } else if self.stats_to_conn {
                match &mut self.conn {
                    Some(w) => (w.sink(), true),
                    None => continue,
                }
            } else {
                continue;
            };
            serde_json::to_writer(&mut *sink, st)
                .map_err(std::io::Error::other)
                .and_then(|()| sink.write_all(b"\n"))
                .and_then(|()| sink.flush())
                .map_err(|e| (is_conn, e))?;
        }
        if self.rotate_size > 0 {
            if let Some(w) = self.conn.as_mut() {
                w.rotate_if_over(self.rotate_size, self.last)
                    .map_err(|e| (true, e))?;
            }
            if let Some(a) = self.alerts.as_mut() {
                a.rotate_if_over(self.rotate_size).map_err(|e| (false, e))?;
            }
        }
        Ok(())
    }

    fn reopen(&mut self) -> Result<(), OutError> {
        if let Some(w) = self.conn.as_mut() {
            w.reopen(self.last).map_err(|e| (true, e))?;
        }
        if let Some(a) = self.alerts.as_mut() {
            a.reopen().map_err(|e| (false, e))?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), OutError> {
        if let Some(w) = self.conn.as_mut() {
            w.flush().map_err(|e| (true, e))?;
        }
        if let Some(a) = self.alerts.as_mut() {
            a.flush().map_err(|e| (false, e))?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), OutError> {
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

/// Signals and periodic work of a live run.
#[derive(Clone, Debug)]
pub struct LiveControl {
    /// Set by SIGINT / SIGTERM: stop capturing, flush, write the summary.
    pub stop: Arc<AtomicBool>,
    /// Set by SIGHUP: reopen the log files.
    pub reopen: Arc<AtomicBool>,
    pub stats_interval: Duration,
    pub rotate_size: u64,
}

/// Everything the analysis loop needs to know about the input.
enum Feed {
    Offline,
    Live {
        ctl: LiveControl,
        counters: Arc<LiveCounters>,
    },
}

/// What a worker hands to the merge stage after each batch (and on idle ticks, and at the end).
struct WorkerOut {
    worker: usize,
    records: Vec<ConnRecord>,
    /// Every record this worker sends from now on comes at or after this in canonical order
    /// ([`ConnRecord::order`]): after a batch, (the last packet's number, earliest, 0); while
    /// flushing at the end, just past the last flow id sent; all `MAX` with the last message.
    upto: Order,
    /// Sent from a live idle tick: release everything held (order matters less than delay).
    ticked: bool,
    /// The worker's clock (packet time), for the detectors' expiry in live capture.
    clock: Micros,
    gauges: Gauges,
    /// The worker's packet-level summary, with its last message.
    end: Option<Box<Summary>>,
}

/// A position in the canonical order of records.
type Order = (u64, Micros, u64);

/// The position before every record of packet `seq`.
fn before_packet(seq: u64) -> Order {
    (seq, Micros(i64::MIN), 0)
}

const END: Order = (u64::MAX, Micros::MAX, u64::MAX);

/// A worker's counters for `stats` events.
#[derive(Clone, Copy, Debug, Default)]
struct Gauges {
    packets: u64,
    active: u64,
    created: u64,
    evicted: u64,
}

/// How many analysis workers to run when `--workers` is not given: one per core but one, which
/// the capture thread and the merge stage share (measured on 2 cores: 1 worker beats 2 on the
/// mixed benchmark capture, 1.45 s against 1.62 s; README, Performance).
pub fn default_workers() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}

/// One analysis worker: sees every batch, analyses the packets it owns (`decode::shard`, as
/// the dispatcher marked them), observes the others (sequence numbers and the clock), and
/// sends its records on.
#[allow(clippy::too_many_arguments)]
fn run_worker(
    w: usize,
    mut an: Analyzer,
    rx: WorkerInput,
    back_tx: Sender<PacketBatch>,
    out_tx: Sender<WorkerOut>,
    rec_back: Receiver<Vec<ConnRecord>>,
    live: bool,
    end_reason: EndReason,
) {
    let gauges = |an: &Analyzer| Gauges {
        packets: an.summary.packets,
        active: an.table.active() as u64,
        created: an.table.stats.created,
        evicted: an.table.stats.evicted,
    };
    let send = |an: &mut Analyzer, upto: Order, ticked: bool, end: Option<Box<Summary>>| {
        let mut records = rec_back.try_recv().unwrap_or_default();
        std::mem::swap(&mut records, &mut an.pending);
        if an.pending.capacity() == 0 {
            an.pending.reserve(RECORD_CHUNK);
        }
        let _ = out_tx.send(WorkerOut {
            worker: w,
            records,
            upto,
            ticked,
            clock: an.table.clock(),
            gauges: gauges(an),
            end,
        });
    };
    // Packet time of the last packet and the wall-clock instant it was analysed.
    let mut last_pkt: Option<(Micros, Instant)> = None;
    loop {
        match rx.recv(live) {
            Ok(got) => {
                let batch = got.batch();
                for (meta, bytes) in batch.iter() {
                    // With one worker there is no dispatcher, and every owner is 0.
                    if usize::from(meta.owner) == w {
                        an.packet(meta.linktype.0, bytes, meta.ts, meta.wire_len);
                    } else {
                        an.observe(meta.ts);
                    }
                }
                if live && !batch.is_empty() {
                    last_pkt = Some((an.table.clock(), Instant::now()));
                }
                got.recycle(&back_tx);
                // Live: after every batch, so that records and alerts go out at once.
                // Reading a file: in chunks, which wakes the merge stage a tenth as often.
                if live || an.pending.len() >= RECORD_CHUNK {
                    let upto = before_packet(an.seq());
                    send(&mut an, upto, false, None);
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                // Timers run in packet time; without packets, packet time moves with the clock.
                if let Some((ts, at)) = last_pkt {
                    let elapsed = Micros(at.elapsed().as_micros().min(i64::MAX as u128) as i64);
                    an.tick(ts.saturating_add(elapsed));
                }
                let upto = before_packet(an.seq());
                send(&mut an, upto, true, None);
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    // The connections still open, in flow-id order and in chunks, so that the merge stage
    // can write them as they come rather than hold them all.
    let mut upto = before_packet(an.seq());
    while !an.finish_some(end_reason, RECORD_CHUNK) {
        if let Some(last) = an.pending.last() {
            upto = (last.seq, last.due, last.flow_id.saturating_add(1));
        }
        send(&mut an, upto, false, None);
    }
    let summary = std::mem::take(&mut an.summary);
    send(&mut an, END, false, Some(Box::new(summary)));
}

/// Where a worker's batches come from: straight from the capture thread when it is the only
/// worker (no dispatcher, one thread fewer to schedule), else shared among the workers by the
/// dispatcher.
enum WorkerInput {
    Direct(Receiver<PacketBatch>),
    Shared(Receiver<Arc<PacketBatch>>),
}

/// One batch a worker received.
enum Got {
    Own(PacketBatch),
    Shared(Arc<PacketBatch>),
}

impl WorkerInput {
    /// The next batch; live capture waits at most 250 ms (the worker then runs its timers).
    fn recv(&self, live: bool) -> Result<Got, RecvTimeoutError> {
        const TICK: Duration = Duration::from_millis(250);
        let gone = |_| RecvTimeoutError::Disconnected;
        match (self, live) {
            (WorkerInput::Direct(rx), true) => rx.recv_timeout(TICK).map(Got::Own),
            (WorkerInput::Direct(rx), false) => rx.recv().map(Got::Own).map_err(gone),
            (WorkerInput::Shared(rx), true) => rx.recv_timeout(TICK).map(Got::Shared),
            (WorkerInput::Shared(rx), false) => rx.recv().map(Got::Shared).map_err(gone),
        }
    }
}

impl Got {
    fn batch(&self) -> &PacketBatch {
        match self {
            Got::Own(b) => b,
            Got::Shared(b) => b,
        }
    }

    /// Sends the batch back to the capture thread for reuse (a shared one by the last worker
    /// done with it).
    fn recycle(self, back: &Sender<PacketBatch>) {
        let batch = match self {
            Got::Own(b) => Some(b),
            Got::Shared(b) => Arc::into_inner(b),
        };
        if let Some(mut b) = batch {
            b.clear();
            let _ = back.try_send(b);
        }
    }
}

/// The merge stage's order keeping: records from every worker, released in canonical order
/// ([`ConnRecord::order`]) once every worker has moved past them.
///
/// A worker's chunks almost always come in canonical order of one another (a chunk ends at a
/// packet boundary), and a chunk is put in order when it comes, so each worker's queue is in
/// order and the records are released by merging the queues' fronts: each record is looked
/// at once, however long it waits for the other workers. The exception is a live idle tick:
/// it can end connections of the packet the worker's last chunk ended with (a timer due at
/// once, with a zero timeout) whose flow ids are lower than ones still queued; the queue is
/// then sorted again.
struct Merge {
    upto: Vec<Order>,
    /// Each worker's records not yet released, in canonical order.
    queues: Vec<VecDeque<ConnRecord>>,
    /// Scratch: the order and index of a chunk's records, and the chunk in order.
    keys: Vec<(Order, u32)>,
    sorted: Vec<ConnRecord>,
}

impl Merge {
    fn new(workers: usize) -> Self {
        Merge {
            upto: vec![before_packet(0); workers],
            queues: (0..workers).map(|_| VecDeque::new()).collect(),
            keys: Vec::new(),
            sorted: Vec::new(),
        }
    }

    /// Takes a worker's records; moves those now final, in canonical order, into `out`.
    fn take(&mut self, m: &mut WorkerOut, out: &mut Vec<ConnRecord>) {
        if let Some(u) = self.upto.get_mut(m.worker) {
            *u = (*u).max(m.upto);
        }
        let limit = if m.ticked {
            END
        } else {
            self.upto.iter().copied().min().unwrap_or(END)
        };
        self.put_in_order(&mut m.records);
        let nothing_held = self.queues.iter().all(VecDeque::is_empty);
        if nothing_held && out.is_empty() && m.records.last().is_none_or(|r| r.order() < limit) {
            // All of them final (one worker, usually): hand the vector over; the worker
            // gets the empty one back.
            std::mem::swap(out, &mut m.records);
            return;
        }
        if let Some(q) = self.queues.get_mut(m.worker) {
            let in_order = q
                .back()
                .zip(m.records.first())
                .is_none_or(|(a, b)| a.order() < b.order());
            q.extend(m.records.drain(..));
            if !in_order {
                q.make_contiguous().sort_by_key(ConnRecord::order);
            }
        }
        loop {
            let mut next: Option<(usize, Order)> = None;
            for (i, q) in self.queues.iter().enumerate() {
                if let Some(o) = q.front().map(ConnRecord::order)
                    && o < limit
                    && next.is_none_or(|(_, n)| o < n)
                {
                    next = Some((i, o));
                }
            }
            let Some(r) = next.and_then(|(i, _)| self.queues.get_mut(i)?.pop_front()) else {
                break;
            };
            out.push(r);
        }
    }

    /// Puts one worker's chunk in canonical order (see [`sort_keys`]).
    fn put_in_order(&mut self, records: &mut Vec<ConnRecord>) {
        if records.is_sorted_by_key(ConnRecord::order) {
            return;
        }
        // Sort keys, not records: a record is about 300 bytes, and sorting would move each
        // one many times.
        self.keys.clear();
        self.keys.extend(
            records
                .iter()
                .enumerate()
                .map(|(i, r)| (r.order(), i as u32)),
        );
        sort_keys(&mut self.keys);
        self.sorted.clear();
        let from = &*records;
        self.sorted.extend(
            self.keys
                .iter()
                .filter_map(|&(_, i)| from.get(i as usize).copied()),
        );
        std::mem::swap(records, &mut self.sorted);
    }
}

/// Sorts the keys of a worker's chunk of records. They come almost in order: by packet, and
/// within a packet's timers by due time, so only the records of timers that came due
/// together (a status-check group, or entries of one clock tick) can be out of flow-id order.
/// Each run of equal (packet, due) is sorted on its own, which is linear when the runs are
/// short; anything still out of order gets a whole (stable) sort. A whole sort of every chunk
/// was about 200 instructions a record.
fn sort_keys(keys: &mut [(Order, u32)]) {
    for run in keys.chunk_by_mut(|a, b| (a.0.0, a.0.1) == (b.0.0, b.0.1)) {
        if run.len() > 1 {
            run.sort_unstable();
        }
    }
    if !keys.is_sorted() {
        keys.sort();
    }
}

/// Sets up the workers, the dispatcher and the merge stage (which judges the records and
/// writes them), feeds them from `pkt_rx`, and returns the summary.
///
/// ```text
/// capture ─batches─▶ dispatch ─Arc<batch> to every worker─▶ worker 0..N ─records─▶ merge+write
/// capture ─batches─────────────────────────────────────────▶ worker 0   ─records─▶ merge+write
/// ```
///
/// (the second line with one worker: no dispatcher).
/// Every worker sees every batch, so packet numbering and the clock are the same everywhere;
/// each analyses only the frames `decode::shard::owner` gives it, so no flow state is shared.
/// The merge stage releases records in canonical order, so the detectors, the summary and the
/// logs get exactly what a single worker would have given them (tested).
fn analyse_and_write(
    opts: &ReadOptions,
    pkt_rx: Receiver<PacketBatch>,
    back_tx: Sender<PacketBatch>,
    feed: Feed,
) -> Result<Summary, RunError> {
    let live = matches!(feed, Feed::Live { .. });
    let conn_sink = open_sink(&opts.conn, live).map_err(|err| RunError::Output {
        target: target_name(&opts.conn),
        err,
    })?;
    let share = matches!(
        (&opts.conn, &opts.alerts),
        (ConnTarget::Stdout, ConnTarget::Stdout)
    );
    let alert_sink = if share {
        None
    } else {
        open_sink(&opts.alerts, live).map_err(|err| RunError::AlertOutput {
            target: target_name(&opts.alerts),
            err,
        })?
    };
    let has_alerts = !matches!(opts.alerts, ConnTarget::None);
    let (rotate_size, reopen_flag) = match &feed {
        Feed::Live { ctl, .. } => (ctl.rotate_size, Some(ctl.reopen.clone())),
        Feed::Offline => (0, None),
    };
    let mut outputs = Outputs {
        conn: conn_sink.map(|d| ConnWriter::new(d, opts.conn_format, opts.db.clone())),
        alerts: alert_sink,
        alerts_share_conn: share,
        alert_format: opts.alerts_format,
        stats_to_alerts: has_alerts && opts.alerts_format == AlertFormat::Json,
        stats_to_conn: !(has_alerts && opts.alerts_format == AlertFormat::Json)
            && opts.conn_format == ConnFormat::Json,
        db: opts.db.clone(),
        last: Micros::ZERO,
        rotate_size,
        alert_buf: Vec::new(),
        alert_cache: alerts::AlertCache::default(),
    };

    let n = opts.workers.max(1);
    let end_reason = if live {
        EndReason::Shutdown
    } else {
        EndReason::EndOfInput
    };
    // Workers.
    let (out_tx, out_rx) = bounded::<WorkerOut>(4 * n);
    let (rec_back_tx, rec_back_rx) = bounded::<Vec<ConnRecord>>(4 * n + 2);
    let mut worker_txs = Vec::with_capacity(n);
    let mut workers = Vec::with_capacity(n);
    // Both limits are for the whole run, so each worker's table gets its share.
    let table = TableConfig {
        max_flows: opts.table.max_flows.div_ceil(n).max(1),
        compact_after: opts.table.compact_after.div_ceil(n),
        ..opts.table
    };
    let depth_rx = pkt_rx.clone();
    let mut direct = (n == 1).then(|| pkt_rx.clone());
    for w in 0..n {
        let rx = match direct.take() {
            Some(rx) => WorkerInput::Direct(rx),
            None => {
                let (tx, rx) = bounded::<Arc<PacketBatch>>(WORKER_CHANNEL_DEPTH);
                worker_txs.push(tx);
                WorkerInput::Shared(rx)
            }
        };
        let an = Analyzer::worker(
            table,
            opts.decode,
            Detector::new(opts.db.clone(), opts.rules.clone()),
        );
        let (back, out, rec_back) = (back_tx.clone(), out_tx.clone(), rec_back_rx.clone());
        let handle = thread::Builder::new()
            .name(format!("worker-{w}"))
            .spawn(move || run_worker(w, an, rx, back, out, rec_back, live, end_reason))
            .map_err(|_| RunError::Thread("worker"))?;
        workers.push(handle);
    }
    drop((out_tx, back_tx, rec_back_rx));
    // Dispatcher (several workers): every batch to every worker.
    let dispatcher = if worker_txs.is_empty() {
        drop(pkt_rx);
        None
    } else {
        let d = thread::Builder::new()
            .name("dispatch".into())
            .spawn(move || {
                for mut batch in pkt_rx.iter() {
                    // Each frame's worker, worked out once here rather than by every worker.
                    batch.for_each_mut(|meta, bytes| {
                        meta.owner = shard::owner(meta.linktype.0, bytes, n) as u16;
                    });
                    let shared = Arc::new(batch);
                    for tx in &worker_txs {
                        let _ = tx.send(shared.clone());
                    }
                }
            })
            .map_err(|_| RunError::Thread("dispatch"))?;
        Some(d)
    };

    // The merge stage, here: judge the records in canonical order and write them.
    let mut detector = Detector::new(opts.db.clone(), opts.rules.clone());
    detector.set_early_alerts(live);
    let mut summary = Summary::default();
    let mut merge = Merge::new(n);
    let mut gauges = vec![Gauges::default(); n];
    let mut chunk = OutChunk::default();
    let mut clock = Micros(i64::MIN);
    let mut result: Result<(), OutError> = Ok(());
    let started = Instant::now();
    let mut last_stats = Instant::now();
    loop {
        let msg = if live {
            match out_rx.recv_timeout(Duration::from_millis(200)) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match out_rx.recv() {
                Ok(m) => Some(m),
                Err(_) => break,
            }
        };
        if let Some(flag) = &reopen_flag
            && flag.swap(false, Ordering::Relaxed)
            && result.is_ok()
        {
            result = outputs.reopen();
        }
        if let Some(mut m) = msg {
            merge.take(&mut m, &mut chunk.records);
            let _ = rec_back_tx.try_send(std::mem::take(&mut m.records));
            if let Some(g) = gauges.get_mut(m.worker) {
                *g = m.gauges;
            }
            clock = clock.max(m.clock);
            if let Some(ws) = m.end {
                summary.add_packet_counts(&ws);
            }
            for r in &chunk.records {
                judge(&mut summary, &mut detector, &mut chunk.alerts, r);
            }
            if live {
                detector.expire_all(clock, &mut chunk.alerts);
            }
        } else if live && result.is_ok() {
            result = outputs.flush();
        }
        if let Feed::Live { ctl, counters } = &feed
            && last_stats.elapsed() >= ctl.stats_interval
        {
            last_stats = Instant::now();
            let g = gauges.iter().fold(Gauges::default(), |a, g| Gauges {
                packets: a.packets + g.packets,
                active: a.active + g.active,
                created: a.created + g.created,
                evicted: a.evicted + g.evicted,
            });
            let ev = stats_event(&summary, &detector, g, counters, started, depth_rx.len());
            chunk.stats.push(ev);
        }
        for a in &chunk.alerts {
            summary.note_alert(a);
        }
        if result.is_ok() {
            result = outputs.write(&chunk);
        }
        chunk.records.clear();
        chunk.alerts.clear();
        chunk.stats.clear();
    }
    // Every worker has ended: whatever is still held is final.
    merge.upto.fill(END);
    let mut last = WorkerOut {
        worker: 0,
        records: Vec::new(),
        upto: END,
        ticked: true,
        clock,
        gauges: Gauges::default(),
        end: None,
    };
    merge.take(&mut last, &mut chunk.records);
    for r in &chunk.records {
        judge(&mut summary, &mut detector, &mut chunk.alerts, r);
    }
    detector.finish(&mut chunk.alerts);
    for a in &chunk.alerts {
        summary.note_alert(a);
    }
    if result.is_ok() {
        result = outputs.write(&chunk);
    }
    if let Some(d) = dispatcher {
        d.join().map_err(|_| RunError::Thread("dispatch"))?;
    }
    for h in workers {
        h.join().map_err(|_| RunError::Thread("worker"))?;
    }
    summary.detect = detector.stats;
    summary.scan = detector.scan_stats();
    summary.top_alerts = detector.top_alerts();
    summary.db = Some(opts.db.clone());
    summary.top_n = opts.top_n;
    summary.workers = n;
    match result.and_then(|()| outputs.finish()) {
        Ok(()) => Ok(summary),
        Err((true, err)) => Err(RunError::Output {
            target: target_name(&opts.conn),
            err,
        }),
        Err((false, err)) => Err(RunError::AlertOutput {
            target: target_name(&opts.alerts),
            err,
        }),
    }
}

fn stats_event(
    summary: &Summary,
    detector: &Detector,
    g: Gauges,
    c: &LiveCounters,
    started: Instant,
    depth: usize,
) -> StatsEvent {
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let h = &summary.syn_synack;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| Micros(d.as_micros().min(i64::MAX as u128) as i64))
        .unwrap_or(Micros::ZERO);
    StatsEvent {
        timestamp: now.to_rfc3339(),
        event_type: "stats",
        stats: StatsBody {
            uptime_s: started.elapsed().as_secs_f64(),
            packets_captured: load(&c.captured),
            packets_received_by_filter: load(&c.pcap_received),
            kernel_drops: load(&c.kernel_dropped),
            interface_drops: load(&c.if_dropped),
            synwatch_drops: load(&c.dropped),
            packets_analysed: g.packets,
            flows_active: g.active,
            flows_created: g.created,
            flows_evicted: g.evicted,
            alerts: detector.stats.alerts,
            channel_depth: depth as u64,
            handshake_rtt_us: RttBody {
                handshakes: h.len(),
                p50: if h.is_empty() {
                    0
                } else {
                    h.value_at_quantile(0.5)
                },
                p90: if h.is_empty() {
                    0
                } else {
                    h.value_at_quantile(0.9)
                },
                p99: if h.is_empty() {
                    0
                } else {
                    h.value_at_quantile(0.99)
                },
                max: h.max(),
            },
        },
    }
}

/// Reads the inputs, analyses every packet, writes the records and alerts; returns the summary.
pub fn run_read(opts: &ReadOptions) -> Result<Summary, RunError> {
    let (pkt_tx, pkt_rx) = bounded::<PacketBatch>(PACKET_CHANNEL_DEPTH);
    let (back_tx, back_rx) = bounded::<PacketBatch>(PACKET_CHANNEL_DEPTH + 2);
    let inputs = opts.inputs.clone();
    let progress = Arc::new(ReadProgress::default());
    let p2 = progress.clone();
    let reader = thread::Builder::new()
        .name("capture".into())
        .spawn(move || read_offline(&inputs, &pkt_tx, &back_rx, &p2))
        .map_err(|_| RunError::Thread("capture"))?;
    let stop_bar = Arc::new(AtomicBool::new(false));
    let bar = if opts.progress {
        // The total is known when every input is a file; standard input gets a spinner.
        let total = opts
            .inputs
            .iter()
            .map(|f| {
                if f == "-" {
                    None
                } else {
                    std::fs::metadata(f).ok().map(|m| m.len())
                }
            })
            .sum::<Option<u64>>();
        let (p, stop) = (progress.clone(), stop_bar.clone());
        thread::Builder::new()
            .name("progress".into())
            .spawn(move || crate::output::progress::run(p, total, stop))
            .ok()
    } else {
        None
    };
    let result = analyse_and_write(opts, pkt_rx, back_tx, Feed::Offline);
    stop_bar.store(true, Ordering::Relaxed);
    if let Some(b) = bar {
        let _ = b.join();
    }
    let sources = reader.join().map_err(|_| RunError::Thread("capture"))?;
    let mut summary = result?;
    summary.sources = sources;
    Ok(summary)
}

/// Captures from an opened interface until stopped; returns the summary and the capture's
/// report (drops).
pub fn run_live(
    cap: pcap::Capture<pcap::Active>,
    live_opts: &LiveOptions,
    opts: &ReadOptions,
    ctl: LiveControl,
) -> Result<(Summary, LiveReport), RunError> {
    let (pkt_tx, pkt_rx) = bounded::<PacketBatch>(PACKET_CHANNEL_DEPTH);
    let (back_tx, back_rx) = bounded::<PacketBatch>(PACKET_CHANNEL_DEPTH + 2);
    let counters = Arc::new(LiveCounters::default());
    let lo = live_opts.clone();
    let stop = ctl.stop.clone();
    let c2 = counters.clone();
    let reader = thread::Builder::new()
        .name("capture".into())
        .spawn(move || live::run(cap, &lo, &pkt_tx, &back_rx, &stop, &c2))
        .map_err(|_| RunError::Thread("capture"))?;
    let result = analyse_and_write(opts, pkt_rx, back_tx, Feed::Live { ctl, counters });
    let report = reader.join().map_err(|_| RunError::Thread("capture"))?;
    let mut summary = result?;
    summary.live_interface = Some(live_opts.interface.clone());
    Ok((summary, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records held back for a lagging worker, then a live tick's chunk from the same worker
    /// that orders before them (same packet and due time, lower flow id): released in
    /// canonical order, as when every held record was sorted. (Found by review: the queue
    /// used to take the tick's chunk behind its back.)
    #[test]
    fn a_tick_chunk_that_orders_before_held_records_is_released_in_order() {
        let (_, records) = crate::analyse::fixture_records(&["scan-syn.pcap"]);
        let base = records[0];
        let rec = |seq: u64, due: i64, flow_id: u64| ConnRecord {
            seq,
            due: Micros(due),
            flow_id,
            ..base
        };
        let out = |worker: usize, records: Vec<ConnRecord>, upto: Order, ticked: bool| WorkerOut {
            worker,
            records,
            upto,
            ticked,
            clock: Micros(0),
            gauges: Gauges::default(),
            end: None,
        };
        let mut merge = Merge::new(2);
        let mut released = Vec::new();
        // Worker 1 lags at packet 1, so worker 0's records of packet 3 are held.
        merge.take(&mut out(1, vec![], before_packet(1), false), &mut released);
        merge.take(
            &mut out(
                0,
                vec![rec(2, 5, 9), rec(3, 4, 16)],
                before_packet(3),
                false,
            ),
            &mut released,
        );
        let ids = |v: &[ConnRecord]| v.iter().map(|r| r.flow_id).collect::<Vec<_>>();
        assert_eq!(ids(&released), Vec::<u64>::new());
        // A tick of worker 0 ends flow 8 of packet 3, due at the same time.
        merge.take(
            &mut out(0, vec![rec(3, 4, 8)], before_packet(3), true),
            &mut released,
        );
        assert_eq!(ids(&released), vec![9, 8, 16]);
    }

    /// `sort_keys` gives what a whole sort gives: on one worker's shape (in order but for
    /// runs of equal packet and due) and on several workers' chunks appended.
    #[test]
    fn sort_keys_sorts_like_a_whole_sort() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for round in 0..2_000 {
            let len = next(200) as usize;
            let workers = 1 + (round % 3) as u64;
            let mut keys: Vec<(Order, u32)> = Vec::with_capacity(len);
            let mut seq = 0;
            let mut due = 0;
            for i in 0..len {
                if next(4) == 0 {
                    seq += next(3);
                    due = next(10) as i64;
                } else if next(3) == 0 {
                    due += next(3) as i64;
                }
                let order = (seq * workers + next(workers), Micros(due), next(50));
                keys.push((order, i as u32));
            }
            let mut expected = keys.clone();
            expected.sort_unstable();
            sort_keys(&mut keys);
            assert_eq!(keys, expected, "round {round}");
        }
    }
}

#[cfg(test)]
#[path = "pipeline_merge_tests.rs"]
mod merge_tests;
