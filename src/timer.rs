//! Deadlines for every connection, without scanning every connection.
//!
//! Each connection always has exactly one deadline: the moment its current
//! state has waited too long (header, send, keep-alive or linger timeout).
//! Deadlines change on almost every request, so we must not pay a heap
//! operation each time. The trick, a *lazy* timer queue:
//!
//! - A min-heap holds at most one live entry per connection, at the moment
//!   the connection's deadline had when the entry was pushed.
//! - Moving a deadline *later* costs nothing: the connection just writes the
//!   new time into its [`TimerSlot`]. When the old entry comes due, the worker
//!   sees the deadline has moved and pushes a fresh entry for it.
//! - Moving a deadline *earlier* (rare: a long send finishing into a shorter
//!   keep-alive wait) pushes a new entry; the old one becomes stale.
//! - An entry is acted on only if it is still the connection's current entry
//!   (same connection serial, same queued time); anything else is stale and
//!   skipped, like an event for a slot that was since reused.
//!
//! So a busy keep-alive connection costs one heap push and pop per timeout
//! period, not per request, and the event loop's `poll` timeout is simply the
//! time until the heap's earliest entry.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// A connection's deadline and its place in the queue.
#[derive(Clone, Copy, Debug)]
pub struct TimerSlot {
    /// Tells this connection apart from earlier ones that used the same slab
    /// slot (and names it in traces).
    pub serial: u64,
    /// When the connection's current state times out.
    pub deadline: Instant,
    /// The time of this connection's live queue entry, if it has one.
    queued: Option<Instant>,
}

impl TimerSlot {
    /// A slot for connection `serial` that is due at `deadline`, not queued
    /// yet.
    pub fn new(serial: u64, deadline: Instant) -> TimerSlot {
        TimerSlot {
            serial,
            deadline,
            queued: None,
        }
    }
}

/// One queue entry: connection `key` (its slab key) with serial `serial` was
/// due at `at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimerEntry {
    /// When the entry is due (first, so the heap orders by it).
    pub at: Instant,
    /// The connection's serial when the entry was pushed.
    pub serial: u64,
    /// The connection's slab key.
    pub key: usize,
}

/// A worker's timer queue.
#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<TimerEntry>>,
}

impl Timers {
    /// Makes sure connection `key` will be looked at by its deadline: pushes an
    /// entry unless a live one already comes due at or before it.
    pub fn schedule(&mut self, key: usize, slot: &mut TimerSlot) {
        if slot.queued.is_some_and(|queued| queued <= slot.deadline) {
            return;
        }
        slot.queued = Some(slot.deadline);
        self.heap.push(Reverse(TimerEntry {
            at: slot.deadline,
            serial: slot.serial,
            key,
        }));
    }

    /// The earliest time an entry comes due.
    pub fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(entry)| entry.at)
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<TimerEntry> {
        match self.heap.peek() {
            Some(Reverse(entry)) if entry.at <= now => self.heap.pop().map(|Reverse(entry)| entry),
            _ => None,
        }
    }

    /// Number of entries, live and stale.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no entry is queued.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

/// What a popped entry means for the connection now in its slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    /// The entry belongs to an earlier connection or was superseded: ignore.
    Stale,
    /// The deadline moved later since the entry was pushed: schedule again.
    Postponed,
    /// The connection's deadline has passed.
    Expired,
}

impl TimerSlot {
    /// Judges a popped entry against this slot. Any answer but
    /// [`Due::Stale`] consumes the slot's live entry.
    pub fn judge(&mut self, entry: TimerEntry, now: Instant) -> Due {
        if entry.serial != self.serial || self.queued != Some(entry.at) {
            return Due::Stale;
        }
        self.queued = None;
        if self.deadline > now {
            Due::Postponed
        } else {
            Due::Expired
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn later_deadlines_are_lazy_earlier_ones_push() {
        let start = Instant::now();
        let at = |secs| start + Duration::from_secs(secs);
        let mut timers = Timers::default();
        let mut slot = TimerSlot::new(7, at(10));
        timers.schedule(3, &mut slot);
        assert_eq!(timers.len(), 1);

        // Postponing costs nothing...
        slot.deadline = at(30);
        timers.schedule(3, &mut slot);
        assert_eq!(timers.len(), 1);
        // ...and the early entry, when due, says so.
        let entry = timers.pop_due(at(10)).unwrap();
        assert_eq!(slot.judge(entry, at(10)), Due::Postponed);
        timers.schedule(3, &mut slot);
        assert_eq!(timers.next_due(), Some(at(30)));

        // Bringing the deadline forward pushes; the old entry goes stale.
        slot.deadline = at(15);
        timers.schedule(3, &mut slot);
        assert_eq!(timers.len(), 2);
        assert!(timers.pop_due(at(14)).is_none());
        let entry = timers.pop_due(at(15)).unwrap();
        assert_eq!(slot.judge(entry, at(15)), Due::Expired);
        let entry = timers.pop_due(at(30)).unwrap();
        assert_eq!(slot.judge(entry, at(30)), Due::Stale);
        assert!(timers.is_empty());
    }

    #[test]
    fn entries_of_an_earlier_connection_are_stale() {
        let now = Instant::now();
        let mut timers = Timers::default();
        let mut old = TimerSlot::new(1, now);
        timers.schedule(0, &mut old);
        let mut new = TimerSlot::new(2, now);
        let entry = timers.pop_due(now).unwrap();
        assert_eq!(new.judge(entry, now), Due::Stale);
    }
}
