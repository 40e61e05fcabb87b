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
    /// The engine could not pull from or push to an image's registry (unreachable,
    /// refused the credentials, or answered with an error).
    #[error("{op} `{reference}`: {message}")]
    Registry {
        /// `pull` or `push`.
        op: &'static str,
        /// The image.
        reference: String,
        /// What the engine said.
        message: String,
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
    /// The connection to a `skiff-init` in listen mode (see `init_link`) failed: nothing
    /// listened in time, the connection broke before the function's exit status, or it
    /// carried a malformed frame.
    #[error("call through skiff-init at {addr}: {message}")]
    InitLink {
        /// Where `skiff-init` listens.
        addr: std::net::SocketAddr,
        /// What went wrong.
        message: String,
    },
    /// The engine cannot do this at all (a Docker Swarm cannot pause a service's task, for
    /// instance).
    #[error("{op} is not supported on the {engine} engine")]
    Unsupported {
        /// The operation, or the part of a container spec, that cannot be had.
        op: &'static str,
        /// The engine (`swarm`).
        engine: &'static str,
    },
    /// The engine at this endpoint is not what the caller asked for: a Docker Swarm engine
    /// needs a manager node of a swarm.
    #[error("the Docker engine at {endpoint} is not a Docker Swarm manager: {reason}")]
    NotSwarmManager {
        /// Where the engine is.
        endpoint: String,
        /// What the engine says of its swarm.
        reason: String,
    },
    /// The image has no digest in a registry, so the nodes of a swarm cannot pull the same
    /// bytes: it must be pushed to a registry first.
    #[error(
        "image `{image}` has no registry digest: the nodes of a swarm pull images from a \
         registry, so push it to one first (`skiff push IMAGE --to REGISTRY/REPO`)"
    )]
    ImageNotInRegistry {
        /// The image as the caller named it.
        image: String,
    },
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
