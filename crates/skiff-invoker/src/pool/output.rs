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
}

impl OutputTail {
    /// How many bytes the instance has written so far.
    pub fn mark(&self) -> u64 {
        self.total
    }

    /// What the instance wrote since `mark` (as much of it as is still kept).
    pub fn since(&self, mark: u64) -> Vec<u8> {
        let new = usize::try_from(self.total.saturating_sub(mark)).unwrap_or(usize::MAX);
        let kept = new.min(self.bytes.len());
        self.bytes
            .iter()
            .skip(self.bytes.len() - kept)
            .copied()
            .collect()
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
    fn quotes_trimmed_text() {
        let output = Output::default();
        push(&output, b"  boom\n");
        assert_eq!(quoted(&output), "boom");
    }
}
