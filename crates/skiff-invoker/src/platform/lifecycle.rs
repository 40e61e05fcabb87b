//! The platform's background loops (engine probe, descriptor sampler, idle reaper,
//! autoscaler, health checks) and its shutdown. Every loop runs on the platform's tracker and
//! ends at its cancellation.

use super::{setup, Platform};
use crate::running::StopReason;
use chrono::Utc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// How often the container engine is pinged for readiness (also the ping's bound).
const ENGINE_PROBE: Duration = Duration::from_secs(2);

/// How often the namespaces' quotas are read from the store again.
const QUOTA_REFRESH: Duration = Duration::from_secs(10);

/// How long calls stopped at shutdown may take to end (kill and remove their containers).
const STOP_BOUND: Duration = Duration::from_secs(10);

/// How long background tasks may take to end once shutdown has cancelled them.
const BACKGROUND_BOUND: Duration = Duration::from_secs(10);

/// How long removing the daemon's containers may take at shutdown; what is left then is
/// removed by the next start.
pub(crate) const CLEANUP_BOUND: Duration = Duration::from_secs(30);

impl Platform {
    /// Runs `tick` every `period` on the platform's tracker until shutdown.
    pub(super) fn spawn_every<F, Fut>(&self, period: Duration, mut tick: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let cancel = self.cancel.clone();
        self.tracker.spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = ticks.tick() => tick().await,
                }
            }
        });
    }

    /// Starts the background loops.
    pub(super) fn spawn_background(self: &Arc<Self>) {
        // Pings the engine: what it finds is `engine_problem`.
        let platform = Arc::downgrade(self);
        self.spawn_every(ENGINE_PROBE, move || {
            let platform = platform.clone();
            async move {
                if let Some(platform) = platform.upgrade() {
                    platform.probe_engine().await;
                }
            }
        });
        // Counts the open file descriptors.
        let fds = self.fds.clone();
        self.spawn_every(crate::fds::SAMPLE_PERIOD, move || {
            fds.sample();
            std::future::ready(())
        });
        // Removes the prepared containers of exec functions that demand no longer needs.
        let exec = self.contracts.exec.clone();
        let period = (self.config.exec_idle_timeout / 2)
            .clamp(Duration::from_millis(100), Duration::from_secs(5));
        self.spawn_every(period, move || {
            exec.expire_idle();
            std::future::ready(())
        });
        // Deletes the calls that ended longer ago than the retention, with their data.
        let store = self.store.clone();
        let retention = self.config.retention;
        let period = (retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(600));
        self.spawn_every(period, move || {
            let store = store.clone();
            async move {
                let cutoff = chrono::Utc::now()
                    - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
                match store.prune_calls(cutoff).await {
                    Ok(0) => {}
                    Ok(pruned) => tracing::debug!(pruned, "pruned calls past the retention"),
                    Err(err) => tracing::warn!(%err, "could not prune old calls"),
                }
                // The audit log is kept as long as the calls.
                match store.prune_audit(cutoff).await {
                    Ok(0) => {}
                    Ok(pruned) => {
                        tracing::debug!(pruned, "pruned audit entries past the retention")
                    }
                    Err(err) => tracing::warn!(%err, "could not prune the audit log"),
                }
            }
        });
        // The namespaces' quotas, as other daemons of the store may have set them.
        let me = self.me.clone();
        self.spawn_every(QUOTA_REFRESH, move || {
            let me = me.clone();
            async move {
                if let Some(platform) = me.upgrade() {
                    if let Err(err) = platform.refresh_quotas().await {
                        tracing::warn!(%err, "could not read the namespaces' quotas");
                    }
                }
            }
        });
        // The autoscaler's ticks.
        let instances = self.contracts.instances.clone();
        let period = (self.config.autoscale_window / 30)
            .clamp(Duration::from_millis(50), Duration::from_secs(2));
        self.spawn_every(period, move || {
            instances.tick();
            std::future::ready(())
        });
        // Health checks of serving instances.
        let instances = self.contracts.instances.clone();
        let period = self.config.health_interval.max(Duration::from_millis(100));
        self.spawn_every(period, move || {
            let instances = instances.clone();
            async move { instances.check_health().await }
        });
    }

    /// Why the container engine is not usable now, if it is not (from the last probe).
    pub fn engine_problem(&self) -> Option<String> {
        self.engine_problem.lock().clone()
    }

    /// One ping of the engine, bounded by [`ENGINE_PROBE`].
    async fn probe_engine(&self) {
        let problem = match tokio::time::timeout(ENGINE_PROBE, self.engine.ping()).await {
            Ok(Ok(())) => None,
            Ok(Err(err)) => Some(err.to_string()),
            Err(_) => Some(format!(
                "the container engine did not answer a ping within {}s",
                ENGINE_PROBE.as_secs()
            )),
        };
        let mut current = self.engine_problem.lock();
        match (&*current, &problem) {
            (None, Some(problem)) => {
                tracing::error!(problem, "the container engine is unavailable")
            }
            (Some(_), None) => tracing::info!("the container engine answers again"),
            _ => {}
        }
        *current = problem;
    }

    /// Removes every container of this daemon, all at once (the engine's gate admits as
    /// many removals together as it can take): the drivers empty their pools while every
    /// container of this daemon on the engine is removed (running ones killed), leftovers
    /// of the previous run included; then a last pass catches any that a start under way
    /// made meanwhile.
    async fn remove_containers(&self) {
        let (_, _, reaped) = tokio::join!(
            self.contracts.exec.shutdown(),
            self.contracts.instances.shutdown(),
            setup::reap(&*self.engine, &self.daemon_id),
        );
        let last = setup::reap(&*self.engine, &self.daemon_id).await;
        for result in [reaped, last] {
            match result {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "removed function containers"),
                Err(err) => tracing::error!(%err, "could not remove every function container"),
            }
        }
    }

    /// Stops taking calls, lets calls in flight finish for up to `grace`, then stops the
    /// rest (each ends `interrupted`), removes every container of this daemon, and stops the
    /// background tasks after writing pending records. Every call record is final when it
    /// returns (an async call in flight is queued again, without spending an attempt).
    pub async fn shutdown(&self, grace: Duration) {
        self.accepting.store(false, Ordering::Release);
        if !self.in_flight.drain(grace).await {
            let stopped = self.running.stop_all(StopReason::ShuttingDown);
            tracing::warn!(
                in_flight = self.in_flight.count(),
                stopped,
                "calls still running after the grace period are stopped"
            );
            if !self.in_flight.drain(STOP_BOUND).await {
                tracing::warn!(
                    in_flight = self.in_flight.count(),
                    "calls still in flight {}s after they were stopped",
                    STOP_BOUND.as_secs()
                );
            }
        }
        // Followed logs end; instance lines queued so far are stored.
        self.logs.close();
        self.cancel.cancel();
        let started = std::time::Instant::now();
        if tokio::time::timeout(CLEANUP_BOUND, self.remove_containers())
            .await
            .is_err()
        {
            tracing::warn!(
                "containers still being removed {}s into shutdown; the next start removes what is left",
                CLEANUP_BOUND.as_secs()
            );
        } else {
            tracing::info!(
                took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "removed every function container"
            );
        }
        self.contracts.log.recorder().close().await;
        self.tracker.close();
        if tokio::time::timeout(BACKGROUND_BOUND, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "background tasks did not finish within {}s of shutdown",
                BACKGROUND_BOUND.as_secs()
            );
        }
        // Whatever could not finish its own record (a call whose task is stuck on the
        // engine) is marked interrupted now rather than left running until the next start,
        // and the daemon leaves the store's list of daemons.
        match self.store.interrupt_unfinished_calls(Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                calls = n,
                "calls still unfinished at shutdown were marked interrupted"
            ),
            Err(err) => tracing::error!(%err, "cannot mark unfinished calls as interrupted"),
        }
        if let Err(err) = self.store.leave().await {
            tracing::warn!(%err, "cannot remove this daemon from the store's list");
        }
    }
}
