//! The flow table: connections by key, their timers in packet time, and a bound on how many
//! are kept (least recently active evicted first, each still written as a record).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::conn::{Connection, EndReason, Timeouts};
use super::key::{Directed, FlowKey};
use super::record::ConnRecord;
use crate::decode::tunnel::TunnelKind;
use crate::decode::{Decoded, Transport};
use crate::time::Micros;

const NIL: u32 = u32::MAX;

struct Slot {
    conn: Connection,
    generation: u32,
    live: bool,
    /// Least-recently-active list (most recent at the head).
    prev: u32,
    next: u32,
}

/// Counters the table keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowStats {
    pub created: u64,
    pub evicted: u64,
    pub reused: u64,
    pub non_first_fragments: u64,
    pub peak_active: u64,
}

/// Settings for the table.
#[derive(Clone, Copy, Debug)]
pub struct TableConfig {
    pub timeouts: Timeouts,
    pub max_flows: usize,
}

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig {
            timeouts: Timeouts::default(),
            max_flows: 1_000_000,
        }
    }
}

type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

pub struct FlowTable {
    map: FastMap<FlowKey, u32>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    heap: BinaryHeap<Reverse<(Micros, u32, u32)>>,
    lru_head: u32,
    lru_tail: u32,
    clock: Micros,
    next_flow_id: u64,
    /// Sequence number of the packet being analysed: records are stamped with it.
    seq: u64,
    cfg: TableConfig,
    /// `cfg.timeouts`, shared by every connection.
    timeouts: &'static Timeouts,
    pub stats: FlowStats,
}

impl FlowTable {
    pub fn new(cfg: TableConfig) -> Self {
        FlowTable {
            map: FastMap::with_hasher(foldhash::fast::FixedState::with_seed(0x5eed_f10e)),
            slots: Vec::new(),
            free: Vec::new(),
            heap: BinaryHeap::new(),
            lru_head: NIL,
            lru_tail: NIL,
            clock: Micros(i64::MIN),
            next_flow_id: 1,
            seq: 0,
            cfg: TableConfig {
                max_flows: cfg.max_flows.max(1),
                ..cfg
            },
            timeouts: cfg.timeouts.interned(),
            stats: FlowStats::default(),
        }
    }

    pub fn active(&self) -> usize {
        self.map.len()
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
        let mut idx = self.map.get(&dir.key).copied();
        if let (Some(i), Transport::Tcp(seg)) = (idx, d.transport)
            && self.slot(i).is_some_and(|s| s.conn.tcp_is_reuse(&seg))
        {
            self.stats.reused += 1;
            self.remove(i, EndReason::Reused, self.clock, emit);
            idx = None;
        }
        let i = match idx {
            Some(i) => i,
            None => self.create(&dir, d, emit),
        };
        self.touch(i);
        let slot = self.slots.get_mut(i as usize)?;
        let side = slot.conn.side_of(&dir.src);
        slot.conn.set_clock(self.clock, d);
        slot.conn.packet(side, d);
        if let Some(p) = parent {
            slot.conn.parents.add(p);
        }
        if carries.is_some() {
            slot.conn.tunnel = carries;
        }
        let id = slot.conn.flow_id;
        let due = slot.conn.next_due();
        if due < slot.conn.heap_at {
            slot.conn.heap_at = due;
            self.heap.push(Reverse((due, i, slot.generation)));
        }
        Some(id)
    }

    /// Runs every timer due at or before `now`.
    pub fn advance(&mut self, now: Micros, emit: &mut impl FnMut(ConnRecord)) {
        while let Some(&Reverse((at, i, generation))) = self.heap.peek() {
            if at > now {
                break;
            }
            self.heap.pop();
            let Some(slot) = self.slots.get_mut(i as usize) else {
                continue;
            };
            if !slot.live || slot.generation != generation || slot.conn.heap_at != at {
                continue; // stale entry
            }
            slot.conn.heap_at = Micros::MAX;
            match slot.conn.fire_timers(now) {
                Some(reason) => self.remove(i, reason, at, emit),
                None => {
                    let due = slot.conn.next_due();
                    if due < Micros::MAX {
                        slot.conn.heap_at = due;
                        self.heap.push(Reverse((due, i, generation)));
                    }
                }
            }
        }
    }

    /// Ends every open connection (end of input or shutdown).
    pub fn flush(&mut self, reason: EndReason, emit: &mut impl FnMut(ConnRecord)) {
        // Oldest first, so records come out in a stable, meaningful order.
        let mut i = self.lru_tail;
        while i != NIL {
            let prev = self.slots.get(i as usize).map_or(NIL, |s| s.prev);
            self.remove(i, reason, Micros::MAX, emit);
            i = prev;
        }
        self.heap.clear();
    }

    fn slot(&self, i: u32) -> Option<&Slot> {
        self.slots.get(i as usize).filter(|s| s.live)
    }

    fn create(&mut self, dir: &Directed, d: &Decoded, emit: &mut impl FnMut(ConnRecord)) -> u32 {
        if self.map.len() >= self.cfg.max_flows && self.lru_tail != NIL {
            self.stats.evicted += 1;
            self.remove(self.lru_tail, EndReason::Evicted, self.clock, emit);
        }
        let flow_id = self.next_flow_id;
        self.next_flow_id = self.next_flow_id.wrapping_add(1);
        let conn = Connection::new(
            flow_id,
            dir.key,
            dir.src,
            dir.dst,
            d,
            self.timeouts,
            self.clock,
        );
        let i = match self.free.pop() {
            Some(i) => {
                if let Some(s) = self.slots.get_mut(i as usize) {
                    s.conn = conn;
                    s.generation = s.generation.wrapping_add(1);
                    s.live = true;
                    s.prev = NIL;
                    s.next = NIL;
                }
                i
            }
            None => {
                self.slots.push(Slot {
                    conn,
                    generation: 0,
                    live: true,
                    prev: NIL,
                    next: NIL,
                });
                (self.slots.len() - 1) as u32
            }
        };
        self.map.insert(dir.key, i);
        self.link_front(i);
        self.stats.created += 1;
        self.stats.peak_active = self.stats.peak_active.max(self.map.len() as u64);
        i
    }

    /// Ends connection `i`; `due` is when its end was due (the timer's time, the packet's, or
    /// `Micros::MAX` at the end), for the canonical order of records ([`ConnRecord::order`]).
    fn remove(
        &mut self,
        i: u32,
        reason: EndReason,
        due: Micros,
        emit: &mut impl FnMut(ConnRecord),
    ) {
        let Some(slot) = self.slots.get_mut(i as usize) else {
            return;
        };
        if !slot.live {
            return;
        }
        slot.live = false;
        let mut rec = ConnRecord::from_conn(&slot.conn, reason);
        rec.seq = self.seq;
        rec.due = due;
        let key = slot.conn.key;
        self.unlink(i);
        self.map.remove(&key);
        self.free.push(i);
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
        if let Some(s) = self.slots.get_mut(i as usize) {
            s.prev = NIL;
            s.next = old;
        }
        if let Some(s) = self.slots.get_mut(old as usize) {
            s.prev = i;
        }
        self.lru_head = i;
        if self.lru_tail == NIL {
            self.lru_tail = i;
        }
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = match self.slots.get(i as usize) {
            Some(s) => (s.prev, s.next),
            None => return,
        };
        match self.slots.get_mut(prev as usize) {
            Some(p) => p.next = next,
            None => {
                if self.lru_head == i {
                    self.lru_head = next;
                }
            }
        }
        match self.slots.get_mut(next as usize) {
            Some(n) => n.prev = prev,
            None => {
                if self.lru_tail == i {
                    self.lru_tail = prev;
                }
            }
        }
        if let Some(s) = self.slots.get_mut(i as usize) {
            s.prev = NIL;
            s.next = NIL;
        }
    }
}
