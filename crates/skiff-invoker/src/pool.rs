//! Long-lived instances (`http` contract): one pool per function.
//!
//! A call leases a slot on an instance: the least busy ready instance of the function's
//! current version with room under its concurrency. When none has room, a paused instance is
//! resumed, or a new one is started if the function is below `max_instances`, and the call
//! waits in the function's bounded queue; beyond that it is refused. A lease is given back
//! when the call's response has been sent; the freed slot goes to the longest waiting call.
//!
//! The [`InstanceManager`] owns every instance container: it starts them (create, start,
//! wait until ready), watches each one (an instance whose container exits is removed and its
//! waiting calls are served by the others or by a replacement), scales them on each tick of
//! the autoscaler, pauses the last idle one instead of stopping it (so that the next call
//! resumes it in milliseconds), and drains the instances of a previous version.

use crate::autoscale::{Autoscaler, Decision};
use bytes::Bytes;
use futures::StreamExt;
use skiff_core::{labels, Contract, HttpSettings, InstanceState, Resources, Scaling};
use skiff_runtime::{ContainerEngine, ContainerSpec, EngineError, Limits, Output};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Most bytes of an instance's output kept: for the error of an instance that fails to
/// start, and the logs of a call on a one-call-at-a-time (`lambda`) instance.
const OUTPUT_TAIL_BYTES: usize = 64 * 1024;
/// Health checks failed in a row after which an instance is replaced.
pub const HEALTH_FAILURES: u32 = 3;
/// How long a stopped instance has to finish its calls after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// What the manager needs to know of one version of an instance-based function.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceTarget {
    /// Function name.
    pub function: String,
    /// Function version; instances of older versions are drained.
    pub version: u64,
    /// Image id.
    pub image: String,
    /// Environment, `KEY=VALUE` (function env, secrets, `PORT`).
    pub env: Vec<String>,
    /// Resource limits.
    pub resources: Resources,
    /// How instances are reached.
    pub http: HttpSettings,
    /// How many run.
    pub scaling: Scaling,
    /// `http`: served on a port; `lambda`: speaks skiff's Runtime API.
    pub contract: Contract,
    /// Command override (a Lambda handler), `None` for the image's own.
    pub cmd: Option<Vec<String>>,
    /// Named volumes to mount.
    pub volumes: Vec<skiff_core::VolumeMount>,
}

/// Settings of the manager, from the platform's configuration.
#[derive(Debug, Clone)]
pub struct InstanceSettings {
    /// The daemon id, on every container's labels.
    pub daemon_id: String,
    /// The network instances join.
    pub network: Option<String>,
    /// Open files limit.
    pub nofile: u64,
    /// Most calls waiting for an instance, per function.
    pub max_queued: usize,
    /// Keep the last instance of an idle function paused instead of stopping it.
    pub keep_paused: bool,
    /// A paused instance unused for this long is removed.
    pub paused_ttl: Duration,
    /// The autoscaler's stable window (its panic window is a tenth of it).
    pub autoscale_window: Duration,
    /// The key that signs each instance's `SKIFF_TOKEN`.
    pub tokens: Arc<crate::token::TokenKey>,
}

/// Why no instance slot was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcquireError {
    /// The function's queue is full.
    #[error("all {instances} instances are busy and {queued} calls are waiting")]
    QueueFull {
        /// Instances of the function.
        instances: usize,
        /// Calls waiting.
        queued: usize,
    },
    /// The deadline passed while waiting.
    #[error("no instance became free before the call's deadline")]
    Timeout,
    /// Instances could not be started.
    #[error("{0}")]
    StartFailed(String),
    /// The platform is stopping.
    #[error("skiff is shutting down")]
    ShuttingDown,
}

/// A slot on an instance, held for the length of one call. Dropping it gives the slot back.
#[derive(Debug)]
pub struct Lease {
    manager: Arc<InstanceManager>,
    function: String,
    /// The instance id.
    pub instance: String,
    /// Where the instance serves HTTP.
    pub addr: SocketAddr,
    /// Whether the call waited for the instance to start or resume.
    pub cold: bool,
    /// How long the call waited for a slot.
    pub waited: Duration,
    /// The instance's output (for the logs of a call on a one-call-at-a-time instance).
    pub output: Arc<Mutex<OutputTail>>,
    broken: bool,
}

impl Lease {
    /// Marks the instance as broken: it is removed when the lease is dropped.
    pub fn mark_broken(&mut self) {
        self.broken = true;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.manager
            .release(&self.function, &self.instance, self.broken);
    }
}

pub use skiff_core::api::InstanceView;

struct Instance {
    id: String,
    container: String,
    addr: Option<SocketAddr>,
    version: u64,
    state: InstanceState,
    in_flight: u32,
    last_used: Instant,
    /// Health checks failed in a row.
    health_failures: u32,
    /// When it last became ready: started, or resumed from pause.
    ready_since: Instant,
    /// The end of its output.
    output: Arc<Mutex<OutputTail>>,
}

struct Waiter {
    tx: oneshot::Sender<Result<Lease, AcquireError>>,
    since: Instant,
}

struct Pool {
    target: Arc<InstanceTarget>,
    instances: Vec<Instance>,
    starting: usize,
    waiters: VecDeque<Waiter>,
    autoscaler: Autoscaler,
    /// The last start failure, reported to calls that were waiting for that start.
    last_failure: Option<String>,
}

/// Owns every instance of every instance-based function.
#[derive(Debug)]
pub struct InstanceManager {
    engine: Arc<dyn ContainerEngine>,
    settings: InstanceSettings,
    pools: Mutex<HashMap<String, Pool>>,
    tracker: TaskTracker,
    cancel: CancellationToken,
    client: crate::proxy::Client,
    lambda: Arc<crate::lambda::LambdaRegistry>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("function", &self.target.function)
            .field("instances", &self.instances.len())
            .field("starting", &self.starting)
            .field("waiters", &self.waiters.len())
            .finish()
    }
}

/// The end of an instance's output, and how much it has written in all.
#[derive(Debug, Default)]
pub struct OutputTail {
    bytes: VecDeque<u8>,
    total: u64,
}

impl OutputTail {
    /// How many bytes the instance has written so far.
    pub fn mark(&self) -> u64 {
        self.total
    }

    /// What the instance wrote since `mark` (as much of it as is still kept).
    pub fn since(&self, mark: u64) -> Vec<u8> {
        let new = usize::try_from(self.total.saturating_sub(mark)).unwrap_or(usize::MAX);
        let kept = new.min(self.bytes.len());
        self.bytes
            .iter()
            .skip(self.bytes.len() - kept)
            .copied()
            .collect()
    }
}

fn push_tail(buffer: &Mutex<OutputTail>, bytes: &[u8]) {
    let mut tail = buffer.lock().unwrap_or_else(|p| p.into_inner());
    tail.total += bytes.len() as u64;
    tail.bytes
        .extend(bytes.iter().rev().take(OUTPUT_TAIL_BYTES).rev());
    let excess = tail.bytes.len().saturating_sub(OUTPUT_TAIL_BYTES);
    tail.bytes.drain(..excess);
}

fn tail_text(buffer: &Mutex<OutputTail>) -> String {
    let tail = buffer.lock().unwrap_or_else(|p| p.into_inner());
    let skip = tail.bytes.len().saturating_sub(2048);
    let bytes: Vec<u8> = tail.bytes.iter().skip(skip).copied().collect();
    String::from_utf8_lossy(&bytes).trim().to_string()
}

impl InstanceManager {
    /// A manager on `engine`; its tasks stop when `cancel` fires.
    pub fn new(
        engine: Arc<dyn ContainerEngine>,
        settings: InstanceSettings,
        cancel: CancellationToken,
        client: crate::proxy::Client,
        lambda: Arc<crate::lambda::LambdaRegistry>,
    ) -> Arc<Self> {
        Arc::new(InstanceManager {
            engine,
            settings,
            pools: Mutex::new(HashMap::new()),
            tracker: TaskTracker::new(),
            cancel,
            client,
            lambda,
        })
    }

    fn pools(&self) -> MutexGuard<'_, HashMap<String, Pool>> {
        self.pools.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Installs (or updates to) `target`: instances of an older version are drained; the
    /// minimum is started.
    pub fn set_target(self: &Arc<Self>, target: Arc<InstanceTarget>) {
        let mut to_stop = Vec::new();
        {
            let mut pools = self.pools();
            let pool = pools
                .entry(target.function.clone())
                .or_insert_with(|| Pool {
                    target: target.clone(),
                    instances: Vec::new(),
                    starting: 0,
                    waiters: VecDeque::new(),
                    autoscaler: Autoscaler::default(),
                    last_failure: None,
                });
            pool.target = target.clone();
            // Old versions take no new calls; idle ones go now, busy ones when released.
            pool.instances.retain(|i| {
                let stale = i.version != target.version && i.in_flight == 0;
                if stale {
                    to_stop.push(i.container.clone());
                }
                !stale
            });
        }
        for container in to_stop {
            self.stop_container(container);
        }
        self.scale(&target.function);
    }

    /// Forgets a function: its instances are stopped (busy ones after their calls).
    pub fn remove_function(&self, function: &str) {
        let pool = self.pools().remove(function);
        if let Some(pool) = pool {
            for waiter in pool.waiters {
                let _ = waiter.tx.send(Err(AcquireError::StartFailed(
                    "the function was deleted".into(),
                )));
            }
            for instance in pool.instances {
                self.stop_container(instance.container);
            }
        }
    }

    /// Changes the scaling of a function without a new version.
    pub fn set_scaling(self: &Arc<Self>, function: &str, scaling: Scaling) {
        {
            let mut pools = self.pools();
            if let Some(pool) = pools.get_mut(function) {
                let mut target = (*pool.target).clone();
                target.scaling = scaling;
                pool.target = Arc::new(target);
            }
        }
        self.scale(function);
    }

    /// The instances of a function.
    pub fn instances(&self, function: &str) -> Vec<InstanceView> {
        let now = Instant::now();
        self.pools()
            .get(function)
            .map(|pool| {
                pool.instances
                    .iter()
                    .map(|i| InstanceView {
                        id: i.id.clone(),
                        container: i.container.clone(),
                        version: i.version,
                        state: i.state,
                        in_flight: i.in_flight,
                        idle_seconds: now.duration_since(i.last_used).as_secs(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Counts of instances by state, and calls waiting, across all functions (for metrics).
    pub fn totals(&self) -> (HashMap<InstanceState, usize>, usize) {
        let mut by_state = HashMap::new();
        let mut waiting = 0;
        for pool in self.pools().values() {
            waiting += pool.waiters.len();
            for i in &pool.instances {
                *by_state.entry(i.state).or_insert(0) += 1;
            }
            if pool.starting > 0 {
                *by_state.entry(InstanceState::Starting).or_insert(0) += pool.starting;
            }
        }
        (by_state, waiting)
    }

    /// A slot on an instance of `function`, waiting until `deadline` at the most.
    pub async fn acquire(
        self: &Arc<Self>,
        function: &str,
        deadline: tokio::time::Instant,
    ) -> Result<Lease, AcquireError> {
        let started = Instant::now();
        let rx = {
            let mut pools = self.pools();
            let Some(pool) = pools.get_mut(function) else {
                return Err(AcquireError::StartFailed(format!(
                    "function `{function}` has no instances"
                )));
            };
            if let Some(lease) = self.take_slot(function, pool, started) {
                return Ok(lease);
            }
            if pool.waiters.len() >= self.settings.max_queued {
                return Err(AcquireError::QueueFull {
                    instances: pool.instances.len(),
                    queued: pool.waiters.len(),
                });
            }
            let (tx, rx) = oneshot::channel();
            pool.waiters.push_back(Waiter { tx, since: started });
            rx
        };
        // Room may come from a paused instance or a new one.
        self.grow(function);
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_closed)) => Err(AcquireError::ShuttingDown),
            // If starting instances kept failing, that is the better account of the wait.
            Err(_elapsed) => Err(self
                .pools()
                .get(function)
                .and_then(|pool| pool.last_failure.clone())
                .map_or(AcquireError::Timeout, AcquireError::StartFailed)),
        }
    }

    /// A slot on the least busy ready instance with room, if there is one. The call is cold
    /// when the instance became ready (started or resumed) after the call began waiting.
    fn take_slot(
        self: &Arc<Self>,
        function: &str,
        pool: &mut Pool,
        since: Instant,
    ) -> Option<Lease> {
        let version = pool.target.version;
        let concurrency = pool.target.scaling.concurrency;
        let instance = pool
            .instances
            .iter_mut()
            .filter(|i| {
                i.version == version && (i.state.can_serve() || i.state == InstanceState::Busy)
            })
            .filter(|i| i.in_flight < concurrency && i.addr.is_some())
            .min_by_key(|i| i.in_flight)?;
        instance.in_flight += 1;
        instance.state = InstanceState::Busy;
        let cold = instance.ready_since >= since;
        let addr = instance.addr?;
        Some(Lease {
            manager: self.clone(),
            function: function.to_string(),
            instance: instance.id.clone(),
            addr,
            cold,
            waited: since.elapsed(),
            output: instance.output.clone(),
            broken: false,
        })
    }

    /// Hands free slots to waiting calls, in arrival order.
    fn serve_waiters(self: &Arc<Self>, function: &str, pool: &mut Pool) {
        while let Some(waiter) = pool.waiters.pop_front() {
            if waiter.tx.is_closed() {
                continue;
            }
            match self.take_slot(function, pool, waiter.since) {
                Some(lease) => {
                    // A waiter that gave up in the meantime returns the slot by dropping it.
                    let _ = waiter.tx.send(Ok(lease));
                }
                None => {
                    pool.waiters.push_front(waiter);
                    return;
                }
            }
        }
    }

    fn release(self: &Arc<Self>, function: &str, instance: &str, broken: bool) {
        let mut stop = None;
        {
            let mut pools = self.pools();
            let Some(pool) = pools.get_mut(function) else {
                return;
            };
            let version = pool.target.version;
            if let Some(index) = pool.instances.iter().position(|i| i.id == instance) {
                let i = &mut pool.instances[index];
                i.in_flight = i.in_flight.saturating_sub(1);
                i.last_used = Instant::now();
                if i.in_flight == 0 && i.state == InstanceState::Busy {
                    i.state = InstanceState::Idle;
                }
                if broken || (i.version != version && i.in_flight == 0) {
                    stop = Some(pool.instances.remove(index).container);
                }
            }
            self.serve_waiters(function, pool);
        }
        if let Some(container) = stop {
            self.stop_container(container);
            if broken {
                self.grow(function);
            }
        }
    }

    /// Makes room for waiting calls: resumes a paused instance, or starts new ones within
    /// `max_instances`.
    fn grow(self: &Arc<Self>, function: &str) {
        let mut resume = None;
        let mut start = 0;
        {
            let mut pools = self.pools();
            let Some(pool) = pools.get_mut(function) else {
                return;
            };
            if pool.waiters.is_empty() {
                return;
            }
            let version = pool.target.version;
            if let Some(paused) = pool
                .instances
                .iter_mut()
                .find(|i| i.state == InstanceState::Paused && i.version == version)
            {
                paused.state = InstanceState::Starting;
                resume = Some((paused.id.clone(), paused.container.clone()));
            } else {
                let capacity = pool.target.scaling.concurrency as usize;
                let alive = pool
                    .instances
                    .iter()
                    .filter(|i| i.version == version && i.state != InstanceState::Stopping)
                    .count();
                let free: usize = pool
                    .instances
                    .iter()
                    .filter(|i| {
                        i.version == version
                            && (i.state.can_serve() || i.state == InstanceState::Busy)
                    })
                    .map(|i| capacity.saturating_sub(i.in_flight as usize))
                    .sum();
                let room = (pool.target.scaling.max_instances as usize)
                    .saturating_sub(alive + pool.starting);
                let needed = pool
                    .waiters
                    .len()
                    .saturating_sub(free + pool.starting * capacity)
                    .div_ceil(capacity.max(1));
                start = needed.min(room);
                pool.starting += start;
            }
        }
        if let Some((id, container)) = resume {
            self.spawn_resume(function, id, container);
        }
        for _ in 0..start {
            self.spawn_start(function);
        }
    }

    /// Resumes a paused instance (already marked `Starting`) and serves waiting calls.
    fn spawn_resume(self: &Arc<Self>, function: &str, id: String, container: String) {
        {
            let manager = self.clone();
            let function = function.to_string();
            self.tracker.spawn(async move {
                let resumed = manager.engine.unpause(&container).await;
                let mut pools = manager.pools();
                if let Some(pool) = pools.get_mut(&function) {
                    match resumed {
                        Ok(()) => {
                            if let Some(i) = pool.instances.iter_mut().find(|i| i.id == id) {
                                i.state = InstanceState::Ready;
                                i.ready_since = Instant::now();
                            }
                            manager.serve_waiters(&function, pool);
                        }
                        Err(err) => {
                            tracing::warn!(%err, function, "could not resume a paused instance");
                            pool.instances.retain(|i| i.id != id);
                            drop(pools);
                            manager.stop_container(container);
                            manager.grow(&function);
                        }
                    }
                }
            });
        }
    }

    fn spawn_start(self: &Arc<Self>, function: &str) {
        let manager = self.clone();
        let function = function.to_string();
        self.tracker.spawn(async move {
            let target = match manager.pools().get(&function) {
                Some(pool) => pool.target.clone(),
                None => return,
            };
            let result = manager.start_instance(&target).await;
            let mut leftover = None;
            {
                let mut pools = manager.pools();
                let Some(pool) = pools.get_mut(&function) else {
                    if let Ok(instance) = result {
                        leftover = Some(instance.container);
                    }
                    drop(pools);
                    if let Some(container) = leftover {
                        manager.stop_container(container);
                    }
                    return;
                };
                pool.starting = pool.starting.saturating_sub(1);
                match result {
                    Ok(instance)
                        if !manager.cancel.is_cancelled()
                            && instance.version == pool.target.version =>
                    {
                        pool.last_failure = None;
                        pool.instances.push(instance);
                        manager.serve_waiters(&function, pool);
                    }
                    Ok(instance) => leftover = Some(instance.container),
                    Err(message) => {
                        tracing::warn!(function, message, "an instance failed to start");
                        pool.last_failure = Some(message.clone());
                        // Calls waiting only for starts that failed get the failure.
                        let serving = pool
                            .instances
                            .iter()
                            .any(|i| i.addr.is_some() && i.state != InstanceState::Stopping);
                        if !serving && pool.starting == 0 {
                            for waiter in pool.waiters.drain(..) {
                                let _ = waiter
                                    .tx
                                    .send(Err(AcquireError::StartFailed(message.clone())));
                            }
                        }
                    }
                }
            }
            if let Some(container) = leftover {
                manager.stop_container(container);
            }
        });
    }

    /// Creates and starts an instance and waits until it is ready. On failure, the
    /// container is removed and the message says why (with the end of its output).
    async fn start_instance(self: &Arc<Self>, target: &InstanceTarget) -> Result<Instance, String> {
        let id = crate::exec::instance_id();
        let r = &target.resources;
        let mut env = target.env.clone();
        env.push(format!(
            "SKIFF_TOKEN={}",
            self.settings.tokens.mint(&target.function, &id)
        ));
        let spec = ContainerSpec {
            name: format!("skiff-{}-{id}", target.function),
            image: target.image.clone(),
            entrypoint: None,
            cmd: target.cmd.clone(),
            env,
            labels: labels::for_container(
                &target.function,
                &id,
                &self.settings.daemon_id,
                target.contract,
            ),
            limits: Limits {
                memory_bytes: r.memory_bytes,
                cpus: r.cpus,
                pids: r.pids,
                tmp_bytes: r.tmp_bytes,
                nofile: self.settings.nofile,
            },
            stdin: false,
            network: self.settings.network.clone(),
            mounts: Vec::new(),
            volumes: crate::exec::named_volumes(&target.volumes),
        };
        let container = match self.engine.create(&spec).await {
            Ok(container) => container,
            Err(err) => {
                if matches!(err, EngineError::TimedOut { .. }) {
                    // The engine may make it still: remove it by name, not to leave it behind.
                    self.stop_container(spec.name.clone());
                }
                return Err(format!("the instance could not be created: {err}"));
            }
        };
        let output = Arc::new(Mutex::new(OutputTail::default()));
        let started = self.start_and_wait_ready(target, &container, &output).await;
        match started {
            Ok(addr) => Ok(Instance {
                id,
                container,
                addr: Some(addr),
                version: target.version,
                state: InstanceState::Ready,
                in_flight: 0,
                last_used: Instant::now(),
                health_failures: 0,
                ready_since: Instant::now(),
                output,
            }),
            Err(message) => {
                if let Err(err) = self.engine.remove(&container).await {
                    tracing::warn!(%err, container, "could not remove an instance that failed to start");
                }
                let tail = tail_text(&output);
                Err(if tail.is_empty() {
                    message
                } else {
                    format!("{message}; its output ended with: {tail}")
                })
            }
        }
    }

    async fn start_and_wait_ready(
        self: &Arc<Self>,
        target: &InstanceTarget,
        container: &str,
        output: &Arc<Mutex<OutputTail>>,
    ) -> Result<SocketAddr, String> {
        let attachment = self
            .engine
            .attach(container)
            .await
            .map_err(|e| format!("cannot attach to the instance: {e}"))?;
        self.engine
            .start(container)
            .await
            .map_err(|e| format!("the instance could not start: {e}"))?;
        // The watcher keeps the end of the instance's output and notices its exit.
        let (exited_tx, mut exited) = tokio::sync::watch::channel(false);
        self.spawn_watcher(
            target.function.clone(),
            container.to_string(),
            attachment.output,
            output.clone(),
            exited_tx,
        );
        let ip = self
            .engine
            .inspect(container)
            .await
            .map_err(|e| format!("cannot inspect the instance: {e}"))?
            .ip
            .ok_or_else(|| "the instance has no network address".to_string())?;
        let addr = SocketAddr::new(ip, target.http.port);
        let deadline = tokio::time::Instant::now() + target.http.startup_timeout();
        if target.contract == Contract::Lambda {
            // Ready when its runtime client first asks skiff's Runtime API for an event.
            self.lambda.register(ip, container);
            let outcome = tokio::select! {
                ready = self.lambda.wait_ready(ip) => ready.map_err(|message| {
                    format!("the function failed to initialise: {message}")
                }),
                _ = exited.wait_for(|e| *e) => Err("the instance exited before it was ready".to_string()),
                _ = tokio::time::sleep_until(deadline) => Err(format!(
                    "the instance's runtime did not ask for an event within {:?}",
                    target.http.startup_timeout()
                )),
                _ = self.cancel.cancelled() => Err("skiff is shutting down".to_string()),
            };
            if outcome.is_err() {
                self.lambda.unregister(container);
            }
            return outcome.map(|()| addr);
        }
        let mut pause = Duration::from_millis(2);
        loop {
            if *exited.borrow() {
                return Err("the instance exited before it was ready".to_string());
            }
            if crate::proxy::is_ready(&self.client, addr, target.http.readiness_path.as_deref())
                .await
            {
                return Ok(addr);
            }
            if tokio::time::Instant::now() + pause > deadline {
                return Err(format!(
                    "the instance did not become ready on port {} within {:?}",
                    target.http.port,
                    target.http.startup_timeout()
                ));
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = exited.changed() => {}
                _ = self.cancel.cancelled() => return Err("skiff is shutting down".to_string()),
            }
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// Reads an instance's output until its container exits, then takes it out of its pool.
    fn spawn_watcher(
        self: &Arc<Self>,
        function: String,
        container: String,
        mut stream: futures::stream::BoxStream<'static, Result<Output, EngineError>>,
        output: Arc<Mutex<OutputTail>>,
        exited: tokio::sync::watch::Sender<bool>,
    ) {
        let manager = self.clone();
        self.tracker.spawn(async move {
            while let Some(Ok(chunk)) = stream.next().await {
                let bytes: Bytes = match chunk {
                    Output::Stdout(b) | Output::Stderr(b) => b,
                };
                push_tail(&output, &bytes);
            }
            let _ = exited.send(true);
            let gone = {
                let mut pools = manager.pools();
                pools.get_mut(&function).and_then(|pool| {
                    let index = pool
                        .instances
                        .iter()
                        .position(|i| i.container == container)?;
                    let instance = pool.instances.remove(index);
                    Some((instance, pool.target.clone()))
                })
            };
            if let Some((instance, _target)) = gone {
                if instance.state != InstanceState::Stopping {
                    tracing::warn!(
                        function,
                        instance = instance.id,
                        output = tail_text(&output),
                        "an instance exited; it is replaced on demand"
                    );
                }
                manager.stop_container(container);
                manager.grow(&function);
            }
        });
    }

    /// Stops (SIGTERM, grace) and removes a container in the background.
    fn stop_container(&self, container: String) {
        // Events in flight on a Lambda instance fail now rather than at its exit.
        self.lambda.unregister(&container);
        let engine = self.engine.clone();
        self.tracker.spawn(async move {
            if let Err(err) = engine.stop(&container, STOP_GRACE).await {
                tracing::debug!(%err, container, "stopping an instance failed; removing it");
            }
            if let Err(err) = engine.remove(&container).await {
                tracing::warn!(%err, container, "could not remove an instance");
            }
        });
    }

    /// One autoscaler tick for every function: records demand, starts instances up to the
    /// desired count, stops idle ones beyond it (pausing the last), removes old paused ones.
    pub fn tick(self: &Arc<Self>) {
        let functions: Vec<String> = self.pools().keys().cloned().collect();
        for function in functions {
            self.scale(&function);
        }
    }

    fn scale(self: &Arc<Self>, function: &str) {
        let now = Instant::now();
        let mut to_stop = Vec::new();
        let mut to_pause = Vec::new();
        let mut to_resume = Vec::new();
        let mut start = 0;
        {
            let mut pools = self.pools();
            let Some(pool) = pools.get_mut(function) else {
                return;
            };
            let target = pool.target.clone();
            let scaling = target.scaling;
            let demand: u32 =
                pool.instances.iter().map(|i| i.in_flight).sum::<u32>() + pool.waiters.len() as u32;
            let active: Vec<&Instance> = pool
                .instances
                .iter()
                .filter(|i| {
                    i.version == target.version
                        && !matches!(i.state, InstanceState::Paused | InstanceState::Stopping)
                })
                .collect();
            let Decision { desired, panic } = pool.autoscaler.observe(
                now,
                f64::from(demand),
                active.len() + pool.starting,
                &scaling,
                scaling
                    .window_ms
                    .map_or(self.settings.autoscale_window, Duration::from_millis),
            );
            let current = active.len() + pool.starting;
            if desired > current {
                // Paused instances count against max_instances: resume them first.
                let mut wanted = desired - current;
                for i in pool
                    .instances
                    .iter_mut()
                    .filter(|i| i.version == target.version && i.state == InstanceState::Paused)
                {
                    if wanted == 0 {
                        break;
                    }
                    wanted -= 1;
                    i.state = InstanceState::Starting;
                    to_resume.push((i.id.clone(), i.container.clone()));
                }
                start = wanted;
                pool.starting += start;
            } else if desired < current && !panic {
                let idle_for = scaling.idle_timeout();
                let mut excess = current - desired;
                // Oldest idle first.
                let mut idle: Vec<usize> = pool
                    .instances
                    .iter()
                    .enumerate()
                    .filter(|(_, i)| {
                        i.version == target.version
                            && i.in_flight == 0
                            && i.state.can_serve()
                            && now.duration_since(i.last_used) >= idle_for
                    })
                    .map(|(index, _)| index)
                    .collect();
                idle.sort_by_key(|&index| pool.instances[index].last_used);
                let has_paused = pool
                    .instances
                    .iter()
                    .any(|i| i.state == InstanceState::Paused);
                for index in idle {
                    if excess == 0 {
                        break;
                    }
                    excess -= 1;
                    let i = &mut pool.instances[index];
                    let last = desired == 0 && excess == 0;
                    if last && self.settings.keep_paused && !has_paused {
                        i.state = InstanceState::Paused;
                        to_pause.push(i.container.clone());
                    } else {
                        i.state = InstanceState::Stopping;
                        to_stop.push(i.container.clone());
                    }
                }
            }
            // Paused instances unused for too long, and any of an old version, go.
            for i in pool.instances.iter_mut() {
                let expired = i.state == InstanceState::Paused
                    && (i.version != target.version
                        || now.duration_since(i.last_used) >= self.settings.paused_ttl);
                let stale_idle = i.version != target.version
                    && i.in_flight == 0
                    && i.state != InstanceState::Stopping;
                if expired || stale_idle {
                    i.state = InstanceState::Stopping;
                    to_stop.push(i.container.clone());
                }
            }
            pool.instances
                .retain(|i| i.state != InstanceState::Stopping);
        }
        for (id, container) in to_resume {
            self.spawn_resume(function, id, container);
        }
        for container in to_pause {
            let engine = self.engine.clone();
            let manager = self.clone();
            let function = function.to_string();
            self.tracker.spawn(async move {
                if let Err(err) = engine.pause(&container).await {
                    tracing::warn!(%err, container, "could not pause an idle instance; stopping it");
                    let mut pools = manager.pools();
                    if let Some(pool) = pools.get_mut(&function) {
                        pool.instances.retain(|i| i.container != container);
                    }
                    drop(pools);
                    manager.stop_container(container);
                }
            });
        }
        for container in to_stop {
            self.stop_container(container);
        }
        for _ in 0..start {
            self.spawn_start(function);
        }
    }

    /// Probes every serving instance (its readiness path, or a TCP connect); one that fails
    /// [`HEALTH_FAILURES`] checks in a row is taken out of its pool and stopped, and calls
    /// waiting for it are served by the others or by a replacement.
    pub async fn check_health(self: &Arc<Self>) {
        let probes: Vec<(String, String, SocketAddr, Option<String>)> = self
            .pools()
            .iter()
            .filter(|(_, pool)| pool.target.contract == Contract::Http)
            .flat_map(|(function, pool)| {
                let path = pool.target.http.readiness_path.clone();
                pool.instances
                    .iter()
                    .filter(|i| i.state.can_serve() || i.state == InstanceState::Busy)
                    .filter_map(move |i| {
                        Some((function.clone(), i.id.clone(), i.addr?, path.clone()))
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        let client = &self.client;
        let results = futures::future::join_all(probes.into_iter().map(
            |(function, id, addr, path)| async move {
                let healthy = crate::proxy::is_ready(client, addr, path.as_deref()).await;
                (function, id, healthy)
            },
        ))
        .await;
        let mut unhealthy = Vec::new();
        {
            let mut pools = self.pools();
            for (function, id, healthy) in results {
                let Some(pool) = pools.get_mut(&function) else {
                    continue;
                };
                let Some(index) = pool.instances.iter().position(|i| i.id == id) else {
                    continue;
                };
                let instance = &mut pool.instances[index];
                if healthy {
                    instance.health_failures = 0;
                    continue;
                }
                instance.health_failures += 1;
                if instance.health_failures >= HEALTH_FAILURES {
                    let instance = pool.instances.remove(index);
                    tracing::warn!(
                        function,
                        instance = instance.id,
                        "an instance failed its health checks; replacing it"
                    );
                    unhealthy.push((function.clone(), instance.container));
                }
            }
        }
        for (function, container) in unhealthy {
            self.stop_container(container);
            self.grow(&function);
            self.scale(&function);
        }
    }

    /// Stops every instance now and waits (at most 30s) for starts and stops under way.
    pub async fn shutdown(&self) {
        let containers: Vec<String> = {
            let mut pools = self.pools();
            pools
                .drain()
                .flat_map(|(_, pool)| {
                    for waiter in pool.waiters {
                        let _ = waiter.tx.send(Err(AcquireError::ShuttingDown));
                    }
                    pool.instances.into_iter().map(|i| i.container)
                })
                .collect()
        };
        let engine = &self.engine;
        futures::stream::iter(containers)
            .for_each_concurrent(8, |container| async move {
                let _ = engine.kill(&container).await;
                if let Err(err) = engine.remove(&container).await {
                    tracing::warn!(%err, container, "could not remove an instance");
                }
            })
            .await;
        self.tracker.close();
        if tokio::time::timeout(Duration::from_secs(30), self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("instance starts and stops still running 30s into shutdown");
        }
    }
}
