//! The async dispatcher: runs the calls of the durable queue under the global call limit,
//! retries failed attempts with exponential backoff and jitter, and declares a call dead
//! after its last attempt. Delivery is at least once: a call running when the daemon was
//! killed runs again after the restart.

use crate::callback::Callbacks;
use crate::error::PlatformError;
use crate::group_commit::{GroupCommit, Refused};
use crate::invoke::{InvokeRequest, Invoker};
use crate::queue::AsyncPolicy;
use crate::recorder::Recorder;
use chrono::Utc;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use http_body_util::BodyExt;
use skiff_core::CallErrorType;
use skiff_store::{Claimed, Store};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

/// Most calls claimed from the store at once.
const CLAIM_BATCH: u32 = 256;
/// How often the dispatcher looks at the queue when nothing wakes it.
const POLL: Duration = Duration::from_millis(200);

/// Most results committed in one transaction.
const RESULT_BATCH: usize = 256;

/// The group commit of queued calls' results: those of calls ending at the same moment
/// share a transaction (one per call held a backlog's drain back).
pub(crate) fn results_writer(
    store: Store,
    tracker: &TaskTracker,
    cancel: CancellationToken,
) -> GroupCommit<(Uuid, skiff_store::StoredResult)> {
    GroupCommit::start(RESULT_BATCH, tracker, cancel, move |results| {
        let store = store.clone();
        async move { store.put_results(&results).await.map_err(|e| e.to_string()) }
    })
}

/// Reads a body to its end, keeping at most `cap` bytes of it; returns them and the
/// body's whole size.
async fn read_capped(mut body: crate::body::Body, cap: usize) -> (Vec<u8>, u64) {
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

/// The queued calls whose run the dispatcher has not finished: a call can be recorded
/// `succeeded` a moment before its answer is stored. A reader who sees such a call final
/// waits for it to settle, so that it reads the record and its result together.
#[derive(Debug, Default)]
pub(crate) struct Unsettled {
    ids: parking_lot::Mutex<HashSet<Uuid>>,
    settled: Notify,
}

impl Unsettled {
    /// Marks `id` unsettled until the returned guard is dropped.
    fn begin(self: &Arc<Self>, id: Uuid) -> SettleGuard {
        self.ids.lock().insert(id);
        SettleGuard {
            unsettled: self.clone(),
            id,
        }
    }

    /// Waits, for at most `bound`, until `id` is settled.
    pub(crate) async fn settled(&self, id: Uuid, bound: Duration) {
        let _ = tokio::time::timeout(bound, async {
            loop {
                let settled = self.settled.notified();
                if !self.ids.lock().contains(&id) {
                    return;
                }
                settled.await;
            }
        })
        .await;
    }

    /// Whether `id` is being run.
    pub(crate) fn contains(&self, id: Uuid) -> bool {
        self.ids.lock().contains(&id)
    }
}

/// The calls of each function the dispatcher runs now: a claim takes no more calls of a
/// function than its instances can serve at once, so that a claimed call does not wait for
/// an instance past its start budget (and go back to the queue).
#[derive(Debug, Default)]
pub(crate) struct FunctionLoad {
    running: HashMap<String, usize>,
}

impl FunctionLoad {
    /// The room of each bounded function, from its capacity and its calls running.
    fn rooms(&self, capacities: &[(String, usize)]) -> HashMap<String, u32> {
        capacities
            .iter()
            .map(|(function, capacity)| {
                let running = self.running.get(function).copied().unwrap_or(0);
                let room = capacity.saturating_sub(running);
                (function.clone(), u32::try_from(room).unwrap_or(u32::MAX))
            })
            .collect()
    }

    fn started(&mut self, function: &str) {
        *self.running.entry(function.to_string()).or_default() += 1;
    }

    fn ended(&mut self, function: &str) {
        if let Some(running) = self.running.get_mut(function) {
            *running = running.saturating_sub(1);
            if *running == 0 {
                self.running.remove(function);
            }
        }
    }
}

/// Counts a claimed call as running until dropped.
struct Running {
    load: Arc<parking_lot::Mutex<FunctionLoad>>,
    function: String,
}

impl Running {
    fn new(load: &Arc<parking_lot::Mutex<FunctionLoad>>, function: &str) -> Self {
        load.lock().started(function);
        Running {
            load: load.clone(),
            function: function.to_string(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.load.lock().ended(&self.function);
    }
}

/// Settles its call when dropped.
struct SettleGuard {
    unsettled: Arc<Unsettled>,
    id: Uuid,
}

impl Drop for SettleGuard {
    fn drop(&mut self) {
        self.unsettled.ids.lock().remove(&self.id);
        self.unsettled.settled.notify_waiters();
    }
}

/// Runs queued calls: claims those due, as many as it has room for, and runs each through
/// the [`Invoker`] as a sync call; then retries, kills or completes it in the store and
/// sends its callback. Stops at cancellation.
#[derive(Debug)]
pub(crate) struct Dispatcher {
    pub(crate) store: Store,
    pub(crate) invoker: Arc<dyn Invoker>,
    pub(crate) recorder: Recorder,
    pub(crate) callbacks: Callbacks,
    pub(crate) policy: AsyncPolicy,
    /// Notified when a call is queued (or due again).
    pub(crate) wakeup: Arc<Notify>,
    /// Most calls of the queue run at once.
    pub(crate) max_running: usize,
    /// The calls being run.
    pub(crate) unsettled: Arc<Unsettled>,
    /// Set while another daemon has taken this one over: nothing is claimed meanwhile.
    pub(crate) taken_over: Arc<std::sync::atomic::AtomicBool>,
    /// Group commit of the calls' results.
    pub(crate) results: GroupCommit<(Uuid, skiff_store::StoredResult)>,
}

impl Dispatcher {
    /// Runs the dispatcher on `tracker` until `cancel` fires.
    pub(crate) fn spawn(self: Arc<Self>, tracker: &TaskTracker, cancel: CancellationToken) {
        let slots = Arc::new(Semaphore::new(self.max_running.max(1)));
        let load = Arc::new(parking_lot::Mutex::new(FunctionLoad::default()));
        let inner = tracker.clone();
        // A call of the queue that ends frees a slot and its function's room. After a claim
        // that took calls, more are likely queued: the next claim follows the first call to
        // end rather than the next poll, so that a backlog drains as fast as calls end.
        let freed = Arc::new(Notify::new());
        tracker.spawn(async move {
            let mut backlog = false;
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = self.wakeup.notified() => {}
                    _ = freed.notified(), if backlog => {}
                    _ = tokio::time::sleep(POLL) => {}
                }
                backlog = false;
                let free = u32::try_from(slots.available_permits()).unwrap_or(u32::MAX);
                // Near the limit of open files, calls stay queued until descriptors are free.
                if free == 0
                    || !self.invoker.is_accepting()
                    || !self.invoker.has_room()
                    || self.taken_over.load(std::sync::atomic::Ordering::Acquire)
                {
                    // Full: the first call to end frees room.
                    backlog = free == 0;
                    continue;
                }
                let rooms = load.lock().rooms(&self.invoker.capacities());
                let claimed = match self
                    .store
                    .claim_within(Utc::now(), free.min(CLAIM_BATCH), &rooms)
                    .await
                {
                    Ok(claimed) => claimed,
                    Err(err) => {
                        tracing::error!(%err, "cannot read the call queue");
                        continue;
                    }
                };
                // Calls taken, or a function out of room: room frees as calls end.
                backlog = !claimed.is_empty() || rooms.values().any(|room| *room == 0);
                for call in claimed {
                    let Ok(permit) = slots.clone().acquire_owned().await else {
                        return;
                    };
                    let dispatcher = self.clone();
                    let running = Running::new(&load, &call.record.function);
                    let freed = freed.clone();
                    inner.spawn(async move {
                        dispatcher.run_queued(call).await;
                        drop(running);
                        drop(permit);
                        freed.notify_one();
                    });
                }
            }
        });
    }

    /// Keeps a call's result, committed with those of other calls ending at the same moment
    /// (or on its own during shutdown).
    async fn keep_result(&self, id: Uuid, result: skiff_store::StoredResult) {
        let failed = match self.results.submit((id, result)).await {
            Ok(()) => return,
            Err(Refused::Closed(item)) => match self.store.put_results(&[item]).await {
                Ok(()) => return,
                Err(err) => err.to_string(),
            },
            Err(Refused::Failed(message)) => message,
        };
        tracing::error!(err = %failed, call = %id, "cannot store a call's result");
    }

    async fn run_queued(&self, call: Claimed) {
        let Claimed { record, payload } = call;
        let id = record.id;
        let _settle = self.unsettled.begin(id);
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
                self.callbacks.notify(id).await;
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
        tracing::debug!(call = %id, attempt, function = %record.function, "running a queued call");
        let request = InvokeRequest {
            trigger: record.trigger,
            method: Method::from_bytes(payload.method.as_bytes()).unwrap_or(Method::POST),
            path: payload.path,
            query: payload.query,
            headers,
            body: crate::body::full(payload.body),
            call_id: Some(id),
            attempt,
            caller: None,
            from_queue: true,
        };
        let failure = match self.invoker.invoke(&record.function, request).await {
            Ok(outcome) => {
                let content_type = outcome
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                // An http call's record ends with its body.
                let (kept, size) = read_capped(outcome.body, self.policy.result_bytes).await;
                let result = skiff_store::StoredResult {
                    status_code: outcome.status.as_u16(),
                    content_type,
                    size,
                    body: kept,
                };
                self.keep_result(id, result).await;
                if outcome.status.is_server_error() {
                    // Recorded as a function error: retried like one.
                    Some((
                        CallErrorType::FunctionError,
                        format!("the function answered {}", outcome.status),
                    ))
                } else {
                    if has_callback {
                        self.recorder.flush().await;
                        self.callbacks.notify(id).await;
                    }
                    return;
                }
            }
            // Stopped by the daemon's shutdown: not an attempt, it runs again after the restart.
            Err(PlatformError::CallFailed {
                error_type: CallErrorType::Interrupted,
                ..
            }) if !self.invoker.is_accepting() => {
                self.recorder.flush().await;
                self.requeue_call(id, attempt, Duration::ZERO, None).await;
                return;
            }
            Err(PlatformError::CallFailed {
                error_type,
                message,
                ..
            }) => Some((error_type, message)),
            Err(err @ PlatformError::LoopDetected { .. }) => {
                self.recorder.flush().await;
                self.end_dead(id, attempt, CallErrorType::Rejected, err.to_string())
                    .await;
                if has_callback {
                    self.callbacks.notify(id).await;
                }
                return;
            }
            Err(PlatformError::FunctionNotFound { name }) => {
                self.recorder.flush().await;
                let message = format!("function `{name}` does not exist any more");
                self.end_dead(id, attempt, CallErrorType::Rejected, message)
                    .await;
                if has_callback {
                    self.callbacks.notify(id).await;
                }
                return;
            }
            Err(PlatformError::Overloaded { .. })
            | Err(PlatformError::NearFdLimit { .. })
            | Err(PlatformError::QuotaExceeded { .. })
            | Err(PlatformError::ShuttingDown) => {
                // Not an attempt: run it again later. A call refused after it was admitted
                // (no container within its start budget) has a `rejected` record on its way
                // to the store: it goes first, so that it cannot overwrite the requeue.
                self.recorder.flush().await;
                self.requeue_call(id, attempt, Duration::from_millis(500), None)
                    .await;
                return;
            }
            Err(other) => Some((CallErrorType::EngineError, other.to_string())),
        };
        self.recorder.flush().await;
        let max_attempts = self
            .policy
            .max_attempts(self.invoker.function(&record.function).as_ref());
        let delay = self.policy.retry.delay(attempt);
        let retry_at =
            Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
        if attempt < max_attempts && expires_at.is_none_or(|at| retry_at < at) {
            self.requeue_call(id, attempt + 1, delay, failure).await;
            return;
        }
        if let Err(err) = self.store.kill_call(id).await {
            tracing::error!(%err, call = %id, "cannot mark a call dead");
        }
        if has_callback {
            self.callbacks.notify(id).await;
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
        if let Err(err) = self.store.requeue(id, attempt, not_before, error).await {
            tracing::error!(%err, call = %id, "cannot put a call back in the queue");
        }
    }

    async fn end_dead(&self, id: Uuid, attempt: u32, kind: CallErrorType, message: String) {
        if let Ok(Some(mut record)) = self.store.get_call(id).await {
            record.status = skiff_core::CallStatus::Failed;
            record.attempt = attempt;
            record.error_type = Some(kind);
            record.error_message = Some(message);
            record.finished_at = Some(Utc::now());
            let _ = self
                .store
                .write_calls(&[skiff_store::CallWrite { record, logs: None }])
                .await;
        }
        if let Err(err) = self.store.kill_call(id).await {
            tracing::error!(%err, call = %id, "cannot mark a call dead");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bounded_function_has_the_room_its_running_calls_leave() {
        let mut load = FunctionLoad::default();
        let capacities = vec![("web".to_string(), 3), ("fn".to_string(), 1)];
        load.started("web");
        load.started("web");
        load.started("fn");
        load.started("exec");
        let rooms = load.rooms(&capacities);
        assert_eq!(rooms.get("web"), Some(&1));
        assert_eq!(rooms.get("fn"), Some(&0));
        assert_eq!(
            rooms.get("exec"),
            None,
            "an exec function is bounded by the slots only"
        );
        load.ended("fn");
        load.ended("fn");
        assert_eq!(load.rooms(&capacities).get("fn"), Some(&1));
    }

    #[tokio::test]
    async fn a_reader_waits_until_a_call_run_settles() {
        let unsettled = Arc::new(Unsettled::default());
        let id = Uuid::now_v7();
        // Nothing to wait for.
        unsettled.settled(id, Duration::from_secs(5)).await;
        let guard = unsettled.begin(id);
        assert!(unsettled.contains(id));
        let reader = tokio::spawn({
            let unsettled = unsettled.clone();
            async move { unsettled.settled(id, Duration::from_secs(5)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !reader.is_finished(),
            "the reader waits while the run lasts"
        );
        drop(guard);
        reader.await.expect("the reader ends once the run settles");
        assert!(!unsettled.contains(id));
    }
}
