//! Long-lived instances (`http` and `lambda` contracts): one pool per function.
//!
//! A call leases a slot on an instance: the least busy ready instance of the function's
//! current version with room under its concurrency. When none has room, a paused instance is
//! resumed, or a new one is started if the function is below `max_instances`, and the call
//! waits in the function's bounded queue; beyond that it is refused. A lease is given back
//! when the call's response has been sent; the freed slot goes to the longest waiting call.
//!
//! Two layers:
//! - [`state`]: every rule, as a state machine with no I/O ([`state::PoolState`]): events
//!   in, a plan of actions out ([`events`]), with injected time;
//! - [`InstanceManager`] (this module): the thin async layer. It feeds events in, keeps the
//!   answer channel of each waiting call, and carries the actions out on the engine as
//!   tasks of its own `TaskTracker`: starts (`instance.rs`: create, start, wait until ready,
//!   and a watcher per instance that reports its exit), stops, pauses and resumes, and the
//!   rounds of health checks (`health.rs`).

mod crashloop;
pub mod events;
mod health;
mod instance;
mod output;
pub mod state;

pub use crashloop::STABLE_AFTER;
pub use events::{AcquireError, InstanceTarget, InstanceView};
pub use output::{CallMark, Output, OutputTail};
pub use state::views::Standing;
pub use state::HEALTH_FAILURES;

use events::{Action, Event, Grant, StopReason, WaiterId};
use instance::{Containers, Launch};
use skiff_core::{InstanceState, Scaling};
use skiff_runtime::ContainerEngine;
use state::{PoolState, Rules};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

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
    /// Where each instance's output goes, line by line, as it is written.
    pub logs: crate::logs::LogSink,
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
    pub output: Output,
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
        self.manager.apply(Event::Released {
            function: std::mem::take(&mut self.function),
            instance: std::mem::take(&mut self.instance),
            broken: self.broken,
        });
    }
}

type Answer = oneshot::Sender<Result<Lease, AcquireError>>;

/// The state machine, and the answer channels of the calls it knows as waiting.
#[derive(Debug)]
struct Shared {
    state: PoolState,
    answers: HashMap<WaiterId, Answer>,
    next_waiter: u64,
}

/// A plan, with the answers to waiting calls already paired with their channels.
struct Work {
    /// A slot given to a call with no channel (none should be) is given back at once.
    answers: Vec<(Option<Answer>, Result<Grant, AcquireError>)>,
    actions: Vec<Action>,
}

impl Shared {
    fn handle(&mut self, event: Event) -> Work {
        let plan = self.state.handle(Instant::now(), event);
        let mut work = Work {
            answers: Vec::new(),
            actions: Vec::with_capacity(plan.len()),
        };
        for action in plan {
            let (waiter, answer) = match action {
                Action::Grant { waiter, lease } => (waiter, Ok(lease)),
                Action::Fail { waiter, error } => (waiter, Err(error)),
                other => {
                    work.actions.push(other);
                    continue;
                }
            };
            work.answers.push((self.answers.remove(&waiter), answer));
        }
        work
    }
}

/// Owns every instance of every instance-based function.
#[derive(Debug)]
pub struct InstanceManager {
    /// The manager itself, for the leases and tasks its plans create.
    this: Weak<InstanceManager>,
    shared: parking_lot::Mutex<Shared>,
    containers: Containers,
    tracker: TaskTracker,
    cancel: CancellationToken,
    client: crate::proxy::Client,
}

/// A call waiting for a slot; if it stops waiting unanswered, the pool is told.
struct Waiting<'a> {
    manager: &'a InstanceManager,
    function: &'a str,
    waiter: WaiterId,
    answered: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let work = {
            let mut shared = self.manager.shared.lock();
            shared.answers.remove(&self.waiter);
            shared.handle(Event::GaveUp {
                function: self.function.to_string(),
                waiter: self.waiter,
            })
        };
        self.manager.carry_out(work);
    }
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
        let tracker = TaskTracker::new();
        let rules = Rules {
            max_queued: settings.max_queued,
            keep_paused: settings.keep_paused,
            paused_ttl: settings.paused_ttl,
            autoscale_window: settings.autoscale_window,
        };
        let launch = Launch {
            daemon_id: settings.daemon_id,
            network: settings.network,
            nofile: settings.nofile,
            tokens: settings.tokens,
            logs: settings.logs,
        };
        Arc::new_cyclic(|this| InstanceManager {
            this: this.clone(),
            shared: parking_lot::Mutex::new(Shared {
                state: PoolState::new(rules),
                answers: HashMap::new(),
                next_waiter: 0,
            }),
            containers: Containers::new(
                engine,
                launch,
                client.clone(),
                lambda,
                cancel.clone(),
                tracker.clone(),
            ),
            tracker,
            cancel,
            client,
        })
    }

    /// Feeds `event` to the state machine and carries out its plan.
    fn apply(&self, event: Event) {
        let work = self.shared.lock().handle(event);
        self.carry_out(work);
    }

    /// Carries a plan out, with the lock released: answers first, then the engine's work.
    fn carry_out(&self, work: Work) {
        for (tx, answer) in work.answers {
            let answer = match answer {
                Ok(grant) => match self.lease(grant) {
                    Some(lease) => Ok(lease),
                    None => continue,
                },
                Err(error) => Err(error),
            };
            // A call that stopped waiting meanwhile drops the lease, which gives it back.
            if let Some(tx) = tx {
                let _ = tx.send(answer);
            }
        }
        for action in work.actions {
            match action {
                Action::Start { function } => self.spawn_start(function),
                Action::Resume {
                    function,
                    instance,
                    container,
                } => self.spawn_resume(function, instance, container),
                Action::Pause {
                    function,
                    instance,
                    container,
                } => self.spawn_pause(function, instance, container),
                Action::Stop {
                    function,
                    instance,
                    container,
                    reason,
                } => {
                    if reason == StopReason::Unhealthy {
                        tracing::warn!(
                            function,
                            instance,
                            "an instance failed its health checks; replacing it"
                        );
                    }
                    self.containers.stop(container);
                }
                Action::Kill { container } => self.containers.spawn_kill(container),
                Action::Wake { function, at } => self.spawn_wake(function, at),
                Action::Grant { .. } | Action::Fail { .. } => {}
            }
        }
    }

    fn lease(&self, grant: Grant) -> Option<Lease> {
        Some(Lease {
            manager: self.this.upgrade()?,
            function: grant.function,
            instance: grant.instance,
            addr: grant.addr,
            cold: grant.cold,
            waited: grant.waited,
            output: grant.output,
            broken: false,
        })
    }

    /// Installs (or updates to) `target`: instances of an older version are drained; the
    /// minimum is started.
    pub fn set_target(self: &Arc<Self>, target: Arc<InstanceTarget>) {
        self.apply(Event::Deployed(target));
    }

    /// Forgets a function: its waiting calls fail and its instances are stopped.
    pub fn remove_function(&self, function: &str) {
        self.apply(Event::Removed {
            function: function.to_string(),
        });
    }

    /// Changes the scaling of a function without a new version.
    pub fn set_scaling(self: &Arc<Self>, function: &str, scaling: Scaling) {
        self.apply(Event::ScalingChanged {
            function: function.to_string(),
            scaling,
        });
    }

    /// The instances of a function.
    pub fn instances(&self, function: &str) -> Vec<InstanceView> {
        self.shared.lock().state.instances(function, Instant::now())
    }

    /// Where the pool of `function` stands now (`None` when it has none).
    pub fn standing(&self, function: &str) -> Option<Standing> {
        self.shared.lock().state.standing(function, Instant::now())
    }

    /// Counts of instances by state, and calls waiting, across all functions (for metrics).
    pub fn totals(&self) -> (HashMap<InstanceState, usize>, usize) {
        self.shared.lock().state.totals()
    }

    /// A slot on an instance of `function`, waiting until `deadline` at the most.
    pub async fn acquire(
        self: &Arc<Self>,
        function: &str,
        deadline: tokio::time::Instant,
    ) -> Result<Lease, AcquireError> {
        let (tx, rx) = oneshot::channel();
        let (waiter, work) = {
            let mut shared = self.shared.lock();
            let waiter = WaiterId(shared.next_waiter);
            shared.next_waiter += 1;
            shared.answers.insert(waiter, tx);
            let work = shared.handle(Event::Acquire {
                function: function.to_string(),
                waiter,
            });
            (waiter, work)
        };
        let mut waiting = Waiting {
            manager: self,
            function,
            waiter,
            answered: false,
        };
        self.carry_out(work);
        let result = match tokio::time::timeout_at(deadline, rx).await {
            Ok(answer) => {
                waiting.answered = true;
                answer.unwrap_or(Err(AcquireError::ShuttingDown))
            }
            // A lease given at the last moment is dropped with `rx`, which gives it back.
            Err(_elapsed) => Err(self.shared.lock().state.timeout_error(function)),
        };
        // Not answered: `waiting` tells the pool the call stopped waiting.
        drop(waiting);
        result
    }

    /// One autoscaler tick for every function: records demand, starts instances up to the
    /// desired count, stops idle ones beyond it (pausing the last), removes old paused ones.
    pub fn tick(self: &Arc<Self>) {
        self.apply(Event::Tick);
    }

    /// Probes every serving instance (its readiness path, or a TCP connect); one that fails
    /// [`HEALTH_FAILURES`] checks in a row is taken out of its pool and stopped, and calls
    /// waiting for it are served by the others or by a replacement.
    pub async fn check_health(self: &Arc<Self>) {
        let probes = self.shared.lock().state.probes();
        let results = health::probe(&self.client, probes).await;
        self.apply(Event::HealthChecked(results));
    }

    /// Stops every instance now and waits (at most 30s) for starts and stops under way.
    pub async fn shutdown(&self) {
        let mut work = self.shared.lock().handle(Event::Shutdown);
        let mut kills = Vec::new();
        work.actions.retain(|action| match action {
            Action::Kill { container } => {
                kills.push(container.clone());
                false
            }
            _ => true,
        });
        self.carry_out(work);
        self.containers.kill_all(kills).await;
        self.tracker.close();
        if tokio::time::timeout(Duration::from_secs(30), self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("instance starts and stops still running 30s into shutdown");
        }
    }

    /// Starts an instance of the function's target as it is when the task begins.
    fn spawn_start(&self, function: String) {
        let Some(manager) = self.this.upgrade() else {
            return;
        };
        self.tracker.spawn(async move {
            let Some(target) = manager.shared.lock().state.target(&function) else {
                return;
            };
            let watcher = manager.this.clone();
            let watched = function.clone();
            let on_exit = move |container: String, output: Output| {
                if let Some(manager) = watcher.upgrade() {
                    manager.exited(watched, container, &output);
                }
            };
            let result = manager.containers.start(&target, on_exit).await;
            if manager.cancel.is_cancelled() {
                manager.apply(Event::Closing);
            }
            match result {
                Ok(instance) => manager.apply(Event::Started { function, instance }),
                Err(message) => {
                    tracing::warn!(function, message, "an instance failed to start");
                    manager.apply(Event::StartFailed { function, message });
                }
            }
        });
    }

    /// Reports [`Event::Retry`] at `at`, unless the daemon stops first: the function's
    /// instances keep failing, and none starts before then.
    fn spawn_wake(&self, function: String, at: Instant) {
        let Some(manager) = self.this.upgrade() else {
            return;
        };
        let wait = at.saturating_duration_since(Instant::now());
        tracing::warn!(
            function,
            "instances keep failing; the next one starts in {:.0}s at the earliest",
            wait.as_secs_f64().ceil()
        );
        self.tracker.spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(at)) => {
                    manager.apply(Event::Retry { function });
                }
                _ = manager.cancel.cancelled() => {}
            }
        });
    }

    /// An instance's output ended: if it was still in its pool, it is replaced on demand
    /// (or, if instances of the function keep failing, after a wait).
    fn exited(&self, function: String, container: String, output: &Output) {
        let work = self.shared.lock().handle(Event::Exited {
            function: function.clone(),
            container,
            output: output::quoted(output),
        });
        for action in &work.actions {
            if let Action::Stop {
                instance,
                reason: StopReason::Exited,
                ..
            } = action
            {
                tracing::warn!(
                    function,
                    instance,
                    output = output::quoted(output),
                    "an instance exited; it is replaced on demand"
                );
            }
        }
        self.carry_out(work);
    }

    /// Resumes a paused instance (already counted as resuming).
    fn spawn_resume(&self, function: String, instance: String, container: String) {
        let Some(manager) = self.this.upgrade() else {
            return;
        };
        self.tracker.spawn(async move {
            match manager.containers.engine().unpause(&container).await {
                Ok(()) => manager.apply(Event::Resumed { function, instance }),
                Err(err) => {
                    tracing::warn!(%err, function, "could not resume a paused instance");
                    manager.apply(Event::ResumeFailed {
                        function,
                        instance,
                        container,
                    });
                }
            }
        });
    }

    /// Pauses an idle instance (already counted as paused).
    fn spawn_pause(&self, function: String, instance: String, container: String) {
        let Some(manager) = self.this.upgrade() else {
            return;
        };
        self.tracker.spawn(async move {
            match manager.containers.engine().pause(&container).await {
                Ok(()) => manager.apply(Event::Paused { function, instance }),
                Err(err) => {
                    tracing::warn!(%err, container, "could not pause an idle instance; stopping it");
                    manager.apply(Event::PauseFailed {
                        function,
                        instance,
                        container,
                    });
                }
            }
        });
    }
}
