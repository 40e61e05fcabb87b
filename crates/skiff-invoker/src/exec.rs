//! The `exec` contract: a fresh container per call.
//!
//! The request body is the container's stdin, stdout is the response, stderr the call's log,
//! exit code 0 success. To keep the container start off the call's path, containers are
//! *prepared*: created and started ahead of time with `skiff-init` as PID 1, which waits on
//! stdin for the call's metadata (the `SKIFF_*` variables), then execs the function. Each
//! prepared container serves one call and is removed afterwards, off the call's path.
//!
//! Per function, [`ExecDriver`] keeps up to `prewarm` prepared containers of the function's
//! current version. A call takes one if there is one (a warm start of a fresh container) or
//! prepares its own (a cold start); the platform then has a replacement prepared in the
//! background ([`ExecDriver::refill`]). A function not called for `idle_timeout` has its
//! prepared containers removed. Near the daemon's limit of open files (see [`crate::fds`]),
//! replacements wait.
//!
//! A call ends by its deadline, or as soon as it is stopped (its caller went away, its
//! function was deleted, the daemon is stopping): its container is killed then. The used
//! container is handed back in the outcome; the platform removes it
//! ([`ExecDriver::remove_used`]) while the call still holds its slot, so that containers
//! alive stay bounded by the calls in flight and the prepared ones.

use crate::fds::{FdReservation, FDS_PER_PREPARE};
use crate::running::CallGuard;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use parking_lot::{Mutex, MutexGuard};
use skiff_core::{labels, CallErrorType, Contract, Resources, VolumeMount};
use skiff_runtime::init::INIT_PATH_IN_CONTAINER;
use skiff_runtime::{
    Attachment, BindMount, ContainerEngine, ContainerSpec, EngineError, Limits, Output,
};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The engine's form of a function's volumes.
pub(crate) fn named_volumes(volumes: &[VolumeMount]) -> Vec<skiff_runtime::NamedVolume> {
    volumes
        .iter()
        .map(|v| skiff_runtime::NamedVolume {
            name: v.name.clone(),
            target: v.target.clone(),
            read_only: v.read_only,
        })
        .collect()
}

/// Containers removed at once in the background.
const REMOVAL_SLOTS: usize = 4;
/// Bytes of the end of stderr kept for a failed call's error message.
const ERROR_TAIL_BYTES: usize = 1024;

/// What the exec driver needs to know of one version of a function.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecTarget {
    /// Function name.
    pub function: String,
    /// Function version.
    pub version: u64,
    /// Unique to this deploy of the function in this process (a deleted and re-created
    /// function starts again at version 1; its generation is new): prepared containers of
    /// another generation are never used.
    pub generation: u64,
    /// Image id to run.
    pub image: String,
    /// The image's command (entrypoint and cmd), run by `skiff-init`.
    pub command: Vec<String>,
    /// The function's environment and secrets, `KEY=VALUE`.
    pub env: Vec<String>,
    /// Resource limits.
    pub resources: Resources,
    /// Named volumes to mount.
    pub volumes: Vec<VolumeMount>,
}

/// How the driver runs, from the platform's configuration.
#[derive(Debug, Clone)]
pub struct ExecSettings {
    /// The daemon's id, put on every container's labels.
    pub daemon_id: String,
    /// The host path of `skiff-init`.
    pub init_path: PathBuf,
    /// The network containers join.
    pub network: Option<String>,
    /// Open files limit.
    pub nofile: u64,
    /// Prepared containers kept per function.
    pub prewarm: usize,
    /// Idle time after which a function's prepared containers are removed.
    pub idle_timeout: Duration,
    /// Most background preparations at once.
    pub max_background_prepares: usize,
    /// Largest response.
    pub max_response_bytes: usize,
    /// Most log bytes kept.
    pub max_log_bytes: usize,
    /// The key that signs each container's `SKIFF_TOKEN`.
    pub tokens: Arc<crate::token::TokenKey>,
    /// The daemon's file descriptors: prepared containers are not replaced near the limit.
    pub fds: crate::fds::FdBudget,
    /// Where each call's stderr goes, line by line, as it is written.
    pub logs: crate::logs::LogSink,
}

/// A container created, attached and started, waiting for its call.
struct Prepared {
    instance: String,
    container: String,
    attachment: Attachment,
}

/// One function's prepared containers.
#[derive(Default)]
struct Pool {
    generation: u64,
    ready: VecDeque<Prepared>,
    preparing: usize,
    last_used: Option<Instant>,
}

/// The result of one exec call.
#[derive(Debug)]
pub struct ExecOutcome {
    /// The instance (container) that served the call, if one was started.
    pub instance: Option<String>,
    /// Whether the call waited for its container to be created and started.
    pub cold: bool,
    /// What the function wrote to stdout (empty on failure).
    pub stdout: Bytes,
    /// What it wrote to stderr, capped.
    pub logs: Vec<u8>,
    /// Its exit code, if it exited.
    pub exit_code: Option<i64>,
    /// Why it failed, if it did.
    pub error: Option<(CallErrorType, String)>,
    /// The container the call used, to remove ([`ExecDriver::remove_used`]).
    pub container: Option<String>,
}

/// Runs `exec` calls; owns the prepared containers and the tasks that make and remove them.
#[derive(Debug)]
pub struct ExecDriver {
    engine: Arc<dyn ContainerEngine>,
    settings: ExecSettings,
    pools: Mutex<HashMap<String, Pool>>,
    prepare_slots: Arc<Semaphore>,
    removal_slots: Arc<Semaphore>,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("generation", &self.generation)
            .field("ready", &self.ready.len())
            .field("preparing", &self.preparing)
            .finish()
    }
}

/// Stderr as kept for a call: the first `max` bytes, and the last bytes for error messages.
struct LogBuffer {
    head: Vec<u8>,
    max: usize,
    dropped: usize,
    tail: VecDeque<u8>,
}

impl LogBuffer {
    fn new(max: usize) -> Self {
        LogBuffer {
            head: Vec::new(),
            max,
            dropped: 0,
            tail: VecDeque::new(),
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        let room = self.max.saturating_sub(self.head.len());
        let kept = room.min(bytes.len());
        self.head.extend_from_slice(&bytes[..kept]);
        self.dropped += bytes.len() - kept;
        self.tail
            .extend(bytes.iter().rev().take(ERROR_TAIL_BYTES).rev());
        let excess = self.tail.len().saturating_sub(ERROR_TAIL_BYTES);
        self.tail.drain(..excess);
    }

    fn tail_text(&self) -> String {
        let bytes: Vec<u8> = self.tail.iter().copied().collect();
        String::from_utf8_lossy(&bytes).trim().to_string()
    }

    fn into_logs(mut self) -> Vec<u8> {
        if self.dropped > 0 {
            self.head.extend_from_slice(
                format!("\n[skiff: {} more bytes of log dropped]\n", self.dropped).as_bytes(),
            );
        }
        self.head
    }
}

/// How reading the container's output ended.
enum ReadEnd {
    /// The streams closed.
    Closed,
    /// Stdout went past the response limit.
    TooLarge,
}

impl ExecDriver {
    /// A driver on `engine`; its background tasks stop when `cancel` fires, and
    /// [`ExecDriver::shutdown`] waits for them.
    pub fn new(
        engine: Arc<dyn ContainerEngine>,
        settings: ExecSettings,
        cancel: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(ExecDriver {
            engine,
            prepare_slots: Arc::new(Semaphore::new(settings.max_background_prepares.max(1))),
            removal_slots: Arc::new(Semaphore::new(REMOVAL_SLOTS)),
            settings,
            pools: Mutex::new(HashMap::new()),
            tracker: TaskTracker::new(),
            cancel,
        })
    }

    fn pools(&self) -> MutexGuard<'_, HashMap<String, Pool>> {
        self.pools.lock()
    }

    /// How many prepared containers `function` has ready now.
    pub fn ready_count(&self, function: &str) -> usize {
        self.pools().get(function).map_or(0, |p| p.ready.len())
    }

    fn container_spec(&self, target: &ExecTarget, instance: &str) -> ContainerSpec {
        let r = &target.resources;
        let mut env = target.env.clone();
        env.push(format!(
            "SKIFF_TOKEN={}",
            self.settings.tokens.mint(&target.function, instance)
        ));
        ContainerSpec {
            name: format!("skiff-{}-{instance}", target.function),
            image: target.image.clone(),
            entrypoint: Some(vec![INIT_PATH_IN_CONTAINER.to_string()]),
            cmd: Some(target.command.clone()),
            env,
            labels: labels::for_container(
                &target.function,
                instance,
                &self.settings.daemon_id,
                Contract::Exec,
            ),
            limits: Limits {
                memory_bytes: r.memory_bytes,
                cpus: r.cpus,
                pids: r.pids,
                tmp_bytes: r.tmp_bytes,
                nofile: self.settings.nofile,
            },
            stdin: true,
            network: self.settings.network.clone(),
            mounts: vec![BindMount {
                source: self.settings.init_path.clone(),
                target: INIT_PATH_IN_CONTAINER.to_string(),
            }],
            volumes: named_volumes(&target.volumes),
        }
    }

    /// Creates, attaches and starts a container for `target`. On failure, nothing is left.
    async fn prepare(&self, target: &ExecTarget) -> Result<Prepared, EngineError> {
        let instance = instance_id();
        let spec = self.container_spec(target, &instance);
        let container = match self.engine.create(&spec).await {
            Ok(container) => container,
            Err(err @ EngineError::TimedOut { .. }) => {
                // The engine may make it still: remove it by name, not to leave it behind.
                self.discard(spec.name);
                return Err(err);
            }
            Err(err) => return Err(err),
        };
        let attached = async {
            let attachment = self.engine.attach(&container).await?;
            self.engine.start(&container).await?;
            Ok::<_, EngineError>(attachment)
        }
        .await;
        match attached {
            Ok(attachment) => Ok(Prepared {
                instance,
                container,
                attachment,
            }),
            Err(err) => {
                self.discard(container);
                Err(err)
            }
        }
    }

    /// Removes a used (or unwanted) container in the background.
    fn discard(&self, container: String) {
        let engine = self.engine.clone();
        let slots = self.removal_slots.clone();
        self.tracker.spawn(async move {
            let _slot = slots.acquire_owned().await;
            if let Err(err) = engine.remove(&container).await {
                tracing::warn!(%err, container, "could not remove a function container");
            }
        });
    }

    /// Removes a container a call used, now (the call waits for it).
    pub async fn remove_used(&self, container: &str) {
        if let Err(err) = self.engine.remove(container).await {
            tracing::warn!(%err, container, "could not remove a function container");
        }
    }

    /// Takes a ready container of `target`'s generation, dropping those of others.
    /// A function with no pool (never called, or deleted) has none.
    fn take_ready(&self, target: &ExecTarget) -> Option<Prepared> {
        let mut pools = self.pools();
        let pool = pools.get_mut(&target.function)?;
        pool.last_used = Some(Instant::now());
        if pool.generation != target.generation {
            pool.generation = target.generation;
            for stale in pool.ready.drain(..) {
                self.discard(stale.container);
            }
        }
        pool.ready.pop_front()
    }

    /// Prepares containers in the background until `target` has `prewarm` of them, as far
    /// as the file descriptors allow (the next call or refill tries again). The caller makes
    /// sure that the function still exists (a pool created here after
    /// [`ExecDriver::forget`] would outlive its function).
    pub fn refill(self: &Arc<Self>, target: &Arc<ExecTarget>) {
        if self.cancel.is_cancelled() {
            return;
        }
        let (missing, reservations) = {
            let mut pools = self.pools();
            let pool = pools.entry(target.function.clone()).or_default();
            if pool.generation != target.generation {
                pool.generation = target.generation;
                for stale in pool.ready.drain(..) {
                    self.discard(stale.container);
                }
            }
            pool.last_used.get_or_insert_with(Instant::now);
            let missing = self
                .settings
                .prewarm
                .saturating_sub(pool.ready.len() + pool.preparing);
            let reservations: Vec<FdReservation> = (0..missing)
                .map_while(|_| self.settings.fds.try_reserve(FDS_PER_PREPARE).ok())
                .collect();
            pool.preparing += reservations.len();
            (missing, reservations)
        };
        if reservations.len() < missing {
            tracing::debug!(
                function = target.function,
                skipped = missing - reservations.len(),
                "near the open-files limit: prepared containers are not replaced for now"
            );
        }
        for reservation in reservations {
            let driver = self.clone();
            let target = target.clone();
            self.tracker.spawn(async move {
                // Held until the container is pooled (its attachment then shows in the
                // sampled count) or given up.
                let _reservation = reservation;
                // Waiting for a slot ends at shutdown; a preparation under way is let finish,
                // so that the container it creates is known and removed, never leaked.
                let slot = tokio::select! {
                    _ = driver.cancel.cancelled() => None,
                    slot = driver.prepare_slots.acquire() => slot.ok(),
                };
                let prepared = match slot {
                    Some(_slot) => Some(driver.prepare(&target).await),
                    None => None,
                };
                let leftover = {
                    let mut pools = driver.pools();
                    let mut pool = pools.get_mut(&target.function);
                    if let Some(pool) = pool.as_deref_mut() {
                        pool.preparing = pool.preparing.saturating_sub(1);
                    }
                    match prepared {
                        Some(Ok(prepared)) => match pool {
                            Some(pool)
                                if pool.generation == target.generation && !driver.cancel.is_cancelled() =>
                            {
                                pool.ready.push_back(prepared);
                                None
                            }
                            _ => Some(prepared.container),
                        },
                        Some(Err(err)) => {
                            tracing::warn!(%err, function = target.function, "could not prepare a container");
                            None
                        }
                        None => None,
                    }
                };
                if let Some(container) = leftover {
                    if let Err(err) = driver.engine.remove(&container).await {
                        tracing::warn!(%err, container, "could not remove an unneeded container");
                    }
                }
            });
        }
    }

    /// Removes the prepared containers of `function` and forgets it (on delete or update).
    pub fn forget(&self, function: &str) {
        let pool = self.pools().remove(function);
        if let Some(pool) = pool {
            for prepared in pool.ready {
                self.discard(prepared.container);
            }
        }
    }

    /// Removes the prepared containers of functions idle for longer than the idle timeout.
    pub fn expire_idle(&self) {
        let now = Instant::now();
        let mut expired = Vec::new();
        {
            let mut pools = self.pools();
            for (name, pool) in pools.iter_mut() {
                let idle = pool
                    .last_used
                    .is_none_or(|t| now.duration_since(t) >= self.settings.idle_timeout);
                if idle && !pool.ready.is_empty() {
                    tracing::debug!(
                        function = name,
                        count = pool.ready.len(),
                        "removing idle prepared containers"
                    );
                    expired.extend(pool.ready.drain(..).map(|p| p.container));
                }
            }
        }
        for container in expired {
            self.discard(container);
        }
    }

    /// At shutdown (after the cancel token fired): removes every prepared container, and
    /// waits (at most 30s) for preparations and removals under way to end.
    pub async fn shutdown(&self) {
        let containers: Vec<String> = {
            let mut pools = self.pools();
            pools
                .drain()
                .flat_map(|(_, pool)| pool.ready.into_iter().map(|p| p.container))
                .collect()
        };
        let engine = &self.engine;
        futures::stream::iter(containers)
            .for_each_concurrent(REMOVAL_SLOTS, |container| async move {
                if let Err(err) = engine.remove(&container).await {
                    tracing::warn!(%err, container, "could not remove a prepared container");
                }
            })
            .await;
        self.tracker.close();
        if tokio::time::timeout(Duration::from_secs(30), self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("container preparations and removals still running 30s into shutdown");
        }
    }

    /// Runs one call: `frame` (the call's metadata for `skiff-init`) then `body` on stdin,
    /// until `deadline` or until `call` is stopped. The container used comes back in the
    /// outcome, for the caller to remove.
    pub(crate) async fn run(
        self: &Arc<Self>,
        target: &Arc<ExecTarget>,
        frame: Vec<u8>,
        body: Bytes,
        deadline: tokio::time::Instant,
        call: &CallGuard,
    ) -> ExecOutcome {
        if let Some(prepared) = self.take_ready(target) {
            let instance = prepared.instance.clone();
            match self
                .drive(prepared, &frame, &body, deadline, false, call)
                .await
            {
                Ok(outcome) => return outcome,
                // The prepared container was gone before the call reached it (killed from
                // outside, say): nothing was sent, so a fresh container may run it.
                Err(NotDelivered(err)) => {
                    tracing::warn!(%err, instance, "a prepared container could not take its call; starting another");
                }
            }
        }
        self.run_cold(target, &frame, &body, deadline, call).await
    }

    async fn run_cold(
        self: &Arc<Self>,
        target: &Arc<ExecTarget>,
        frame: &[u8],
        body: &Bytes,
        deadline: tokio::time::Instant,
        call: &CallGuard,
    ) -> ExecOutcome {
        // The preparation runs as its own task: if the deadline passes first (or the call is
        // stopped), it still ends, and the container it made is removed rather than leaked.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let driver = self.clone();
        let for_task = target.clone();
        self.tracker.spawn(async move {
            let prepared = driver.prepare(&for_task).await;
            if let Err(Ok(unwanted)) = tx.send(prepared) {
                if let Err(err) = driver.engine.remove(&unwanted.container).await {
                    tracing::warn!(%err, "could not remove a container its call no longer waits for");
                }
            }
        });
        let prepared = tokio::select! {
            prepared = tokio::time::timeout_at(deadline, rx) => prepared,
            _ = call.stopped() => return stopped(None, true, call),
        };
        match prepared {
            Ok(Ok(Ok(prepared))) => {
                match self
                    .drive(prepared, frame, body, deadline, true, call)
                    .await
                {
                    Ok(outcome) => outcome,
                    Err(NotDelivered(err)) => {
                        failed(None, true, CallErrorType::StartFailed, err.to_string())
                    }
                }
            }
            Ok(Ok(Err(err))) => failed(
                None,
                true,
                CallErrorType::StartFailed,
                format!("the container could not start: {err}"),
            ),
            Ok(Err(_dropped)) => failed(
                None,
                true,
                CallErrorType::EngineError,
                "the container preparation was abandoned".into(),
            ),
            Err(_) => failed(
                None,
                true,
                CallErrorType::Timeout,
                "the call timed out while its container was starting".into(),
            ),
        }
    }

    /// Sends the call to a prepared container and collects the result. The container comes
    /// back in the outcome, to be removed. `Err` only when not a byte of the call reached
    /// it (the container is discarded then).
    async fn drive(
        &self,
        prepared: Prepared,
        frame: &[u8],
        body: &Bytes,
        deadline: tokio::time::Instant,
        cold: bool,
        call: &CallGuard,
    ) -> Result<ExecOutcome, NotDelivered> {
        let Prepared {
            instance,
            container,
            attachment:
                Attachment {
                    mut stdin,
                    mut output,
                },
        } = prepared;
        // From here on, requests of the function API from this container belong to the call.
        call.bind(&instance);
        if let Err(err) = stdin.write_all(frame).await {
            self.discard(container);
            return Err(NotDelivered(err));
        }
        let max_response = self.settings.max_response_bytes;
        let mut stdout = BytesMut::new();
        let mut logs = LogBuffer::new(self.settings.max_log_bytes);
        let mut tap = self.settings.logs.call_tap(call.function(), call.id());
        let engine = &self.engine;
        let work = async {
            let write = async {
                // A function may exit without reading all of its input: a failed write of
                // the body is not an error of the call.
                let _ = stdin.write_all(body).await;
                let _ = stdin.shutdown().await;
            };
            let read = async {
                while let Some(chunk) = output.next().await {
                    match chunk? {
                        Output::Stdout(bytes) => {
                            if stdout.len() + bytes.len() > max_response {
                                return Ok(ReadEnd::TooLarge);
                            }
                            stdout.extend_from_slice(&bytes);
                        }
                        Output::Stderr(bytes) => {
                            tap.push(skiff_core::api::LogStream::Stderr, &bytes);
                            logs.push(&bytes);
                        }
                    }
                }
                Ok::<_, EngineError>(ReadEnd::Closed)
            };
            let ((), read) = tokio::join!(write, read);
            match read? {
                ReadEnd::Closed => {
                    Ok::<_, EngineError>((ReadEnd::Closed, Some(engine.wait(&container).await?)))
                }
                ReadEnd::TooLarge => Ok((ReadEnd::TooLarge, None)),
            }
        };
        let result = tokio::select! {
            result = tokio::time::timeout_at(deadline, work) => Some(result),
            _ = call.stopped() => None,
        };
        // The engine cannot finish a container's exit while an attached client leaves its
        // output unread: let go of the attachment before killing.
        drop(output);
        drop(stdin);
        let instance = Some(instance);
        let outcome = match result {
            None => {
                if let Err(err) = engine.kill(&container).await {
                    tracing::warn!(%err, container, "could not kill a stopped call's container");
                }
                stopped(instance, cold, call)
            }
            Some(Err(_elapsed)) => {
                if let Err(err) = engine.kill(&container).await {
                    tracing::warn!(%err, container, "could not kill a timed-out container");
                }
                failed(
                    instance,
                    cold,
                    CallErrorType::Timeout,
                    "the call ran past its timeout and was stopped".into(),
                )
            }
            Some(Ok(Ok((ReadEnd::TooLarge, _)))) => {
                if let Err(err) = engine.kill(&container).await {
                    tracing::warn!(%err, container, "could not kill a container over the output limit");
                }
                failed(
                    instance,
                    cold,
                    CallErrorType::OutputTooLarge,
                    format!(
                        "the function wrote more than the response limit of {max_response} bytes"
                    ),
                )
            }
            Some(Ok(Err(err))) => {
                failed(instance, cold, CallErrorType::EngineError, err.to_string())
            }
            Some(Ok(Ok((ReadEnd::Closed, Some(0))))) => ExecOutcome {
                instance,
                cold,
                stdout: stdout.freeze(),
                logs: Vec::new(),
                exit_code: Some(0),
                error: None,
                container: None,
            },
            Some(Ok(Ok((ReadEnd::Closed, code)))) => {
                let code = code.unwrap_or(-1);
                let oom = match engine.inspect(&container).await {
                    Ok(state) => state.oom_killed,
                    Err(err) => {
                        tracing::warn!(%err, container, "could not inspect a failed container");
                        false
                    }
                };
                let tail = logs.tail_text();
                let (kind, message) = if oom {
                    (
                        CallErrorType::OutOfMemory,
                        "the function ran out of memory and was killed".to_string(),
                    )
                } else if (129..=192).contains(&code) {
                    (
                        CallErrorType::Crashed,
                        format!("the function was killed by signal {}", code - 128),
                    )
                } else {
                    (
                        CallErrorType::FunctionError,
                        format!("the function exited with status {code}"),
                    )
                };
                let message = if tail.is_empty() {
                    message
                } else {
                    format!("{message}: {tail}")
                };
                ExecOutcome {
                    exit_code: Some(code),
                    ..failed(instance, cold, kind, message)
                }
            }
        };
        Ok(ExecOutcome {
            logs: logs.into_logs(),
            container: Some(container),
            ..outcome
        })
    }
}

/// The call could not be handed to the container at all.
#[derive(Debug)]
struct NotDelivered(std::io::Error);

fn failed(
    instance: Option<String>,
    cold: bool,
    kind: CallErrorType,
    message: String,
) -> ExecOutcome {
    ExecOutcome {
        instance,
        cold,
        stdout: Bytes::new(),
        logs: Vec::new(),
        exit_code: None,
        error: Some((kind, message)),
        container: None,
    }
}

/// The outcome of a call stopped before its end, for the reason it was stopped.
fn stopped(instance: Option<String>, cold: bool, call: &CallGuard) -> ExecOutcome {
    let reason = call
        .reason()
        .unwrap_or(crate::running::StopReason::ShuttingDown);
    failed(
        instance,
        cold,
        reason.error_type(),
        reason.message().to_string(),
    )
}

/// A short random instance id: 12 hex characters (48 random bits).
pub(crate) fn instance_id() -> String {
    let mut id = uuid::Uuid::new_v4().simple().to_string();
    id.truncate(12);
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_keep_the_head_and_count_what_is_dropped() {
        let mut logs = LogBuffer::new(8);
        logs.push(b"0123456789");
        logs.push(b"abc");
        assert_eq!(logs.tail_text(), "0123456789abc");
        let kept = String::from_utf8(logs.into_logs()).expect("utf8");
        assert!(kept.starts_with("01234567\n[skiff: 5 more bytes"), "{kept}");
    }

    #[test]
    fn the_error_tail_is_bounded() {
        let mut logs = LogBuffer::new(1 << 20);
        logs.push(&vec![b'a'; 4000]);
        logs.push(b"the end");
        let tail = logs.tail_text();
        assert_eq!(tail.len(), ERROR_TAIL_BYTES);
        assert!(tail.ends_with("the end"));
    }
}
