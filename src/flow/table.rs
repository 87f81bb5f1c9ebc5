//! The flow table: connections by key, their timers in packet time, and a bound on how many
//! are kept (least recently active evicted first, each still written as a record).
//!
//! A slot holds a flow in one of three forms (`Meta::body`): a whole [`Connection`]; an
//! [`Embryo`], the bytes of its first packet (new flows once `compact_after` are open); or the
//! bytes of a connection that went quiet while `compact_after` others were whole
//! (`super::pack`). The last two live in the [`ColdStore`]. A flow is made whole again by a
//! packet, by its end, and (unless only its repeating status check is due) by its timers; every
//! form gives the same records.

use std::hash::BuildHasher;

use hashbrown::HashTable;

use super::cold::{ColdHead, ColdStore};
use super::conn::{Connection, EndReason, Timeouts};
use super::embryo::Embryo;
use super::key::{Directed, FlowKey};
use super::pack::Writer;
use super::record::ConnRecord;
use super::timers::TimerQueue;
use crate::decode::tunnel::TunnelKind;
use crate::decode::{Decoded, Transport};
use crate::time::{MaybeMicros, Micros};

const NIL: u32 = u32::MAX;

#[cfg(test)]
thread_local! {
    /// Tests turn the quiet paths off ([`FlowTable::fire_quiet`] and the status-check groups,
    /// [`FlowTable::join_group`]) to compare their records with the slow path's.
    pub(super) static QUIET_PATH_OFF: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// How many times it fired a connection's timers (tests check that they exercised it).
    pub(super) static QUIET_PATH_FIRES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    /// Status-check groups ([`Group`]): how many times one fired with two members or more,
    /// how many members were let go after their quiet time had passed in the same jump of the
    /// clock as their group's fire ([`GroupView::overdue`]), how many groups merged, and how
    /// many times a member saw the fire of a group it had merged into.
    pub(super) static GROUP_FIRES: std::cell::Cell<[u64; 4]> = const { std::cell::Cell::new([0; 4]) };
}

#[cfg(test)]
fn count_group(i: usize) {
    GROUP_FIRES.with(|n| {
        let mut v = n.get();
        if let Some(x) = v.get_mut(i) {
            *x += 1;
        }
        n.set(v);
    });
}

/// Flag on the first value of a timer-queue entry that names a [`Group`], not a slot. Slots
/// stay below it ([`MAX_SLOTS`]).
const GROUP: u32 = 1 << 31;
/// Most slots (and so flows) a table keeps.
const MAX_SLOTS: usize = GROUP as usize - 1;

/// Most timer entries taken out of the queue at once (see [`FlowTable::advance`]).
const DUE_BATCH: usize = 64;
/// How many connections ahead of the one firing are prefetched.
const PREFETCH_AHEAD: usize = 4;

/// Queues a flow's next timer entry. A status check re-armed now (`rearm`: the clock plus
/// `tcp_session_timer`) comes after every one re-armed before it, so it goes in the queue's
/// in-order lane (`timers.rs`); anything else goes in the radix heap.
fn queue(heap: &mut TimerQueue<(u32, u32)>, due: Micros, rearm: Micros, entry: (u32, u32)) {
    if due == rearm {
        heap.push_in_order(due, entry);
    } else {
        heap.push(due, entry);
    }
}

/// Asks the CPU to start loading `c` into cache; a hint only, with no effect on results.
#[inline]
fn prefetch<T>(c: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let p = (c as *const T).cast::<i8>();
        let size = std::mem::size_of::<T>();
        let mut off = 0;
        while off < size {
            // SAFETY: prefetching is a hint that never faults and reads nothing into the
            // program; the addresses are inside a live `Connection` anyway. SSE is part of
            // the x86_64 baseline.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off)) };
            off += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = c;
}

/// What the table keeps of each slot besides its connection, in a dense array of its own:
/// the timer and eviction bookkeeping touches these for connections it does not otherwise
/// read, and 24-byte entries side by side cost far fewer cache misses than 800-byte ones.
#[derive(Clone, Copy, Debug)]
struct Meta {
    /// Time of the slot's live entry in the timer queue (`Micros::MAX`: none).
    heap_at: Micros,
    generation: u32,
    /// Least-recently-active list (most recent at the head).
    prev: u32,
    next: u32,
    /// What the slot holds: [`DEAD`], an index into `conns`, or [`EMBRYO`] or [`PACKED`] with
    /// a place in `cold`.
    body: u32,
}

/// `Meta::body` of a slot that holds nothing.
const DEAD: u32 = u32::MAX;
/// `Meta::body` flag: the slot holds an [`Embryo`] (the other bits are its place in the
/// [`ColdStore`]).
const EMBRYO: u32 = 1 << 31;
/// `Meta::body` flag: the slot holds a packed connection (the other bits are its place in the
/// [`ColdStore`]).
const PACKED: u32 = 1 << 30;
// Every place in the cold store fits beside the flags.
const _: () = assert!(super::cold::MAX_PLACES <= PACKED as usize);

/// What the table knows of each entry of `conns` (see [`FlowTable::cool`]), and what lets it
/// fire a quiet connection's timers without reading the connection (see
/// [`FlowTable::fire_quiet`]).
#[derive(Clone, Copy, Debug)]
struct Hot {
    slot: u32,
    referenced: bool,
    /// The connection's [`Connection::quiet_until`] when its timers last fired, or
    /// [`UNKNOWN`] since a packet changed it (and before its first fire).
    quiet_until: Micros,
    /// Its `timers.expire`, kept equal to it while `quiet_until` is known and it is in no
    /// group.
    expire: MaybeMicros,
    /// The status-check [`Group`] it is in ([`NIL`]: none). While in one, its `timers.expire`
    /// is the group's `due`, written into it only when it leaves (the group's `fired_due`
    /// for a member let go as of the group's last fire, [`GroupView::overdue`]).
    group: u32,
}

/// Whole connections, all quiet, whose `expire` timers (the repeating status check) hold the
/// same time, and fire as one timer-queue entry.
///
/// A quiet connection's status check is re-armed at the clock plus `tcp_session_timer` each
/// time it fires, so connections whose checks fire at the same clock hold the same time from
/// then on, for as long as they stay quiet: on the small-packet benchmark capture 4.1 million
/// status checks fired at 64 000 distinct clocks. A connection joins the group for its new time
/// when its timers fire and leave it quiet ([`FlowTable::join_group`]); its only entry of its
/// own in the queue is then its [`Connection::quiet_until`]. It leaves on a packet, when it is
/// packed, when its quiet time comes, and when it ends ([`FlowTable::leave_group`]); its
/// `expire` is then written from the group's.
///
/// Groups that fire at the same clock are re-armed to the same time, and merge: the one that
/// fires second points to the first (`parent`) and has no entry of its own any more; its
/// members still name it, and see through it to the group at the top (the root), whose times
/// are theirs ([`FlowTable::group_view`]). Without merging, 88 000 groups fired 1.3 million
/// times on the small-packet capture. A group is freed once nothing names it: a root when its
/// entry comes out with no members left (or, re-armed at the end of time and so with no entry,
/// when its last member leaves), a merged one when its last member or merged group leaves.
#[derive(Clone, Copy, Debug)]
struct Group {
    /// The members' `expire` (meaningful at a root).
    due: Micros,
    /// The time of a root's one entry in the timer queue: `due`, or [`FlowTable::horizon`]
    /// when that was later (as for any entry; only after a live capture's idle tick);
    /// `Micros::MAX` for one re-armed at the end of time, which has no entry.
    key: Micros,
    /// The group's last fire: its entry's time then, and the clock it fired at.
    fired_due: Micros,
    fired_at: Micros,
    /// At a root: the members of every group merged into it and its own.
    members: u32,
    /// The group it merged into ([`NIL`]: none; a root), and the clock it did so at.
    parent: u32,
    merged_at: Micros,
    /// Members and merged groups that name this group.
    refs: u32,
    /// At a root: at least the longest way up to it from a group merged into it (0: none
    /// merged). It does not shrink when merged groups are freed, so a long-lived root may stop
    /// taking merges early; that costs entries, not correctness.
    height: u16,
}

/// Most merges a member's way up to its root may take: a group whose tree is this tall
/// merges no further (it keeps its own entry), so that leaving walks at most this far
/// however long a member stays quiet.
const MAX_GROUP_HEIGHT: u16 = 8;

/// What a member sees of its group: the root's times, and the last fire it took part in
/// (its own group's, or a fire of a group above it after the merge).
#[derive(Clone, Copy, Debug)]
struct GroupView {
    root: u32,
    due: Micros,
    key: Micros,
    fired_due: Micros,
    fired_at: Micros,
}

impl GroupView {
    /// Whether a member whose quiet time is `quiet_until` should have fired with the group's
    /// last fire: the clock had passed its quiet time by then (in one jump, as a clock does
    /// when the packets pause). A connection's own entry is the earlier of its quiet time and
    /// its `expire`, so it would have come out at the group's time and fired there, `at` the
    /// group's `fired_due`; its own entry at `quiet_until` fires it later in the same run of
    /// [`FlowTable::advance`] as if it had. (A member that joined at the fire itself is quiet
    /// past that clock.)
    fn overdue(&self, quiet_until: Micros) -> bool {
        quiet_until <= self.fired_at
    }
}

/// `Hot::quiet_until` when it is not known: no time is before it.
const UNKNOWN: Micros = Micros(i64::MIN);

impl Hot {
    fn new(slot: u32) -> Hot {
        Hot {
            slot,
            referenced: true,
            quiet_until: UNKNOWN,
            expire: MaybeMicros::NONE,
            group: NIL,
        }
    }
}

/// `Meta::body`, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Body {
    Dead,
    Conn(u32),
    Embryo(u32),
    Packed(u32),
}

impl Meta {
    fn body(&self) -> Body {
        if self.body == DEAD {
            Body::Dead
        } else if self.body & EMBRYO != 0 {
            Body::Embryo(self.body & !EMBRYO)
        } else if self.body & PACKED != 0 {
            Body::Packed(self.body & !PACKED)
        } else {
            Body::Conn(self.body)
        }
    }
}

/// Puts `item` in a free place of `slab` (or at its end); returns its index.
fn put<T>(slab: &mut Vec<T>, free: &mut Vec<u32>, item: T) -> u32 {
    if let Some(i) = free.pop()
        && let Some(place) = slab.get_mut(i as usize)
    {
        *place = item;
        return i;
    }
    slab.push(item);
    (slab.len() - 1) as u32
}

/// Gives a connection one of its packets (after `Connection::new` or `Connection::restart`
/// for the first): the one place both a packet of a tracked flow and an embryo's replay go
/// through.
fn apply(
    conn: &mut Connection,
    dir: &Directed,
    d: &Decoded,
    clock: Micros,
    parent: Option<u64>,
    carries: Option<TunnelKind>,
) {
    let side = conn.side_of(&dir.src);
    conn.set_clock(clock, d);
    conn.packet(side, d);
    if let Some(p) = parent {
        conn.parents.get_or_insert_with(Box::default).add(p);
    }
    if carries.is_some() {
        conn.tunnel = carries;
    }
}

/// Packs `conn` into `cold` through the scratch buffer `packing`; returns where.
fn pack_to(
    cold: &mut ColdStore,
    packing: &mut Writer,
    epoch: Micros,
    conn: &Connection,
) -> Option<u32> {
    packing.clear();
    conn.pack(packing, epoch);
    let head = ColdHead {
        expire: conn.timers.expire,
        quiet_until: conn.quiet_until(),
    };
    cold.put(Some(head), packing.finish()?)
}

/// The open flows in flow-id order, for [`FlowTable::flush_some`]. Held at the end of input
/// beside every open flow, so each costs 8 bytes here (id and slot in one word) while ids fit
/// 40 bits and slots 24, as they do for any capture this side of 137 billion packets and 16
/// million open flows; 16 bytes otherwise.
enum FlushOrder {
    Packed(Vec<u64>),
    Pairs(Vec<(u64, u32)>),
}

const SLOT_BITS: u32 = 24;

impl FlushOrder {
    fn new(live: impl Iterator<Item = (u64, u32)>, n: usize) -> FlushOrder {
        let fits = |id: u64, s: u32| id < 1 << (64 - SLOT_BITS) && s < 1 << SLOT_BITS;
        let mut packed = Vec::with_capacity(n);
        let mut live = live.peekable();
        while let Some(&(id, s)) = live.peek() {
            if !fits(id, s) {
                break;
            }
            packed.push(id << SLOT_BITS | u64::from(s));
            live.next();
        }
        let mut order = if live.peek().is_none() {
            FlushOrder::Packed(packed)
        } else {
            let mask = (1 << SLOT_BITS) - 1;
            let mut pairs: Vec<(u64, u32)> = packed
                .into_iter()
                .map(|w| (w >> SLOT_BITS, (w & mask) as u32))
                .collect();
            pairs.extend(live);
            FlushOrder::Pairs(pairs)
        };
        // Highest first: `pop` takes the lowest.
        match &mut order {
            FlushOrder::Packed(v) => v.sort_unstable_by(|a, b| b.cmp(a)),
            FlushOrder::Pairs(v) => v.sort_unstable_by(|a, b| b.cmp(a)),
        }
        order
    }

    /// The slot of the lowest flow id left.
    fn pop(&mut self) -> Option<u32> {
        match self {
            FlushOrder::Packed(v) => v.pop().map(|w| (w & ((1 << SLOT_BITS) - 1)) as u32),
            FlushOrder::Pairs(v) => v.pop().map(|(_, s)| s),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            FlushOrder::Packed(v) => v.is_empty(),
            FlushOrder::Pairs(v) => v.is_empty(),
        }
    }
}

/// Counters the table keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowStats {
    pub created: u64,
    pub evicted: u64,
    pub reused: u64,
    pub non_first_fragments: u64,
    pub peak_active: u64,
    /// Times a connection was packed, unpacked, and had its timers fired while packed without
    /// being unpacked (see `FlowTable::fire_packed`).
    pub packed: u64,
    pub unpacked: u64,
    pub quiet_fires: u64,
}

/// Settings for the table.
#[derive(Clone, Copy, Debug)]
pub struct TableConfig {
    pub timeouts: Timeouts,
    pub max_flows: usize,
    /// Once this many flows are open, a new flow is kept as its first packet until it sees
    /// another (an embryo: see `src/flow/embryo.rs`), and at most this many are kept whole:
    /// beyond, those that go quiet are packed (`src/flow/pack.rs`). Results are the same
    /// either way.
    pub compact_after: usize,
}

/// Default for [`TableConfig::compact_after`].
pub const COMPACT_AFTER: usize = 65_536;

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig {
            timeouts: Timeouts::default(),
            max_flows: 1_000_000,
            compact_after: COMPACT_AFTER,
        }
    }
}

pub struct FlowTable {
    /// Slots by flow key. The index holds slot numbers only and compares keys in the
    /// connections themselves: a map from key to slot kept a second 42-byte copy of every key
    /// (about 60 bytes a flow with the map's spare room), and a lookup touched it as well as
    /// the connection.
    index: HashTable<u32>,
    hasher: foldhash::fast::FixedState,
    /// Slots: what the index, the timer queue and the LRU list name. Each holds a
    /// whole connection, an embryo or a packed connection (`Meta::body`).
    meta: Vec<Meta>,
    free: Vec<u32>,
    conns: Vec<Connection>,
    conns_free: Vec<u32>,
    /// Connections packed into bytes because they had gone quiet ([`FlowTable::cool`]).
    cold: ColdStore,
    /// By index in `conns`: the slot that holds it ([`NIL`] while free), and whether it was
    /// used since the clock hand last passed.
    hot: Vec<Hot>,
    /// The clock hand: the next index in `conns` [`FlowTable::cool`] looks at.
    hand: usize,
    /// Times in packed connections are relative to this (the clock when the first was packed).
    epoch: Option<Micros>,
    /// Scratch for packing.
    packing: Box<Writer>,
    /// Each connection's next due time (slot, generation), and each group's
    /// (`GROUP | group`, 0); stale entries are skipped.
    heap: TimerQueue<(u32, u32)>,
    /// Status-check groups, by number; the free numbers; the group that connections going
    /// quiet at this clock join ([`NIL`]: none yet).
    groups: Vec<Group>,
    groups_free: Vec<u32>,
    forming: u32,
    lru_head: u32,
    lru_tail: u32,
    clock: Micros,
    /// The latest time the timers have run to: the clock, or a live capture's idle tick past
    /// it ([`FlowTable::advance`]). Every entry is queued at this time or later (the queue
    /// takes none before what it has given out); a timer due earlier fires at the first run
    /// that reaches this time, as due at it. Timers are armed from the clock, so only a tick
    /// makes such timers. When a file is read it is the clock, which every worker moves with
    /// every packet, so records' `due` does not depend on which flows a worker holds.
    horizon: Micros,
    /// The time `advance` last ran to the end for, and the queue's push count then.
    settled: (Micros, u64),
    next_flow_id: u64,
    /// Sequence number of the packet being analysed: records are stamped with it.
    seq: u64,
    cfg: TableConfig,
    /// Scratch for `advance`: due entries (time, slot, generation).
    due: Vec<(Micros, u32, u32)>,
    /// Connections still to end while flushing, highest flow id first.
    flushing: Option<FlushOrder>,
    /// `cfg.timeouts`, shared by every connection.
    timeouts: &'static Timeouts,
    pub stats: FlowStats,
}

impl FlowTable {
    pub fn new(cfg: TableConfig) -> Self {
        FlowTable {
            index: HashTable::new(),
            hasher: foldhash::fast::FixedState::with_seed(0x5eed_f10e),
            meta: Vec::new(),
            free: Vec::new(),
            conns: Vec::new(),
            conns_free: Vec::new(),
            cold: ColdStore::new(),
            hot: Vec::new(),
            hand: 0,
            epoch: None,
            packing: Box::default(),
            heap: TimerQueue::new(),
            groups: Vec::new(),
            groups_free: Vec::new(),
            forming: NIL,
            lru_head: NIL,
            lru_tail: NIL,
            clock: Micros(i64::MIN),
            horizon: Micros(i64::MIN),
            settled: (Micros(i64::MIN), u64::MAX),
            next_flow_id: 1,
            seq: 0,
            cfg: TableConfig {
                max_flows: cfg.max_flows.clamp(1, MAX_SLOTS),
                ..cfg
            },
            due: Vec::with_capacity(DUE_BATCH),
            flushing: None,
            timeouts: cfg.timeouts.interned(),
            stats: FlowStats::default(),
        }
    }

    pub fn active(&self) -> usize {
        self.index.len()
    }

    /// The key of what slot `s` holds.
    fn key_of(meta: &[Meta], conns: &[Connection], cold: &ColdStore, s: u32) -> Option<FlowKey> {
        match meta.get(s as usize)?.body() {
            Body::Dead => None,
            Body::Conn(ci) => conns.get(ci as usize).map(|c| c.key),
            Body::Embryo(at) | Body::Packed(at) => Connection::packed_key(cold.get(at)?),
        }
    }

    /// The slot of the live flow with this key.
    fn find(&self, hash: u64, key: &FlowKey) -> Option<u32> {
        let (meta, conns, cold) = (&self.meta, &self.conns, &self.cold);
        self.index
            .find(hash, |&s| {
                Self::key_of(meta, conns, cold, s).is_some_and(|k| k == *key)
            })
            .copied()
    }

    /// The latest packet time seen (timers never run backwards).
    pub fn clock(&self) -> Micros {
        self.clock
    }

    /// Names the packet about to be accounted: records that end from now on carry `seq`, and a
    /// connection this layer of the packet creates gets the flow id `seq * 8 + layer`. Ids made
    /// this way depend only on the input, not on how flows are spread over workers.
    pub fn begin_layer(&mut self, seq: u64, layer: usize) {
        self.seq = seq;
        self.next_flow_id = seq.saturating_mul(8).saturating_add(layer as u64 & 7);
    }

    /// Moves the table's clock to `ts` (never backwards) and runs the timers due by then.
    pub fn advance_to(&mut self, ts: Micros, emit: &mut impl FnMut(ConnRecord)) {
        if ts > self.clock {
            self.clock = ts;
        }
        self.advance(self.clock, emit);
    }

    /// Accounts one decoded packet; `emit` receives every connection that ends. `parent` is
    /// the outer connection when the packet came out of a tunnel; `carries` is the tunnel this
    /// packet's payload holds. Returns the flow id the packet was accounted to.
    pub fn packet(
        &mut self,
        d: &Decoded,
        parent: Option<u64>,
        carries: Option<TunnelKind>,
        emit: &mut impl FnMut(ConnRecord),
    ) -> Option<u64> {
        if d.ts > self.clock {
            self.clock = d.ts;
        }
        self.advance(self.clock, emit);
        let Some(dir) = Directed::of(d) else {
            self.stats.non_first_fragments += 1;
            return None;
        };
        // Hashed once: a new flow's slot goes in the index under the same hash.
        let hash = self.hasher.hash_one(dir.key);
        let mut found = self
            .find(hash, &dir.key)
            .and_then(|s| Some((s, self.hatch(s)?)));
        if let (Some((s, ci)), Transport::Tcp(seg)) = (found, d.transport)
            && self
                .conns
                .get(ci as usize)
                .is_some_and(|c| c.tcp_is_reuse(&seg))
        {
            self.stats.reused += 1;
            self.remove(s, EndReason::Reused, self.clock, emit);
            found = None;
        }
        let (s, ci) = match found {
            Some(f) => f,
            None => {
                let flow_id = self.make_room(emit);
                if self.index.len() >= self.cfg.compact_after
                    && self.create_embryo(flow_id, hash, d, parent, carries)
                {
                    return Some(flow_id);
                }
                self.create(flow_id, &dir, hash, d)
            }
        };
        self.touch(s);
        let group = self.leave_group(ci).map(|(g, _)| g);
        if let Some(g) = &group {
            self.requeue_left(s, g);
        }
        if let Some(h) = self.hot.get_mut(ci as usize) {
            h.referenced = true;
            h.quiet_until = UNKNOWN;
        }
        let conn = self.conns.get_mut(ci as usize)?;
        if let Some(g) = group {
            conn.timers.expire = Some(g.due).into();
        }
        apply(conn, &dir, d, self.clock, parent, carries);
        let id = conn.flow_id;
        let due = conn.next_due().max(self.horizon);
        let meta = self.meta.get_mut(s as usize)?;
        if due < meta.heap_at {
            meta.heap_at = due;
            self.heap.push(due, (s, meta.generation));
        }
        Some(id)
    }

    /// Runs every timer due at or before `now`.
    ///
    /// The due entries are taken out first and their connections prefetched: a connection
    /// whose timer fires has usually not been touched for seconds, and waiting for its cache
    /// lines one connection at a time was a third of a worker's time on short connections.
    pub fn advance(&mut self, now: Micros, emit: &mut impl FnMut(ConnRecord)) {
        self.horizon = self.horizon.max(now);
        // Run to `now` already, and nothing queued since: nothing can be due (a packet's
        // timers run before its first layer is applied, and again in `packet`).
        if self.settled == (now, self.heap.pushes()) {
            return;
        }
        loop {
            self.due.clear();
            while let Some(at) = self.heap.peek_time() {
                if at > now || self.due.len() >= DUE_BATCH {
                    break;
                }
                let Some((at, (i, generation))) = self.heap.pop() else {
                    break;
                };
                self.due.push((at, i, generation));
            }
            if self.due.is_empty() {
                self.settled = (now, self.heap.pushes());
                return;
            }
            for &(_, i, _) in &self.due {
                if let Some(m) = self.meta.get(i as usize) {
                    prefetch(m);
                }
            }
            // Connections are prefetched a few ahead of the one firing: all of them at once
            // would queue hundreds of cache-line loads and stall on the prefetches themselves.
            for &(_, i, _) in self.due.iter().take(PREFETCH_AHEAD) {
                self.prefetch_body(i, now);
            }
            let due = std::mem::take(&mut self.due);
            for (k, &(at, i, generation)) in due.iter().enumerate() {
                if let Some(&(_, ahead, _)) = due.get(k + PREFETCH_AHEAD) {
                    self.prefetch_body(ahead, now);
                }
                if i & GROUP != 0 {
                    self.fire_group(i & !GROUP, at, now);
                    continue;
                }
                let live = self.meta.get(i as usize).is_some_and(|m| {
                    m.body != DEAD && m.generation == generation && m.heap_at == at
                });
                if live {
                    self.fire(i, at, now, emit);
                }
            }
            self.due = due;
        }
    }

    /// Asks for the cache lines of what slot `s` holds (see [`FlowTable::advance`]): of a
    /// whole connection only when firing its timers at `now` will read it.
    fn prefetch_body(&self, s: u32, now: Micros) {
        match self.meta.get(s as usize).map(Meta::body) {
            Some(Body::Conn(ci)) => match self.hot.get(ci as usize) {
                Some(h) if now < h.quiet_until => None,
                _ => self.conns.get(ci as usize).map(prefetch),
            },
            Some(Body::Embryo(at) | Body::Packed(at)) => self.cold.first_unit(at).map(prefetch),
            Some(Body::Dead) | None => None,
        };
    }

    /// Fires the timers of the flow in slot `s` (its queue entry for `at` came due).
    fn fire(&mut self, s: u32, at: Micros, now: Micros, emit: &mut impl FnMut(ConnRecord)) {
        let mut at = at;
        match self.meta.get(s as usize).map(Meta::body) {
            Some(Body::Packed(cold_at)) => return self.fire_packed(s, cold_at, at, now, emit),
            Some(Body::Embryo(cold_at)) => {
                if let Some(conn) = self.take_embryo(cold_at) {
                    self.fire_aside(s, conn, at, now, emit);
                }
                return;
            }
            Some(Body::Conn(ci)) => {
                if let Some((g, quiet_until)) = self.leave_group(ci) {
                    // The entry is its quiet time: its own fire, or its group's last one.
                    let expire = if g.overdue(quiet_until) {
                        #[cfg(test)]
                        count_group(1);
                        at = g.fired_due;
                        g.fired_due
                    } else {
                        g.due
                    };
                    if let Some(c) = self.conns.get_mut(ci as usize) {
                        c.timers.expire = Some(expire).into();
                    }
                } else if self.fire_quiet(s, ci, now) {
                    return;
                }
            }
            _ => {}
        }
        let Some(ci) = self.hatch(s) else {
            return;
        };
        let horizon = self.horizon;
        let rearm = now.saturating_add(self.timeouts.tcp_session_timer);
        let (Some(meta), Some(conn)) = (
            self.meta.get_mut(s as usize),
            self.conns.get_mut(ci as usize),
        ) else {
            return;
        };
        meta.heap_at = Micros::MAX;
        match conn.fire_timers(now) {
            Some(reason) => self.remove(s, reason, at, emit),
            None => {
                let quiet_until = conn.quiet_until();
                let expire = conn.timers.expire;
                let due = conn.next_due().max(horizon);
                if let Some(h) = self.hot.get_mut(ci as usize) {
                    h.quiet_until = quiet_until;
                    h.expire = expire;
                }
                if expire.get() == Some(rearm) && self.join_group(s, ci, rearm, quiet_until, now) {
                    return;
                }
                if due < Micros::MAX
                    && let Some(meta) = self.meta.get_mut(s as usize)
                {
                    meta.heap_at = due;
                    queue(&mut self.heap, due, rearm, (s, meta.generation));
                }
            }
        }
    }

    /// Puts the whole connection at `ci` (of slot `s`), quiet until `quiet_until` at `now`
    /// and with its `expire` timer just re-armed to `expire`, into the status-check [`Group`]
    /// for that time (a new one when there is none yet), and queues its own entry at its
    /// quiet time. False (nothing done) when it would fire on its own before the group does,
    /// or when it could have no entry of its own (quiet until the end of time).
    fn join_group(
        &mut self,
        s: u32,
        ci: u32,
        expire: Micros,
        quiet_until: Micros,
        now: Micros,
    ) -> bool {
        #[cfg(test)]
        if QUIET_PATH_OFF.with(std::cell::Cell::get) {
            return false;
        }
        let horizon = self.horizon;
        // Every member has an entry of its own at its quiet time: one quiet until the end of
        // time (or with the timers run there) stays out, as its timeout could not fire.
        if now >= quiet_until || expire >= quiet_until || quiet_until.max(horizon) == Micros::MAX {
            return false;
        }
        let g = match self.groups.get(self.forming as usize) {
            Some(f) if f.due == expire && f.parent == NIL => self.forming,
            _ => {
                let fresh = Group {
                    due: expire,
                    key: expire.max(horizon),
                    fired_due: Micros(i64::MIN),
                    fired_at: Micros(i64::MIN),
                    members: 0,
                    parent: NIL,
                    merged_at: Micros(i64::MIN),
                    refs: 0,
                    height: 0,
                };
                let g = put(&mut self.groups, &mut self.groups_free, fresh);
                self.heap.push_in_order(fresh.key, (GROUP | g, 0));
                self.forming = g;
                g
            }
        };
        if let Some(gr) = self.groups.get_mut(g as usize) {
            gr.members += 1;
            gr.refs += 1;
        }
        if let Some(h) = self.hot.get_mut(ci as usize) {
            h.group = g;
        }
        if let Some(m) = self.meta.get_mut(s as usize) {
            m.heap_at = Micros::MAX;
            let own = quiet_until.max(horizon);
            if own < Micros::MAX {
                m.heap_at = own;
                self.heap.push(own, (s, m.generation));
            }
        }
        true
    }

    /// What a member of group `g` sees of it: up the merges to the root, taking the latest
    /// fire after each merge.
    fn group_view(&self, g: u32) -> Option<GroupView> {
        let mut at = g;
        let mut cur = *self.groups.get(g as usize)?;
        let (mut fired_due, mut fired_at) = (cur.fired_due, cur.fired_at);
        // Merges only go to a group that is a root at the time, so the chain has no loops,
        // and at most MAX_GROUP_HEIGHT long; the bound is for safety only.
        for _step in 0..self.groups.len() {
            if cur.parent == NIL {
                debug_assert!(_step <= usize::from(MAX_GROUP_HEIGHT), "a chain of {_step}");
                break;
            }
            at = cur.parent;
            let up = *self.groups.get(at as usize)?;
            if up.fired_at > cur.merged_at {
                #[cfg(test)]
                count_group(3);
                (fired_due, fired_at) = (up.fired_due, up.fired_at);
            }
            cur = up;
        }
        Some(GroupView {
            root: at,
            due: cur.due,
            key: cur.key,
            fired_due,
            fired_at,
        })
    }

    /// Takes the whole connection at `ci` out of its status-check group, if it is in one;
    /// returns what it saw of the group (the caller writes the connection's `expire` from
    /// it), and the connection's quiet time.
    #[inline]
    fn leave_group(&mut self, ci: u32) -> Option<(GroupView, Micros)> {
        if self.hot.get(ci as usize)?.group == NIL {
            return None;
        }
        self.leave_group_now(ci)
    }

    /// [`FlowTable::leave_group`] for a member.
    fn leave_group_now(&mut self, ci: u32) -> Option<(GroupView, Micros)> {
        let h = self.hot.get_mut(ci as usize)?;
        let g = std::mem::replace(&mut h.group, NIL);
        let quiet_until = h.quiet_until;
        let view = self.group_view(g)?;
        if let Some(root) = self.groups.get_mut(view.root as usize) {
            root.members = root.members.saturating_sub(1);
        }
        self.release_group(g);
        Some((view, quiet_until))
    }

    /// Drops one name of group `g`; frees it, and so drops its name of the group it merged
    /// into, when nothing names it and it has merged. A root is freed by
    /// [`FlowTable::fire_group`], or here when it has no entry (re-armed at the end of time).
    fn release_group(&mut self, mut g: u32) {
        for _ in 0..=self.groups.len() {
            let Some(gr) = self.groups.get_mut(g as usize) else {
                return;
            };
            gr.refs = gr.refs.saturating_sub(1);
            if gr.refs > 0 {
                return;
            }
            if gr.parent == NIL {
                // A root is freed when its entry comes out with no members left
                // (`fire_group`); one re-armed at the end of time has no entry.
                if gr.key == Micros::MAX && gr.members == 0 {
                    self.free_group(g);
                }
                return;
            }
            let up = gr.parent;
            self.free_group(g);
            g = up;
        }
    }

    /// Gives group `g`'s number back; its times can then match nothing (`forming`, an entry).
    fn free_group(&mut self, g: u32) {
        if let Some(gr) = self.groups.get_mut(g as usize) {
            gr.parent = NIL;
            gr.due = Micros(i64::MIN);
            gr.key = Micros(i64::MIN);
            self.groups_free.push(g);
        }
    }

    /// After slot `s`'s connection left its group other than by its own entry coming out:
    /// its entry in the queue must be the earlier of its quiet time's and its group's, as
    /// when it had one of its own.
    fn requeue_left(&mut self, s: u32, g: &GroupView) {
        if let Some(m) = self.meta.get_mut(s as usize)
            && g.key < m.heap_at
        {
            m.heap_at = g.key;
            self.heap.push(g.key, (s, m.generation));
        }
    }

    /// Fires group `g` (a root), whose entry for `at` came due at `now`: re-arms every
    /// member's status check at once, as [`FlowTable::fire_quiet`] would each one's, and
    /// merges it into the group already re-armed to the same time, if any. A member whose
    /// quiet time has passed too fires when its own entry comes out, later in this run
    /// ([`GroupView::overdue`]). A group with no members left is freed.
    fn fire_group(&mut self, g: u32, at: Micros, now: Micros) {
        let rearm = now.saturating_add(self.timeouts.tcp_session_timer);
        let key = rearm.max(self.horizon);
        let forming = self.forming;
        let into = self
            .groups
            .get(forming as usize)
            .is_some_and(|f| f.due == rearm && f.key == key && f.parent == NIL && forming != g);
        let Some(gr) = self.groups.get_mut(g as usize) else {
            return;
        };
        if gr.key != at || gr.parent != NIL {
            return;
        }
        if gr.members == 0 {
            debug_assert_eq!(gr.refs, 0, "an empty root is still named");
            self.free_group(g);
            return;
        }
        #[cfg(test)]
        if gr.members >= 2 {
            count_group(0);
        }
        gr.fired_due = at;
        gr.fired_at = now;
        gr.due = rearm;
        gr.key = key;
        if into && gr.height < MAX_GROUP_HEIGHT {
            #[cfg(test)]
            count_group(2);
            gr.parent = forming;
            gr.merged_at = now;
            let members = std::mem::take(&mut gr.members);
            let height = gr.height + 1;
            if let Some(f) = self.groups.get_mut(forming as usize) {
                f.members += members;
                f.refs += 1;
                f.height = f.height.max(height);
            }
            return;
        }
        // Re-armed at the end of time, it fires no more. Its members' own entries stay (none
        // joins without one): each fires at its quiet time, and was let go as of this fire if
        // that time has passed.
        if key < Micros::MAX {
            self.heap.push_in_order(key, (GROUP | g, 0));
        }
        if !into {
            self.forming = g;
        }
    }

    /// [`FlowTable::fire`] for a packed connection. Before its
    /// [`Connection::quiet_until`], firing can only re-arm its `expire` timer, which is done
    /// in the cold store's header; the next entry in the timer queue is then the earlier of
    /// that timer and the quiet time, which is what [`Connection::next_due`] would give.
    /// Otherwise it is unpacked and fired by [`FlowTable::fire_aside`].
    fn fire_packed(
        &mut self,
        s: u32,
        cold_at: u32,
        at: Micros,
        now: Micros,
        emit: &mut impl FnMut(ConnRecord),
    ) {
        if let Some(head) = self.cold.head(cold_at)
            && now < head.quiet_until
        {
            self.stats.quiet_fires += 1;
            let expire = Connection::quiet_expire(head.expire, now, self.timeouts);
            if expire != head.expire {
                self.cold.set_expire(cold_at, expire);
            }
            self.requeue_quiet(s, head.quiet_until, expire, now);
            return;
        }
        if let Some(conn) = self.unpack(cold_at) {
            self.fire_aside(s, conn, at, now, emit);
        }
    }

    /// [`FlowTable::fire`] for the whole connection at `ci` (of slot `s`) when the table knows
    /// it to be quiet at `now` (`Hot::quiet_until`, taken when its timers last fired; no
    /// packet since): as for a packed one ([`FlowTable::fire_packed`]), firing can only
    /// re-arm its `expire` timer, which is written into the connection without reading it.
    /// A status check of an idle connection is most of the timers that fire on captures of
    /// many half-open connections, and the connection's cache lines are then not needed.
    /// False (nothing done) when it is not known to be quiet.
    fn fire_quiet(&mut self, s: u32, ci: u32, now: Micros) -> bool {
        #[cfg(test)]
        if QUIET_PATH_OFF.with(std::cell::Cell::get) {
            return false;
        }
        let Some(h) = self.hot.get_mut(ci as usize) else {
            return false;
        };
        if now >= h.quiet_until {
            return false;
        }
        let quiet_until = h.quiet_until;
        let expire = Connection::quiet_expire(h.expire, now, self.timeouts);
        let rearm = now.saturating_add(self.timeouts.tcp_session_timer);
        if expire.get() == Some(rearm) && self.join_group(s, ci, rearm, quiet_until, now) {
            #[cfg(test)]
            QUIET_PATH_FIRES.with(|n| n.set(n.get() + 1));
            return true;
        }
        let Some(h) = self.hot.get_mut(ci as usize) else {
            return false;
        };
        if expire != h.expire {
            h.expire = expire;
            if let Some(c) = self.conns.get_mut(ci as usize) {
                c.timers.expire = expire;
            }
        }
        self.requeue_quiet(s, quiet_until, expire, now);
        #[cfg(test)]
        QUIET_PATH_FIRES.with(|n| n.set(n.get() + 1));
        true
    }

    /// Queues slot `s`'s next timer entry after a quiet fire at `now`: the earlier of its
    /// quiet time and its `expire` timer, which is what [`Connection::next_due`] would give.
    fn requeue_quiet(&mut self, s: u32, quiet_until: Micros, expire: MaybeMicros, now: Micros) {
        let mut due = quiet_until;
        if let Some(e) = expire.get() {
            due = due.min(e);
        }
        let due = due.max(self.horizon);
        let rearm = now.saturating_add(self.timeouts.tcp_session_timer);
        if let Some(m) = self.meta.get_mut(s as usize) {
            m.heap_at = Micros::MAX;
            if due < Micros::MAX {
                m.heap_at = due;
                queue(&mut self.heap, due, rearm, (s, m.generation));
            }
        }
    }

    /// Fires the timers of slot `s`'s connection, taken out of its embryo or packed form:
    /// it ends, or is packed (again), without taking a place among the whole connections (a
    /// timer firing is no sign that it will see packets again).
    fn fire_aside(
        &mut self,
        s: u32,
        mut conn: Connection,
        at: Micros,
        now: Micros,
        emit: &mut impl FnMut(ConnRecord),
    ) {
        if let Some(m) = self.meta.get_mut(s as usize) {
            m.heap_at = Micros::MAX;
        }
        if let Some(reason) = conn.fire_timers(now) {
            let rec = ConnRecord::from_conn(&conn, reason);
            return self.retire(s, conn.key, rec, at, emit);
        }
        let due = conn.next_due().max(self.horizon);
        let rearm = now.saturating_add(self.timeouts.tcp_session_timer);
        let body = match self.pack_cold(&conn) {
            Some(cold_at) => PACKED | cold_at,
            None => self.store(s, conn),
        };
        if let Some(m) = self.meta.get_mut(s as usize) {
            m.body = body;
            if due < Micros::MAX {
                m.heap_at = due;
                queue(&mut self.heap, due, rearm, (s, m.generation));
            }
        }
    }

    /// Ends every open connection (end of input or shutdown), in flow-id order.
    pub fn flush(&mut self, reason: EndReason, emit: &mut impl FnMut(ConnRecord)) {
        while !self.flush_some(reason, usize::MAX, emit) {}
    }

    /// Ends up to `max` open connections, in flow-id order (the canonical order of records
    /// written at the end, so that a merge stage can pass them on as they come instead of
    /// holding every one). Returns true when none is left; the flow id of the last record
    /// emitted is then the highest.
    pub fn flush_some(
        &mut self,
        reason: EndReason,
        max: usize,
        emit: &mut impl FnMut(ConnRecord),
    ) -> bool {
        if self.flushing.is_none() {
            let (conns, cold) = (&self.conns, &self.cold);
            let live = self.meta.iter().enumerate().filter_map(|(s, m)| {
                let id = match m.body() {
                    Body::Dead => return None,
                    Body::Conn(ci) => conns.get(ci as usize)?.flow_id,
                    Body::Embryo(at) | Body::Packed(at) => {
                        Connection::packed_flow_id(cold.get(at)?)?
                    }
                };
                Some((id, s as u32))
            });
            self.flushing = Some(FlushOrder::new(live, self.index.len()));
        }
        let mut n = 0;
        while n < max {
            let Some(i) = self.flushing.as_mut().and_then(FlushOrder::pop) else {
                break;
            };
            self.remove(i, reason, Micros::MAX, emit);
            n += 1;
        }
        let done = self.flushing.as_ref().is_none_or(FlushOrder::is_empty);
        if done {
            self.flushing = None;
            self.heap.clear();
            self.groups.clear();
            self.groups_free.clear();
            self.forming = NIL;
        }
        done
    }

    /// The connection a flow's first packet makes, for an [`Embryo`]: what
    /// [`FlowTable::create`] makes, given the packet by [`apply`] as [`FlowTable::packet`]
    /// does, with the clock of that moment (`tests/workers.rs` and the `flow_sequence` fuzzer
    /// compare the two).
    fn fresh(
        &self,
        flow_id: u64,
        d: &Decoded,
        clock: Micros,
        parent: Option<u64>,
        carries: Option<TunnelKind>,
    ) -> Option<Connection> {
        let dir = Directed::of(d)?;
        let mut conn = Connection::new(flow_id, dir.key, dir.src, dir.dst, d, self.timeouts, clock);
        apply(&mut conn, &dir, d, clock, parent, carries);
        Some(conn)
    }

    /// Stores a connection (packing a quiet one first when as many as
    /// [`TableConfig::compact_after`] are kept whole); returns its index in `conns`, which
    /// the caller gives slot `s`.
    fn store(&mut self, s: u32, conn: Connection) -> u32 {
        self.make_whole_room();
        let ci = put(&mut self.conns, &mut self.conns_free, conn);
        self.hot_for(ci, s);
        if let Some(m) = self.meta.get_mut(s as usize) {
            m.body = ci;
        }
        ci
    }

    /// Packs a quiet connection first when [`TableConfig::compact_after`] are kept whole
    /// (before one more is stored).
    fn make_whole_room(&mut self) {
        if self.conns.len() - self.conns_free.len() >= self.cfg.compact_after.max(1) {
            self.cool();
        }
    }

    /// Starts the [`Hot`] entry of the connection just stored at `ci`, for slot `s`.
    fn hot_for(&mut self, ci: u32, s: u32) {
        debug_assert!(self.hot.get(ci as usize).is_none_or(|h| h.group == NIL));
        let hot = Hot::new(s);
        match self.hot.get_mut(ci as usize) {
            Some(h) => *h = hot,
            None => self.hot.push(hot),
        }
    }

    /// Packs one connection that has not been used for a while: the clock algorithm (second
    /// chance) over `conns`, which passes over those used since it last came by, and over
    /// those too long to pack. Gives up after two rounds, leaving the table a little over its
    /// budget.
    fn cool(&mut self) {
        if self.cold.is_full() {
            return;
        }
        let n = self.conns.len();
        for _ in 0..2 * n {
            if self.hand >= n {
                self.hand = 0;
            }
            let ci = self.hand;
            self.hand += 1;
            let Some(h) = self.hot.get_mut(ci) else {
                continue;
            };
            if h.slot == NIL {
                continue;
            }
            if h.referenced {
                h.referenced = false;
                continue;
            }
            let slot = h.slot;
            if self.pack(ci, slot) {
                return;
            }
        }
    }

    /// Packs the connection at `ci` (of slot `s`) into the cold store; false if it is too
    /// long to.
    fn pack(&mut self, ci: usize, s: u32) -> bool {
        let group = self
            .hot
            .get(ci)
            .filter(|h| h.group != NIL)
            .and_then(|h| Some((h.quiet_until, self.group_view(h.group)?)));
        if let Some((quiet_until, g)) = group {
            if g.overdue(quiet_until) || g.key <= self.horizon {
                // It fires later in this run of the timers as if with its group, or its group
                // is due in this run (and its entry may be out of the queue already, so one
                // of the connection's own at that time would be too late): its packed form
                // could not say so. (A timer stores a connection only when one hatched from
                // its packed form cannot be packed again, which connections never outgrow.)
                return false;
            }
            if let Some(c) = self.conns.get_mut(ci) {
                c.timers.expire = Some(g.due).into();
            }
        }
        let Some(conn) = self.conns.get(ci) else {
            return false;
        };
        let epoch = *self.epoch.get_or_insert(self.clock);
        let Some(at) = pack_to(&mut self.cold, &mut self.packing, epoch, conn) else {
            return false;
        };
        self.stats.packed += 1;
        if let Some((_, g)) = group {
            self.leave_group(ci as u32);
            self.requeue_left(s, &g);
        }
        if let Some(m) = self.meta.get_mut(s as usize) {
            m.body = PACKED | at;
        }
        if let Some(h) = self.hot.get_mut(ci) {
            h.slot = NIL;
        }
        self.conns_free.push(ci as u32);
        true
    }

    /// Packs `conn` into the cold store; returns where.
    fn pack_cold(&mut self, conn: &Connection) -> Option<u32> {
        let epoch = *self.epoch.get_or_insert(self.clock);
        let at = pack_to(&mut self.cold, &mut self.packing, epoch, conn)?;
        self.stats.packed += 1;
        Some(at)
    }

    /// The packed connection at `at`, taken out of the cold store.
    fn unpack(&mut self, at: u32) -> Option<Connection> {
        let (cold, epoch) = (&self.cold, self.epoch.unwrap_or_default());
        let conn = cold
            .head(at)
            .and_then(|head| Connection::unpack(cold.get(at)?, epoch, head.expire, self.timeouts));
        // The bytes are the table's own: a failure is a bug (the fuzzers run with debug
        // assertions), and the flow stays where it is.
        debug_assert!(conn.is_some(), "packed connection at {at} does not unpack");
        let conn = conn?;
        self.cold.free(at);
        self.stats.unpacked += 1;
        Some(conn)
    }

    /// Makes sure slot `s` holds a whole connection (hatching an embryo, unpacking a packed
    /// one); returns its index in `conns`, or None when the slot is free.
    fn hatch(&mut self, s: u32) -> Option<u32> {
        let conn = match self.meta.get(s as usize)?.body() {
            Body::Dead => return None,
            Body::Conn(ci) => return Some(ci),
            Body::Embryo(at) => self.take_embryo(at)?,
            Body::Packed(at) => self.unpack(at)?,
        };
        Some(self.store(s, conn))
    }

    /// Makes room for a new flow (evicting the least recently active when the table is full)
    /// and names it.
    fn make_room(&mut self, emit: &mut impl FnMut(ConnRecord)) -> u64 {
        if self.index.len() >= self.cfg.max_flows && self.lru_tail != NIL {
            self.stats.evicted += 1;
            self.remove(self.lru_tail, EndReason::Evicted, self.clock, emit);
        }
        let flow_id = self.next_flow_id;
        self.next_flow_id = self.next_flow_id.wrapping_add(1);
        flow_id
    }

    /// Gives a new flow whose key hashes to `hash`, with `body`, a slot: in the index, at the
    /// head of the LRU list, with no timer yet.
    fn new_slot(&mut self, hash: u64, body: u32) -> u32 {
        let mut fresh = Meta {
            heap_at: Micros::MAX,
            generation: 0,
            prev: NIL,
            next: NIL,
            body,
        };
        let s = match self.free.pop() {
            Some(s) => {
                if let Some(m) = self.meta.get_mut(s as usize) {
                    fresh.generation = m.generation.wrapping_add(1);
                    *m = fresh;
                }
                s
            }
            None => {
                self.meta.push(fresh);
                (self.meta.len() - 1) as u32
            }
        };
        let (meta, conns, cold) = (&self.meta, &self.conns, &self.cold);
        let hasher = &self.hasher;
        self.index.insert_unique(hash, s, |&j| {
            Self::key_of(meta, conns, cold, j).map_or(0, |k| hasher.hash_one(k))
        });
        self.link_front(s);
        self.stats.created += 1;
        self.stats.peak_active = self.stats.peak_active.max(self.index.len() as u64);
        s
    }

    /// Starts a connection for a flow's first packet, which the caller then applies to it as
    /// to any other; returns (slot, index in `conns`).
    fn create(&mut self, flow_id: u64, dir: &Directed, hash: u64, d: &Decoded) -> (u32, u32) {
        let (timeouts, clock) = (self.timeouts, self.clock);
        self.make_whole_room();
        let ci = match self.conns_free.pop() {
            Some(ci) if let Some(c) = self.conns.get_mut(ci as usize) => {
                c.restart(flow_id, dir.key, dir.src, dir.dst, d, timeouts, clock);
                ci
            }
            _ => {
                let c = Connection::new(flow_id, dir.key, dir.src, dir.dst, d, timeouts, clock);
                self.conns.push(c);
                (self.conns.len() - 1) as u32
            }
        };
        self.hot_for(ci, NIL);
        let s = self.new_slot(hash, ci);
        if let Some(h) = self.hot.get_mut(ci as usize) {
            h.slot = s;
        }
        (s, ci)
    }

    /// Starts a flow as an [`Embryo`]; false when its packet cannot be kept that way (then
    /// nothing was done). The connection its packet makes is built here only to learn when
    /// its first timer is due.
    fn create_embryo(
        &mut self,
        flow_id: u64,
        hash: u64,
        d: &Decoded,
        parent: Option<u64>,
        carries: Option<TunnelKind>,
    ) -> bool {
        let Some(first) = self.fresh(flow_id, d, self.clock, parent, carries) else {
            return false;
        };
        let due = first.next_due().max(self.horizon);
        let e = Embryo {
            flow_id,
            first: *d,
            clock: self.clock,
            parent,
            carries,
        };
        let epoch = *self.epoch.get_or_insert(self.clock);
        self.packing.clear();
        let packed = e.pack(&mut self.packing, epoch);
        let Some(at) = packed
            .and_then(|()| self.packing.finish())
            .and_then(|b| self.cold.put(None, b))
        else {
            return false;
        };
        let s = self.new_slot(hash, EMBRYO | at);
        if due < Micros::MAX
            && let Some(m) = self.meta.get_mut(s as usize)
        {
            m.heap_at = due;
            self.heap.push(due, (s, m.generation));
        }
        true
    }

    /// The connection of the embryo at `at` in the cold store, which is freed.
    fn take_embryo(&mut self, at: u32) -> Option<Connection> {
        let epoch = self.epoch.unwrap_or_default();
        let e = self.cold.get(at).and_then(|b| Embryo::unpack(b, epoch));
        let conn = e.and_then(|e| self.fresh(e.flow_id, &e.first, e.clock, e.parent, e.carries));
        debug_assert!(conn.is_some(), "embryo at {at} does not hatch");
        let conn = conn?;
        self.cold.free(at);
        Some(conn)
    }

    /// Ends the flow in slot `s`; `due` is when its end was due (the timer's time, the
    /// packet's, or `Micros::MAX` at the end), for the canonical order of records
    /// ([`ConnRecord::order`]).
    fn remove(
        &mut self,
        s: u32,
        reason: EndReason,
        due: Micros,
        emit: &mut impl FnMut(ConnRecord),
    ) {
        let Some(body) = self.meta.get(s as usize).map(Meta::body) else {
            return;
        };
        let hatched;
        let conn = match body {
            Body::Dead => return,
            Body::Embryo(at) => {
                let Some(c) = self.take_embryo(at) else {
                    return;
                };
                hatched = c;
                &hatched
            }
            Body::Conn(ci) => {
                self.leave_group(ci);
                let Some(c) = self.conns.get(ci as usize) else {
                    return;
                };
                self.conns_free.push(ci);
                if let Some(h) = self.hot.get_mut(ci as usize) {
                    h.slot = NIL;
                }
                c
            }
            Body::Packed(at) => {
                let Some(c) = self.unpack(at) else {
                    return;
                };
                hatched = c;
                &hatched
            }
        };
        let rec = ConnRecord::from_conn(conn, reason);
        let key = conn.key;
        self.retire(s, key, rec, due, emit);
    }

    /// Frees slot `s`, whose flow (with this key) has ended, and emits its record.
    fn retire(
        &mut self,
        s: u32,
        key: FlowKey,
        mut rec: ConnRecord,
        due: Micros,
        emit: &mut impl FnMut(ConnRecord),
    ) {
        rec.seq = self.seq;
        rec.due = due;
        if let Some(m) = self.meta.get_mut(s as usize) {
            m.body = DEAD;
            m.heap_at = Micros::MAX;
        }
        self.unlink(s);
        if let Ok(e) = self
            .index
            .find_entry(self.hasher.hash_one(key), |&j| j == s)
        {
            e.remove();
        }
        self.free.push(s);
        emit(rec);
    }

    fn touch(&mut self, i: u32) {
        if self.lru_head != i {
            self.unlink(i);
            self.link_front(i);
        }
    }

    fn link_front(&mut self, i: u32) {
        let old = self.lru_head;
        if let Some(m) = self.meta.get_mut(i as usize) {
            m.prev = NIL;
            m.next = old;
        }
        if let Some(m) = self.meta.get_mut(old as usize) {
            m.prev = i;
        }
        self.lru_head = i;
        if self.lru_tail == NIL {
            self.lru_tail = i;
        }
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = match self.meta.get(i as usize) {
            Some(m) => (m.prev, m.next),
            None => return,
        };
        match self.meta.get_mut(prev as usize) {
            Some(p) => p.next = next,
            None => {
                if self.lru_head == i {
                    self.lru_head = next;
                }
            }
        }
        match self.meta.get_mut(next as usize) {
            Some(n) => n.prev = prev,
            None => {
                if self.lru_tail == i {
                    self.lru_tail = prev;
                }
            }
        }
        if let Some(m) = self.meta.get_mut(i as usize) {
            m.prev = NIL;
            m.next = NIL;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FlushOrder;

    #[test]
    fn the_flush_order_is_by_flow_id_in_either_form() {
        let ids = [(5u64, 7u32), (1, 9), (3, (1 << 24) - 1), (2, 0)];
        let mut small = FlushOrder::new(ids.into_iter(), ids.len());
        assert!(matches!(small, FlushOrder::Packed(_)));
        let mut big = FlushOrder::new(ids.into_iter().chain([(1 << 40, 4), (4, 1 << 24)]), 6);
        assert!(matches!(big, FlushOrder::Pairs(_)));
        let drain = |o: &mut FlushOrder| std::iter::from_fn(|| o.pop()).collect::<Vec<_>>();
        assert_eq!(drain(&mut small), [9, 0, (1 << 24) - 1, 7]);
        assert_eq!(drain(&mut big), [9, 0, (1 << 24) - 1, 1 << 24, 7, 4]);
        assert!(small.is_empty() && big.is_empty());
    }
}
