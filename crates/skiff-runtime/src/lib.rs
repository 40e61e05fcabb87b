//! skiff-runtime: the container engine behind a trait.
//!
//! [`ContainerEngine`] is everything skiff asks of an engine: resolve an image, create a
//! container with its limits and labels, attach to its stdio, start, wait, kill, remove and
//! list. Every request but the wait for a container's exit (which its caller bounds) is
//! bounded by a timeout in the implementation: a hung engine fails requests, never hangs
//! them. [`docker::DockerEngine`] implements it on the Docker Engine API through bollard, and
//! [`swarm::SwarmEngine`] on Docker Swarm (an instance is a one-task service); the
//! scheduling code is tested against fakes of the same trait.

pub mod backoff;
pub mod docker;
mod docker_images;
mod docker_network;
pub mod endpoint;
mod error;
#[cfg(feature = "fake")]
pub mod fake;
mod images;
pub mod init;
pub mod init_link;
pub mod swarm;

pub use error::EngineError;
pub use images::{registry_of, split_reference, ImageProgress, Progress, RegistryAuth};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::pin::Pin;
use tokio::io::AsyncWrite;

/// What skiff needs to know of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// The content-addressed image id (`sha256:...`), which pins the exact image.
    pub id: String,
    /// The image's entrypoint (may be empty).
    pub entrypoint: Vec<String>,
    /// The image's default command (may be empty).
    pub cmd: Vec<String>,
    /// The image's environment (`KEY=VALUE`).
    pub env: Vec<String>,
    /// Its digests in registries (`REPOSITORY@sha256:...`): one for each registry it was
    /// pulled from or pushed to.
    pub digests: Vec<String>,
}

impl ImageInfo {
    /// The command the image runs by default: entrypoint followed by cmd.
    pub fn command(&self) -> Vec<String> {
        self.entrypoint.iter().chain(&self.cmd).cloned().collect()
    }
}

/// Resource limits and sandboxing of a container.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Memory limit in bytes; swap is limited to the same (no extra swap).
    pub memory_bytes: u64,
    /// CPU quota in CPUs.
    pub cpus: f64,
    /// Pids limit.
    pub pids: u32,
    /// Size of the tmpfs mounted at `/tmp`.
    pub tmp_bytes: u64,
    /// Open files limit (soft and hard).
    pub nofile: u64,
}

/// A read-only bind mount of a host file or directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    /// Path on the host.
    pub source: PathBuf,
    /// Path in the container.
    pub target: String,
}

/// A Docker named volume mounted in a container (never a host path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedVolume {
    /// The volume's name on the engine.
    pub name: String,
    /// Path in the container.
    pub target: String,
    /// Mounted read-only.
    pub read_only: bool,
}

/// Everything needed to create a container. The sandbox is not optional: every container
/// gets a read-only root file system, a tmpfs `/tmp`, no capabilities, `no-new-privileges`
/// and the limits given here.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSpec {
    /// Container name (unique on the engine).
    pub name: String,
    /// Image id or reference.
    pub image: String,
    /// The reference the image was deployed by (`REPOSITORY:TAG`), if any: an engine whose
    /// nodes pull by registry digest pins the digest of that repository (an image pushed to
    /// several registries has one per repository).
    pub image_reference: Option<String>,
    /// Entrypoint override (`None` keeps the image's).
    pub entrypoint: Option<Vec<String>>,
    /// Command override (`None` keeps the image's).
    pub cmd: Option<Vec<String>>,
    /// Environment, `KEY=VALUE`, on top of the image's.
    pub env: Vec<String>,
    /// Labels (skiff's ownership labels among them).
    pub labels: HashMap<String, String>,
    /// Resource limits.
    pub limits: Limits,
    /// Keep stdin open for an attached client, closing it when the client closes its side.
    pub stdin: bool,
    /// Network to join (`None`: no network at all).
    pub network: Option<String>,
    /// Read-only bind mounts.
    pub mounts: Vec<BindMount>,
    /// Named volumes (created beforehand with [`ContainerEngine::ensure_volume`]).
    pub volumes: Vec<NamedVolume>,
}

/// A chunk of a container's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Bytes written to stdout.
    Stdout(Bytes),
    /// Bytes written to stderr.
    Stderr(Bytes),
}

/// A live attachment to a container's stdio.
pub struct Attachment {
    /// The container's stdin; shutting it down closes the container's stdin.
    pub stdin: Pin<Box<dyn AsyncWrite + Send>>,
    /// Everything the container writes, in order, until its streams close.
    pub output: BoxStream<'static, Result<Output, EngineError>>,
}

impl fmt::Debug for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Attachment")
    }
}

/// The state of a container as the engine reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerState {
    /// Whether it is running.
    pub running: bool,
    /// Its exit code, once it has exited.
    pub exit_code: Option<i64>,
    /// Whether the kernel's out-of-memory killer killed a process of it.
    pub oom_killed: bool,
    /// Its address on its network, while it has one.
    pub ip: Option<std::net::IpAddr>,
}

/// What skiff knows of a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInfo {
    /// The network's id.
    pub id: String,
    /// The host's address on the network (its gateway): where containers reach services of
    /// the host.
    pub gateway: Option<std::net::IpAddr>,
    /// The network's subnets.
    pub subnets: Vec<ipnet::IpNet>,
    /// Whether containers on it can reach each other (Docker's inter-container
    /// communication). Networks skiff creates have it off.
    pub containers_connect: bool,
    /// Containers attached to it now.
    pub containers: usize,
}

/// A container found by [`ContainerEngine::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSummary {
    /// Container id.
    pub id: String,
    /// Its labels.
    pub labels: HashMap<String, String>,
    /// Whether it is running.
    pub running: bool,
}

/// What an engine can do beyond the common operations, for the parts of skiff that adapt
/// to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Containers can be frozen and thawed ([`ContainerEngine::pause`]).
    pub pause: bool,
    /// A network can keep the containers on it from reaching each other.
    pub isolated_networks: bool,
    /// A prepared container's stdin can be reached through [`ContainerEngine::attach`]: what
    /// an `exec` function's calls go through. Every engine gives a container's output there.
    pub attach: bool,
}

impl Capabilities {
    /// Everything: a single Docker engine.
    pub const ALL: Capabilities = Capabilities {
        pause: true,
        isolated_networks: true,
        attach: true,
    };
}

/// The operations skiff needs from a container engine.
#[async_trait]
pub trait ContainerEngine: Send + Sync + fmt::Debug + 'static {
    /// What this engine can do beyond the common operations.
    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL
    }

    /// Resolves an image reference present on the engine. [`EngineError::ImageNotFound`] if
    /// it is not there, [`EngineError::InvalidReference`] if the engine refuses the reference.
    async fn inspect_image(&self, reference: &str) -> Result<ImageInfo, EngineError>;

    /// Pulls `reference` from its registry (with `auth`, if given); the stream reports each
    /// step and ends when the image is on the engine. A reference the registry does not
    /// have ends it with [`EngineError::ImageNotFound`].
    fn pull_image(&self, reference: &str, auth: Option<RegistryAuth>) -> Progress;

    /// Pushes `reference`, an image on the engine, to the registry its name says (with
    /// `auth`, if given); the stream reports each step.
    fn push_image(&self, reference: &str, auth: Option<RegistryAuth>) -> Progress;

    /// Gives the image `source` the further name `target` (`REPOSITORY[:TAG]`).
    async fn tag_image(&self, source: &str, target: &str) -> Result<(), EngineError>;

    /// Answers once the engine does (Docker's `/_ping`).
    async fn ping(&self) -> Result<(), EngineError>;

    /// Creates the bridge network `name` with `labels` unless it exists, with
    /// inter-container communication off (containers on it reach the host, not each
    /// other); returns what it is, an existing network as it is.
    async fn ensure_network(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> Result<NetworkInfo, EngineError>;

    /// What network `id` is now.
    async fn network_info(&self, id: &str) -> Result<NetworkInfo, EngineError>;

    /// Removes network `id` (it must have no container attached).
    async fn remove_network(&self, id: &str) -> Result<(), EngineError>;

    /// Creates the named volume `name` with `labels` unless it exists, and returns the labels
    /// the volume has: `labels` for one just created, its own for one that existed (which
    /// is left as it is). Volumes hold user data: skiff never removes them.
    async fn ensure_volume(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> Result<HashMap<String, String>, EngineError>;

    /// Creates a container; returns its id.
    async fn create(&self, spec: &ContainerSpec) -> Result<String, EngineError>;

    /// Attaches to a container's stdin, stdout and stderr (before start, to miss nothing). The
    /// output ends when the container is over. Where [`Capabilities::attach`] is false, the
    /// stdin takes nothing (Swarm gives an instance's output from its service's logs).
    async fn attach(&self, id: &str) -> Result<Attachment, EngineError>;

    /// Starts a created container.
    async fn start(&self, id: &str) -> Result<(), EngineError>;

    /// Waits until the container is no longer running; returns its exit code.
    async fn wait(&self, id: &str) -> Result<i64, EngineError>;

    /// The container's state.
    async fn inspect(&self, id: &str) -> Result<ContainerState, EngineError>;

    /// Kills the container (SIGKILL). A container that is not running, or is gone, is fine.
    async fn kill(&self, id: &str) -> Result<(), EngineError>;

    /// Stops the container: SIGTERM, then SIGKILL after `grace`. Not running is fine.
    async fn stop(&self, id: &str, grace: std::time::Duration) -> Result<(), EngineError>;

    /// Freezes every process of the container (it keeps its memory, uses no CPU).
    async fn pause(&self, id: &str) -> Result<(), EngineError>;

    /// Thaws a paused container.
    async fn unpause(&self, id: &str) -> Result<(), EngineError>;

    /// Removes the container, killing it if needed. A container that is gone is fine.
    async fn remove(&self, id: &str) -> Result<(), EngineError>;

    /// All containers (running or not) that carry every one of `labels`.
    async fn list(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerSummary>, EngineError>;
}
