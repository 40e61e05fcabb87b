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
    #[error("image `{image}` is not present on the container engine; build it, or pull it (`skiff pull`)")]
    ImageNotFound {
        /// The reference given.
        image: String,
    },
    /// An image's registry does not have it.
    #[error("the registry {registry} has no image `{image}`")]
    NotInRegistry {
        /// The image.
        image: String,
        /// The registry it names.
        registry: String,
    },
    /// An image's registry could not be used: unreachable, credentials refused, or an
    /// error of its own.
    #[error("{op} `{image}`: {message}")]
    Registry {
        /// `pull` or `push`.
        op: &'static str,
        /// The image.
        image: String,
        /// What the registry or the engine said.
        message: String,
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
    /// A token or key request that cannot be met (`field` names the culprit).
    #[error("{field}: {message}")]
    InvalidToken {
        /// The field at fault.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// No token or key has this id (in the namespaces the caller reaches).
    #[error("token `{id}` does not exist")]
    TokenNotFound {
        /// The id asked for.
        id: String,
    },
    /// A credential was missing, unknown, revoked or expired. The message never quotes it.
    #[error("{message}")]
    Unauthorized {
        /// Why.
        message: String,
    },
    /// A valid credential that does not allow this.
    #[error("{message}")]
    Forbidden {
        /// Why.
        message: String,
    },
    /// A namespace is at one of its quotas.
    #[error(
        "namespace `{namespace}` is at its quota of {what} ({limit}); try again later or raise it"
    )]
    QuotaExceeded {
        /// The namespace.
        namespace: String,
        /// Which quota: `functions`, `concurrent calls`, `memory`.
        what: &'static str,
        /// The quota, as users write it.
        limit: String,
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
