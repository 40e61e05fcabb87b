//! skiff-invoker: the platform's core operations, shared by every transport.
//!
//! [`Platform`] is the one entry point: the management API, the public route, the Lambda API
//! and the function API all call its methods, and nothing else. Around it, one module per job:
//! - admission and dispatch ([`platform`]); the function registry (`registry`);
//! - the contract drivers ([`exec`]: a fresh container per call, prepared ahead of time;
//!   [`pool`]: long-lived instances for `http` and `lambda`; [`lambda`]: the Runtime API's
//!   state), and each contract's call path (`invoke`);
//! - a call's record from start to end (`calls`), written in batches (`recorder`), counted
//!   in the [`metrics`]; the sync calls in flight (`running`);
//! - live logs: output line by line to followers, and instance lines to the store ([`logs`]);
//! - the global limit (`limiter`) and the file descriptor budget (`fds`);
//! - async calls: the durable queue (`queue`), the dispatcher (`dispatcher`), callbacks
//!   ([`callback`], [`destinations`]);
//! - the [`triggers`]: cron schedules and broker subscriptions that start calls;
//! - the HTTP client to instances ([`proxy`]) and the body helpers ([`body`]).

mod autoscale;
use skiff_runtime::backoff;
pub mod body;
pub mod callback;
mod calls;
pub mod config;
pub mod destinations;
mod dispatcher;
mod engine;
mod error;
pub mod exec;
pub mod fds;
mod group_commit;
mod invoke;
pub mod lambda;
mod limiter;
pub mod logs;
pub mod metrics;
mod platform;
pub mod pool;
pub mod proxy;
mod queue;
mod recorder;
pub mod registries;
mod registry;
mod running;
pub mod tls;
pub mod token;
pub mod triggers;

pub use body::{Body, BoxError};
pub use config::PlatformConfig;
pub use destinations::registry_is_local;
pub use error::PlatformError;
pub use invoke::{InvokeOutcome, InvokeRequest};
pub use platform::{AccessKey, ImageSteps, Platform, DEFAULT_NAMESPACE, IMAGE_IDLE};
pub use pool::InstanceView;
pub use skiff_core::api::headers::{CALLBACK_HEADER, DEPTH_HEADER};
pub use skiff_runtime::split_reference;
pub use token::{Caller, TokenError, TokenKey};
