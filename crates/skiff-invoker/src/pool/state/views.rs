//! What the pools' state machine tells about itself: targets, instances, counts, the
//! probes of a round of health checks, and each function's standing.

use super::{FunctionPool, PoolState};
use crate::pool::events::{AcquireError, InstanceTarget, InstanceView, Probe};
use skiff_core::{Contract, InstanceState};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// Where a function's pool stands, as [`PoolState::standing`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    /// Instances of the current version that take calls.
    pub serving: usize,
    /// Paused instances of the current version (resumed on demand).
    pub paused: usize,
    /// Instances being started or resumed.
    pub starting: usize,
    /// Failures in a row (see `crashloop`).
    pub failures: u32,
    /// What the last of them said.
    pub last_error: Option<String>,
    /// While no instance may start: when one may.
    pub retry_at: Option<Instant>,
}

impl PoolState {
    /// The current target of `function`.
    pub fn target(&self, function: &str) -> Option<Arc<InstanceTarget>> {
        self.pools.get(function).map(|pool| pool.target.clone())
    }

    /// What a call that waited until its deadline is told: the last start failure, if
    /// starting instances kept failing, as that is the better account of the wait.
    pub fn timeout_error(&self, function: &str) -> AcquireError {
        self.pools
            .get(function)
            .and_then(|pool| pool.last_failure.clone())
            .map_or(AcquireError::Timeout, AcquireError::StartFailed)
    }

    /// The instances of `function` (not those starting), as seen at `now`.
    pub fn instances(&self, function: &str, now: Instant) -> Vec<InstanceView> {
        self.pools
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

    /// Instances being started for `function`.
    pub fn starting(&self, function: &str) -> usize {
        self.pools.get(function).map_or(0, |pool| pool.starting)
    }

    /// Calls queued for `function` (those that gave up but were not reached yet included).
    pub fn queued(&self, function: &str) -> usize {
        self.pools
            .get(function)
            .map_or(0, |pool| pool.waiters.len())
    }

    /// Counts of instances by state (those starting as `starting`), and calls queued,
    /// across all functions.
    pub fn totals(&self) -> (HashMap<InstanceState, usize>, usize) {
        let mut by_state = HashMap::new();
        let mut waiting = 0;
        for pool in self.pools.values() {
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

    /// The instances a round of health checks probes: those of `http` functions that take
    /// calls (paused and resuming ones are left alone; `lambda` clients are in a long poll).
    pub fn probes(&self) -> Vec<Probe> {
        self.pools
            .iter()
            .filter(|(_, pool)| pool.target.contract == Contract::Http)
            .flat_map(|(function, pool)| {
                let path = pool.target.http.readiness_path.clone();
                pool.instances
                    .iter()
                    .filter(|i| i.serves())
                    .map(move |i| Probe {
                        function: function.clone(),
                        instance: i.id.clone(),
                        addr: i.addr,
                        readiness_path: path.clone(),
                    })
            })
            .collect()
    }

    /// Where the pool of `function` stands at `now`.
    pub fn standing(&self, function: &str, now: Instant) -> Option<Standing> {
        self.pools.get(function).map(|pool| pool.standing(now))
    }
}

impl FunctionPool {
    fn standing(&self, now: Instant) -> Standing {
        let version = self.target.version;
        let current = || self.instances.iter().filter(|i| i.version == version);
        let failures = self.crash.failures();
        Standing {
            serving: current().filter(|i| i.serves()).count(),
            paused: current()
                .filter(|i| i.state == InstanceState::Paused)
                .count(),
            starting: self.starting
                + current()
                    .filter(|i| i.state == InstanceState::Starting)
                    .count(),
            failures,
            last_error: self
                .crash
                .last_error()
                .filter(|_| failures > 0)
                .map(str::to_string),
            retry_at: self.crash.retry_at(now),
        }
    }
}
