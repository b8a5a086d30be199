//! The loop's one clock: a min-heap of deadlines.
//!
//! `Poll::poll` is given the time until the earliest deadline as its timeout,
//! so the loop sleeps exactly until the next thing is due and never polls a
//! clock in a busy loop. Header timeouts, keep-alive idle timeouts, long-poll
//! expiry, job completion, WebSocket pings and SSE heartbeats all come from
//! here.
//!
//! Entries are never removed from the heap early. A connection keeps its
//! real deadline in its own slot and the heap holds at most one entry per
//! slot that is due no later than it: when the entry fires and the real
//! deadline has moved later (a keep-alive connection sent another request),
//! the entry is re-armed instead of acted on. Pushing back a deadline
//! therefore costs nothing, and the heap stays at most one entry per slot per
//! connection, whatever the request rate.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use super::conn::ConnId;

/// What a deadline is for. `T` is the application's own kind of timer
/// (a job completing, a webhook retry): the loop only hands it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TimerKey<T> {
    /// A connection's slot. The handle's generation tells a reused slab
    /// key from the connection the timer was set for.
    Conn { id: ConnId, slot: Slot },
    /// The application's timer.
    App(T),
    /// Try `accept` again after the process ran out of file descriptors.
    AcceptRetry,
}

/// A connection has two independent deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Slot {
    /// When the connection's current wait ends: the header timeout, the
    /// keep-alive idle timeout, a long poll's expiry, the close timeout.
    Deadline = 0,
    /// A periodic beat: WebSocket ping, SSE heartbeat, the clock stream.
    Tick = 1,
}

#[derive(Debug)]
pub struct Timers<T> {
    heap: BinaryHeap<Reverse<(Instant, u64, TimerKey<T>)>>,
    seq: u64,
}

impl<T: Ord + Copy> Default for Timers<T> {
    fn default() -> Self {
        Timers {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }
}

impl<T: Ord + Copy> Timers<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Schedules `key` at `at`.
    pub fn push(&mut self, at: Instant, key: TimerKey<T>) {
        // The sequence number keeps equal deadlines in insertion order.
        self.seq += 1;
        self.heap.push(Reverse((at, self.seq, key)));
    }

    /// How long `Poll::poll` may sleep: until the earliest deadline (rounded
    /// up to a whole millisecond, epoll's resolution, so we don't wake a hair
    /// early and spin), or forever if there is none.
    pub fn timeout(&self, now: Instant) -> Option<Duration> {
        self.heap.peek().map(|Reverse((at, _, _))| {
            let d = at.saturating_duration_since(now);
            let ms = d.as_micros().div_ceil(1000) as u64;
            Duration::from_millis(ms)
        })
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, TimerKey<T>)> {
        match self.heap.peek() {
            Some(Reverse((at, _, _))) if *at <= now => {
                self.heap.pop().map(|Reverse((at, _, key))| (at, key))
            }
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_deadline_order_and_only_when_due() {
        let t0 = Instant::now();
        let mut t: Timers<u8> = Timers::new();
        t.push(t0 + Duration::from_millis(30), TimerKey::App(3));
        t.push(t0 + Duration::from_millis(10), TimerKey::App(1));
        t.push(t0 + Duration::from_millis(20), TimerKey::App(2));
        assert_eq!(t.timeout(t0), Some(Duration::from_millis(10)));
        assert_eq!(t.pop_due(t0), None);
        let later = t0 + Duration::from_millis(25);
        assert_eq!(t.pop_due(later).map(|x| x.1), Some(TimerKey::App(1)));
        assert_eq!(t.pop_due(later).map(|x| x.1), Some(TimerKey::App(2)));
        assert_eq!(t.pop_due(later), None);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn timeout_rounds_up_to_a_millisecond() {
        let t0 = Instant::now();
        let mut t: Timers<u8> = Timers::new();
        t.push(t0 + Duration::from_micros(1500), TimerKey::AcceptRetry);
        assert_eq!(t.timeout(t0), Some(Duration::from_millis(2)));
        assert_eq!(Timers::<u8>::new().timeout(t0), None);
    }
}
