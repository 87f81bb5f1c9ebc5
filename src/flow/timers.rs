//! The flow table's timer queue: a radix heap over packet time.
//!
//! Timers in synwatch are monotone: every timer is armed at or after the analysis clock, and
//! the clock never runs backwards (`FlowTable::advance_to`), so no timer is ever earlier than
//! the last one taken out. A radix heap exploits that: an entry lives in the bucket named by
//! the highest bit in which its time differs from the last time taken out, pushing is an
//! append, and taking out the minimum only redistributes one bucket, downwards, so each entry
//! moves a few times in its life instead of being sifted through a binary heap of every open
//! connection (which was the costliest thing per packet: about a fifth of a worker's time).
//!
//! `last` only moves when an entry is taken out (peeking scans, but does not redistribute), so
//! it never passes the analysis clock, and every timer the table arms is at or after it.
//!
//! Among entries due at the same time the order is unspecified; the flow table's records are
//! put in canonical order afterwards (`ConnRecord::order`).

use crate::time::Micros;

/// Buckets: 0 holds entries equal to `last`; bucket `b` holds entries whose highest bit
/// differing from `last` is bit `b - 1`.
const BUCKETS: usize = 65;

/// Largest capacity a bucket keeps once emptied (bounds memory held beyond live entries).
const KEEP_CAPACITY: usize = 4096;

/// A monotone priority queue of `(time, value)`, smallest time first.
pub struct TimerQueue<T> {
    /// The last key taken out; bucket 0 holds the entries equal to it.
    last: u64,
    len: usize,
    buckets: Vec<Vec<(u64, T)>>,
    /// The smallest key outside bucket 0, when known.
    min_above: Option<u64>,
}

impl<T: Copy> Default for TimerQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Packet time as an order-preserving unsigned key.
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
            min_above: None,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn bucket_of(&self, k: u64) -> usize {
        let x = k ^ self.last;
        if x == 0 {
            0
        } else {
            (64 - x.leading_zeros()) as usize
        }
    }

    /// The last time taken out: nothing earlier can be queued. The table arms its timers at
    /// `max(due, floor())` so that the time it remembers is the time the queue keeps.
    pub fn floor(&self) -> Micros {
        time(self.last)
    }

    /// Adds `value` due at `at`. A time earlier than the last one taken out (which the flow
    /// table never asks for) is treated as that time: due at once.
    pub fn push(&mut self, at: Micros, value: T) {
        let k = key(at).max(self.last);
        let b = self.bucket_of(k);
        if let Some(v) = self.buckets.get_mut(b) {
            v.push((k, value));
            self.len += 1;
            if b > 0 {
                self.min_above = self.min_above.map(|m| m.min(k));
            }
        }
    }

    /// The earliest time in the queue.
    pub fn peek_time(&mut self) -> Option<Micros> {
        if self.len == 0 {
            return None;
        }
        if self.buckets.first().is_some_and(|b| !b.is_empty()) {
            return Some(time(self.last));
        }
        if self.min_above.is_none() {
            // The lowest non-empty bucket holds the smallest keys.
            self.min_above = self
                .buckets
                .iter()
                .find(|b| !b.is_empty())
                .and_then(|b| b.iter().map(|&(k, _)| k).min());
        }
        self.min_above.map(time)
    }

    /// Takes out an entry with the earliest time.
    pub fn pop(&mut self) -> Option<(Micros, T)> {
        self.refill();
        let (k, v) = self.buckets.first_mut()?.pop()?;
        self.len -= 1;
        Some((time(k), v))
    }

    /// Removes every entry (capacity is kept, within the bound).
    pub fn clear(&mut self) {
        for b in &mut self.buckets {
            b.clear();
            b.shrink_to(KEEP_CAPACITY);
        }
        self.len = 0;
        self.min_above = None;
    }

    /// Makes bucket 0 non-empty when the queue is not: the lowest non-empty bucket's minimum
    /// becomes `last`, and its entries move to lower buckets.
    fn refill(&mut self) {
        if self.len == 0 || self.buckets.first().is_some_and(|b| !b.is_empty()) {
            return;
        }
        let Some(i) = self.buckets.iter().position(|b| !b.is_empty()) else {
            return;
        };
        let Some(mut items) = self.buckets.get_mut(i).map(std::mem::take) else {
            return;
        };
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
            } else {
                let got = q.pop().map(|(t, _)| t.0);
                let want = h.pop().map(|r| r.0);
                assert_eq!(got, want, "round {round}");
                if let Some(t) = got {
                    now = now.max(t);
                }
            }
            assert_eq!(q.len(), h.len());
        }
        while let Some(std::cmp::Reverse(want)) = h.pop() {
            assert_eq!(q.peek_time().map(|t| t.0), Some(want));
            assert_eq!(q.pop().map(|(t, _)| t.0), Some(want));
        }
        assert!(q.is_empty() && q.pop().is_none());
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
