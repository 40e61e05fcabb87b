//! One invocation of a function: its status machine, what started it, how it failed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use utoipa::ToSchema;
use uuid::Uuid;

/// Where a call is in its life.
///
/// ```text
/// queued -> running -> succeeded | failed | timed_out
///              \-> queued (async retry)          failed -> dead (last retry)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    /// Accepted, waiting for a slot or an instance.
    Queued,
    /// Sent to an instance.
    Running,
    /// Finished and the function reported success.
    Succeeded,
    /// Finished with an error (see the call's error type).
    Failed,
    /// Stopped because it ran past its timeout.
    TimedOut,
    /// An async call whose last attempt failed: no more retries.
    Dead,
}

/// A status that does not follow from the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a call cannot go from {from} to {to}")]
pub struct TransitionError {
    /// The current status.
    pub from: CallStatus,
    /// The refused next status.
    pub to: CallStatus,
}

impl CallStatus {
    /// All statuses, in lifecycle order.
    pub const ALL: [CallStatus; 6] = [
        CallStatus::Queued,
        CallStatus::Running,
        CallStatus::Succeeded,
        CallStatus::Failed,
        CallStatus::TimedOut,
        CallStatus::Dead,
    ];

    /// The status as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Queued => "queued",
            CallStatus::Running => "running",
            CallStatus::Succeeded => "succeeded",
            CallStatus::Failed => "failed",
            CallStatus::TimedOut => "timed_out",
            CallStatus::Dead => "dead",
        }
    }

    /// Whether the call is over (no transition leaves a final status except a retry of
    /// an async call, which re-queues a `failed` or `timed_out` one, or a redrive of a
    /// `dead` one).
    pub fn is_final(self) -> bool {
        !matches!(self, CallStatus::Queued | CallStatus::Running)
    }

    /// Whether `next` may follow `self`.
    pub fn can_transition_to(self, next: CallStatus) -> bool {
        use CallStatus::*;
        matches!(
            (self, next),
            (Queued, Running)
                | (Queued, Failed)
                | (Queued, TimedOut)
                | (Running, Succeeded)
                | (Running, Failed)
                | (Running, TimedOut)
                // Retries of async calls, and redrive of dead ones.
                | (Running, Queued)
                | (Failed, Queued)
                | (TimedOut, Queued)
                | (Failed, Dead)
                | (TimedOut, Dead)
                | (Dead, Queued)
        )
    }

    /// `next` if it may follow `self`, else an error naming both.
    pub fn transition(self, next: CallStatus) -> Result<CallStatus, TransitionError> {
        if self.can_transition_to(next) {
            Ok(next)
        } else {
            Err(TransitionError {
                from: self,
                to: next,
            })
        }
    }
}

impl fmt::Display for CallStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that names no status, trigger or error type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}`")]
pub struct UnknownName {
    kind: &'static str,
    value: String,
}

impl FromStr for CallStatus {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CallStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownName {
                kind: "call status",
                value: s.to_string(),
            })
    }
}

/// What started a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The public route `/fn/{name}`.
    Http,
    /// The management API (`POST /v1/functions/{name}/invoke`, the CLI).
    Api,
    /// An async invocation.
    Async,
    /// A cron schedule.
    Cron,
    /// A broker subscription.
    Queue,
    /// The AWS Lambda Invoke API.
    LambdaApi,
}

impl Trigger {
    const ALL: [Trigger; 6] = [
        Trigger::Http,
        Trigger::Api,
        Trigger::Async,
        Trigger::Cron,
        Trigger::Queue,
        Trigger::LambdaApi,
    ];

    /// The trigger as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Http => "http",
            Trigger::Api => "api",
            Trigger::Async => "async",
            Trigger::Cron => "cron",
            Trigger::Queue => "queue",
            Trigger::LambdaApi => "lambda_api",
        }
    }
}

impl FromStr for Trigger {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Trigger::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownName {
                kind: "trigger",
                value: s.to_string(),
            })
    }
}

/// Why a call failed. Each has its own code in API errors and call records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallErrorType {
    /// The function exited with a non-zero status.
    FunctionError,
    /// The function was killed by a signal (a crash: abort, segfault, ...).
    Crashed,
    /// The function was killed for exceeding its memory limit.
    OutOfMemory,
    /// The call ran past its timeout; the container was killed.
    Timeout,
    /// The function wrote more than the response limit; the container was killed.
    OutputTooLarge,
    /// The container could not be created or started.
    StartFailed,
    /// The daemon stopped (or was killed) while the call was in flight.
    Interrupted,
    /// The container engine failed during the call.
    EngineError,
    /// skiff refused the call after accepting it: its function's queue was full, or its
    /// body went over the size limit while streaming.
    Rejected,
    /// An async call got older than its function's `max_event_age` before it could
    /// succeed: it was not attempted again.
    Expired,
    /// The caller of a sync call went away before the call ended; skiff stopped the call
    /// (an `exec` container is killed, an `http` request to the instance is cancelled).
    ClientDisconnected,
}

impl CallErrorType {
    const ALL: [CallErrorType; 11] = [
        CallErrorType::FunctionError,
        CallErrorType::Crashed,
        CallErrorType::OutOfMemory,
        CallErrorType::Timeout,
        CallErrorType::OutputTooLarge,
        CallErrorType::StartFailed,
        CallErrorType::Interrupted,
        CallErrorType::EngineError,
        CallErrorType::Rejected,
        CallErrorType::Expired,
        CallErrorType::ClientDisconnected,
    ];

    /// The error type as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            CallErrorType::FunctionError => "function_error",
            CallErrorType::Crashed => "crashed",
            CallErrorType::OutOfMemory => "out_of_memory",
            CallErrorType::Timeout => "timeout",
            CallErrorType::OutputTooLarge => "output_too_large",
            CallErrorType::StartFailed => "start_failed",
            CallErrorType::Interrupted => "interrupted",
            CallErrorType::EngineError => "engine_error",
            CallErrorType::Rejected => "rejected",
            CallErrorType::Expired => "expired",
            CallErrorType::ClientDisconnected => "client_disconnected",
        }
    }

    /// The final status a call with this error ends in.
    pub fn final_status(self) -> CallStatus {
        match self {
            CallErrorType::Timeout => CallStatus::TimedOut,
            _ => CallStatus::Failed,
        }
    }
}

impl fmt::Display for CallErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CallErrorType {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CallErrorType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownName {
                kind: "error type",
                value: s.to_string(),
            })
    }
}

/// The record of one call, as stored and as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CallRecord {
    /// The call id (a UUIDv7: ids sort by time).
    pub id: Uuid,
    /// The function called.
    pub function: String,
    /// What started the call.
    pub trigger: Trigger,
    /// Where the call is in its life.
    pub status: CallStatus,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// When skiff accepted the call.
    pub received_at: DateTime<Utc>,
    /// When the call was handed to an instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When the call reached a final status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Whether the call waited for a container to be created and started for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold: Option<bool>,
    /// The instance (container) that served the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The function's exit code (exec contract).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// Why the call failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<CallErrorType>,
    /// A readable account of the failure (for a function error, the end of its stderr).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// Size of the request body in bytes.
    pub request_size: u64,
    /// Size of the response body in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_size: Option<u64>,
    /// Milliseconds from received to finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Milliseconds the call waited for a slot under the global limit and, for instance
    /// contracts, for a free instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
    /// Milliseconds the call waited for a container or instance started for it (a cold
    /// start), from the moment it asked for one to the moment its code received the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ms: Option<u64>,
    /// The function whose container made this call through the function API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    /// The call during which that container made this one (when skiff could tell).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Uuid>,
    /// How many function-to-function hops led to this call (0: called from outside).
    #[serde(default)]
    pub depth: u32,
}

impl CallRecord {
    /// A new call's record: attempt 1, nothing run or measured yet.
    pub fn new(
        id: Uuid,
        function: impl Into<String>,
        trigger: Trigger,
        status: CallStatus,
        received_at: DateTime<Utc>,
    ) -> Self {
        CallRecord {
            id,
            function: function.into(),
            trigger,
            status,
            attempt: 1,
            received_at,
            started_at: None,
            finished_at: None,
            cold: None,
            instance: None,
            exit_code: None,
            error_type: None,
            error_message: None,
            request_size: 0,
            response_size: None,
            duration_ms: None,
            wait_ms: None,
            start_ms: None,
            caller: None,
            parent: None,
            depth: 0,
        }
    }
}

/// What an async call answered, kept so that its caller can read it later (size-capped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CallOutput {
    /// The response status (200 for a successful `exec` or `lambda` call).
    pub status_code: u16,
    /// The response's content type, when the function gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// How `body` is written: `utf8` when the kept bytes are text, else `base64`.
    pub encoding: BodyEncoding,
    /// The response body (at most the daemon's `--async-result-bytes` of it).
    pub body: String,
    /// Size of the whole response body in bytes.
    pub size: u64,
    /// Whether `body` holds only the first part of the response.
    pub truncated: bool,
}

impl CallOutput {
    /// The result of a call that answered `status_code` with `kept`, the first bytes of a
    /// body of `size` bytes.
    pub fn new(status_code: u16, content_type: Option<String>, kept: &[u8], size: u64) -> Self {
        use base64::Engine as _;
        let truncated = (kept.len() as u64) < size;
        let (encoding, body) = match std::str::from_utf8(kept) {
            Ok(text) => (BodyEncoding::Utf8, text.to_string()),
            // Text cut in the middle of a character by the cap.
            Err(e) if truncated && e.error_len().is_none() => (
                BodyEncoding::Utf8,
                String::from_utf8_lossy(&kept[..e.valid_up_to()]).into_owned(),
            ),
            Err(_) => (
                BodyEncoding::Base64,
                base64::engine::general_purpose::STANDARD.encode(kept),
            ),
        };
        CallOutput {
            status_code,
            content_type,
            encoding,
            body,
            size,
            truncated,
        }
    }

    /// The kept body's bytes.
    pub fn bytes(&self) -> Vec<u8> {
        use base64::Engine as _;
        match self.encoding {
            BodyEncoding::Utf8 => self.body.as_bytes().to_vec(),
            BodyEncoding::Base64 => base64::engine::general_purpose::STANDARD
                .decode(&self.body)
                .unwrap_or_default(),
        }
    }
}

/// How a kept body is written in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BodyEncoding {
    /// The bytes are UTF-8 text, written as is.
    Utf8,
    /// The bytes are written in standard base64.
    Base64,
}

/// A call's record and, for an async call that answered, its result:
/// `GET /v1/calls/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CallDetails {
    /// The call's record.
    #[serde(flatten)]
    pub record: CallRecord,
    /// What the call answered (async calls; the last attempt's answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<CallOutput>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sync_call_goes_queued_running_final() {
        let s = CallStatus::Queued;
        let s = s
            .transition(CallStatus::Running)
            .expect("queued -> running");
        assert!(!s.is_final());
        let s = s
            .transition(CallStatus::Succeeded)
            .expect("running -> succeeded");
        assert!(s.is_final());
    }

    #[test]
    fn final_statuses_do_not_go_back_to_running() {
        for from in [
            CallStatus::Succeeded,
            CallStatus::Failed,
            CallStatus::TimedOut,
            CallStatus::Dead,
        ] {
            assert!(from.is_final());
            let err = from.transition(CallStatus::Running).expect_err("refused");
            assert_eq!(err.from, from);
        }
        assert!(!CallStatus::Succeeded.can_transition_to(CallStatus::Failed));
        assert!(!CallStatus::Succeeded.can_transition_to(CallStatus::Queued));
        assert!(!CallStatus::Queued.can_transition_to(CallStatus::Succeeded));
    }

    #[test]
    fn only_failures_die_and_dead_calls_can_be_redriven() {
        assert!(CallStatus::Failed.can_transition_to(CallStatus::Dead));
        assert!(CallStatus::TimedOut.can_transition_to(CallStatus::Dead));
        assert!(!CallStatus::Running.can_transition_to(CallStatus::Dead));
        assert!(CallStatus::Dead.can_transition_to(CallStatus::Queued));
    }

    #[test]
    fn names_round_trip() {
        for status in CallStatus::ALL {
            assert_eq!(status.as_str().parse::<CallStatus>(), Ok(status));
            let json = serde_json::to_string(&status).expect("serializes");
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        for t in Trigger::ALL {
            assert_eq!(t.as_str().parse::<Trigger>(), Ok(t));
        }
        for e in CallErrorType::ALL {
            assert_eq!(e.as_str().parse::<CallErrorType>(), Ok(e));
            let json = serde_json::to_string(&e).expect("serializes");
            assert_eq!(json, format!("\"{}\"", e.as_str()));
        }
        assert!("nope".parse::<CallStatus>().is_err());
    }

    #[test]
    fn results_keep_text_as_text_and_bytes_as_base64() {
        let text = CallOutput::new(200, None, "héllo".as_bytes(), 6);
        assert_eq!(text.encoding, BodyEncoding::Utf8);
        assert_eq!(text.body, "héllo");
        assert!(!text.truncated);
        let cut = CallOutput::new(200, None, &"héllo".as_bytes()[..2], 6);
        assert_eq!((cut.encoding, cut.body.as_str()), (BodyEncoding::Utf8, "h"));
        assert!(cut.truncated);
        let binary = CallOutput::new(200, None, &[0xff, 0x00, 0xfe], 3);
        assert_eq!(binary.encoding, BodyEncoding::Base64);
        assert_eq!(binary.bytes(), vec![0xff, 0x00, 0xfe]);
    }

    #[test]
    fn timeouts_end_timed_out_other_errors_failed() {
        assert_eq!(CallErrorType::Timeout.final_status(), CallStatus::TimedOut);
        assert_eq!(
            CallErrorType::OutOfMemory.final_status(),
            CallStatus::Failed
        );
        assert_eq!(CallErrorType::Crashed.final_status(), CallStatus::Failed);
    }
}
