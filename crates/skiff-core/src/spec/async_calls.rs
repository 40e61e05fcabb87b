//! The async area of a spec: the retry policy of its async calls.

use super::range::in_range;
use super::{FunctionSpec, SpecError};
use crate::units::HumanDuration;
use std::time::Duration;

/// Most retries of a failed async call.
const MAX_RETRIES: u32 = 10;
/// Range of the oldest an async call may get.
const MIN_EVENT_AGE: Duration = Duration::from_secs(1);
const MAX_EVENT_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// The async policy of a function; `None`: the daemon's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct AsyncPolicy {
    /// Retries of a failed async call.
    pub retries: Option<u32>,
    /// Oldest an async call may get, in milliseconds.
    pub max_event_age_ms: Option<u64>,
}

/// The retry policy `spec` sets, checked.
pub(super) fn validate(spec: &FunctionSpec) -> Result<AsyncPolicy, SpecError> {
    let retries = spec
        .retries
        .map(|r| in_range("retries", r, 0..=MAX_RETRIES, None))
        .transpose()?;
    let max_event_age = spec
        .max_event_age
        .map(|age| {
            in_range(
                "max_event_age",
                age,
                HumanDuration(MIN_EVENT_AGE)..=HumanDuration(MAX_EVENT_AGE),
                Some("1s to 7d"),
            )
        })
        .transpose()?;
    Ok(AsyncPolicy {
        retries,
        max_event_age_ms: max_event_age.map(|a| u64::try_from(a.0.as_millis()).unwrap_or(u64::MAX)),
    })
}
