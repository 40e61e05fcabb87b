//! The HTTP area of a spec: how skiff reaches a long-lived instance (port, readiness path,
//! startup timeout).

use super::range::in_range;
use super::{FunctionSpec, SpecError};
use crate::units::HumanDuration;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;

/// Default port of an `http` instance.
pub const DEFAULT_PORT: u16 = 8080;
/// Default time an `http` instance may take to become ready.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

const MIN_STARTUP_TIMEOUT: Duration = Duration::from_millis(100);
const MAX_STARTUP_TIMEOUT: Duration = Duration::from_secs(600);

/// How skiff reaches an `http` instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HttpSettings {
    /// Port the instance listens on.
    pub port: u16,
    /// Path that answers 2xx when ready; `None`: a TCP connect is enough.
    pub readiness_path: Option<String>,
    /// Longest an instance may take to become ready, in milliseconds.
    pub startup_timeout_ms: u64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            port: DEFAULT_PORT,
            readiness_path: None,
            startup_timeout_ms: DEFAULT_STARTUP_TIMEOUT.as_millis() as u64,
        }
    }
}

impl HttpSettings {
    /// The startup timeout.
    pub fn startup_timeout(&self) -> Duration {
        Duration::from_millis(self.startup_timeout_ms)
    }
}

/// The HTTP settings of `spec`'s instances, defaults applied.
pub(super) fn validate(spec: &FunctionSpec) -> Result<HttpSettings, SpecError> {
    let port = spec.port.unwrap_or(DEFAULT_PORT);
    if port == 0 {
        return Err(SpecError::new("port", "0 is not a port: use 1 to 65535"));
    }
    if let Some(path) = &spec.readiness_path {
        crate::syntax::check_readiness_path(path)
            .map_err(|m| SpecError::new("readiness_path", m))?;
    }
    let startup = in_range(
        "startup_timeout",
        spec.startup_timeout
            .unwrap_or(HumanDuration(DEFAULT_STARTUP_TIMEOUT)),
        HumanDuration(MIN_STARTUP_TIMEOUT)..=HumanDuration(MAX_STARTUP_TIMEOUT),
        None,
    )?;
    Ok(HttpSettings {
        port,
        readiness_path: spec.readiness_path.clone(),
        startup_timeout_ms: startup.0.as_millis() as u64,
    })
}
