//! skiff-core: the types every part of skiff shares, and their validation. No I/O.
//!
//! - [`access`]: scopes, namespaces and full names, and what a credential grants.
//! - [`api`]: the API on the wire: the bodies the gateway serves and the CLI reads, and the
//!   header names.
//! - [`spec`]: what a user asks for when deploying a function, validated into a
//!   [`spec::FunctionConfig`] with every default applied.
//! - [`function`]: a deployed function as the platform stores it.
//! - [`call`]: one invocation, its explicit status machine and its error types.
//! - [`instance`]: the lifecycle of one container serving a function.
//! - [`stats`]: figures of calls over time (the stats route, the dashboard's charts).
//! - [`syntax`]: the syntax of image references and readiness paths.
//! - [`trigger`]: cron schedules and broker subscriptions that start calls.
//! - [`units`]: byte sizes (`128Mi`) and durations (`10s`) as users write them.
//! - [`labels`]: the labels on every container skiff starts.

pub mod access;
pub mod api;
pub mod call;
pub mod function;
pub mod instance;
pub mod labels;
pub mod spec;
pub mod stats;
pub mod syntax;
pub mod trigger;
pub mod units;

pub use call::{
    BodyEncoding, CallDetails, CallErrorType, CallOutput, CallRecord, CallStatus, Trigger,
};
pub use function::{Function, FunctionView};
pub use instance::InstanceState;
pub use spec::{
    Contract, FunctionConfig, FunctionName, FunctionSpec, HttpSettings, Resources, Scaling,
    SpecError, VolumeMount,
};
pub use trigger::{
    CronSpec, MissedTicks, NatsSpec, Schedule, TriggerKind, TriggerRecord, TriggerSpec,
    TriggerState, TriggerView,
};
pub use units::{ByteSize, HumanDuration};
