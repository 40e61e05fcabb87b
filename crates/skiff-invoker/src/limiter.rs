//! The global call limit: at most N calls at once, at most M waiting, the rest refused.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a slot was not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The queue is full.
    QueueFull { running: usize, queued: usize },
    /// The caller waited longer than it may.
    TimedOut { running: usize, queued: usize },
}

#[derive(Debug)]
pub(crate) struct Limiter {
    slots: Arc<Semaphore>,
    max_running: usize,
    queued: AtomicUsize,
    max_queued: usize,
}

/// Decrements the queue count when dropped, however the wait ends.
struct QueuedGuard<'a>(&'a AtomicUsize);

impl Drop for QueuedGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Limiter {
    pub(crate) fn new(max_running: usize, max_queued: usize) -> Self {
        Limiter {
            slots: Arc::new(Semaphore::new(max_running.max(1))),
            max_running: max_running.max(1),
            queued: AtomicUsize::new(0),
            max_queued,
        }
    }

    pub(crate) fn running(&self) -> usize {
        self.max_running - self.slots.available_permits()
    }

    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// A slot now, or after waiting in the queue for at most `max_wait`.
    pub(crate) async fn acquire(
        &self,
        max_wait: Duration,
    ) -> Result<OwnedSemaphorePermit, Refused> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let before = self.queued.fetch_add(1, Ordering::AcqRel);
        let _guard = QueuedGuard(&self.queued);
        if before >= self.max_queued {
            return Err(Refused::QueueFull {
                running: self.running(),
                queued: before,
            });
        }
        match tokio::time::timeout(max_wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; a closed one would mean no slots ever again.
            Ok(Err(_)) | Err(_) => Err(Refused::TimedOut {
                running: self.running(),
                queued: self.queued(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn calls_beyond_the_slots_wait_and_beyond_the_queue_are_refused() {
        let limiter = Arc::new(Limiter::new(2, 1));
        let a = limiter
            .acquire(Duration::from_secs(1))
            .await
            .expect("slot 1");
        let _b = limiter
            .acquire(Duration::from_secs(1))
            .await
            .expect("slot 2");
        assert_eq!(limiter.running(), 2);

        let waiting = {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.acquire(Duration::from_secs(10)).await.is_ok() })
        };
        tokio::task::yield_now().await;
        assert_eq!(limiter.queued(), 1);
        let refused = limiter
            .acquire(Duration::from_secs(10))
            .await
            .expect_err("queue full");
        assert!(
            matches!(refused, Refused::QueueFull { queued: 1, .. }),
            "{refused:?}"
        );

        drop(a);
        assert!(
            waiting.await.expect("join"),
            "the queued call got the freed slot"
        );
        assert_eq!(limiter.queued(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_queued_call_gives_up_after_its_wait() {
        let limiter = Limiter::new(1, 10);
        let _held = limiter.acquire(Duration::from_secs(1)).await.expect("slot");
        let refused = limiter
            .acquire(Duration::from_secs(5))
            .await
            .expect_err("timed out");
        assert!(matches!(refused, Refused::TimedOut { .. }));
        assert_eq!(limiter.queued(), 0, "the queue count is restored");
    }
}
