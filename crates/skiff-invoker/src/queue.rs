//! Async calls going into the store's durable queue: the group-committing [`Enqueuer`], and
//! the retry policy ([`AsyncPolicy`]) that the dispatcher and the cron runner apply.

use crate::backoff::Backoff;
use crate::config::PlatformConfig;
use crate::error::PlatformError;
use crate::group_commit::{GroupCommit, Refused};
use skiff_core::Function;
use std::time::Duration;

/// Most calls committed in one enqueue transaction.
const ENQUEUE_BATCH: usize = 512;

/// Group commit of accepted async calls ([`GroupCommit`]): whatever calls are waiting, up to
/// [`ENQUEUE_BATCH`], are stored in one transaction, and each caller is answered once it has
/// committed.
#[derive(Debug, Clone)]
pub(crate) struct Enqueuer {
    commits: GroupCommit<(skiff_core::CallRecord, skiff_store::Payload)>,
}

impl Enqueuer {
    pub(crate) fn start(
        store: skiff_store::Store,
        tracker: &tokio_util::task::TaskTracker,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Enqueuer {
        let commits = GroupCommit::start(ENQUEUE_BATCH, tracker, cancel, move |calls| {
            let store = store.clone();
            async move { store.enqueue_all(&calls).await.map_err(|e| e.to_string()) }
        });
        Enqueuer { commits }
    }

    /// Makes one call durable; returns once it is committed.
    pub(crate) async fn enqueue(
        &self,
        record: skiff_core::CallRecord,
        payload: skiff_store::Payload,
    ) -> Result<(), PlatformError> {
        match self.commits.submit((record, payload)).await {
            Ok(()) => Ok(()),
            Err(Refused::Closed(_)) => Err(PlatformError::ShuttingDown),
            Err(Refused::Failed(message)) => Err(PlatformError::Setup {
                what: "storing an async call",
                message,
            }),
        }
    }
}

/// How async calls are retried and given up, from the daemon's settings and each
/// function's own.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AsyncPolicy {
    /// Attempts of a call whose function sets no `retries` (1 + retries).
    pub(crate) max_attempts: u32,
    /// Delays between attempts: the base doubling, at most 5 minutes, 20% jitter.
    pub(crate) retry: Backoff,
    /// Age of a call whose function sets no `max_event_age`.
    pub(crate) max_event_age: Duration,
    /// Most bytes of a call's answer kept as its result.
    pub(crate) result_bytes: usize,
}

/// The longest wait between two attempts of an async call.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);

impl AsyncPolicy {
    pub(crate) fn new(config: &PlatformConfig) -> Self {
        AsyncPolicy {
            max_attempts: config.async_max_attempts,
            retry: Backoff::new(config.async_retry_base, MAX_RETRY_DELAY).with_jitter(0.2),
            max_event_age: config.async_max_event_age,
            result_bytes: config.async_result_bytes,
        }
    }

    /// How old an async call of `function` may get.
    pub(crate) fn max_event_age(&self, function: &Function) -> chrono::Duration {
        to_chrono(
            function
                .config
                .max_event_age_ms
                .map_or(self.max_event_age, Duration::from_millis),
        )
    }

    /// How old an async call may get, its function gone or unknown.
    pub(crate) fn default_max_event_age(&self) -> chrono::Duration {
        to_chrono(self.max_event_age)
    }

    /// Attempts an async call of `function` gets (1 + retries).
    pub(crate) fn max_attempts(&self, function: Option<&Function>) -> u32 {
        function
            .and_then(|f| f.config.retries)
            .map_or(self.max_attempts, |r| r.saturating_add(1))
            .max(1)
    }
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_from_the_base_with_jitter_up_to_five_minutes() {
        let mut config = PlatformConfig::new(std::path::PathBuf::from("/tmp"));
        config.async_retry_base = Duration::from_secs(1);
        let policy = AsyncPolicy::new(&config);
        for (attempt, expected) in [(1, 1.0), (2, 2.0), (3, 4.0), (10, 300.0), (40, 300.0)] {
            let d = policy.retry.delay(attempt).as_secs_f64();
            assert!(
                d >= expected * 0.8 - 1e-9 && d <= expected * 1.2 + 1e-9,
                "attempt {attempt}: {d}"
            );
        }
        assert_eq!(policy.max_attempts(None), 3);
    }
}
