//! File descriptors: the daemon's budget of open files.
//!
//! Everything skiff does holds descriptors: a call its client's connection and its
//! connections to the engine (an exec call its attachment and its wait; an http call its
//! connection to the instance), a prepared exec container its attachment. A daemon that runs
//! out of them fails calls (`start_failed`, "Too many open files") and cannot accept
//! connections. So the daemon raises its soft limit to the hard one at start
//! ([`raise_open_files_limit`]), and near the limit it refuses new work rather than failing
//! it: calls get 429 with `Retry-After`, the async dispatcher leaves calls queued, and
//! prepared containers are not replaced.
//!
//! [`FdBudget`] knows the descriptors open, from a count of `/proc/self/fd` that a task of
//! the platform refreshes every [`SAMPLE_PERIOD`], and the descriptors promised to work
//! admitted meanwhile: each call holds an [`FdReservation`] of [`FDS_PER_CALL`] while it
//! runs, each preparation one of [`FDS_PER_PREPARE`]. (A running call is thus counted twice,
//! once sampled and once reserved: on the safe side.) Admission is [`admits`], a pure rule:
//! work fits while it leaves at least [`MIN_FREE`] descriptors, or a tenth of the limit if
//! that is more, free.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often the descriptors in use are counted.
pub const SAMPLE_PERIOD: Duration = Duration::from_millis(250);
/// Descriptors a call may hold while it runs (its client's connection, its engine
/// connections or its connection to an instance, and one to spare).
pub(crate) const FDS_PER_CALL: u64 = 4;
/// Descriptors a container preparation may hold (its attachment, one engine request).
pub(crate) const FDS_PER_PREPARE: u64 = 2;
/// The fewest descriptors left free; a tenth of the limit when that is more.
pub const MIN_FREE: u64 = 64;

/// Whether work needing `cost` more descriptors may start, with `open` descriptors open,
/// `reserved` promised to work under way, and a limit of `limit`.
pub fn admits(open: u64, reserved: u64, cost: u64, limit: u64) -> bool {
    let used = open.saturating_add(reserved).saturating_add(cost);
    limit.saturating_sub(used) >= free_floor(limit)
}

/// The descriptors kept free under `limit`.
pub fn free_floor(limit: u64) -> u64 {
    (limit / 10).max(MIN_FREE)
}

/// Descriptors are short: work that needed them was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Short {
    /// Descriptors open or promised.
    pub in_use: u64,
    /// The limit.
    pub limit: u64,
}

#[derive(Debug)]
struct Counts {
    open: AtomicU64,
    limit: AtomicU64,
    reserved: AtomicU64,
}

/// The process's descriptors: a sample of those open, the limit, and those promised.
/// Cheap to clone: clones share the counts.
#[derive(Debug, Clone)]
pub struct FdBudget(Arc<Counts>);

impl Default for FdBudget {
    fn default() -> Self {
        FdBudget::new()
    }
}

impl FdBudget {
    /// A budget for this process, sampled once now.
    pub fn new() -> FdBudget {
        let budget = FdBudget(Arc::new(Counts {
            open: AtomicU64::new(0),
            limit: AtomicU64::new(u64::MAX),
            reserved: AtomicU64::new(0),
        }));
        budget.sample();
        budget
    }

    /// Counts the descriptors open now and reads the limit again. Where `/proc/self/fd`
    /// cannot be read, the last count stays (0 at first: nothing is ever refused).
    pub fn sample(&self) {
        if let Some(open) = open_descriptors() {
            self.0.open.store(open, Ordering::Release);
        }
        self.0.limit.store(soft_limit(), Ordering::Release);
    }

    /// Descriptors open (at the last sample) and the limit.
    pub fn figures(&self) -> (u64, u64) {
        (
            self.0.open.load(Ordering::Acquire),
            self.0.limit.load(Ordering::Acquire),
        )
    }

    /// Whether work needing `cost` descriptors would be admitted now.
    pub(crate) fn admits(&self, cost: u64) -> Result<(), Short> {
        let (open, limit) = self.figures();
        let reserved = self.0.reserved.load(Ordering::Acquire);
        if admits(open, reserved, cost, limit) {
            Ok(())
        } else {
            Err(Short {
                in_use: open.saturating_add(reserved),
                limit,
            })
        }
    }

    /// Promises `cost` descriptors to work that starts now, if they fit; the promise lasts
    /// as long as the reservation.
    pub(crate) fn try_reserve(&self, cost: u64) -> Result<FdReservation, Short> {
        let (open, limit) = self.figures();
        let mut reserved = self.0.reserved.load(Ordering::Acquire);
        loop {
            if !admits(open, reserved, cost, limit) {
                return Err(Short {
                    in_use: open.saturating_add(reserved),
                    limit,
                });
            }
            match self.0.reserved.compare_exchange_weak(
                reserved,
                reserved.saturating_add(cost),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Ok(FdReservation {
                        budget: self.clone(),
                        cost,
                    })
                }
                Err(now) => reserved = now,
            }
        }
    }
}

/// Descriptors promised to one piece of work, given back when dropped.
#[derive(Debug)]
pub struct FdReservation {
    budget: FdBudget,
    cost: u64,
}

impl Drop for FdReservation {
    fn drop(&mut self) {
        self.budget
            .0
            .reserved
            .fetch_sub(self.cost, Ordering::AcqRel);
    }
}

/// The descriptors this process has open, but for the one that counts them.
fn open_descriptors() -> Option<u64> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    Some((entries.count() as u64).saturating_sub(1))
}

/// The soft limit of open files (`u64::MAX` when unlimited).
fn soft_limit() -> u64 {
    use rustix::process::{getrlimit, Resource};
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// Raises the soft limit of open files to the hard limit; returns both limits as they were
/// before and the soft limit after.
pub fn raise_open_files_limit() -> std::io::Result<OpenFilesLimit> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let before = getrlimit(Resource::Nofile);
    if let (Some(soft), Some(hard)) = (before.current, before.maximum) {
        if soft < hard {
            setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(hard),
                    maximum: Some(hard),
                },
            )?;
        }
    }
    Ok(OpenFilesLimit {
        was: before.current.unwrap_or(u64::MAX),
        now: soft_limit(),
    })
}

/// The soft limit of open files before and after [`raise_open_files_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFilesLimit {
    /// Before.
    pub was: u64,
    /// After.
    pub now: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(open: u64, limit: u64) -> FdBudget {
        FdBudget(Arc::new(Counts {
            open: AtomicU64::new(open),
            limit: AtomicU64::new(limit),
            reserved: AtomicU64::new(0),
        }))
    }

    #[test]
    fn work_fits_while_it_leaves_the_floor_free() {
        // A limit of 1024 keeps 102 free (a tenth); 256 keeps 64 (the minimum).
        assert_eq!(free_floor(1024), 102);
        assert_eq!(free_floor(256), 64);
        assert_eq!(free_floor(100), 64);
        assert!(admits(900, 18, 4, 1024)); // 922 used, 102 free
        assert!(!admits(900, 19, 4, 1024)); // 923 used, 101 free
        assert!(admits(100, 88, 4, 256)); // 192 used, 64 free
        assert!(!admits(100, 89, 4, 256));
        // Past the limit (a sample taken during a burst) or with a tiny limit: no overflow,
        // nothing admitted.
        assert!(!admits(5000, 0, 4, 1024));
        assert!(!admits(u64::MAX, u64::MAX, 4, 1024));
        assert!(!admits(0, 0, 1, 60));
        // Unlimited: everything fits.
        assert!(admits(1 << 40, 1 << 40, 4, u64::MAX));
    }

    #[test]
    fn reservations_count_until_dropped() {
        let budget = budget(100, 256);
        // 256 - 64 free - 100 open = 92 promisable: 23 calls of 4.
        let held: Vec<FdReservation> = (0..23)
            .map(|_| budget.try_reserve(4).expect("fits"))
            .collect();
        let short = budget.try_reserve(4).expect_err("full");
        assert_eq!(
            short,
            Short {
                in_use: 192,
                limit: 256
            }
        );
        assert!(budget.admits(4).is_err());
        drop(held);
        assert!(budget.admits(4).is_ok());
        assert!(budget.try_reserve(92).is_ok());
    }

    #[test]
    fn concurrent_reservations_never_overcommit() {
        let budget = budget(0, 164);
        let granted: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let budget = budget.clone();
                    scope.spawn(move || {
                        let mut mine = Vec::new();
                        while let Ok(r) = budget.try_reserve(4) {
                            mine.push(r);
                        }
                        let n = mine.len();
                        std::mem::forget(mine);
                        n
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("thread")).sum()
        });
        assert_eq!(granted, 25, "(164 - 64) / 4");
    }

    #[test]
    fn this_process_is_sampled() {
        let budget = FdBudget::new();
        let (open, limit) = budget.figures();
        assert!(open >= 3, "stdin, stdout, stderr at least: {open}");
        assert!(limit > open);
    }
}
