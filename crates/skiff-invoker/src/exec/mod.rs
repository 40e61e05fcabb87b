//! The `exec` contract: a fresh container per call.
//!
//! The request body is the container's stdin, stdout is the response, stderr the call's log,
//! exit code 0 success. To keep the container start off the call's path, containers are
//! *prepared*: created and started ahead of time with `skiff-init` as PID 1, which waits on
//! stdin for the call's metadata (the `SKIFF_*` variables), then execs the function. Each
//! prepared container serves one call and is removed afterwards.
//!
//! Per function, a [`supply::Supply`] decides (without I/O) who gets which container: a call
//! takes a ready one (a warm start of a fresh container) or waits in line, first come first
//! served, for the next one prepared (a cold start); the number of containers kept ready
//! follows the arrival rate, between `--exec-prewarm` and `--exec-prewarm-max`, and falls to
//! none once the function is idle for its idle timeout. A call waits at most until its start
//! budget runs out (then it is refused as overloaded, and an async call goes back to the
//! queue); its timeout counts from the moment the container receives it. Every create,
//! start and remove goes through the engine's adaptive gate ([`crate::engine`]); while more
//! than [`REMOVAL_BACKLOG`] removals are pending, new preparations wait for them, so that
//! the containers alive stay bounded by the calls running, the containers prepared and that
//! backlog. Near the daemon's limit of open files (see [`crate::fds`]), preparations wait.
//!
//! A call ends by its deadline, or as soon as it is stopped (its caller went away, its
//! function was deleted, the daemon is stopping): its container is killed then (see
//! `drive`). The used container is handed back in the outcome; the platform removes it
//! ([`ExecDriver::remove_used`]) while the call still holds its slot.

mod drive;
mod supply;

use crate::fds::{FdReservation, FDS_PER_PREPARE};
use crate::running::CallGuard;
use bytes::Bytes;
use drive::{failed, stopped, NotDelivered};
use parking_lot::{Mutex, MutexGuard};
use skiff_core::{labels, CallErrorType, Contract, Resources, VolumeMount};
use skiff_runtime::init::INIT_PATH_IN_CONTAINER;
use skiff_runtime::{Attachment, BindMount, ContainerEngine, ContainerSpec, EngineError, Limits};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use supply::{Arrival, Supply, WaiterId};
use tokio::sync::{oneshot, Notify};
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

/// Removals pending beyond which new containers wait.
pub const REMOVAL_BACKLOG: usize = 32;
/// Prepared containers a call tries before it fails: one that is gone before the call
/// reaches it (killed from outside, say) is replaced by the next.
const DELIVERY_ATTEMPTS: usize = 2;

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
    /// The reference the function was deployed with (`REPOSITORY:TAG`).
    pub image_reference: String,
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
    /// Prepared containers kept per function, at the least.
    pub prewarm: usize,
    /// Most prepared containers kept per function, however fast calls arrive.
    pub prewarm_max: usize,
    /// Idle time after which a function's prepared containers are removed.
    pub idle_timeout: Duration,
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

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("instance", &self.instance)
            .field("container", &self.container)
            .finish()
    }
}

/// What a call waiting in line gets: a container, or why none could be prepared.
type Answer = Result<Prepared, String>;

/// The supplies of every function and the calls waiting on them.
#[derive(Debug, Default)]
struct State {
    supplies: HashMap<String, Supply<Prepared>>,
    waiters: HashMap<WaiterId, oneshot::Sender<Answer>>,
    next_waiter: WaiterId,
    /// Per function, the newest generation forgotten (deleted or replaced).
    retired: HashMap<String, u64>,
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
    /// Why it failed, if it did. `Rejected`: no container within the start budget.
    pub error: Option<(CallErrorType, String)>,
    /// The container the call used, to remove ([`ExecDriver::remove_used`]).
    pub container: Option<String>,
}

/// The exec driver's containers and calls at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExecStats {
    /// Containers prepared and waiting for a call.
    pub ready: usize,
    /// Containers being prepared.
    pub preparing: usize,
    /// Used or unneeded containers being removed.
    pub removing: usize,
    /// Calls waiting for a container.
    pub waiting: usize,
}

/// Counts the removals pending; preparations wait while there are too many.
#[derive(Debug, Default)]
struct Removals {
    pending: AtomicUsize,
    done: Notify,
}

/// Counts one pending removal until dropped.
struct Removing(Arc<Removals>);

impl Removing {
    fn new(removals: &Arc<Removals>) -> Self {
        removals.pending.fetch_add(1, Ordering::AcqRel);
        Removing(removals.clone())
    }
}

impl Drop for Removing {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::AcqRel);
        self.0.done.notify_waiters();
    }
}

/// Runs `exec` calls; owns the prepared containers and the tasks that make and remove them.
#[derive(Debug)]
pub struct ExecDriver {
    engine: Arc<dyn ContainerEngine>,
    settings: ExecSettings,
    state: Mutex<State>,
    removals: Arc<Removals>,
    tracker: TaskTracker,
    cancel: CancellationToken,
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
            settings,
            state: Mutex::new(State::default()),
            removals: Arc::new(Removals::default()),
            tracker: TaskTracker::new(),
            cancel,
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// How many prepared containers `function` has ready now.
    pub fn ready_count(&self, function: &str) -> usize {
        self.state()
            .supplies
            .get(function)
            .map_or(0, Supply::ready_len)
    }

    /// The containers and calls of every function, now.
    pub fn stats(&self) -> ExecStats {
        let state = self.state();
        let mut stats = ExecStats {
            removing: self.removals.pending.load(Ordering::Acquire),
            ..ExecStats::default()
        };
        for supply in state.supplies.values() {
            stats.ready += supply.ready_len();
            stats.preparing += supply.preparing();
            stats.waiting += supply.waiting();
        }
        stats
    }

    /// `target`'s supply, made if missing; containers of an older generation are removed.
    /// `None` for a target older than the function's current one, or of a function deleted
    /// or updated since ([`ExecDriver::forget`]): no container is made for it any more.
    fn supply<'a>(
        &self,
        state: &'a mut State,
        target: &ExecTarget,
    ) -> Option<&'a mut Supply<Prepared>> {
        if state
            .retired
            .get(&target.function)
            .is_some_and(|retired| *retired >= target.generation)
        {
            return None;
        }
        let supply = state
            .supplies
            .entry(target.function.clone())
            .or_insert_with(|| {
                Supply::new(
                    target.generation,
                    self.settings.prewarm,
                    self.settings.prewarm_max,
                )
            });
        if supply.generation > target.generation {
            return None;
        }
        for stale in supply.renew(target.generation) {
            self.discard(stale.container);
        }
        Some(supply)
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
            image_reference: Some(target.image_reference.clone()),
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
        let removing = Removing::new(&self.removals);
        self.tracker.spawn(async move {
            let _removing = removing;
            if let Err(err) = engine.remove(&container).await {
                tracing::warn!(%err, container, "could not remove a function container");
            }
        });
    }

    /// Removes a container a call used, now (the call waits for it).
    pub async fn remove_used(&self, container: &str) {
        let _removing = Removing::new(&self.removals);
        if let Err(err) = self.engine.remove(container).await {
            tracing::warn!(%err, container, "could not remove a function container");
        }
    }

    /// Waits until the removals pending are within the backlog; false if the driver stops
    /// first.
    async fn removals_within_backlog(&self) -> bool {
        loop {
            let done = self.removals.done.notified();
            if self.removals.pending.load(Ordering::Acquire) < REMOVAL_BACKLOG {
                return true;
            }
            tokio::select! {
                _ = self.cancel.cancelled() => return false,
                _ = done => {}
            }
        }
    }

    /// Starts the preparations `target`'s supply wants now (for the calls in line, and to
    /// keep its target ready), as far as the file descriptors allow (the next call or refill
    /// tries again). The caller makes sure that the function still exists (a supply made
    /// here after [`ExecDriver::forget`] would outlive its function).
    pub fn refill(self: &Arc<Self>, target: &Arc<ExecTarget>) {
        if self.cancel.is_cancelled() {
            return;
        }
        let reservations = {
            let mut state = self.state();
            let Some(supply) = self.supply(&mut state, target) else {
                return;
            };
            supply.touch(Instant::now());
            let wanted = supply.start_preparing(Instant::now());
            let reservations: Vec<FdReservation> = (0..wanted)
                .map_while(|_| self.settings.fds.try_reserve(FDS_PER_PREPARE).ok())
                .collect();
            supply.not_started(wanted - reservations.len());
            if reservations.len() < wanted {
                tracing::debug!(
                    function = target.function,
                    skipped = wanted - reservations.len(),
                    "near the open-files limit: containers are not prepared for now"
                );
            }
            reservations
        };
        for reservation in reservations {
            let driver = self.clone();
            let target = target.clone();
            self.tracker.spawn(async move {
                // Held until the container is handed over (its attachment then shows in
                // the sampled count) or given up.
                let _reservation = reservation;
                // Waiting ends at shutdown; a preparation under way is let finish, so that
                // the container it creates is known and removed, never leaked.
                if !driver.removals_within_backlog().await {
                    driver.settle(&target, None, Duration::ZERO);
                    return;
                }
                let began = Instant::now();
                let prepared = driver.prepare(&target).await;
                driver.settle(&target, Some(prepared), began.elapsed());
            });
        }
    }

    /// Hands the end of one preparation to `target`'s supply: the container goes to the
    /// first call in line or to the ready queue, a failure to the first call in line. A
    /// container no longer wanted (the function is gone or changed, the daemon stops) is
    /// removed. `None`: the preparation was not made.
    fn settle(
        &self,
        target: &ExecTarget,
        prepared: Option<Result<Prepared, EngineError>>,
        took: Duration,
    ) {
        let mut state = self.state();
        let State {
            supplies, waiters, ..
        } = &mut *state;
        let supply = supplies
            .get_mut(&target.function)
            .filter(|s| s.generation == target.generation && !self.cancel.is_cancelled());
        let Some(supply) = supply else {
            if let Some(supply) = supplies.get_mut(&target.function) {
                supply.not_started(1);
            }
            if let Some(Ok(prepared)) = prepared {
                self.discard(prepared.container);
            }
            return;
        };
        match prepared {
            None => supply.not_started(1),
            Some(Ok(prepared)) => {
                let mut next = supply.prepared(prepared, took);
                // A call that went away meanwhile passes its container to the next.
                while let Some((waiter, prepared)) = next.take() {
                    let Some(answer) = waiters.remove(&waiter) else {
                        next = supply.hand_over(prepared);
                        continue;
                    };
                    if let Err(Ok(prepared)) = answer.send(Ok(prepared)) {
                        next = supply.hand_over(prepared);
                    }
                }
            }
            Some(Err(err)) => {
                tracing::warn!(%err, function = target.function, "could not prepare a container");
                if let Some(answer) = supply.failed().and_then(|w| waiters.remove(&w)) {
                    let _ = answer.send(Err(err.to_string()));
                }
            }
        }
    }

    /// A container for a call of `target`: a ready one, or the next one prepared if it
    /// comes by `start_by` (`true`: the call waited for it, a cold start). `Err` is the
    /// call's outcome when it gets none.
    async fn obtain(
        self: &Arc<Self>,
        target: &Arc<ExecTarget>,
        start_by: tokio::time::Instant,
        call: &CallGuard,
    ) -> Result<(Prepared, bool), ExecOutcome> {
        let (waiter, mut answer) = {
            let mut state = self.state();
            let waiter = state.next_waiter;
            state.next_waiter += 1;
            let Some(supply) = self.supply(&mut state, target) else {
                return Err(replaced(call));
            };
            match supply.arrive(Instant::now(), waiter) {
                Arrival::Ready(prepared) => {
                    drop(state);
                    self.refill(target);
                    return Ok((prepared, false));
                }
                Arrival::Wait => {
                    let (tx, rx) = oneshot::channel();
                    state.waiters.insert(waiter, tx);
                    (waiter, rx)
                }
            }
        };
        self.refill(target);
        let gave_up = tokio::select! {
            answer = &mut answer => return match answer {
                Ok(Ok(prepared)) => Ok((prepared, true)),
                Ok(Err(err)) => Err(failed(
                    None,
                    true,
                    CallErrorType::StartFailed,
                    format!("the container could not start: {err}"),
                )),
                Err(_gone) => Err(replaced(call)),
            },
            _ = tokio::time::sleep_until(start_by) => failed(
                None,
                true,
                CallErrorType::Rejected,
                "no container was ready within the call's start budget (max_wait)".into(),
            ),
            _ = call.stopped() => stopped(None, true, call),
        };
        // Out of line; unless a container was handed over meanwhile: then it serves.
        {
            let mut state = self.state();
            let in_line = state
                .supplies
                .get_mut(&target.function)
                .is_some_and(|s| s.give_up(waiter));
            state.waiters.remove(&waiter);
            if in_line {
                return Err(gave_up);
            }
        }
        match answer.try_recv() {
            Ok(Ok(prepared)) if !call.is_stopped() => Ok((prepared, true)),
            Ok(Ok(prepared)) => {
                self.discard(prepared.container);
                Err(gave_up)
            }
            _ => Err(gave_up),
        }
    }

    /// Runs one call with `body` on stdin, in a ready container or the next one prepared
    /// (waiting until `start_by` at most). Once the call has its container, `deliver` is
    /// told how long it waited for it and whether that was a cold start, and gives the
    /// call's metadata for `skiff-init` and its deadline: the call runs until then, or until
    /// `call` is stopped. The container used comes back in the outcome, for the caller to
    /// remove.
    pub(crate) async fn run(
        self: &Arc<Self>,
        target: &Arc<ExecTarget>,
        body: Bytes,
        start_by: tokio::time::Instant,
        call: &CallGuard,
        deliver: &mut (dyn FnMut(Duration, bool) -> (Vec<u8>, tokio::time::Instant) + Send),
    ) -> ExecOutcome {
        let mut since = Instant::now();
        let mut last = None;
        for _ in 0..DELIVERY_ATTEMPTS {
            let (prepared, cold) = match self.obtain(target, start_by, call).await {
                Ok(got) => got,
                Err(outcome) => return outcome,
            };
            let (frame, deadline) = deliver(since.elapsed(), cold);
            since = Instant::now();
            let instance = prepared.instance.clone();
            match self
                .drive(prepared, &frame, &body, deadline, cold, call)
                .await
            {
                Ok(outcome) => return outcome,
                // Nothing was sent: another container may run it.
                Err(NotDelivered(err)) => {
                    tracing::warn!(%err, instance, "a prepared container could not take its call");
                    last = Some(err);
                }
            }
        }
        failed(
            None,
            true,
            CallErrorType::StartFailed,
            format!(
                "no prepared container could take the call: {}",
                last.map_or_else(String::new, |e| e.to_string())
            ),
        )
    }

    /// Removes the prepared containers of `function` and forgets it (on delete or update).
    /// Calls waiting for one get none.
    pub fn forget(&self, function: &str) {
        let mut state = self.state();
        let Some(mut supply) = state.supplies.remove(function) else {
            return;
        };
        let retired = state.retired.entry(function.to_string()).or_default();
        *retired = (*retired).max(supply.generation);
        let (ready, waiting) = supply.drain();
        for waiter in waiting {
            state.waiters.remove(&waiter);
        }
        drop(state);
        for prepared in ready {
            self.discard(prepared.container);
        }
    }

    /// Drops every ready container, of every function, and removes it: for when they may
    /// be gone (another daemon took this one over and removed its containers). Calls that
    /// come next get fresh ones.
    pub fn drop_ready(&self) {
        let dropped: Vec<String> = {
            let mut state = self.state();
            state
                .supplies
                .values_mut()
                .flat_map(|supply| supply.take_ready())
                .map(|prepared| prepared.container)
                .collect()
        };
        if !dropped.is_empty() {
            tracing::info!(count = dropped.len(), "dropped the prepared containers");
        }
        for container in dropped {
            self.discard(container);
        }
    }

    /// Removes the prepared containers demand no longer needs: those beyond each function's
    /// target, and all of a function idle for longer than the idle timeout.
    pub fn expire_idle(&self) {
        let now = Instant::now();
        let expired: Vec<String> = {
            let mut state = self.state();
            state
                .supplies
                .iter_mut()
                .flat_map(|(name, supply)| {
                    let trimmed = supply.trim(now, self.settings.idle_timeout);
                    if !trimmed.is_empty() {
                        tracing::debug!(
                            function = name,
                            count = trimmed.len(),
                            "removing prepared containers no longer needed"
                        );
                    }
                    trimmed.into_iter().map(|p| p.container)
                })
                .collect()
        };
        for container in expired {
            self.discard(container);
        }
    }

    /// At shutdown (after the cancel token fired): removes every prepared container, and
    /// waits (at most 30s) for preparations and removals under way to end.
    pub async fn shutdown(&self) {
        let containers: Vec<String> = {
            let mut state = self.state();
            let State {
                supplies, waiters, ..
            } = &mut *state;
            waiters.clear();
            supplies
                .drain()
                .flat_map(|(_, mut supply)| supply.drain().0)
                .map(|p| p.container)
                .collect()
        };
        for container in containers {
            self.discard(container);
        }
        self.tracker.close();
        if tokio::time::timeout(Duration::from_secs(30), self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("container preparations and removals still running 30s into shutdown");
        }
    }
}

/// The outcome of a call whose function was deleted or updated while it waited for a
/// container (those of its version are gone): as stopped if it was, else `interrupted`.
fn replaced(call: &CallGuard) -> ExecOutcome {
    if call.is_stopped() {
        return stopped(None, true, call);
    }
    failed(
        None,
        true,
        CallErrorType::Interrupted,
        "the function was deleted or updated while the call waited for a container".into(),
    )
}

/// A short random instance id: 12 hex characters (48 random bits).
pub(crate) fn instance_id() -> String {
    let mut id = uuid::Uuid::new_v4().simple().to_string();
    id.truncate(12);
    id
}
