//! Admitting calls: registry lookup, size and depth checks, limits, call ids, deadlines.
//! A sync call is then handed to the contract drivers in a task of its own; an async call
//! is made durable in the queue.

use super::Platform;
use crate::calls::{CallContext, Held, InFlightGuard};
use crate::error::PlatformError;
use crate::fds::{Short, FDS_PER_CALL};
use crate::invoke::{InvokeOutcome, InvokeRequest};
use crate::limiter::Refused;
use crate::running::Parent;
use chrono::Utc;
use http::HeaderValue;
use skiff_core::api::headers::{CALLBACK_HEADER, DEPTH_HEADER};
use skiff_core::{CallErrorType, CallRecord, CallStatus, Trigger};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use uuid::Uuid;

/// How long after a call's deadline its caller waits for the answer before it gets a
/// `timeout` failure of its own (the call's task is then still stopping the container).
const ANSWER_MARGIN: Duration = Duration::from_secs(2);

/// Where a call comes from.
#[derive(Debug, Clone)]
struct Lineage {
    /// The calling function (function API requests).
    caller: Option<String>,
    /// The call its container was serving, when skiff could tell.
    parent: Option<Parent>,
    /// Function-to-function hops that led here.
    depth: u32,
}

impl Platform {
    /// Invokes a function synchronously and returns its response.
    ///
    /// The call runs in a task of its own, which holds the call's slot: whatever the caller
    /// does, the call keeps its deadline and limits, ends with a record, and its container
    /// is removed before the slot is given back. If the caller goes away, an `exec` or
    /// `http` call is stopped (`client_disconnected`); a `lambda` call runs to its end. The
    /// caller gets its answer by the deadline (and a short margin) whatever the engine
    /// does: past it, a `timeout` failure, while the call's task stops the container.
    pub async fn invoke(
        &self,
        name: &str,
        mut request: InvokeRequest,
    ) -> Result<InvokeOutcome, PlatformError> {
        if !self.is_accepting() {
            return Err(PlatformError::ShuttingDown);
        }
        let in_flight = InFlightGuard::enter(&self.in_flight);
        let entry = self
            .functions
            .get(name)
            .ok_or_else(|| PlatformError::FunctionNotFound {
                name: name.to_string(),
            })?;
        let limit = self.config.max_request_bytes;
        if crate::body::too_large(&request.headers, limit) {
            return Err(PlatformError::PayloadTooLarge { limit });
        }
        let lineage = self.lineage(&mut request)?;
        let function = &entry.function;
        self.check_callee(request.caller.as_ref(), function)?;
        let quota = self
            .quotas
            .reserve(function.name.namespace(), call_memory(&function.config))?;
        let call_id = request.call_id.unwrap_or_else(Uuid::now_v7);
        let received_at = Utc::now();
        let clock = Instant::now();
        // Near the limit of open files a call is refused, not queued; once it has a slot,
        // the descriptors it may need are promised to it for as long as it runs.
        let near_limit = |Short { in_use, limit }| PlatformError::NearFdLimit { in_use, limit };
        self.fds.admits(FDS_PER_CALL).map_err(near_limit)?;
        // Waiting for a slot and a container has its own budget; the timeout counts from
        // the moment the function's code receives the call. A callee never gets more time
        // than its caller has left, for either.
        let own_timeout = function.config.timeout();
        let max_wait = function.config.max_wait().unwrap_or(self.config.max_wait);
        let outer_deadline = lineage.parent.map(|p| p.deadline);
        let admitted = tokio::time::Instant::now();
        let start_by =
            outer_deadline.map_or(admitted + max_wait, |outer| outer.min(admitted + max_wait));
        let slot = self
            .limiter
            .acquire(start_by.saturating_duration_since(admitted))
            .await
            .map_err(|refused| match refused {
                Refused::QueueFull { running, queued } | Refused::TimedOut { running, queued } => {
                    PlatformError::Overloaded { running, queued }
                }
            })?;
        let fds = self.fds.try_reserve(FDS_PER_CALL).map_err(near_limit)?;
        let started_at = Utc::now();
        let waited = clock.elapsed();
        // The latest the call can end: it reaches its code by `start_by` or not at all.
        let latest = start_by + own_timeout;
        let deadline = outer_deadline.map_or(latest, |outer| outer.min(latest));
        let record = CallRecord {
            attempt: request.attempt.max(1),
            started_at: Some(started_at),
            wait_ms: Some(u64::try_from(waited.as_millis()).unwrap_or(u64::MAX)),
            caller: lineage.caller.clone(),
            parent: lineage.parent.map(|p| p.call),
            depth: lineage.depth,
            ..CallRecord::new(
                call_id,
                function.name.as_str(),
                request.trigger,
                CallStatus::Running,
                received_at,
            )
        };
        let mut call = CallContext {
            record,
            clock,
            start_by,
            outer_deadline,
            deadline,
            timeout: own_timeout,
            started_at,
            from_queue: request.from_queue,
        };
        if let Some(reason) = &entry.refused {
            return Err(self
                .contracts
                .log
                .fail(&mut call, CallErrorType::StartFailed, reason.clone())
                .await);
        }
        let guard = self
            .running
            .register(call_id, function.name.as_str(), deadline, lineage.depth);
        let (answer, answered) = oneshot::channel();
        let held = Held {
            _slot: slot,
            _fds: fds,
            _in_flight: in_flight,
            _quota: quota,
        };
        self.tracker.spawn(self.contracts.clone().run_call(
            entry.clone(),
            request,
            call,
            held,
            guard,
            answer,
        ));
        match tokio::time::timeout_at(deadline + ANSWER_MARGIN, answered).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(PlatformError::Internal {
                message: format!("call {call_id} ended without an answer"),
            }),
            Err(_elapsed) => Err(PlatformError::CallFailed {
                call_id,
                error_type: CallErrorType::Timeout,
                message: "the call ran past its timeout; it is being stopped".to_string(),
                exit_code: None,
            }),
        }
    }

    /// Refuses a call through the function API to a function of another namespace (as if
    /// it did not exist), or to one its caller's `callees` leave out (`Forbidden`).
    pub(crate) fn check_callee(
        &self,
        caller: Option<&crate::token::Caller>,
        callee: &skiff_core::Function,
    ) -> Result<(), PlatformError> {
        let Some(caller) = caller else {
            return Ok(());
        };
        if caller.function.namespace() != callee.name.namespace() {
            return Err(PlatformError::FunctionNotFound {
                name: callee.name.local_name().to_string(),
            });
        }
        let allowed = match self.functions.get(caller.function.as_str()) {
            Some(entry) => entry.function.config.callees.clone(),
            None => Some(Vec::new()),
        };
        match allowed {
            Some(names) if !names.iter().any(|n| n == callee.name.local_name()) => {
                Err(PlatformError::Forbidden {
                    message: format!(
                        "function `{}` may not call `{}`: it is not among its callees",
                        caller.function.local_name(),
                        callee.name.local_name()
                    ),
                })
            }
            _ => Ok(()),
        }
    }

    /// Where a call comes from: the function that made it and the call it was made
    /// during (for requests of the function API), and its depth. Refuses a call deeper than
    /// `max_call_depth` (`LoopDetected`). Sets the depth header the function receives.
    fn lineage(&self, request: &mut InvokeRequest) -> Result<Lineage, PlatformError> {
        let declared = request
            .headers
            .get(DEPTH_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u32>().ok());
        let hint = request
            .headers
            .get(crate::proxy::CALL_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Uuid::parse_str(v.trim()).ok());
        let parent = request
            .caller
            .as_ref()
            .and_then(|caller| self.running.parent(&caller.instance, hint));
        // The caller's own depth, as skiff knows it or as the request says (whichever is
        // deeper: a request can only make itself deeper).
        let from = parent.map(|p| p.depth).into_iter().chain(declared).max();
        let depth = match (&request.caller, from) {
            (_, Some(from)) => from.saturating_add(1),
            (Some(_), None) => 1,
            (None, None) => 0,
        };
        let max = self.config.max_call_depth;
        if depth > max {
            return Err(PlatformError::LoopDetected { depth, max });
        }
        request.headers.remove(DEPTH_HEADER);
        if depth > 0 {
            request
                .headers
                .insert(DEPTH_HEADER, HeaderValue::from(depth));
        }
        Ok(Lineage {
            caller: request.caller.as_ref().map(|c| c.function.to_string()),
            parent,
            depth,
        })
    }

    /// Accepts an async call: once this returns, the call is durable in the store and will
    /// run (at least once), retried on failure up to the configured attempts.
    pub async fn enqueue(
        &self,
        name: &str,
        mut request: InvokeRequest,
    ) -> Result<Uuid, PlatformError> {
        if !self.is_accepting() {
            return Err(PlatformError::ShuttingDown);
        }
        let entry = self
            .functions
            .get(name)
            .ok_or_else(|| PlatformError::FunctionNotFound {
                name: name.to_string(),
            })?;
        let limit = self.config.max_async_request_bytes;
        if crate::body::too_large(&request.headers, limit) {
            return Err(PlatformError::PayloadTooLarge { limit });
        }
        let lineage = self.lineage(&mut request)?;
        self.check_callee(request.caller.as_ref(), &entry.function)?;
        // The stored call carries its caller's depth: it counts one more hop when it runs.
        request.headers.remove(DEPTH_HEADER);
        if let Some(from) = lineage.depth.checked_sub(1) {
            request
                .headers
                .insert(DEPTH_HEADER, HeaderValue::from(from));
        }
        let callback_url = match request.headers.get(CALLBACK_HEADER) {
            Some(value) => {
                let url = value.to_str().map_err(|_| PlatformError::BadRequest {
                    message: format!("{CALLBACK_HEADER} is not a URL"),
                })?;
                crate::callback::check_destination(url, &self.callback_policy)
                    .await
                    .map_err(|e| PlatformError::BadRequest {
                        message: format!("{CALLBACK_HEADER}: {e}"),
                    })?;
                Some(url.to_string())
            }
            None => None,
        };
        let body = crate::body::read(request.body, limit).await?;
        let id = request.call_id.unwrap_or_else(Uuid::now_v7);
        let now = Utc::now();
        let record = CallRecord {
            request_size: body.len() as u64,
            caller: lineage.caller,
            parent: lineage.parent.map(|p| p.call),
            depth: lineage.depth,
            ..CallRecord::new(
                id,
                entry.function.name.as_str(),
                Trigger::Async,
                CallStatus::Queued,
                now,
            )
        };
        let payload = skiff_store::Payload {
            method: request.method.to_string(),
            path: request.path,
            query: request.query,
            headers: request
                .headers
                .iter()
                .filter(|(k, _)| k.as_str() != CALLBACK_HEADER)
                .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
                .collect(),
            body: body.to_vec(),
            expires_at: Some(now + self.policy.max_event_age(&entry.function)),
            callback_url,
        };
        self.enqueuer.enqueue(record, payload).await?;
        self.queued.notify_one();
        Ok(id)
    }
}

/// The memory a call holds against its namespace's quota: its container's limit for an
/// `exec` call (a container of its own), its share of an instance for the others.
fn call_memory(config: &skiff_core::FunctionConfig) -> u64 {
    let memory = config.resources.memory_bytes;
    match config.contract {
        skiff_core::Contract::Exec => memory,
        _ => memory.div_ceil(u64::from(config.scaling.concurrency.max(1))),
    }
}
