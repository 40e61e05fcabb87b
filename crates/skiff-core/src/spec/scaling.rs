//! The scaling area of a spec: how many instances of a function run, and how many calls
//! each takes.

use super::range::in_range;
use super::{Contract, FunctionSpec, SpecError};
use crate::units::HumanDuration;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;

/// Default calls served at once by one instance.
pub const DEFAULT_CONCURRENCY: u32 = 10;
/// Default most instances of a function.
pub const DEFAULT_MAX_INSTANCES: u32 = 10;
/// Default share of an instance's concurrency the autoscaler aims to use.
pub const DEFAULT_TARGET_UTILIZATION: f64 = 0.7;
/// Default idle time before an extra instance is stopped.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

const MIN_IDLE_TIMEOUT: Duration = Duration::from_millis(100);
const MAX_IDLE_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
const MIN_WINDOW: Duration = Duration::from_secs(1);
const MAX_WINDOW: Duration = Duration::from_secs(3600);

/// How many instances of a function run, and how many calls each takes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Scaling {
    /// Calls one instance serves at once.
    pub concurrency: u32,
    /// Instances kept running with no calls.
    pub min_instances: u32,
    /// Most instances at once.
    pub max_instances: u32,
    /// Idle time after which an instance beyond the minimum is stopped, in milliseconds.
    pub idle_timeout_ms: u64,
    /// The autoscaler's stable window in milliseconds; `None`: the daemon's default.
    #[serde(default)]
    pub window_ms: Option<u64>,
    /// Share of each instance's concurrency the autoscaler aims to use.
    #[serde(default = "default_target_utilization")]
    pub target_utilization: f64,
}

fn default_target_utilization() -> f64 {
    DEFAULT_TARGET_UTILIZATION
}

impl Default for Scaling {
    fn default() -> Self {
        Scaling {
            concurrency: DEFAULT_CONCURRENCY,
            min_instances: 0,
            max_instances: DEFAULT_MAX_INSTANCES,
            idle_timeout_ms: DEFAULT_IDLE_TIMEOUT.as_millis() as u64,
            window_ms: None,
            target_utilization: DEFAULT_TARGET_UTILIZATION,
        }
    }
}

impl Scaling {
    /// The idle timeout.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }

    /// This scaling with the instance bounds given changed (`POST .../scale`), checked as
    /// a deploy checks them.
    pub fn with_bounds(self, min: Option<u32>, max: Option<u32>) -> Result<Scaling, SpecError> {
        let (min_instances, max_instances) = instance_bounds(
            min.unwrap_or(self.min_instances),
            max.unwrap_or(self.max_instances),
        )?;
        Ok(Scaling {
            min_instances,
            max_instances,
            ..self
        })
    }
}

/// `min` and `max` instances, checked: `max` in range, `min` not above it.
fn instance_bounds(min: u32, max: u32) -> Result<(u32, u32), SpecError> {
    let max = in_range("max_instances", max, 1..=1000, None)?;
    if min > max {
        return Err(SpecError::new(
            "min_instances",
            format!("{min} is more than max_instances ({max})"),
        ));
    }
    Ok((min, max))
}

/// The scaling of `spec`'s instances under `contract`, defaults applied (a `lambda`
/// instance takes one call at a time).
pub(super) fn validate(spec: &FunctionSpec, contract: Contract) -> Result<Scaling, SpecError> {
    let concurrency = match contract {
        Contract::Lambda => 1,
        _ => spec.concurrency.unwrap_or(DEFAULT_CONCURRENCY),
    };
    let concurrency = in_range("concurrency", concurrency, 1..=1000, None)?;
    let (min, max) = instance_bounds(
        spec.min_instances.unwrap_or(0),
        spec.max_instances.unwrap_or(DEFAULT_MAX_INSTANCES),
    )?;
    let idle = in_range(
        "idle_timeout",
        spec.idle_timeout
            .unwrap_or(HumanDuration(DEFAULT_IDLE_TIMEOUT)),
        HumanDuration(MIN_IDLE_TIMEOUT)..=HumanDuration(MAX_IDLE_TIMEOUT),
        Some("100ms to 7 days"),
    )?;
    let window = spec
        .autoscale_window
        .map(|window| {
            in_range(
                "autoscale_window",
                window,
                HumanDuration(MIN_WINDOW)..=HumanDuration(MAX_WINDOW),
                None,
            )
        })
        .transpose()?;
    let target = in_range(
        "target_utilization",
        spec.target_utilization
            .unwrap_or(DEFAULT_TARGET_UTILIZATION),
        0.1..=1.0,
        None,
    )?;
    Ok(Scaling {
        concurrency,
        min_instances: min,
        max_instances: max,
        idle_timeout_ms: idle.0.as_millis() as u64,
        window_ms: window.map(|w| w.0.as_millis() as u64),
        target_utilization: target,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rescale_is_checked_as_a_deploy_is() {
        let scaling = Scaling::default();
        let scaled = scaling.with_bounds(Some(2), None).expect("valid");
        assert_eq!((scaled.min_instances, scaled.max_instances), (2, 10));
        assert_eq!(scaled.concurrency, scaling.concurrency);
        let err = scaling.with_bounds(None, Some(1001)).expect_err("too many");
        assert_eq!(
            err.to_string(),
            "max_instances: 1001 is out of range: use 1 to 1000"
        );
        let err = scaled
            .with_bounds(None, Some(1))
            .expect_err("min above max");
        assert_eq!(
            err.to_string(),
            "min_instances: 2 is more than max_instances (1)"
        );
    }
}
