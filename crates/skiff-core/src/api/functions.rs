//! Bodies of the function routes: the list, the instances and the scale request. A single
//! function is a [`FunctionSpec`](crate::FunctionSpec) in and a
//! [`FunctionView`](crate::FunctionView) out.

use crate::function::FunctionView;
use crate::instance::InstanceState;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use utoipa::ToSchema;

/// A list of functions (`GET /v1/functions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FunctionList {
    /// The functions, by name.
    pub functions: Vec<FunctionView>,
}

/// Instances of a function (`GET /v1/functions/{name}/instances`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InstanceList {
    /// The instances (none for `exec` functions: each of their containers serves one call).
    pub instances: Vec<InstanceView>,
}

/// An instance as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InstanceView {
    /// Instance id (the `skiff.instance` label).
    pub id: String,
    /// Container id.
    pub container: String,
    /// Function version it runs.
    pub version: u64,
    /// Lifecycle state.
    pub state: InstanceState,
    /// Calls it is serving.
    pub in_flight: u32,
    /// Seconds since it last finished a call (or started).
    pub idle_seconds: u64,
}

/// The body of `POST /v1/functions/{name}/scale`: the bounds to change, the others kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScaleRequest {
    /// New `min_instances`, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_instances: Option<u32>,
    /// New `max_instances`, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_instances: Option<u32>,
}

/// Where a function stands now (`state` in [`FunctionView`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FunctionState {
    /// `ready`, `idle`, `starting`, `backing_off` or `refused`.
    pub status: FunctionStatus,
    /// Instances that take calls (`http` and `lambda` functions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<u32>,
    /// Starts that failed, and instances that exited before they had run a minute, in a row.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failures: u32,
    /// What the last of those failures said (or why a `refused` function does not run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// While backing off: when the next instance may start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<DateTime<Utc>>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The status of a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FunctionStatus {
    /// It takes calls now: an instance serves (an `exec` function is always ready).
    Ready,
    /// No instance runs (or the one left is paused): the next call starts or resumes one.
    Idle,
    /// No instance serves yet, and one is starting.
    Starting,
    /// Its instances keep failing: no new one starts before `retry_at`, and its calls fail
    /// at once with the last error (`start_failed`).
    BackingOff,
    /// Its containers do not start (a volume it mounts was refused) until it is deployed
    /// again.
    Refused,
}

impl FunctionStatus {
    /// The status as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            FunctionStatus::Ready => "ready",
            FunctionStatus::Idle => "idle",
            FunctionStatus::Starting => "starting",
            FunctionStatus::BackingOff => "backing_off",
            FunctionStatus::Refused => "refused",
        }
    }
}

impl fmt::Display for FunctionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_is_written_with_what_it_has_only() {
        let ready = FunctionState {
            status: FunctionStatus::Ready,
            instances: None,
            failures: 0,
            last_error: None,
            retry_at: None,
        };
        assert_eq!(
            serde_json::to_value(&ready).expect("json"),
            serde_json::json!({"status": "ready"})
        );
        for status in [
            FunctionStatus::Ready,
            FunctionStatus::Idle,
            FunctionStatus::Starting,
            FunctionStatus::BackingOff,
            FunctionStatus::Refused,
        ] {
            assert_eq!(
                serde_json::to_value(status).expect("json"),
                serde_json::json!(status.as_str())
            );
        }
    }
}
