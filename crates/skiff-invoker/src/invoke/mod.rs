//! Running one sync call through its contract's driver, from its slot to its final record.
//!
//! The platform admits a call (registry, limits, call id, deadline) and hands it to
//! [`Contracts::run_call`] in a task of its own. That task drives the call's contract
//! (`exec_call`, `http_call`, `lambda_call`), watches its caller and its stop token, and
//! gives back the call's slot once nothing of the call is left. The async dispatcher and the
//! triggers see none of this: they call functions through the narrow [`Invoker`] interface.

mod exec_call;
mod http_call;
mod lambda_call;

use crate::body::Body;
use crate::calls::{CallContext, CallLog, CallResult, Held};
use crate::error::PlatformError;
use crate::exec::ExecDriver;
use crate::lambda::LambdaRegistry;
use crate::limiter::Limiter;
use crate::pool::{AcquireError, InstanceManager, Lease};
use crate::registry::{Entry, Functions, Targets};
use crate::running::{CallGuard, StopReason};
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use skiff_core::{CallErrorType, Contract, Function, Trigger};
use skiff_runtime::ContainerEngine;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

/// One invocation as a transport hands it over.
#[derive(Debug)]
pub struct InvokeRequest {
    /// What started the call.
    pub trigger: Trigger,
    /// HTTP method (`POST` for the API and CLI).
    pub method: Method,
    /// Path below the function's route (`/` when none).
    pub path: String,
    /// Query string, without `?`.
    pub query: String,
    /// Request headers.
    pub headers: HeaderMap,
    /// Request body, streamed; at most `max_request_bytes` of it are taken.
    pub body: Body,
    /// The call id to use (a new one when `None`).
    pub call_id: Option<Uuid>,
    /// The attempt this is (1 for the first; more for retries of async calls).
    pub attempt: u32,
    /// The function container that made the request, for requests of the function API.
    pub caller: Option<crate::token::Caller>,
    /// Whether the call comes from the durable queue: refused for want of capacity, it goes
    /// back there, so its record is left to the dispatcher rather than ended `rejected`.
    pub from_queue: bool,
}

impl InvokeRequest {
    /// A `POST /` with `body` and no headers.
    pub fn post(trigger: Trigger, body: impl Into<Bytes>) -> Self {
        InvokeRequest {
            trigger,
            method: Method::POST,
            path: "/".to_string(),
            query: String::new(),
            headers: HeaderMap::new(),
            body: crate::body::full(body),
            call_id: None,
            attempt: 1,
            caller: None,
            from_queue: false,
        }
    }
}

/// A call that was answered by the function.
#[derive(Debug)]
pub struct InvokeOutcome {
    /// The call's id.
    pub call_id: Uuid,
    /// Whether the call waited for a container or instance to start (or resume).
    pub cold: bool,
    /// The response status (200 for `exec`).
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The response body, streamed; the call's record is finished when it ends.
    pub body: Body,
}

/// What the async dispatcher and the triggers need of the platform: to call a function as
/// any transport does, and to know the functions.
#[async_trait::async_trait]
pub(crate) trait Invoker: Send + Sync + std::fmt::Debug {
    /// Calls `function` synchronously (admission, limits and records included).
    async fn invoke(
        &self,
        function: &str,
        request: InvokeRequest,
    ) -> Result<InvokeOutcome, PlatformError>;

    /// The function deployed as `name`, if any.
    fn function(&self, name: &str) -> Option<Function>;

    /// Whether calls are taken (false once shutdown has begun).
    fn is_accepting(&self) -> bool;

    /// Whether one more call would fit the daemon's file descriptors now.
    fn has_room(&self) -> bool;

    /// The functions whose instances serve a bounded number of calls at once, with that
    /// bound (see [`skiff_core::FunctionConfig::capacity`]).
    fn capacities(&self) -> Vec<(String, usize)>;
}

/// The contract drivers, and what a running call needs around them.
#[derive(Debug)]
pub(crate) struct Contracts {
    pub(crate) engine: Arc<dyn ContainerEngine>,
    pub(crate) targets: Targets,
    pub(crate) functions: Arc<Functions>,
    pub(crate) exec: Arc<ExecDriver>,
    pub(crate) instances: Arc<InstanceManager>,
    pub(crate) lambda: Arc<LambdaRegistry>,
    pub(crate) client: crate::proxy::Client,
    pub(crate) log: CallLog,
    /// The store, to rewrite a `lambda` call's log with output that trailed its answer.
    pub(crate) store: skiff_store::Store,
    pub(crate) limiter: Arc<Limiter>,
    /// False once shutdown has begun: no container is prepared any more.
    pub(crate) accepting: Arc<AtomicBool>,
    /// Owns the short tasks calls leave behind (a lambda call's late log).
    pub(crate) tracker: TaskTracker,
    /// Largest request body of a sync call.
    pub(crate) max_request_bytes: usize,
    /// Largest response of a call; a streamed one is cut past it.
    pub(crate) max_response_bytes: usize,
}

type Work<'a> = Pin<Box<dyn Future<Output = Result<InvokeOutcome, PlatformError>> + Send + 'a>>;

impl Contracts {
    /// Runs one sync call to its end and answers on `answer`. The call runs whatever its
    /// caller does: if the caller goes away, an `exec` or `http` call is stopped
    /// (`client_disconnected`) while a `lambda` event runs to its end, and either way the
    /// record ends. An `exec` call keeps its slot until its container is removed; an
    /// instance call gives it back when its response has been sent.
    pub(crate) async fn run_call(
        self: Arc<Self>,
        entry: Arc<Entry>,
        request: InvokeRequest,
        call: CallContext,
        held: Held,
        guard: CallGuard,
        mut answer: oneshot::Sender<Result<InvokeOutcome, PlatformError>>,
    ) {
        let contract = entry.function.config.contract;
        let snapshot = call.clone();
        let mut kept = None;
        let mut used = None;
        let result = {
            let mut work: Work<'_> = match contract {
                Contract::Exec => {
                    kept = Some(held);
                    Box::pin(self.invoke_exec(&entry, request, call, &guard, &mut used))
                }
                Contract::Lambda => {
                    Box::pin(self.invoke_lambda(&entry, request, call, held, &guard))
                }
                Contract::Http => Box::pin(self.invoke_http(&entry, request, call, held, &guard)),
            };
            let mut caller_gone = false;
            loop {
                tokio::select! {
                    biased;
                    result = &mut work => break result,
                    // A lambda event cannot be taken back from its runtime: it runs on.
                    _ = answer.closed(), if !caller_gone => {
                        caller_gone = true;
                        if contract != Contract::Lambda {
                            guard.stop(StopReason::ClientGone);
                        }
                    }
                    // An exec call stops its own container; an instance call is dropped
                    // where it stands (its request to the instance is cancelled).
                    _ = guard.stopped(), if contract != Contract::Exec => {
                        drop(work);
                        break Err(self.abandon(snapshot, &guard).await);
                    }
                }
            }
        };
        let _ = answer.send(result);
        if let Some(container) = used {
            self.exec.remove_used(&container).await;
        }
        drop(kept);
        drop(guard);
    }

    /// Ends the record of an instance call stopped where it stood.
    async fn abandon(&self, mut call: CallContext, guard: &CallGuard) -> PlatformError {
        let reason = guard.reason().unwrap_or(StopReason::ShuttingDown);
        call.record.instance = guard.instance();
        self.log
            .fail(&mut call, reason.error_type(), reason.message().to_string())
            .await
    }

    /// Ends the record of an instance call that got no instance; returns what its caller
    /// gets. `logs` are the call's log, if it has one even so.
    async fn no_instance(
        &self,
        call: &mut CallContext,
        err: AcquireError,
        logs: Option<Vec<u8>>,
    ) -> PlatformError {
        let message = err.to_string();
        let (kind, refusal) = match err {
            AcquireError::QueueFull { .. } => {
                let (running, queued) = (self.limiter.running(), self.limiter.queued());
                (
                    CallErrorType::Rejected,
                    Some(PlatformError::Overloaded { running, queued }),
                )
            }
            AcquireError::ShuttingDown => (
                CallErrorType::Interrupted,
                Some(PlatformError::ShuttingDown),
            ),
            // No instance within the start budget: refused, not failed.
            AcquireError::Timeout => {
                let (running, queued) = (self.limiter.running(), self.limiter.queued());
                (
                    CallErrorType::Rejected,
                    Some(PlatformError::Overloaded { running, queued }),
                )
            }
            AcquireError::StartFailed(_) => (CallErrorType::StartFailed, None),
        };
        // A queued call refused for want of an instance goes back to the queue: its record
        // is the dispatcher's to set, not ended here.
        let requeued = call.from_queue && kind == CallErrorType::Rejected;
        if !requeued {
            self.log
                .finish(
                    call,
                    CallResult::Failed {
                        kind,
                        message: message.clone(),
                    },
                    logs,
                )
                .await;
        }
        refusal.unwrap_or(PlatformError::CallFailed {
            call_id: call.record.id,
            error_type: kind,
            message,
            exit_code: None,
        })
    }

    /// The call reaches the instance it leased: its timeout starts, its record and metrics
    /// note the instance and how long the call waited for it (a cold start if the instance
    /// was started for it), and the call is tied to the instance.
    fn leased(&self, call: &mut CallContext, lease: &Lease, guard: &CallGuard) {
        call.deliver(lease.waited, lease.cold);
        guard.bind(&lease.instance, call.deadline);
        call.record.instance = Some(lease.instance.clone());
        let metrics = self.log.metrics();
        if lease.cold {
            metrics.cold_start(&call.record.function, lease.waited);
        } else {
            metrics.queue_waited(&call.record.function, lease.waited);
        }
    }

    /// Whether new calls are taken.
    fn is_accepting(&self) -> bool {
        self.accepting.load(Ordering::Acquire)
    }
}
