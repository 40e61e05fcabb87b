//! A call's record from its start to its end, and what a running call holds.
//!
//! [`CallLog`] is all a call needs to be recorded: the batched [`Recorder`] and the metrics.
//! A call's [`CallContext`] carries its record, clock and deadline; [`CallLog::finish`] sets
//! the final fields (status from [`CallResult`], duration, error), counts the call and sends
//! the record. An `http` call's response body is a [`Completion`], which finishes the record
//! when the body ends, breaks or is dropped, and holds the call's instance lease and slot
//! ([`Held`]) until then.

use crate::error::PlatformError;
use crate::fds::FdReservation;
use crate::metrics::Metrics;
use crate::pool::Lease;
use crate::recorder::Recorder;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::StatusCode;
use http_body_util::BodyExt;
use skiff_core::{CallErrorType, CallRecord, CallStatus};
use skiff_store::CallWrite;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// What a call carries from start to finish.
///
/// A call has two budgets, as Lambda's init phase and invocation do: `start_by` bounds its
/// wait for a slot and a container (its start budget), and its `timeout` counts from the
/// moment its code receives it ([`CallContext::deliver`]), which sets its `deadline`.
#[derive(Debug, Clone)]
pub(crate) struct CallContext {
    /// Its record, as it stands.
    pub(crate) record: CallRecord,
    /// Started when the call was received.
    pub(crate) clock: Instant,
    /// When its code must have received it: past this, it is refused as `overloaded`.
    pub(crate) start_by: tokio::time::Instant,
    /// Its caller's deadline, for a call made by a function: its own never goes past it.
    pub(crate) outer_deadline: Option<tokio::time::Instant>,
    /// When it must have ended. Until it is delivered: the latest it could be.
    pub(crate) deadline: tokio::time::Instant,
    /// The time its function gets (from `started_at` to the deadline).
    pub(crate) timeout: Duration,
    /// When its code received it (until then, when it got its slot).
    pub(crate) started_at: DateTime<Utc>,
    /// Whether it comes from the durable queue (see `InvokeRequest::from_queue`).
    pub(crate) from_queue: bool,
}

impl CallContext {
    /// The call's deadline as the function is told it: RFC 3339 with milliseconds.
    pub(crate) fn deadline_text(&self) -> String {
        (self.started_at
            + chrono::Duration::from_std(self.timeout).unwrap_or(chrono::Duration::MAX))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    /// The call reaches its function's code now, after waiting `waited` for its container or
    /// instance (a cold start when `cold`): its timeout starts, bounded by its caller's
    /// deadline, and the wait is noted on its record (`start_ms` for a cold start, else
    /// added to `wait_ms`).
    pub(crate) fn deliver(&mut self, waited: Duration, cold: bool) {
        let now = tokio::time::Instant::now();
        let deadline = now + self.timeout;
        self.deadline = self
            .outer_deadline
            .map_or(deadline, |outer| outer.min(deadline));
        self.timeout = self.deadline.saturating_duration_since(now);
        self.started_at = Utc::now();
        let record = &mut self.record;
        record.started_at = Some(self.started_at);
        record.cold = Some(cold);
        let ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX);
        if cold {
            record.start_ms = Some(record.start_ms.unwrap_or(0).saturating_add(ms));
        } else {
            record.wait_ms = Some(record.wait_ms.unwrap_or(0).saturating_add(ms));
        }
    }
}

/// How a call ended.
#[derive(Debug)]
pub(crate) enum CallResult {
    Succeeded {
        response_size: u64,
    },
    Failed {
        kind: CallErrorType,
        message: String,
    },
}

/// Sets a call record's final fields.
fn finish_fields(call: &mut CallContext, result: CallResult) -> CallRecord {
    let record = &mut call.record;
    record.finished_at = Some(Utc::now());
    record.duration_ms = Some(u64::try_from(call.clock.elapsed().as_millis()).unwrap_or(u64::MAX));
    match result {
        CallResult::Succeeded { response_size } => {
            record.status = CallStatus::Succeeded;
            record.response_size = Some(response_size);
        }
        CallResult::Failed { kind, message } => {
            record.status = kind.final_status();
            record.error_type = Some(kind);
            record.error_message = Some(message);
        }
    }
    record.clone()
}

/// Where calls are recorded and counted.
#[derive(Debug, Clone)]
pub(crate) struct CallLog {
    recorder: Recorder,
    metrics: Arc<Metrics>,
}

impl CallLog {
    pub(crate) fn new(recorder: Recorder, metrics: Arc<Metrics>) -> Self {
        CallLog { recorder, metrics }
    }

    /// The metrics calls are counted in.
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The record writer.
    pub(crate) fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// Sends the record of a call that has started (written with its end if that comes
    /// soon, see `recorder`).
    pub(crate) async fn started(&self, call: &CallContext) {
        self.recorder
            .started(CallWrite {
                record: call.record.clone(),
                logs: None,
            })
            .await;
    }

    /// Sets the call's final fields and counts it; returns the final record.
    fn finish_record(&self, call: &mut CallContext, result: CallResult) -> CallRecord {
        let record = finish_fields(call, result);
        self.metrics.call_finished(
            &record.function,
            record.status,
            call.clock.elapsed(),
            record.cold.unwrap_or(false),
        );
        record
    }

    /// Ends a call's record: final status, timing, logs.
    pub(crate) async fn finish(
        &self,
        call: &mut CallContext,
        result: CallResult,
        logs: Option<Vec<u8>>,
    ) {
        let record = self.finish_record(call, result);
        self.recorder.record(CallWrite { record, logs }).await;
    }

    /// Ends a call's record as failed with `kind`; returns the error its caller gets.
    pub(crate) async fn fail(
        &self,
        call: &mut CallContext,
        kind: CallErrorType,
        message: String,
    ) -> PlatformError {
        self.finish(
            call,
            CallResult::Failed {
                kind,
                message: message.clone(),
            },
            None,
        )
        .await;
        PlatformError::CallFailed {
            call_id: call.record.id,
            error_type: kind,
            message,
            exit_code: None,
        }
    }
}

/// Counts calls in flight; shutdown waits for it to reach zero.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

impl InFlight {
    /// Calls in flight now.
    pub(crate) fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Waits until no call is in flight, for at most `bound`; true if none is.
    pub(crate) async fn drain(&self, bound: Duration) -> bool {
        tokio::time::timeout(bound, async {
            loop {
                let idle = self.idle.notified();
                if self.count() == 0 {
                    return;
                }
                idle.await;
            }
        })
        .await
        .is_ok()
    }
}

/// Counts one call in flight for as long as it lives.
#[derive(Debug)]
pub(crate) struct InFlightGuard(Arc<InFlight>);

impl InFlightGuard {
    pub(crate) fn enter(in_flight: &Arc<InFlight>) -> Self {
        in_flight.count.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(in_flight.clone())
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// What a call holds while it runs: its slot under the global limit, its file
/// descriptors, and its count in flight.
#[derive(Debug)]
pub(crate) struct Held {
    pub(crate) _slot: tokio::sync::OwnedSemaphorePermit,
    pub(crate) _fds: FdReservation,
    pub(crate) _in_flight: InFlightGuard,
    pub(crate) _quota: crate::platform::QuotaReservation,
}

/// How a proxied response body ended.
#[derive(Debug)]
enum StreamEnd {
    /// Read to its end.
    Finished,
    /// The instance's stream broke.
    Broken(String),
    /// Dropped before its end: the caller went away.
    Dropped,
    /// Still streaming at the call's deadline: cut.
    TimedOut,
    /// Past the response limit: cut.
    TooLarge(u64),
}

/// Finishes an `http` call's record when its response body ends (or is dropped).
#[derive(Debug)]
pub(crate) struct CompletionState {
    pub(crate) log: CallLog,
    pub(crate) call: CallContext,
    pub(crate) status: StatusCode,
    pub(crate) lease: Lease,
    pub(crate) held: Held,
    /// On an instance that serves one call at a time: how much it had written when the
    /// call got it, and how to add what trails the answer. What it writes from there to
    /// the call's end is the call's log.
    pub(crate) log_mark: Option<(crate::pool::CallMark, LateLog)>,
}

/// How long after a call on a one-call-at-a-time instance its output is read again for the
/// call's log: output reaches skiff a little after the answer.
pub(crate) const LATE_OUTPUT: Duration = Duration::from_millis(100);

/// Rewrites a call's log with the instance output that trailed its answer.
#[derive(Debug, Clone)]
pub(crate) struct LateLog {
    pub(crate) tracker: tokio_util::task::TaskTracker,
    pub(crate) recorder: Recorder,
    pub(crate) store: skiff_store::Store,
}

impl LateLog {
    /// After [`LATE_OUTPUT`], a tracked task reads what the instance wrote since `mark`;
    /// if its log (`render`ed) is longer than the `seen` bytes recorded, the call's record
    /// is written again with it.
    pub(crate) fn rewrite(
        self,
        id: uuid::Uuid,
        output: crate::pool::Output,
        mark: crate::pool::CallMark,
        seen: usize,
        render: impl Fn(&[u8]) -> Vec<u8> + Send + 'static,
    ) {
        let LateLog {
            tracker,
            recorder,
            store,
        } = self;
        // A body dropped outside the runtime (it should not be) keeps the log it has.
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        tracker.spawn_on(
            async move {
                tokio::time::sleep(LATE_OUTPUT).await;
                let late = output.lock().call_log(mark);
                let logs = render(&late);
                if logs.len() > seen {
                    // The final record was sent before this task woke; write it first.
                    recorder.flush().await;
                    if let Ok(Some(record)) = store.get_call(id).await {
                        recorder
                            .record(CallWrite {
                                record,
                                logs: Some(logs),
                            })
                            .await;
                    }
                }
            },
            &handle,
        );
    }
}

impl CompletionState {
    /// Records the call as ended after `bytes` of response, as its stream ended.
    fn complete(mut self, bytes: u64, end: StreamEnd) {
        let result = match end {
            StreamEnd::Broken(message) => CallResult::Failed {
                kind: CallErrorType::Crashed,
                message: format!("the response stream broke: {message}"),
            },
            StreamEnd::Dropped => CallResult::Failed {
                kind: CallErrorType::ClientDisconnected,
                message: "the caller went away before the whole response was sent".to_string(),
            },
            StreamEnd::TimedOut => CallResult::Failed {
                kind: CallErrorType::Timeout,
                message: "the response was still streaming at the call's timeout; it was cut"
                    .to_string(),
            },
            StreamEnd::TooLarge(limit) => CallResult::Failed {
                kind: CallErrorType::OutputTooLarge,
                message: format!(
                    "the function's response went past the limit of {limit} bytes; it was cut"
                ),
            },
            StreamEnd::Finished if self.status.is_server_error() => CallResult::Failed {
                kind: CallErrorType::FunctionError,
                message: format!("the function answered {}", self.status),
            },
            StreamEnd::Finished => CallResult::Succeeded {
                response_size: bytes,
            },
        };
        if let CallResult::Failed { .. } = result {
            self.call.record.response_size = Some(bytes);
        }
        let record = self.log.finish_record(&mut self.call, result);
        let id = record.id;
        let (logs, late) = match self.log_mark.take() {
            Some((mark, late)) => (
                Some(self.lease.output.lock().call_log(mark)),
                Some((mark, late)),
            ),
            None => (None, None),
        };
        let seen = logs.as_ref().map_or(0, Vec::len);
        // Never waits: this can run in a `Drop`.
        self.log.recorder.record_soon(CallWrite { record, logs });
        if let Some((mark, late)) = late {
            late.rewrite(id, self.lease.output.clone(), mark, seen, <[u8]>::to_vec);
        }
        // The lease, then the slot, are given back as `self` drops.
        drop(self.lease);
        drop(self.held);
    }
}

/// A response body that finishes its call's record when it ends, breaks or is dropped, and
/// holds the call's instance slot until then. It is cut, with an error that aborts the
/// response, at the call's deadline or past `max_bytes`.
pub(crate) struct Completion {
    inner: hyper::body::Incoming,
    bytes: u64,
    max_bytes: u64,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
    state: Option<CompletionState>,
}

/// Why a response stream was cut.
#[derive(Debug, thiserror::Error)]
enum Cut {
    #[error("the response ran past the call's timeout")]
    TimedOut,
    #[error("the response went past the limit of {0} bytes")]
    TooLarge(u64),
}

impl Completion {
    /// Wraps an instance's response body, of at most `max_bytes`.
    pub(crate) fn wrap(
        inner: hyper::body::Incoming,
        state: CompletionState,
        max_bytes: u64,
    ) -> crate::body::Body {
        Completion {
            inner,
            bytes: 0,
            max_bytes,
            deadline: Box::pin(tokio::time::sleep_until(state.call.deadline)),
            state: Some(state),
        }
        .boxed_unsync()
    }

    fn complete(&mut self, end: StreamEnd) {
        if let Some(state) = self.state.take() {
            state.complete(self.bytes, end);
        }
    }
}

impl http_body::Body for Completion {
    type Data = Bytes;
    type Error = crate::body::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        use std::task::Poll;
        if self.state.is_some() && std::future::Future::poll(self.deadline.as_mut(), cx).is_ready()
        {
            self.complete(StreamEnd::TimedOut);
            return Poll::Ready(Some(Err(Box::new(Cut::TimedOut))));
        }
        match std::pin::Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
                if self.bytes > self.max_bytes {
                    let limit = self.max_bytes;
                    self.complete(StreamEnd::TooLarge(limit));
                    return Poll::Ready(Some(Err(Box::new(Cut::TooLarge(limit)))));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => {
                self.complete(StreamEnd::Broken(err.to_string()));
                Poll::Ready(Some(Err(Box::new(err))))
            }
            Poll::Ready(None) => {
                self.complete(StreamEnd::Finished);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        // Dropped once its last frame was read (a server may stop polling a body that says
        // it has ended), or before: then the caller went away mid-response.
        let end = if http_body::Body::is_end_stream(&self.inner) {
            StreamEnd::Finished
        } else {
            StreamEnd::Dropped
        };
        self.complete(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_core::Trigger;
    use uuid::Uuid;

    fn call() -> CallContext {
        CallContext {
            record: CallRecord::new(
                Uuid::now_v7(),
                "f",
                Trigger::Api,
                CallStatus::Running,
                Utc::now(),
            ),
            clock: Instant::now(),
            start_by: tokio::time::Instant::now(),
            outer_deadline: None,
            deadline: tokio::time::Instant::now(),
            timeout: Duration::from_secs(1),
            started_at: Utc::now(),
            from_queue: false,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_timeout_counts_from_delivery_and_never_passes_the_callers_deadline() {
        let mut own = call();
        own.timeout = Duration::from_secs(10);
        own.record.wait_ms = Some(5);
        tokio::time::advance(Duration::from_secs(3)).await;
        own.deliver(Duration::from_millis(700), true);
        let now = tokio::time::Instant::now();
        assert_eq!(own.deadline, now + Duration::from_secs(10));
        assert_eq!(
            own.record.start_ms,
            Some(700),
            "a cold start is its own figure"
        );
        assert_eq!(own.record.wait_ms, Some(5));
        assert_eq!(own.record.cold, Some(true));

        let mut callee = call();
        callee.timeout = Duration::from_secs(10);
        callee.outer_deadline = Some(now + Duration::from_secs(4));
        callee.deliver(Duration::from_millis(20), false);
        assert_eq!(callee.deadline, now + Duration::from_secs(4));
        assert_eq!(callee.timeout, Duration::from_secs(4));
        assert_eq!(
            callee.record.wait_ms,
            Some(20),
            "a warm wait adds to wait_ms"
        );
        assert_eq!(callee.record.start_ms, None);
    }

    #[test]
    fn a_final_record_gets_its_status_from_how_the_call_ended() {
        let mut c = call();
        let done = finish_fields(&mut c, CallResult::Succeeded { response_size: 3 });
        assert_eq!(done.status, CallStatus::Succeeded);
        assert_eq!(done.response_size, Some(3));
        assert!(done.finished_at.is_some() && done.duration_ms.is_some());
        let mut c = call();
        let timed_out = finish_fields(
            &mut c,
            CallResult::Failed {
                kind: CallErrorType::Timeout,
                message: "late".into(),
            },
        );
        assert_eq!(timed_out.status, CallStatus::TimedOut);
        assert_eq!(timed_out.error_type, Some(CallErrorType::Timeout));
        assert_eq!(timed_out.error_message.as_deref(), Some("late"));
    }

    #[tokio::test]
    async fn draining_waits_for_calls_in_flight() {
        let in_flight = Arc::new(InFlight::default());
        assert!(in_flight.drain(Duration::from_millis(10)).await);
        let guard = InFlightGuard::enter(&in_flight);
        assert_eq!(in_flight.count(), 1);
        assert!(!in_flight.drain(Duration::from_millis(10)).await);
        let waiter = tokio::spawn({
            let in_flight = in_flight.clone();
            async move { in_flight.drain(Duration::from_secs(5)).await }
        });
        drop(guard);
        assert!(waiter.await.expect("task"));
    }
}
