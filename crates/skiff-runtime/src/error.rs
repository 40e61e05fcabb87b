use std::fmt;

/// What went wrong talking to the container engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The engine could not be reached at all.
    #[error("cannot reach the container engine during {op}: {message}")]
    Unavailable {
        /// The operation that was attempted.
        op: &'static str,
        /// What the transport said.
        message: String,
    },
    /// The engine did not answer in time.
    #[error("the container engine did not answer {op} within {}s", after.as_secs_f64())]
    TimedOut {
        /// The operation that was attempted.
        op: &'static str,
        /// How long skiff waited.
        after: std::time::Duration,
    },
    /// The image is not present on the engine.
    #[error("image `{reference}` is not present on the container engine")]
    ImageNotFound {
        /// The reference that was looked up.
        reference: String,
    },
    /// The engine refused an image reference as malformed.
    #[error("`{reference}` is not an image reference the container engine accepts: {message}")]
    InvalidReference {
        /// The reference that was looked up.
        reference: String,
        /// The engine's message.
        message: String,
    },
    /// The container does not exist.
    #[error("container {id} does not exist")]
    NotFound {
        /// The container id.
        id: String,
    },
    /// The engine refused the request.
    #[error("{op}: the container engine answered {status}: {message}")]
    Api {
        /// The operation that was attempted.
        op: &'static str,
        /// HTTP status of the engine's answer.
        status: u16,
        /// The engine's message.
        message: String,
    },
    /// The engine's address (`DOCKER_HOST` and the TLS settings) cannot be used.
    #[error(transparent)]
    Endpoint(#[from] crate::endpoint::EndpointError),
    /// Anything else on the way (a broken stream, a bad answer).
    #[error("{op}: {message}")]
    Other {
        /// The operation that was attempted.
        op: &'static str,
        /// What happened.
        message: String,
    },
}

/// An operation name for error context.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Op(pub &'static str);

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}
