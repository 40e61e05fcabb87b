//! What goes in and out of the pools' state machine ([`super::state::PoolState`]): the
//! events the async layer reports, the actions it carries out, and the data they carry.

use super::output::Output;
use skiff_core::{Contract, HttpSettings, Resources, Scaling, VolumeMount};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the manager needs to know of one version of an instance-based function.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceTarget {
    /// Function name.
    pub function: String,
    /// Function version; instances of older versions are drained.
    pub version: u64,
    /// Image id.
    pub image: String,
    /// The reference the function was deployed with (`REPOSITORY:TAG`).
    pub image_reference: String,
    /// Environment, `KEY=VALUE` (function env, secrets, `PORT`).
    pub env: Vec<String>,
    /// Resource limits.
    pub resources: Resources,
    /// How instances are reached.
    pub http: HttpSettings,
    /// How many run.
    pub scaling: Scaling,
    /// `http`: served on a port; `lambda`: speaks skiff's Runtime API.
    pub contract: Contract,
    /// Command override (a Lambda handler), `None` for the image's own.
    pub cmd: Option<Vec<String>>,
    /// Named volumes to mount.
    pub volumes: Vec<VolumeMount>,
}

/// Why no instance slot was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcquireError {
    /// The function's queue is full.
    #[error("all {instances} instances are busy and {queued} calls are waiting")]
    QueueFull {
        /// Instances of the function.
        instances: usize,
        /// Calls waiting.
        queued: usize,
    },
    /// The call's start budget ran out while it waited.
    #[error("no instance became free within the call's start budget (max_wait)")]
    Timeout,
    /// Instances could not be started.
    #[error("{0}")]
    StartFailed(String),
    /// The platform is stopping.
    #[error("skiff is shutting down")]
    ShuttingDown,
}

/// An instance as the API shows it.
pub use skiff_core::api::InstanceView;

/// A call waiting for a slot, as the async layer names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WaiterId(pub u64);

/// An instance that became ready.
#[derive(Debug, Clone)]
pub struct NewInstance {
    /// Instance id.
    pub id: String,
    /// Its container.
    pub container: String,
    /// Where it serves.
    pub addr: SocketAddr,
    /// The function version it runs.
    pub version: u64,
    /// When it was found ready.
    pub ready_at: Instant,
    /// Its output, kept by its watcher.
    pub output: Output,
}

/// The outcome of one instance's health probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthResult {
    /// Its function.
    pub function: String,
    /// Instance id.
    pub instance: String,
    /// Whether it answered.
    pub healthy: bool,
}

/// An instance to probe in a round of health checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// Its function.
    pub function: String,
    /// Instance id.
    pub instance: String,
    /// Where it serves.
    pub addr: SocketAddr,
    /// The function's readiness path (`None`: a TCP connect).
    pub readiness_path: Option<String>,
}

/// Something that happened, as the async layer reports it.
#[derive(Debug, Clone)]
pub enum Event {
    /// A function was deployed, or redeployed with a new target: instances of an older
    /// version take no new calls and are drained; the minimum is started.
    Deployed(Arc<InstanceTarget>),
    /// A function's scaling changed, with the same version.
    ScalingChanged {
        /// The function.
        function: String,
        /// Its new scaling.
        scaling: Scaling,
    },
    /// A function was deleted (or is no longer instance-based).
    Removed {
        /// The function.
        function: String,
    },
    /// A call asks for a slot.
    Acquire {
        /// The function called.
        function: String,
        /// The call, answered by [`Action::Grant`] or [`Action::Fail`].
        waiter: WaiterId,
    },
    /// A call stopped waiting (its deadline passed, or it was dropped).
    GaveUp {
        /// The function called.
        function: String,
        /// The call.
        waiter: WaiterId,
    },
    /// A call gave its slot back.
    Released {
        /// The function.
        function: String,
        /// Instance id.
        instance: String,
        /// Whether the call found the instance broken.
        broken: bool,
    },
    /// A start asked by [`Action::Start`] ended with a ready instance.
    Started {
        /// The function.
        function: String,
        /// The instance.
        instance: NewInstance,
    },
    /// A start asked by [`Action::Start`] failed (its container is already removed).
    StartFailed {
        /// The function.
        function: String,
        /// Why, with the end of the instance's output.
        message: String,
    },
    /// The engine froze an instance ([`Action::Pause`]).
    Paused {
        /// The function.
        function: String,
        /// Instance id.
        instance: String,
    },
    /// Freezing an instance failed.
    PauseFailed {
        /// The function.
        function: String,
        /// Instance id.
        instance: String,
        /// Its container.
        container: String,
    },
    /// The engine thawed an instance ([`Action::Resume`]).
    Resumed {
        /// The function.
        function: String,
        /// Instance id.
        instance: String,
    },
    /// Thawing an instance failed.
    ResumeFailed {
        /// The function.
        function: String,
        /// Instance id.
        instance: String,
        /// Its container.
        container: String,
    },
    /// An instance's output ended: its container exited or was removed.
    Exited {
        /// The function.
        function: String,
        /// Its container.
        container: String,
        /// The end of its output, quoted (for the error of an instance that crashed).
        output: String,
    },
    /// The wait asked by [`Action::Wake`] is over: instances of the function may start
    /// again.
    Retry {
        /// The function.
        function: String,
    },
    /// A round of health checks ended.
    HealthChecked(Vec<HealthResult>),
    /// A tick of the autoscaler, for every function.
    Tick,
    /// The daemon began to stop: an instance that becomes ready now is stopped instead.
    Closing,
    /// The daemon stops: every pool is emptied now.
    Shutdown,
}

/// A slot on an instance, given to one call.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The function.
    pub function: String,
    /// Instance id.
    pub instance: String,
    /// Where the instance serves.
    pub addr: SocketAddr,
    /// Whether the instance became ready (started or resumed) after the call began to wait.
    pub cold: bool,
    /// How long the call waited.
    pub waited: Duration,
    /// The instance's output.
    pub output: Output,
}

/// Why an instance is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// It runs an older version and serves no call.
    Drained,
    /// The autoscaler wants fewer instances and it was idle long enough.
    Idle,
    /// It stayed paused longer than the paused TTL.
    Expired,
    /// A call found it broken.
    Broken,
    /// Its container exited.
    Exited,
    /// It failed its health checks.
    Unhealthy,
    /// It could not be paused.
    PauseFailed,
    /// It could not be resumed.
    ResumeFailed,
    /// Its function was deleted.
    Deleted,
    /// It became ready when no pool wanted it any more (version changed, function deleted,
    /// daemon stopping).
    Discarded,
}

/// What the async layer does.
#[derive(Debug, Clone)]
pub enum Action {
    /// Give a waiting call its slot.
    Grant {
        /// The call.
        waiter: WaiterId,
        /// Its slot.
        lease: Grant,
    },
    /// Answer a waiting call with an error.
    Fail {
        /// The call.
        waiter: WaiterId,
        /// Why.
        error: AcquireError,
    },
    /// Start one instance of the function's current target, then report
    /// [`Event::Started`] or [`Event::StartFailed`].
    Start {
        /// The function.
        function: String,
    },
    /// Thaw a paused instance, then report [`Event::Resumed`] or [`Event::ResumeFailed`].
    Resume {
        /// The function.
        function: String,
        /// Instance id.
        instance: String,
        /// Its container.
        container: String,
    },
    /// Freeze an idle instance, then report [`Event::Paused`] or [`Event::PauseFailed`].
    Pause {
        /// The function.
        function: String,
        /// Instance id.
        instance: String,
        /// Its container.
        container: String,
    },
    /// Stop a container (SIGTERM, a grace period, SIGKILL) and remove it.
    Stop {
        /// The function.
        function: String,
        /// Instance id.
        instance: String,
        /// Its container.
        container: String,
        /// Why.
        reason: StopReason,
    },
    /// Kill a container at once and remove it (shutdown).
    Kill {
        /// The container.
        container: String,
    },
    /// Report [`Event::Retry`] at `at`: the function's instances keep failing, and none
    /// starts before then.
    Wake {
        /// The function.
        function: String,
        /// When.
        at: Instant,
    },
}
