use skiff_core::{CallErrorType, SpecError};
use skiff_runtime::EngineError;
use skiff_store::StoreError;
use uuid::Uuid;

/// Why a platform operation did not succeed. Transports map each kind to their own shape
/// (an HTTP status and error code; an AWS error; a CLI line).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlatformError {
    /// The function spec (or name) is invalid.
    #[error("invalid function spec: {0}")]
    InvalidSpec(#[from] SpecError),
    /// No function by that name.
    #[error("function `{name}` does not exist")]
    FunctionNotFound {
        /// The name asked for.
        name: String,
    },
    /// The trigger spec (or name) is invalid.
    #[error("invalid trigger: {0}")]
    InvalidTrigger(SpecError),
    /// No trigger by that name.
    #[error("trigger `{name}` does not exist")]
    TriggerNotFound {
        /// The name asked for.
        name: String,
    },
    /// No call with that id.
    #[error("call {id} does not exist")]
    CallNotFound {
        /// The id asked for.
        id: Uuid,
    },
    /// The image is not present on the container engine.
    #[error("image `{image}` is not present on the container engine; build or pull it first")]
    ImageNotFound {
        /// The reference given.
        image: String,
    },
    /// Too many calls in flight and queued.
    #[error("too many calls: {running} running and {queued} queued; try again later")]
    Overloaded {
        /// Calls running.
        running: usize,
        /// Calls queued.
        queued: usize,
    },
    /// The daemon is near its limit of open files: new work is refused until some are
    /// given back.
    #[error("skiff is near its limit of open files ({in_use} of {limit} in use); try again later")]
    NearFdLimit {
        /// Descriptors open or promised to work under way.
        in_use: u64,
        /// The limit.
        limit: u64,
    },
    /// The call ran and failed; its record says more.
    #[error("{message}")]
    CallFailed {
        /// The call's id.
        call_id: Uuid,
        /// Why it failed.
        error_type: CallErrorType,
        /// A readable account.
        message: String,
        /// The function's exit code, when it exited.
        exit_code: Option<i64>,
    },
    /// The request body is larger than the limit.
    #[error("the request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The request cannot be handled as sent.
    #[error("{message}")]
    BadRequest {
        /// What is wrong.
        message: String,
    },
    /// No access key with that id.
    #[error("access key `{id}` does not exist")]
    AccessKeyNotFound {
        /// The id asked for.
        id: String,
    },
    /// The request conflicts with the state of the platform (say, a key rotation that
    /// another daemon cannot follow yet).
    #[error("{message}")]
    Conflict {
        /// What stands in the way.
        message: String,
    },
    /// The call would be deeper than the daemon's `max_call_depth` hops of functions calling
    /// functions: a loop, most likely.
    #[error("call refused: it would be {depth} function-to-function hops deep, more than the limit of {max} (a function calling itself without end?)")]
    LoopDetected {
        /// The depth the call would have.
        depth: u32,
        /// The limit.
        max: u32,
    },
    /// Something skiff did not expect; the daemon's log says more.
    #[error("{message}")]
    Internal {
        /// What happened.
        message: String,
    },
    /// The platform is shutting down and takes no new calls.
    #[error("skiff is shutting down")]
    ShuttingDown,
    /// As many logs are followed as the daemon allows.
    #[error("{max} logs are followed already; try again later")]
    TooManyFollowers {
        /// The most followers at once.
        max: usize,
    },
    /// The container engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The platform could not set itself up.
    #[error("{what}: {message}")]
    Setup {
        /// What was being set up.
        what: &'static str,
        /// What went wrong.
        message: String,
    },
}
