//! skiff-invoker: the platform's core operations, shared by every transport.
//!
//! [`Platform`] is the one entry point: the management API, the public route and (later) the
//! Lambda API all call its methods, and nothing else. It owns
//! - the function registry (the store, with an in-memory copy for the hot path);
//! - the global call limiter (a bounded number of calls at once, a bounded queue, then 429),
//!   and the budget of file descriptors ([`fds`]: near the limit, 429 too);
//! - the contract drivers ([`exec`]: a fresh container per call, prepared ahead of time;
//!   [`http`]: calls proxied to long-lived instances, managed per function by [`pool`]);
//! - the call recorder (call records written in batches, off the call's path);
//! - the background tasks (preparing containers, removing used ones, expiring idle ones),
//!   each with an owner, a bound and a shutdown path;
//! - the [`triggers`]: cron schedules and broker subscriptions that start calls.

mod autoscale;
pub mod callback;
pub mod config;
pub mod destinations;
mod error;
pub mod exec;
pub mod fds;
pub mod http;
pub mod lambda;
mod limiter;
pub mod metrics;
mod platform;
pub mod pool;
mod queue;
mod recorder;
mod running;
pub mod token;
pub mod triggers;

pub use config::PlatformConfig;
pub use error::PlatformError;
pub use http::{Body, BoxError};
pub use platform::{InvokeOutcome, InvokeRequest, Platform};
pub use pool::InstanceView;
pub use skiff_core::api::headers::CALLBACK_HEADER;
pub use token::{Caller, TokenError, TokenKey};
