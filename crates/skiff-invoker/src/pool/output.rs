//! The end of an instance's output: what its watcher keeps of stdout and stderr.

use parking_lot::{Mutex, MutexGuard};
use std::collections::VecDeque;
use std::sync::Arc;

/// Most bytes of an instance's output kept: for the error of an instance that fails to
/// start, and the logs of a call on a one-call-at-a-time (`lambda`) instance.
pub(crate) const OUTPUT_TAIL_BYTES: usize = 64 * 1024;
/// Most bytes of the tail quoted in a start error or an exit warning.
const QUOTED_BYTES: usize = 2048;

/// One instance's output, shared by its watcher (which writes it) and its leases (which
/// read a call's logs from it).
pub type Output = Arc<Mutex<OutputTail>>;

/// The end of an instance's output, and how much it has written in all.
#[derive(Debug, Default)]
pub struct OutputTail {
    bytes: VecDeque<u8>,
    total: u64,
    /// Where the latest calls on the instance began, oldest first: their number (counted
    /// from 1) and their mark (see [`OutputTail::begin_call`]).
    calls: VecDeque<CallMark>,
}

/// Where a call on a one-call-at-a-time instance began in its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallMark {
    /// The call's number on the instance, from 1.
    seq: u64,
    /// How many bytes the instance had written when it began.
    at: u64,
}

/// How many call starts an instance's output remembers: enough for every call that can
/// begin on it while the trailing output of one is awaited.
const CALLS_KEPT: usize = 256;

impl OutputTail {
    /// How many bytes the instance has written so far.
    pub fn mark(&self) -> u64 {
        self.total
    }

    /// A call on a one-call-at-a-time instance begins: its log starts at the returned
    /// mark, and the log of the call before it ends there (see [`OutputTail::call_log`]).
    pub fn begin_call(&mut self) -> CallMark {
        let seq = self.calls.back().map_or(1, |last| last.seq + 1);
        let mark = CallMark {
            seq,
            at: self.total,
        };
        if self.calls.len() == CALLS_KEPT {
            self.calls.pop_front();
        }
        self.calls.push_back(mark);
        mark
    }

    /// The log of the call that began at `mark`: what the instance wrote since, up to where
    /// the next call began if one has. Output that trails a call's answer is read a moment
    /// later; by then the instance may serve the next call, whose lines are not this one's
    /// (a line of this call that trails past the next one's start is that call's). Empty
    /// when so many calls began since that the next one's start is forgotten.
    pub fn call_log(&self, mark: CallMark) -> Vec<u8> {
        let end = match self.calls.back() {
            Some(last) if last.seq > mark.seq => {
                match self.calls.iter().find(|c| c.seq == mark.seq + 1) {
                    Some(next) => next.at,
                    None => return Vec::new(),
                }
            }
            _ => self.total,
        };
        self.between(mark.at, end)
    }

    /// What the instance wrote since `mark` (as much of it as is still kept).
    pub fn since(&self, mark: u64) -> Vec<u8> {
        self.between(mark, self.total)
    }

    /// What the instance wrote from mark `from` to mark `to` (as much of it as is kept).
    fn between(&self, from: u64, to: u64) -> Vec<u8> {
        let to = to.min(self.total);
        // Kept bytes start at mark `total - len`.
        let first_kept = self.total - self.bytes.len() as u64;
        let from = from.max(first_kept);
        if from >= to {
            return Vec::new();
        }
        let skip = usize::try_from(from - first_kept).unwrap_or(usize::MAX);
        let take = usize::try_from(to - from).unwrap_or(usize::MAX);
        self.bytes.iter().skip(skip).take(take).copied().collect()
    }

    fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        self.bytes
            .extend(bytes.iter().rev().take(OUTPUT_TAIL_BYTES).rev());
        let excess = self.bytes.len().saturating_sub(OUTPUT_TAIL_BYTES);
        self.bytes.drain(..excess);
    }

    /// The last 2 KiB as text, trimmed.
    fn quoted(&self) -> String {
        let skip = self.bytes.len().saturating_sub(QUOTED_BYTES);
        let bytes: Vec<u8> = self.bytes.iter().skip(skip).copied().collect();
        String::from_utf8_lossy(&bytes).trim().to_string()
    }
}

// The lock is `std`'s because `Lease::output` hands it to callers; a panic while it is held
// leaves plain bytes behind, so a poisoned lock is used as it is.
fn lock(output: &Mutex<OutputTail>) -> MutexGuard<'_, OutputTail> {
    output.lock()
}

/// Appends what the instance wrote.
pub(crate) fn push(output: &Mutex<OutputTail>, bytes: &[u8]) {
    lock(output).push(bytes);
}

/// The end of the output as text, to quote in an error or a warning.
pub(crate) fn quoted(output: &Mutex<OutputTail>) -> String {
    lock(output).quoted()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_bytes_and_counts_them_all() {
        let mut tail = OutputTail::default();
        tail.push(b"hello ");
        let mark = tail.mark();
        tail.push(b"world");
        assert_eq!(tail.since(mark), b"world");
        assert_eq!(tail.since(0), b"hello world");
        tail.push(&vec![b'x'; OUTPUT_TAIL_BYTES + 10]);
        assert_eq!(tail.mark(), 11 + OUTPUT_TAIL_BYTES as u64 + 10);
        assert_eq!(tail.since(0).len(), OUTPUT_TAIL_BYTES);
        assert_eq!(tail.quoted().len(), QUOTED_BYTES);
    }

    #[test]
    fn a_call_log_ends_where_the_next_call_began() {
        let mut tail = OutputTail::default();
        tail.push(b"before\n");
        let first = tail.begin_call();
        tail.push(b"one\n");
        // The answer is sent; the read of trailing output comes later.
        tail.push(b"one, late\n");
        assert_eq!(tail.call_log(first), b"one\none, late\n");
        let second = tail.begin_call();
        tail.push(b"two\n");
        assert_eq!(
            tail.call_log(first),
            b"one\none, late\n",
            "not the next call's"
        );
        assert_eq!(tail.call_log(second), b"two\n");
        // A call that began before any output of the last one arrived.
        let third = tail.begin_call();
        let fourth = tail.begin_call();
        tail.push(b"three, or four\n");
        assert!(tail.call_log(third).is_empty());
        assert_eq!(tail.call_log(fourth), b"three, or four\n");
        assert_eq!(tail.call_log(second), b"two\n");
        // Only what is still kept.
        tail.push(&vec![b'x'; OUTPUT_TAIL_BYTES]);
        assert!(tail.call_log(first).is_empty());
        assert_eq!(tail.call_log(fourth).len(), OUTPUT_TAIL_BYTES);
    }

    #[test]
    fn a_call_whose_next_start_is_forgotten_adds_nothing() {
        let mut tail = OutputTail::default();
        let first = tail.begin_call();
        tail.push(b"one\n");
        for _ in 0..=CALLS_KEPT {
            tail.begin_call();
            tail.push(b"other\n");
        }
        assert!(tail.call_log(first).is_empty());
    }

    #[test]
    fn quotes_trimmed_text() {
        let output = Output::default();
        push(&output, b"  boom\n");
        assert_eq!(quoted(&output), "boom");
    }
}
