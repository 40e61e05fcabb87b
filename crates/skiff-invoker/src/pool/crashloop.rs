//! Instances that keep failing are restarted ever more slowly, as Kubernetes restarts a
//! container in `CrashLoopBackOff`.
//!
//! A failure is a start that failed (the instance could not be created, exited before it
//! was ready, or was not ready within its startup timeout) or an instance that exited by
//! itself before it had been ready for [`STABLE_AFTER`]. After the first failure of a run,
//! the next start may come at once; after the second, 1 s later, then 2 s, 4 s, and so on up
//! to 5 minutes. While a function waits like this it is *backing off*: no instance of it
//! starts, and a call that finds no instance to wait for fails at once with the last
//! error. An instance that started after the last failure and stays ready for
//! [`STABLE_AFTER`] ends the run; so does a new version. Plain data, no clock: every
//! instant is given.

use crate::backoff::Backoff;
use std::time::{Duration, Instant};

/// The waits before a start after the second failure in a row, the third, ...: 1 s,
/// doubling, at most 5 minutes.
const DELAYS: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));

/// An instance ready this long is sound: its exit is not a crash loop, and, if it started
/// after the last failure, the run of failures is over.
pub const STABLE_AFTER: Duration = Duration::from_secs(60);

/// One function's run of failures.
#[derive(Debug, Clone, Default)]
pub(super) struct CrashLoop {
    /// Failures in a row.
    failures: u32,
    /// When the last one happened.
    failed_at: Option<Instant>,
    /// No instance starts before then.
    retry_at: Option<Instant>,
    /// What the last one said.
    last_error: Option<String>,
}

impl CrashLoop {
    /// A failure at `now`. Returns when the next start may be made, if the function now
    /// begins to wait (a failure while it already waits only updates the error: starts
    /// made before the wait began do not lengthen it).
    pub(super) fn failed(&mut self, now: Instant, error: String) -> Option<Instant> {
        self.last_error = Some(error);
        self.failed_at = Some(now);
        if self.backing_off(now) {
            return None;
        }
        self.failures = self.failures.saturating_add(1);
        if self.failures < 2 {
            self.retry_at = None;
            return None;
        }
        let at = now + DELAYS.delay(self.failures - 1);
        self.retry_at = Some(at);
        Some(at)
    }

    /// Whether no instance may start at `now`.
    pub(super) fn backing_off(&self, now: Instant) -> bool {
        self.retry_at.is_some_and(|at| now < at)
    }

    /// An instance ready since `ready_since` is still up at `now`. Once it has been for
    /// [`STABLE_AFTER`], and it started after the last failure, the run is over.
    pub(super) fn still_ready(&mut self, ready_since: Instant, now: Instant) {
        let after_failures = self.failed_at.is_none_or(|at| ready_since >= at);
        if self.failures > 0
            && after_failures
            && now.saturating_duration_since(ready_since) >= STABLE_AFTER
        {
            *self = CrashLoop::default();
        }
    }

    /// Failures in a row.
    pub(super) fn failures(&self) -> u32 {
        self.failures
    }

    /// What the last failure said.
    pub(super) fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// When the next start may be made, while backing off at `now`.
    pub(super) fn retry_at(&self, now: Instant) -> Option<Instant> {
        self.retry_at.filter(|_| self.backing_off(now))
    }

    /// What a call is told while the function backs off at `now`.
    pub(super) fn refusal(&self, function: &str, now: Instant) -> String {
        let wait = self
            .retry_at
            .map_or(Duration::ZERO, |at| at.saturating_duration_since(now));
        format!(
            "instances of `{function}` keep failing ({} times in a row); the next start is in {}s. The last failure: {}",
            self.failures,
            wait.as_secs_f64().ceil(),
            self.last_error.as_deref().unwrap_or("unknown")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn the_first_failure_retries_at_once_then_waits_double_up_to_five_minutes() {
        let t0 = Instant::now();
        let mut c = CrashLoop::default();
        assert_eq!(c.failed(t0, "boom".into()), None);
        assert!(!c.backing_off(t0));
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..12 {
            let at = c.failed(now, "boom".into()).expect("a wait begins");
            assert!(c.backing_off(now));
            assert!(!c.backing_off(at));
            waits.push(at.duration_since(now).as_secs());
            now = at;
        }
        assert_eq!(
            waits,
            [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300],
            "Kubernetes-like, capped at 5 minutes"
        );
        assert_eq!(c.failures(), 13);
    }

    #[test]
    fn failures_while_waiting_do_not_lengthen_the_wait() {
        let t0 = Instant::now();
        let mut c = CrashLoop::default();
        c.failed(t0, "one".into());
        let at = c.failed(t0, "two".into()).expect("waits");
        assert_eq!(
            c.failed(t0 + Duration::from_millis(500), "three".into()),
            None
        );
        assert_eq!(c.retry_at(t0), Some(at));
        assert_eq!(c.failures(), 2);
        assert_eq!(c.last_error(), Some("three"), "the error is the latest");
        let message = c.refusal("web", t0);
        assert!(message.contains("`web`"), "{message}");
        assert!(message.contains("2 times in a row"), "{message}");
        assert!(message.contains("in 1s"), "{message}");
        assert!(message.ends_with("The last failure: three"), "{message}");
        assert_eq!(c.retry_at(at), None, "no longer waiting");
    }

    #[test]
    fn an_instance_ready_for_a_minute_since_the_last_failure_ends_the_run() {
        let t0 = Instant::now();
        let mut c = CrashLoop::default();
        c.failed(t0 + secs(1), "one".into());
        c.failed(t0 + secs(1), "two".into());
        // An instance that was already up before the failures proves nothing.
        c.still_ready(t0, t0 + secs(600));
        assert_eq!(c.failures(), 2);
        // One started after them, ready for less than a minute, neither.
        c.still_ready(t0 + secs(3), t0 + secs(62));
        assert_eq!(c.failures(), 2);
        c.still_ready(t0 + secs(3), t0 + secs(63));
        assert_eq!(c.failures(), 0);
        assert_eq!(c.last_error(), None);
        assert_eq!(c.failed(t0 + secs(70), "again".into()), None, "a new run");
    }
}
