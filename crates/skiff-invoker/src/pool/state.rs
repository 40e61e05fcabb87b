//! The instance pools as a state machine, with no I/O and no clock of its own.
//!
//! [`PoolState`] holds, for every `http` and `lambda` function, its current
//! [`InstanceTarget`], its instances, how many are starting, the calls waiting for a slot
//! and its `Autoscaler`. [`PoolState::handle`] takes one [`Event`] (something that
//! happened: a call asked for a slot, an instance became ready, its container exited, a
//! tick of the autoscaler) at an `Instant` given by the caller, updates the pools, and
//! returns the plan: the [`Action`]s the async layer (`InstanceManager`) carries out, in
//! order (answer a waiting call, start, resume, pause or stop an instance). Nothing here
//! waits, and the same events at the same instants always give the same plan, so every
//! rule is unit-tested with injected time.
//!
//! Waiting calls are known by a [`WaiterId`]; their answer channels stay in the async layer.
//! The events, actions and the data they carry are in [`super::events`].

use super::crashloop::{CrashLoop, STABLE_AFTER};
use super::events::{
    AcquireError, Action, Event, Grant, HealthResult, InstanceTarget, NewInstance, StopReason,
    WaiterId,
};
use super::output::Output;
use crate::autoscale::{Autoscaler, Decision};
use skiff_core::InstanceState;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Health checks failed in a row after which an instance is replaced.
pub const HEALTH_FAILURES: u32 = 3;

/// The rules of the pools, from the daemon's configuration.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Most calls waiting for an instance, per function.
    pub max_queued: usize,
    /// Keep the last instance of an idle function paused instead of stopping it.
    pub keep_paused: bool,
    /// A paused instance unused for this long is removed.
    pub paused_ttl: Duration,
    /// The autoscaler's stable window, for functions without their own.
    pub autoscale_window: Duration,
}

#[derive(Debug)]
struct Instance {
    id: String,
    container: String,
    addr: SocketAddr,
    version: u64,
    state: InstanceState,
    in_flight: u32,
    last_used: Instant,
    /// Health checks failed in a row.
    health_failures: u32,
    /// When it last became ready: started, or resumed from pause.
    ready_since: Instant,
    output: Output,
}

impl Instance {
    /// Whether it takes calls (with room or not).
    fn serves(&self) -> bool {
        self.state.can_serve() || self.state == InstanceState::Busy
    }

    fn stop(&self, function: &str, reason: StopReason) -> Action {
        Action::Stop {
            function: function.to_string(),
            instance: self.id.clone(),
            container: self.container.clone(),
            reason,
        }
    }
}

#[derive(Debug)]
struct Waiter {
    id: WaiterId,
    since: Instant,
    /// The call stopped waiting. It keeps its place (and counts as queued, as demand and
    /// against the queue's bound) until it reaches the front, where it is skipped.
    gone: bool,
}

/// One function's instances.
#[derive(Debug)]
struct FunctionPool {
    target: Arc<InstanceTarget>,
    instances: Vec<Instance>,
    starting: usize,
    waiters: VecDeque<Waiter>,
    autoscaler: Autoscaler,
    /// The last start failure, reported to calls that were waiting for that start.
    last_failure: Option<String>,
    /// Failures in a row, and the wait before the next start.
    crash: CrashLoop,
    /// The last time a call was in flight or waiting.
    last_demand: Option<Instant>,
}

/// Every instance of every instance-based function. See the module's documentation.
#[derive(Debug)]
pub struct PoolState {
    rules: Rules,
    pools: HashMap<String, FunctionPool>,
    closing: bool,
}

impl PoolState {
    /// No pools yet.
    pub fn new(rules: Rules) -> Self {
        PoolState {
            rules,
            pools: HashMap::new(),
            closing: false,
        }
    }

    /// Applies `event`, which happened at `now`, and returns what to do, in order.
    pub fn handle(&mut self, now: Instant, event: Event) -> Vec<Action> {
        let mut plan = Vec::new();
        match event {
            Event::Deployed(target) => self.deployed(now, target, &mut plan),
            Event::ScalingChanged { function, scaling } => {
                if let Some(pool) = self.pools.get_mut(&function) {
                    let mut target = (*pool.target).clone();
                    target.scaling = scaling;
                    pool.target = Arc::new(target);
                    pool.scale(&function, now, &self.rules, &mut plan);
                }
            }
            Event::Removed { function } => self.removed(&function, &mut plan),
            Event::Acquire { function, waiter } => self.acquire(now, function, waiter, &mut plan),
            Event::GaveUp { function, waiter } => {
                if let Some(pool) = self.pools.get_mut(&function) {
                    if let Some(w) = pool.waiters.iter_mut().find(|w| w.id == waiter) {
                        w.gone = true;
                    }
                }
            }
            Event::Released {
                function,
                instance,
                broken,
            } => self.released(now, &function, &instance, broken, &mut plan),
            Event::Started { function, instance } => {
                self.started(now, &function, instance, &mut plan)
            }
            Event::StartFailed { function, message } => {
                if let Some(pool) = self.pools.get_mut(&function) {
                    pool.start_failed(&function, now, message, &mut plan);
                }
            }
            // The instance has counted as paused since the pause was decided.
            Event::Paused { .. } => {}
            Event::PauseFailed {
                function,
                instance,
                container,
            } => {
                if let Some(pool) = self.pools.get_mut(&function) {
                    pool.instances.retain(|i| i.container != container);
                }
                plan.push(Action::Stop {
                    function,
                    instance,
                    container,
                    reason: StopReason::PauseFailed,
                });
            }
            Event::Resumed { function, instance } => {
                if let Some(pool) = self.pools.get_mut(&function) {
                    if let Some(i) = pool.instances.iter_mut().find(|i| i.id == instance) {
                        i.state = InstanceState::Ready;
                        i.ready_since = now;
                    }
                    pool.serve(&function, now, &mut plan);
                }
            }
            Event::ResumeFailed {
                function,
                instance,
                container,
            } => {
                if let Some(pool) = self.pools.get_mut(&function) {
                    pool.instances.retain(|i| i.id != instance);
                    plan.push(Action::Stop {
                        function: function.clone(),
                        instance,
                        container,
                        reason: StopReason::ResumeFailed,
                    });
                    pool.grow(&function, now, &mut plan);
                }
            }
            Event::Exited {
                function,
                container,
                output,
            } => {
                if let Some(pool) = self.pools.get_mut(&function) {
                    pool.exited(&function, now, &container, &output, &mut plan);
                }
            }
            Event::Retry { function } => {
                if let Some(pool) = self.pools.get_mut(&function) {
                    pool.grow(&function, now, &mut plan);
                    pool.scale(&function, now, &self.rules, &mut plan);
                }
            }
            Event::HealthChecked(results) => self.health_checked(now, results, &mut plan),
            Event::Tick => {
                for (function, pool) in &mut self.pools {
                    pool.scale(function, now, &self.rules, &mut plan);
                }
            }
            Event::Closing => self.closing = true,
            Event::Shutdown => {
                for (_, pool) in self.pools.drain() {
                    plan.extend(pool.waiters.into_iter().filter(|w| !w.gone).map(|w| {
                        Action::Fail {
                            waiter: w.id,
                            error: AcquireError::ShuttingDown,
                        }
                    }));
                    plan.extend(pool.instances.into_iter().map(|i| Action::Kill {
                        container: i.container,
                    }));
                }
            }
        }
        plan
    }

    fn deployed(&mut self, now: Instant, target: Arc<InstanceTarget>, plan: &mut Vec<Action>) {
        let function = target.function.clone();
        let pool = self
            .pools
            .entry(function.clone())
            .or_insert_with(|| FunctionPool::new(target.clone()));
        if pool.target.version != target.version {
            // A new version gets a fresh start.
            pool.crash = CrashLoop::default();
        }
        pool.target = target;
        let version = pool.target.version;
        // Old versions take no new calls; idle ones go now, busy ones when released.
        pool.instances.retain(|i| {
            let stale = i.version != version && i.in_flight == 0;
            if stale {
                plan.push(i.stop(&function, StopReason::Drained));
            }
            !stale
        });
        pool.scale(&function, now, &self.rules, plan);
    }

    fn removed(&mut self, function: &str, plan: &mut Vec<Action>) {
        let Some(pool) = self.pools.remove(function) else {
            return;
        };
        plan.extend(
            pool.waiters
                .into_iter()
                .filter(|w| !w.gone)
                .map(|w| Action::Fail {
                    waiter: w.id,
                    error: AcquireError::StartFailed("the function was deleted".into()),
                }),
        );
        plan.extend(
            pool.instances
                .iter()
                .map(|i| i.stop(function, StopReason::Deleted)),
        );
    }

    fn acquire(
        &mut self,
        now: Instant,
        function: String,
        waiter: WaiterId,
        plan: &mut Vec<Action>,
    ) {
        let Some(pool) = self.pools.get_mut(&function) else {
            plan.push(Action::Fail {
                waiter,
                error: AcquireError::StartFailed(format!("function `{function}` has no instances")),
            });
            return;
        };
        pool.last_demand = Some(now);
        if let Some(lease) = pool.take_slot(&function, now, now) {
            plan.push(Action::Grant { waiter, lease });
            return;
        }
        if pool.crash.backing_off(now) && !pool.may_serve() {
            // Nothing to wait for: the call fails now rather than at its deadline.
            plan.push(Action::Fail {
                waiter,
                error: AcquireError::StartFailed(pool.crash.refusal(&function, now)),
            });
            return;
        }
        if pool.waiters.len() >= self.rules.max_queued {
            plan.push(Action::Fail {
                waiter,
                error: AcquireError::QueueFull {
                    instances: pool.instances.len(),
                    queued: pool.waiters.len(),
                },
            });
            return;
        }
        pool.waiters.push_back(Waiter {
            id: waiter,
            since: now,
            gone: false,
        });
        // Room may come from a paused instance or a new one.
        pool.grow(&function, now, plan);
    }

    fn released(
        &mut self,
        now: Instant,
        function: &str,
        instance: &str,
        broken: bool,
        plan: &mut Vec<Action>,
    ) {
        let Some(pool) = self.pools.get_mut(function) else {
            return;
        };
        let version = pool.target.version;
        let mut stop = None;
        if let Some(index) = pool.instances.iter().position(|i| i.id == instance) {
            let i = &mut pool.instances[index];
            i.in_flight = i.in_flight.saturating_sub(1);
            i.last_used = now;
            if i.in_flight == 0 && i.state == InstanceState::Busy {
                i.state = InstanceState::Idle;
            }
            if broken || (i.version != version && i.in_flight == 0) {
                let gone = pool.instances.remove(index);
                let reason = if broken {
                    StopReason::Broken
                } else {
                    StopReason::Drained
                };
                stop = Some(gone.stop(function, reason));
            }
        }
        pool.serve(function, now, plan);
        pool.last_demand = Some(now);
        if let Some(stop) = stop {
            plan.push(stop);
            if broken {
                pool.grow(function, now, plan);
            }
        }
    }

    fn started(&mut self, now: Instant, function: &str, new: NewInstance, plan: &mut Vec<Action>) {
        let discard = |new: NewInstance| Action::Stop {
            function: function.to_string(),
            instance: new.id,
            container: new.container,
            reason: StopReason::Discarded,
        };
        let Some(pool) = self.pools.get_mut(function) else {
            plan.push(discard(new));
            return;
        };
        pool.starting = pool.starting.saturating_sub(1);
        if self.closing || new.version != pool.target.version {
            plan.push(discard(new));
            return;
        }
        pool.last_failure = None;
        pool.instances.push(Instance {
            id: new.id,
            container: new.container,
            addr: new.addr,
            version: new.version,
            state: InstanceState::Ready,
            in_flight: 0,
            last_used: new.ready_at,
            health_failures: 0,
            ready_since: new.ready_at,
            output: new.output,
        });
        pool.serve(function, now, plan);
    }

    fn health_checked(&mut self, now: Instant, results: Vec<HealthResult>, plan: &mut Vec<Action>) {
        let mut unhealthy = Vec::new();
        for result in results {
            let Some(pool) = self.pools.get_mut(&result.function) else {
                continue;
            };
            let Some(index) = pool.instances.iter().position(|i| i.id == result.instance) else {
                continue;
            };
            let instance = &mut pool.instances[index];
            if result.healthy {
                instance.health_failures = 0;
                continue;
            }
            instance.health_failures += 1;
            if instance.health_failures >= HEALTH_FAILURES {
                let instance = pool.instances.remove(index);
                unhealthy.push((result.function, instance));
            }
        }
        // Waiting calls get a replacement, and the autoscaler restores the wanted count.
        for (function, instance) in unhealthy {
            plan.push(instance.stop(&function, StopReason::Unhealthy));
            if let Some(pool) = self.pools.get_mut(&function) {
                pool.grow(&function, now, plan);
                pool.scale(&function, now, &self.rules, plan);
            }
        }
    }
}

impl FunctionPool {
    fn new(target: Arc<InstanceTarget>) -> Self {
        FunctionPool {
            target,
            instances: Vec::new(),
            starting: 0,
            waiters: VecDeque::new(),
            autoscaler: Autoscaler::default(),
            last_failure: None,
            crash: CrashLoop::default(),
            last_demand: None,
        }
    }

    /// Whether a call that waits may get a slot without a new start: an instance of the
    /// current version serves (full or not), is paused or resuming, or one is starting.
    fn may_serve(&self) -> bool {
        let version = self.target.version;
        self.starting > 0
            || self
                .instances
                .iter()
                .any(|i| i.version == version && i.state != InstanceState::Stopping)
    }

    /// Fails the waiting calls with `error` when nothing may serve them.
    fn fail_waiters_unless_served(&mut self, error: &str, plan: &mut Vec<Action>) {
        if self.may_serve() {
            return;
        }
        plan.extend(
            self.waiters
                .drain(..)
                .filter(|w| !w.gone)
                .map(|w| Action::Fail {
                    waiter: w.id,
                    error: AcquireError::StartFailed(error.to_string()),
                }),
        );
    }

    /// A failure of the function's instances at `now`: counts it, and asks for a wake-up
    /// when a wait before the next start begins.
    fn failed(&mut self, function: &str, now: Instant, error: String, plan: &mut Vec<Action>) {
        if let Some(at) = self.crash.failed(now, error) {
            plan.push(Action::Wake {
                function: function.to_string(),
                at,
            });
        }
    }

    /// An instance's container exited. If it was still in the pool, it crashed: it leaves,
    /// counts as a failure unless it had been ready for [`STABLE_AFTER`], and is replaced
    /// for the waiting calls (unless the function now backs off, when they fail).
    fn exited(
        &mut self,
        function: &str,
        now: Instant,
        container: &str,
        output: &str,
        plan: &mut Vec<Action>,
    ) {
        let Some(index) = self.instances.iter().position(|i| i.container == container) else {
            return;
        };
        let gone = self.instances.remove(index);
        plan.push(gone.stop(function, StopReason::Exited));
        self.crash.still_ready(gone.ready_since, now);
        let up = now.saturating_duration_since(gone.ready_since);
        if up < STABLE_AFTER {
            let mut error = format!(
                "the instance exited {:.1}s after it became ready",
                up.as_secs_f64()
            );
            if !output.is_empty() {
                error = format!("{error}; its output ended with: {output}");
            }
            self.failed(function, now, error, plan);
        }
        if self.crash.backing_off(now) {
            let refusal = self.crash.refusal(function, now);
            self.fail_waiters_unless_served(&refusal, plan);
        }
        self.grow(function, now, plan);
    }

    /// A slot on the least busy instance of the current version with room, if there is one.
    /// The call is cold when the instance became ready after the call began waiting.
    fn take_slot(&mut self, function: &str, since: Instant, now: Instant) -> Option<Grant> {
        let version = self.target.version;
        let concurrency = self.target.scaling.concurrency;
        let instance = self
            .instances
            .iter_mut()
            .filter(|i| i.version == version && i.serves() && i.in_flight < concurrency)
            .min_by_key(|i| i.in_flight)?;
        instance.in_flight += 1;
        instance.state = InstanceState::Busy;
        Some(Grant {
            function: function.to_string(),
            instance: instance.id.clone(),
            addr: instance.addr,
            cold: instance.ready_since >= since,
            waited: now.saturating_duration_since(since),
            output: instance.output.clone(),
        })
    }

    /// Hands free slots to waiting calls, in arrival order.
    fn serve(&mut self, function: &str, now: Instant, plan: &mut Vec<Action>) {
        while let Some(waiter) = self.waiters.pop_front() {
            if waiter.gone {
                continue;
            }
            match self.take_slot(function, waiter.since, now) {
                Some(lease) => plan.push(Action::Grant {
                    waiter: waiter.id,
                    lease,
                }),
                None => {
                    self.waiters.push_front(waiter);
                    return;
                }
            }
        }
    }

    /// Makes room for waiting calls: resumes a paused instance, or starts new ones within
    /// `max_instances` (none while the function backs off).
    fn grow(&mut self, function: &str, now: Instant, plan: &mut Vec<Action>) {
        if self.waiters.is_empty() {
            return;
        }
        let version = self.target.version;
        if let Some(paused) = self
            .instances
            .iter_mut()
            .find(|i| i.state == InstanceState::Paused && i.version == version)
        {
            paused.state = InstanceState::Starting;
            plan.push(Action::Resume {
                function: function.to_string(),
                instance: paused.id.clone(),
                container: paused.container.clone(),
            });
            return;
        }
        let capacity = self.target.scaling.concurrency as usize;
        let alive = self
            .instances
            .iter()
            .filter(|i| i.version == version && i.state != InstanceState::Stopping)
            .count();
        let free: usize = self
            .instances
            .iter()
            .filter(|i| i.version == version && i.serves())
            .map(|i| capacity.saturating_sub(i.in_flight as usize))
            .sum();
        let room =
            (self.target.scaling.max_instances as usize).saturating_sub(alive + self.starting);
        let needed = self
            .waiters
            .len()
            .saturating_sub(free + self.starting * capacity)
            .div_ceil(capacity.max(1));
        let start = if self.crash.backing_off(now) {
            0
        } else {
            needed.min(room)
        };
        self.starting += start;
        plan.extend((0..start).map(|_| Action::Start {
            function: function.to_string(),
        }));
    }

    /// A start failed: calls waiting only for starts that failed get the failure.
    fn start_failed(
        &mut self,
        function: &str,
        now: Instant,
        message: String,
        plan: &mut Vec<Action>,
    ) {
        self.starting = self.starting.saturating_sub(1);
        self.failed(function, now, message.clone(), plan);
        let serving = self
            .instances
            .iter()
            .any(|i| i.state != InstanceState::Stopping);
        if !serving && self.starting == 0 {
            plan.extend(
                self.waiters
                    .drain(..)
                    .filter(|w| !w.gone)
                    .map(|w| Action::Fail {
                        waiter: w.id,
                        error: AcquireError::StartFailed(message.clone()),
                    }),
            );
        }
        self.last_failure = Some(message);
    }

    /// One autoscaler decision: records demand, starts instances up to the desired count
    /// (resuming paused ones first), stops idle ones beyond it (pausing the last), and
    /// removes expired paused instances and idle ones of older versions.
    fn scale(&mut self, function: &str, now: Instant, rules: &Rules, plan: &mut Vec<Action>) {
        let target = self.target.clone();
        let scaling = target.scaling;
        let demand: u32 =
            self.instances.iter().map(|i| i.in_flight).sum::<u32>() + self.waiters.len() as u32;
        if demand > 0 {
            self.last_demand = Some(now);
        } else if self
            .last_demand
            .is_none_or(|at| now.saturating_duration_since(at) >= scaling.idle_timeout())
        {
            // No call for the idle timeout: the window's memory of earlier demand would keep
            // instances up past it (a 60s window holds one for a minute after a single
            // call). The idle timeout decides.
            self.autoscaler = Autoscaler::default();
        }
        for i in &self.instances {
            if i.serves() {
                self.crash.still_ready(i.ready_since, now);
            }
        }
        let active = self
            .instances
            .iter()
            .filter(|i| {
                i.version == target.version
                    && !matches!(i.state, InstanceState::Paused | InstanceState::Stopping)
            })
            .count();
        let current = active + self.starting;
        let Decision { desired, panic } = self.autoscaler.observe(
            now,
            f64::from(demand),
            current,
            &scaling,
            scaling
                .window_ms
                .map_or(rules.autoscale_window, Duration::from_millis),
        );
        let (mut resume, mut pause, mut stop, mut start) = (Vec::new(), Vec::new(), Vec::new(), 0);
        if desired > current {
            // Paused instances count against max_instances: resume them first.
            let mut wanted = desired - current;
            for i in self
                .instances
                .iter_mut()
                .filter(|i| i.version == target.version && i.state == InstanceState::Paused)
            {
                if wanted == 0 {
                    break;
                }
                wanted -= 1;
                i.state = InstanceState::Starting;
                resume.push(Action::Resume {
                    function: function.to_string(),
                    instance: i.id.clone(),
                    container: i.container.clone(),
                });
            }
            start = if self.crash.backing_off(now) {
                0
            } else {
                wanted
            };
            self.starting += start;
        } else if desired < current && !panic {
            let idle_for = scaling.idle_timeout();
            let mut excess = current - desired;
            // Oldest idle first.
            let mut idle: Vec<usize> = self
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
            idle.sort_by_key(|&index| self.instances[index].last_used);
            let has_paused = self
                .instances
                .iter()
                .any(|i| i.state == InstanceState::Paused);
            for index in idle {
                if excess == 0 {
                    break;
                }
                excess -= 1;
                let i = &mut self.instances[index];
                let last = desired == 0 && excess == 0;
                if last && rules.keep_paused && !has_paused {
                    i.state = InstanceState::Paused;
                    pause.push(Action::Pause {
                        function: function.to_string(),
                        instance: i.id.clone(),
                        container: i.container.clone(),
                    });
                } else {
                    i.state = InstanceState::Stopping;
                    stop.push(i.stop(function, StopReason::Idle));
                }
            }
        }
        // Paused instances unused for too long, and any of an old version, go.
        for i in self.instances.iter_mut() {
            let old = i.version != target.version;
            let expired = i.state == InstanceState::Paused
                && (old || now.duration_since(i.last_used) >= rules.paused_ttl);
            let stale_idle = old && i.in_flight == 0 && i.state != InstanceState::Stopping;
            if expired || stale_idle {
                i.state = InstanceState::Stopping;
                let reason = if old {
                    StopReason::Drained
                } else {
                    StopReason::Expired
                };
                stop.push(i.stop(function, reason));
            }
        }
        self.instances
            .retain(|i| i.state != InstanceState::Stopping);
        plan.extend(resume);
        plan.extend(pause);
        plan.extend(stop);
        plan.extend((0..start).map(|_| Action::Start {
            function: function.to_string(),
        }));
    }
}

pub mod views;

#[cfg(test)]
mod tests;
