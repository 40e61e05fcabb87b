//! The resources area of a spec: memory, CPUs, pids, `/tmp`, the call timeout and the start
//! budget.

use super::range::in_range;
use super::{FunctionSpec, SpecError};
use crate::units::{ByteSize, HumanDuration};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;

/// Default memory limit of a function's container.
pub const DEFAULT_MEMORY: ByteSize = ByteSize::mib(256);
/// Default CPU quota, in CPUs.
pub const DEFAULT_CPUS: f64 = 1.0;
/// Default pids limit.
pub const DEFAULT_PIDS: u32 = 256;
/// Default size of the writable `/tmp`.
pub const DEFAULT_TMP_SIZE: ByteSize = ByteSize::mib(64);
/// Default call timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

const MIN_MEMORY: ByteSize = ByteSize::mib(6);
const MAX_MEMORY: ByteSize = ByteSize(64 << 30);
const MAX_CPUS: f64 = 256.0;
const MIN_TIMEOUT: Duration = Duration::from_millis(100);
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
const MIN_MAX_WAIT: Duration = Duration::from_millis(100);
const MAX_MAX_WAIT: Duration = Duration::from_secs(3600);

/// Resource limits of a function's containers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Resources {
    /// Memory limit in bytes (no extra swap).
    pub memory_bytes: u64,
    /// CPU quota in CPUs.
    pub cpus: f64,
    /// Pids limit.
    pub pids: u32,
    /// Size of the `/tmp` tmpfs in bytes.
    pub tmp_bytes: u64,
}

/// The resource limits of `spec`, defaults applied.
pub(super) fn validate(spec: &FunctionSpec) -> Result<Resources, SpecError> {
    let memory = in_range(
        "memory",
        spec.memory.unwrap_or(DEFAULT_MEMORY),
        MIN_MEMORY..=MAX_MEMORY,
        None,
    )?;
    let cpus = in_range(
        "cpus",
        spec.cpus.unwrap_or(DEFAULT_CPUS),
        0.01..=MAX_CPUS,
        None,
    )?;
    let pids = in_range("pids", spec.pids.unwrap_or(DEFAULT_PIDS), 8..=65_536, None)?;
    // /tmp is charged to the memory limit: by default it is capped by it too.
    let tmp = in_range(
        "tmp_size",
        spec.tmp_size.unwrap_or(DEFAULT_TMP_SIZE.min(memory)),
        ByteSize::mib(1)..=memory,
        Some(&format!("1Mi up to the memory limit ({memory})")),
    )?;
    Ok(Resources {
        memory_bytes: memory.bytes(),
        cpus,
        pids,
        tmp_bytes: tmp.bytes(),
    })
}

/// The call timeout of `spec`, default applied.
pub(super) fn timeout(spec: &FunctionSpec) -> Result<Duration, SpecError> {
    let timeout = spec.timeout.unwrap_or(HumanDuration(DEFAULT_TIMEOUT));
    in_range(
        "timeout",
        timeout,
        HumanDuration(MIN_TIMEOUT)..=HumanDuration(MAX_TIMEOUT),
        None,
    )
    .map(|t| t.0)
}

/// The start budget of `spec`, if it sets one.
pub(super) fn max_wait(spec: &FunctionSpec) -> Result<Option<Duration>, SpecError> {
    spec.max_wait
        .map(|wait| {
            in_range(
                "max_wait",
                wait,
                HumanDuration(MIN_MAX_WAIT)..=HumanDuration(MAX_MAX_WAIT),
                None,
            )
            .map(|w| w.0)
        })
        .transpose()
}
