//! The body of `GET /v1/functions/{name}/stats?window=`: a function's calls over a window
//! of time, in buckets, as the dashboard's charts draw them. Computed from the call
//! records by [`crate::stats`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// The query of `GET /v1/functions/{name}/stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    /// How far back to look, as a duration (`15m`, `1h`, `1d`): 1 minute to 7 days,
    /// default `1h`.
    pub window: Option<String>,
}

/// The figures of a set of calls: those received in one bucket, or in the whole window.
/// Only finished calls count (those still queued or running do not yet).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StatsTotals {
    /// Finished calls.
    pub calls: u64,
    /// Of which failed, timed out or dead.
    pub errors: u64,
    /// Median time from receipt to end, in milliseconds.
    pub p50_ms: Option<u64>,
    /// 99th percentile of the same.
    pub p99_ms: Option<u64>,
    /// Calls that waited for a container or instance to start (or resume).
    pub cold_starts: u64,
    /// Median cold start duration of those calls, in milliseconds: the time they waited
    /// before their function got them.
    pub cold_start_p50_ms: Option<u64>,
    /// 99th percentile of the same.
    pub cold_start_p99_ms: Option<u64>,
    /// Median time calls waited for a slot and an instance, in milliseconds.
    pub queue_wait_p50_ms: Option<u64>,
    /// 99th percentile of the same.
    pub queue_wait_p99_ms: Option<u64>,
    /// Finished calls per minute.
    pub calls_per_minute: f64,
    /// Errors per minute.
    pub errors_per_minute: f64,
    /// Cold starts per minute.
    pub cold_starts_per_minute: f64,
}

/// One bucket of time and the calls received in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StatsBucket {
    /// When the bucket starts (it lasts `bucket_seconds`).
    pub start: DateTime<Utc>,
    /// Its figures.
    #[serde(flatten)]
    pub figures: StatsTotals,
}

/// A function's calls over a window (`GET /v1/functions/{name}/stats`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FunctionStats {
    /// The function.
    pub function: String,
    /// Start of the first bucket.
    pub from: DateTime<Utc>,
    /// End of the last bucket.
    pub to: DateTime<Utc>,
    /// The window asked for, in seconds.
    pub window_seconds: u64,
    /// Length of each bucket, in seconds.
    pub bucket_seconds: u64,
    /// False when the window held more calls than skiff reads for one answer: the oldest
    /// ones were left out.
    pub complete: bool,
    /// The whole window.
    pub totals: StatsTotals,
    /// The buckets, oldest first, every one present (empty ones too).
    pub buckets: Vec<StatsBucket>,
}
