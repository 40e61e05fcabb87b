//! Async calls: accepted into the store's durable queue, run by a dispatcher under the
//! global call limit, retried with exponential backoff and jitter, dead after the last
//! attempt. Delivery is at least once: a call running when the daemon was killed runs again
//! after the restart.

use crate::error::PlatformError;
use crate::platform::{InvokeRequest, Platform};
use chrono::Utc;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use http_body_util::BodyExt;
use skiff_core::CallErrorType;
use skiff_store::Claimed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use uuid::Uuid;

/// Most calls claimed from the store at once.
const CLAIM_BATCH: u32 = 256;
/// How often the dispatcher looks at the queue when nothing wakes it.
const POLL: Duration = Duration::from_millis(200);

/// Most calls committed in one enqueue transaction.
const ENQUEUE_BATCH: usize = 512;

/// One call waiting to be made durable, and who waits for it.
#[derive(Debug)]
struct Pending {
    record: skiff_core::CallRecord,
    payload: skiff_store::Payload,
    done: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// Group commit of accepted async calls: callers hand their call to one writer, which
/// stores whatever is waiting in one transaction and answers each caller once it is
/// committed. Bounded channel; the writer stops at shutdown (cancel).
#[derive(Debug, Clone)]
pub(crate) struct Enqueuer {
    tx: tokio::sync::mpsc::Sender<Pending>,
}

impl Enqueuer {
    pub(crate) fn start(
        store: skiff_store::Store,
        tracker: &tokio_util::task::TaskTracker,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Enqueuer {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Pending>(4 * ENQUEUE_BATCH);
        tracker.spawn(async move {
            loop {
                let first = tokio::select! {
                    _ = cancel.cancelled() => return,
                    first = rx.recv() => match first {
                        Some(first) => first,
                        None => return,
                    },
                };
                let mut batch = vec![first];
                while batch.len() < ENQUEUE_BATCH {
                    match rx.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let calls: Vec<(skiff_core::CallRecord, skiff_store::Payload)> = batch
                    .iter()
                    .map(|p| (p.record.clone(), p.payload.clone()))
                    .collect();
                let result = store.enqueue_all(&calls).await.map_err(|e| e.to_string());
                for pending in batch {
                    let _ = pending.done.send(result.clone());
                }
            }
        });
        Enqueuer { tx }
    }

    /// Makes one call durable; returns once it is committed.
    pub(crate) async fn enqueue(
        &self,
        record: skiff_core::CallRecord,
        payload: skiff_store::Payload,
    ) -> Result<(), PlatformError> {
        let (done, wait) = tokio::sync::oneshot::channel();
        self.tx
            .send(Pending {
                record,
                payload,
                done,
            })
            .await
            .map_err(|_| PlatformError::ShuttingDown)?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(PlatformError::Setup {
                what: "storing an async call",
                message,
            }),
            Err(_) => Err(PlatformError::ShuttingDown),
        }
    }
}

/// Reads a body to its end, keeping at most `cap` bytes of it; returns them and the
/// body's whole size.
async fn read_capped(mut body: crate::http::Body, cap: usize) -> (Vec<u8>, u64) {
    let mut kept = Vec::new();
    let mut size = 0u64;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Ok(data) = frame.into_data() {
            size += data.len() as u64;
            let room = cap.saturating_sub(kept.len());
            kept.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    (kept, size)
}

/// The delay before attempt `attempt + 1`: `base * 2^(attempt - 1)`, at most 5 minutes,
/// with up to 20% of jitter either way.
pub(crate) fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let capped = exp.min(Duration::from_secs(300));
    let noise = (Uuid::new_v4().as_u128() % 4001) as f64 / 10_000.0 - 0.2;
    capped.mul_f64(1.0 + noise)
}

impl Platform {
    /// Runs the dispatcher until shutdown.
    pub(crate) fn spawn_dispatcher(self: &Arc<Self>) {
        let platform = self.clone();
        let slots = Arc::new(Semaphore::new(self.config().max_concurrent_calls.max(1)));
        self.background().spawn(async move {
            loop {
                tokio::select! {
                    _ = platform.cancelled() => return,
                    _ = platform.queue_wakeup() => {}
                    _ = tokio::time::sleep(POLL) => {}
                }
                let free = u32::try_from(slots.available_permits()).unwrap_or(u32::MAX);
                // Near the limit of open files, calls stay queued until descriptors are free.
                if free == 0 || !platform.is_accepting() || !platform.fds_admit_a_call() {
                    continue;
                }
                let claimed = match platform
                    .store()
                    .claim(Utc::now(), free.min(CLAIM_BATCH))
                    .await
                {
                    Ok(claimed) => claimed,
                    Err(err) => {
                        tracing::error!(%err, "cannot read the call queue");
                        continue;
                    }
                };
                for call in claimed {
                    let Ok(permit) = slots.clone().acquire_owned().await else {
                        return;
                    };
                    let platform = platform.clone();
                    platform.background().clone().spawn(async move {
                        platform.run_queued(call).await;
                        drop(permit);
                    });
                }
            }
        });
    }

    async fn run_queued(self: &Arc<Self>, call: Claimed) {
        let Claimed { record, payload } = call;
        let id = record.id;
        let attempt = record.attempt.max(1);
        let has_callback = payload.callback_url.is_some();
        let expires_at = payload.expires_at;
        if expires_at.is_some_and(|at| at <= Utc::now()) {
            let message = match &record.error_message {
                Some(last) => format!("older than its max_event_age; last error: {last}"),
                None => "older than its max_event_age before it could run".to_string(),
            };
            self.end_dead(id, attempt, CallErrorType::Expired, message)
                .await;
            if has_callback {
                self.callbacks().notify(id).await;
            }
            return;
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &payload.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::try_from(name.as_str()),
                HeaderValue::from_str(value),
            ) {
                headers.append(name, value);
            }
        }
        let request = InvokeRequest {
            trigger: record.trigger,
            method: Method::from_bytes(payload.method.as_bytes()).unwrap_or(Method::POST),
            path: payload.path,
            query: payload.query,
            headers,
            body: crate::http::full(payload.body),
            call_id: Some(id),
            attempt,
            caller: None,
        };
        let failure = match self.invoke(&record.function, request).await {
            Ok(outcome) => {
                let content_type = outcome
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                // An http call's record ends with its body.
                let (kept, size) =
                    read_capped(outcome.body, self.config().async_result_bytes).await;
                let result = skiff_store::StoredResult {
                    status_code: outcome.status.as_u16(),
                    content_type,
                    size,
                    body: kept,
                };
                if let Err(err) = self.store().put_result(id, &result).await {
                    tracing::error!(%err, call = %id, "cannot store a call's result");
                }
                if outcome.status.is_server_error() {
                    // Recorded as a function error: retried like one.
                    Some((
                        CallErrorType::FunctionError,
                        format!("the function answered {}", outcome.status),
                    ))
                } else {
                    if has_callback {
                        self.flush_records().await;
                        self.callbacks().notify(id).await;
                    }
                    return;
                }
            }
            // Stopped by the daemon's shutdown: not an attempt, it runs again after the restart.
            Err(PlatformError::CallFailed {
                error_type: CallErrorType::Interrupted,
                ..
            }) if !self.is_accepting() => {
                self.requeue_call(id, attempt, Duration::ZERO, None).await;
                return;
            }
            Err(PlatformError::CallFailed {
                error_type,
                message,
                ..
            }) => Some((error_type, message)),
            Err(err @ PlatformError::LoopDetected { .. }) => {
                self.flush_records().await;
                self.end_dead(id, attempt, CallErrorType::Rejected, err.to_string())
                    .await;
                if has_callback {
                    self.callbacks().notify(id).await;
                }
                return;
            }
            Err(PlatformError::FunctionNotFound { name }) => {
                self.flush_records().await;
                let message = format!("function `{name}` does not exist any more");
                self.end_dead(id, attempt, CallErrorType::Rejected, message)
                    .await;
                if has_callback {
                    self.callbacks().notify(id).await;
                }
                return;
            }
            Err(PlatformError::Overloaded { .. })
            | Err(PlatformError::NearFdLimit { .. })
            | Err(PlatformError::ShuttingDown) => {
                // Not an attempt: run it again later.
                self.requeue_call(id, attempt, Duration::from_millis(500), None)
                    .await;
                return;
            }
            Err(other) => Some((CallErrorType::EngineError, other.to_string())),
        };
        self.flush_records().await;
        let max_attempts = self
            .function(&record.function)
            .map_or(self.config().async_max_attempts, |f| self.max_attempts(&f));
        let delay = backoff(self.config().async_retry_base, attempt);
        let retry_at =
            Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        if attempt < max_attempts && expires_at.is_none_or(|at| retry_at < at) {
            self.requeue_call(id, attempt + 1, delay, failure).await;
            return;
        }
        if let Err(err) = self.store().kill_call(id).await {
            tracing::error!(%err, call = %id, "cannot mark a call dead");
        }
        if has_callback {
            self.callbacks().notify(id).await;
        }
    }

    async fn requeue_call(
        &self,
        id: Uuid,
        attempt: u32,
        delay: Duration,
        error: Option<(CallErrorType, String)>,
    ) {
        let not_before =
            Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        if let Err(err) = self.store().requeue(id, attempt, not_before, error).await {
            tracing::error!(%err, call = %id, "cannot put a call back in the queue");
        }
    }

    async fn end_dead(&self, id: Uuid, attempt: u32, kind: CallErrorType, message: String) {
        if let Ok(Some(mut record)) = self.store().get_call(id).await {
            record.status = skiff_core::CallStatus::Failed;
            record.attempt = attempt;
            record.error_type = Some(kind);
            record.error_message = Some(message);
            record.finished_at = Some(Utc::now());
            let _ = self
                .store()
                .write_calls(&[skiff_store::CallWrite { record, logs: None }])
                .await;
        }
        if let Err(err) = self.store().kill_call(id).await {
            tracing::error!(%err, call = %id, "cannot mark a call dead");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_secs(1);
        for (attempt, expected) in [(1, 1.0), (2, 2.0), (3, 4.0), (10, 300.0), (40, 300.0)] {
            let d = backoff(base, attempt).as_secs_f64();
            assert!(
                d >= expected * 0.8 - 1e-9 && d <= expected * 1.2 + 1e-9,
                "attempt {attempt}: {d}"
            );
        }
    }
}
