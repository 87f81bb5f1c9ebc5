//! The flow table's timer queue: a radix heap over packet time, with 4-bit digits.
//!
//! Timers in synwatch are monotone: every timer is queued at or after the time the table has
//! run its timers to (`FlowTable::horizon`: the analysis clock, or a live capture's idle tick
//! past it), which never runs backwards, so no timer is ever earlier than the last one taken
//! out. A radix heap exploits that: an entry lives in the bucket named by
//! where its time first differs from the last time taken out, pushing is an append, and taking
//! out the minimum only redistributes one bucket, downwards. It replaced a binary heap whose
//! sift-downs over every open connection were about a fifth of a worker's time.
//!
//! The buckets are named by the highest differing 4-bit digit and that digit's value (16 × 16
//! buckets, and one for entries equal to `last`), so an entry moves at most 16 times and a
//! timer a few seconds out (2^22 µs) about 6 times. With one bucket per bit it moved up to 22
//! times, and those moves were 7 % of all the time on the small-packet benchmark capture (4 %
//! now). 8-bit digits moved entries less but no faster, and their 2 049 growing buckets cost
//! 40 bytes more per open flow. A bitmap of non-empty buckets finds the next one.
//!
//! `last` only moves when an entry is taken out (peeking scans, but does not redistribute), so
//! it never passes the time the timers have run to, and every timer the table queues is at or
//! after it.
//!
//! Among entries due at the same time the order is unspecified; the flow table's records are
//! put in canonical order afterwards (`ConnRecord::order`).
//!
//! Beside the radix heap runs a lane: a FIFO for entries pushed in time order
//! ([`TimerQueue::push_in_order`]). Most timer entries are the status checks of idle TCP
//! connections, re-armed each time at the clock plus `tcp_session_timer`: in time order as
//! they are pushed. A radix heap moves each of those about six times before it comes out; the
//! lane takes them in and out once. An entry that would not keep the lane in order goes to the
//! heap. Taking out compares the fronts, so the order out is the same.
//!
//! The other timers are mostly a fixed time after the clock too (attempt, close and reset
//! delays, inactivity timeouts), a handful of distinct times, each class in order but the
//! classes interleaved. [`TimerQueue::push`] therefore first tries [`RUNS`] more lanes, each
//! a sorted run: an entry joins the run whose last entry is the latest at or before it (an
//! empty run when none is), so each class keeps to a run of its own, and only an entry
//! earlier than every run's last goes to the radix heap. On the small-packet benchmark
//! capture the heap's redistributions had been a twentieth of a worker's instructions.

use crate::time::Micros;
use std::collections::VecDeque;

const DIGIT_BITS: u32 = 4;
const RADIX: usize = 1 << DIGIT_BITS;
const DIGITS: usize = 64 / DIGIT_BITS as usize;
/// Bucket 0 holds entries equal to `last`; bucket `1 + level * RADIX + d` holds entries whose
/// highest digit differing from `last` is digit `level` (counted from the low end), with value
/// `d` there. Every entry of a bucket is smaller than every entry of a later bucket.
const BUCKETS: usize = 1 + DIGITS * RADIX;
const WORDS: usize = BUCKETS.div_ceil(64);

/// Largest capacity a bucket keeps once emptied (bounds memory held beyond live entries).
const KEEP_CAPACITY: usize = 4096;
/// Sorted runs beside the in-order lane (see the module's notes).
const RUNS: usize = 6;

/// A monotone priority queue of `(time, value)`, smallest time first.
pub struct TimerQueue<T> {
    /// The last key taken out; bucket 0 holds the entries equal to it.
    last: u64,
    len: usize,
    buckets: Vec<Vec<(u64, T)>>,
    /// Bit `b` is set when bucket `b` is not empty.
    nonempty: [u64; WORDS],
    /// The smallest key outside bucket 0, when known.
    min_above: Option<u64>,
    /// Entries pushed in order of time (`push_in_order`), beside the buckets.
    lane: VecDeque<(u64, T)>,
    /// Sorted runs of entries from `push`, beside the buckets.
    runs: [VecDeque<(u64, T)>; RUNS],
    /// Entries in the lane and the runs (the rest are in the buckets).
    in_lanes: usize,
    /// The smallest front of the runs and its run, kept up to date (peeking is per packet).
    runs_min: Option<(u64, usize)>,
    /// The largest key taken out (from the buckets, the lane or the runs).
    floor: u64,
    /// Entries pushed so far (see [`TimerQueue::pushes`]).
    pushes: u64,
}

impl<T: Copy> Default for TimerQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Times as unsigned keys in the same order (negative times first).
fn key(t: Micros) -> u64 {
    (t.0 as u64) ^ (1 << 63)
}

fn time(k: u64) -> Micros {
    Micros((k ^ (1 << 63)) as i64)
}

impl<T: Copy> TimerQueue<T> {
    pub fn new() -> Self {
        TimerQueue {
            last: 0,
            len: 0,
            buckets: (0..BUCKETS).map(|_| Vec::new()).collect(),
            nonempty: [0; WORDS],
            min_above: None,
            lane: VecDeque::new(),
            runs: std::array::from_fn(|_| VecDeque::new()),
            in_lanes: 0,
            runs_min: None,
            floor: 0,
            pushes: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many entries were ever pushed: unchanged means nothing new can have come due.
    pub fn pushes(&self) -> u64 {
        self.pushes
    }

    fn bucket_of(&self, k: u64) -> usize {
        let x = k ^ self.last;
        if x == 0 {
            return 0;
        }
        let level = (63 - x.leading_zeros()) / DIGIT_BITS;
        let digit = (k >> (level * DIGIT_BITS)) as usize & (RADIX - 1);
        1 + level as usize * RADIX + digit
    }

    fn mark(&mut self, b: usize, full: bool) {
        if let Some(w) = self.nonempty.get_mut(b / 64) {
            if full {
                *w |= 1 << (b % 64);
            } else {
                *w &= !(1 << (b % 64));
            }
        }
    }

    /// The first non-empty bucket after bucket 0.
    fn first_above(&self) -> Option<usize> {
        self.nonempty.iter().enumerate().find_map(|(i, &w)| {
            let w = if i == 0 { w & !1 } else { w };
            (w != 0).then(|| i * 64 + w.trailing_zeros() as usize)
        })
    }

    /// The floor of the queue: the last time taken out. Timers armed earlier are taken out
    /// at this time (they are due at once).
    pub fn floor(&self) -> Micros {
        time(self.floor)
    }

    /// [`TimerQueue::push`] for an entry that is probably no earlier than any pushed this way
    /// before (a repeating timer re-armed at the clock plus a fixed time): it joins the lane,
    /// or the heap when it is earlier than the lane's last entry.
    #[inline]
    pub fn push_in_order(&mut self, at: Micros, value: T) {
        let k = key(at).max(self.floor);
        if self.lane.back().is_none_or(|&(b, _)| b <= k) {
            self.lane.push_back((k, value));
            self.len += 1;
            self.in_lanes += 1;
            self.pushes += 1;
        } else {
            self.push(at, value);
        }
    }

    pub fn push(&mut self, at: Micros, value: T) {
        let k = key(at).max(self.floor).max(self.last);
        // The run whose last entry is the latest at or before `k`; else an empty one.
        let mut best: Option<(usize, u64)> = None;
        let mut empty = None;
        for (i, run) in self.runs.iter().enumerate() {
            match run.back() {
                Some(&(b, _)) if b <= k && best.is_none_or(|(_, x)| b > x) => best = Some((i, b)),
                None if empty.is_none() => empty = Some(i),
                _ => {}
            }
        }
        if let Some(i) = best.map(|(i, _)| i).or(empty)
            && let Some(run) = self.runs.get_mut(i)
        {
            if run.is_empty() && self.runs_min.is_none_or(|(m, _)| k < m) {
                self.runs_min = Some((k, i));
            }
            run.push_back((k, value));
            self.len += 1;
            self.in_lanes += 1;
            self.pushes += 1;
            return;
        }
        let b = self.bucket_of(k);
        if let Some(v) = self.buckets.get_mut(b) {
            v.push((k, value));
            self.len += 1;
            self.pushes += 1;
            self.mark(b, true);
            if b > 0 {
                self.min_above = self.min_above.map(|m| m.min(k));
            }
        }
    }

    /// The time of the next entry, without taking it out.
    #[inline]
    pub fn peek_time(&mut self) -> Option<Micros> {
        let heap = self.heap_min();
        let lane = self.lanes_min().map(|(k, _)| k);
        match (heap, lane) {
            (Some(h), Some(l)) => Some(time(h.min(l))),
            (h, l) => h.or(l).map(time),
        }
    }

    /// The smallest front of the lane and the runs, and where it is (0: the lane; 1 + i: run
    /// `i`). The lane comes first among equal fronts.
    #[inline]
    fn lanes_min(&self) -> Option<(u64, usize)> {
        if self.in_lanes == 0 {
            return None;
        }
        let lane = self.lane.front().map(|&(k, _)| (k, 0));
        match (lane, self.runs_min) {
            (Some((l, _)), Some((r, i))) if r < l => Some((r, 1 + i)),
            (None, Some((r, i))) => Some((r, 1 + i)),
            (lane, _) => lane,
        }
    }

    /// Finds the runs' smallest front again (a run's front was taken).
    fn find_runs_min(&mut self) {
        self.runs_min = None;
        for (i, run) in self.runs.iter().enumerate() {
            if let Some(&(k, _)) = run.front()
                && self.runs_min.is_none_or(|(m, _)| k < m)
            {
                self.runs_min = Some((k, i));
            }
        }
    }

    /// The smallest key in the buckets, without redistributing them.
    /// Inlined into every caller (it runs for every packet and every timer), with its rare
    /// part apart: the calls were about 5 % of a worker's instructions on small packets.
    #[inline]
    fn heap_min(&mut self) -> Option<u64> {
        if self.len == self.in_lanes {
            return None;
        }
        if self.buckets.first().is_some_and(|b| !b.is_empty()) {
            return Some(self.last);
        }
        if self.min_above.is_none() {
            self.find_min_above();
        }
        self.min_above
    }

    /// Finds the smallest key outside bucket 0 (once per redistribution: it is kept).
    #[cold]
    fn find_min_above(&mut self) {
        self.min_above = self
            .first_above()
            .and_then(|i| self.buckets.get(i))
            .and_then(|b| b.iter().map(|&(k, _)| k).min());
    }

    #[inline]
    pub fn pop(&mut self) -> Option<(Micros, T)> {
        let heap = self.heap_min();
        let (k, v) = match (heap, self.lanes_min()) {
            (h, Some((l, at))) if h.is_none_or(|h| l <= h) => {
                let taken = match at.checked_sub(1) {
                    None => self.lane.pop_front()?,
                    Some(i) => {
                        let e = self.runs.get_mut(i)?.pop_front()?;
                        self.find_runs_min();
                        e
                    }
                };
                self.in_lanes -= 1;
                taken
            }
            _ => {
                self.refill();
                let zero = self.buckets.first_mut()?;
                let e = zero.pop()?;
                if zero.is_empty() {
                    self.mark(0, false);
                }
                e
            }
        };
        self.len -= 1;
        self.floor = self.floor.max(k);
        Some((time(k), v))
    }

    /// Drops every entry (end of input) and the memory of the busiest buckets.
    pub fn clear(&mut self) {
        for b in self.buckets.iter_mut().filter(|b| b.capacity() > 0) {
            b.clear();
            b.shrink_to(KEEP_CAPACITY);
        }
        self.nonempty = [0; WORDS];
        self.len = 0;
        self.min_above = None;
        self.lane.clear();
        self.lane.shrink_to(KEEP_CAPACITY);
        for run in &mut self.runs {
            run.clear();
            run.shrink_to(KEEP_CAPACITY);
        }
        self.in_lanes = 0;
        self.runs_min = None;
    }

    /// When bucket 0 is empty: moves `last` to the smallest key and redistributes the bucket
    /// holding it (all of its entries go to lower buckets).
    fn refill(&mut self) {
        if self.len == self.in_lanes || self.buckets.first().is_some_and(|b| !b.is_empty()) {
            return;
        }
        let Some(i) = self.first_above() else {
            return;
        };
        let Some(mut items) = self.buckets.get_mut(i).map(std::mem::take) else {
            return;
        };
        self.mark(i, false);
        let min = match self.min_above {
            Some(m) => m,
            None => items.iter().map(|&(k, _)| k).min().unwrap_or(self.last),
        };
        self.last = min;
        self.min_above = None;
        for &(k, v) in &items {
            let b = self.bucket_of(k);
            if let Some(dst) = self.buckets.get_mut(b) {
                dst.push((k, v));
                self.mark(b, true);
            }
        }
        items.clear();
        items.shrink_to(KEEP_CAPACITY);
        if let Some(slot) = self.buckets.get_mut(i) {
            *slot = items;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BinaryHeap;

    /// Against a binary heap: the same times come out in the same order, under a random mix
    /// of pushes (never before the last time taken out) and pops, negative times included.
    #[test]
    fn agrees_with_a_binary_heap() {
        let mut q = TimerQueue::new();
        let mut h = BinaryHeap::new();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut now: i64 = -5_000_000;
        let mut most_in_buckets = 0;
        for round in 0..200_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x % 5 == 1 {
                let want = h.peek().map(|r: &std::cmp::Reverse<i64>| r.0);
                assert_eq!(q.peek_time().map(|t| t.0), want, "peek, round {round}");
            } else if !x.is_multiple_of(3) {
                let at = now + (x % 7_000_000) as i64 * if x.is_multiple_of(11) { 0 } else { 1 };
                q.push(Micros(at), round);
                h.push(std::cmp::Reverse(at));
            } else if x % 9 == 6 {
                // A re-armed repeating timer: the clock plus a fixed time, mostly in order.
                let at = now + 6_000_000 - i64::from(x.is_multiple_of(13)) * 1_000;
                q.push_in_order(Micros(at), round);
                h.push(std::cmp::Reverse(at));
            } else {
                let got = q.pop().map(|(t, _)| t.0);
                let want = h.pop().map(|r| r.0);
                assert_eq!(got, want, "round {round}");
                if let Some(t) = got {
                    now = now.max(t);
                    assert_eq!(
                        q.floor().0,
                        now,
                        "floor is the latest time out, round {round}"
                    );
                }
            }
            assert_eq!(q.len(), h.len());
            most_in_buckets = most_in_buckets.max(q.len() - q.in_lanes);
        }
        // Random times fill the runs soon; the buckets take the rest.
        assert!(most_in_buckets > 1000, "{most_in_buckets}");
        while let Some(std::cmp::Reverse(want)) = h.pop() {
            assert_eq!(q.peek_time().map(|t| t.0), Some(want));
            assert_eq!(q.pop().map(|(t, _)| t.0), Some(want));
        }
        assert!(q.is_empty() && q.pop().is_none());
    }

    /// Timers of a few fixed delays after an advancing clock, interleaved (a flow table's
    /// attempt, close and inactivity timers): each delay keeps to a run of its own, nothing
    /// goes to the buckets, and the times come out sorted.
    #[test]
    fn interleaved_fixed_delays_keep_to_runs() {
        let mut q = TimerQueue::new();
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut want = BinaryHeap::new();
        let mut clock = 0i64;
        let delays = [3_000_000, 5_000_000, 60_000_000, 300_000_000, 3_600_000_000];
        for i in 0..100_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            clock += (x % 1000) as i64;
            let at = clock + delays[(x >> 20) as usize % delays.len()];
            q.push(Micros(at), i);
            want.push(std::cmp::Reverse(at));
            assert_eq!(q.len(), q.in_lanes, "entry {i} went to the buckets");
            if i % 3 == 0 && q.peek_time().is_some_and(|t| t.0 <= clock) {
                let (t, _) = q.pop().unwrap();
                assert_eq!(Some(t.0), want.pop().map(|r| r.0));
            }
        }
        while let Some(std::cmp::Reverse(at)) = want.pop() {
            assert_eq!(q.pop().map(|(t, _)| t.0), Some(at));
        }
        assert!(q.is_empty());
    }

    /// Times spread over every digit (microseconds to centuries apart), against a sort.
    #[test]
    fn wide_spreads_come_out_in_order() {
        let mut q = TimerQueue::new();
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut want = Vec::new();
        for i in 0..50_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let shift = x % 62;
            let at = ((x >> 8) % (1u64 << shift)) as i64 - (1i64 << 40);
            q.push(Micros(at), i);
            want.push(at);
        }
        want.sort_unstable();
        let got: Vec<i64> = std::iter::from_fn(|| q.pop().map(|(t, _)| t.0)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn an_early_time_comes_out_at_once() {
        let mut q = TimerQueue::new();
        q.push(Micros(100), 1u8);
        assert_eq!(q.pop(), Some((Micros(100), 1)));
        q.push(Micros(50), 2);
        q.push(Micros(200), 3);
        assert_eq!(q.pop(), Some((Micros(100), 2)));
        assert_eq!(q.pop(), Some((Micros(200), 3)));
    }
}
