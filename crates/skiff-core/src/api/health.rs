//! `GET /healthz` and `GET /readyz`.

use serde::{Deserialize, Serialize};
use std::fmt;
use utoipa::ToSchema;

/// Health of the process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`, or for readiness `ready`, `starting`, `shutting_down` or `engine_unavailable`.
    pub status: HealthStatus,
    /// The daemon's id, as on the `skiff.daemon` label of its containers.
    pub daemon: String,
    /// Why the daemon is not ready, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What `/healthz` and `/readyz` report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// The process is up (`/healthz`).
    Ok,
    /// The daemon takes calls (`/readyz`).
    Ready,
    /// The daemon is still removing containers a previous run left behind (`/readyz`,
    /// 503). It answers, and takes calls, meanwhile.
    Starting,
    /// The daemon is stopping and takes no new call (`/readyz`, 503).
    ShuttingDown,
    /// The container engine does not answer (`/readyz`, 503).
    EngineUnavailable,
    /// The daemon was silent past its lease and another took its calls and containers
    /// over (`/readyz`, 503): it claims no queued call until the store counts it alive
    /// again.
    TakenOver,
}

impl HealthStatus {
    /// The status as the API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Ok => "ok",
            HealthStatus::Ready => "ready",
            HealthStatus::Starting => "starting",
            HealthStatus::ShuttingDown => "shutting_down",
            HealthStatus::EngineUnavailable => "engine_unavailable",
            HealthStatus::TakenOver => "taken_over",
        }
    }
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_written_as_their_names() {
        for status in [
            HealthStatus::Ok,
            HealthStatus::Ready,
            HealthStatus::Starting,
            HealthStatus::ShuttingDown,
            HealthStatus::EngineUnavailable,
            HealthStatus::TakenOver,
        ] {
            assert_eq!(
                serde_json::to_value(status).expect("json"),
                serde_json::json!(status.as_str())
            );
        }
    }
}
