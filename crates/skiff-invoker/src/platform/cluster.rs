//! The daemons sharing the store: this one's heartbeat, the takeover of those silent past
//! the lease, and the cluster as the API shows it.
//!
//! Every fifth of the lease, a daemon records a heartbeat, then looks for daemons whose
//! last heartbeat is older than the lease. It takes each over in one store transaction that
//! only one daemon can win ([`skiff_store::Store::take_over`]): the dead daemon's running
//! async calls go back to the queue (at least once: they run again, here or elsewhere), its
//! sync calls end `interrupted`, and then its containers, found by their `skiff.daemon`
//! label, are removed, and it leaves the list. A takeover that stalls (its daemon died in
//! turn) is taken over again one lease later.

use super::{setup, Platform};
use crate::error::PlatformError;
use chrono::Utc;
use skiff_core::api::{ClusterView, DaemonView};
use skiff_store::{Beat, DaemonState};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// How often a daemon beats, as a share of the lease.
const BEATS_PER_LEASE: u32 = 5;
/// Passes over the containers of a daemon taken over, at most.
const SWEEPS: u32 = 10;
/// The pause between two of them.
const SWEEP_PAUSE: Duration = Duration::from_secs(1);

impl Platform {
    /// How often the heartbeat runs.
    fn heartbeat_period(&self) -> Duration {
        (self.config.lease / BEATS_PER_LEASE).max(Duration::from_millis(100))
    }

    /// Where this daemon's API listens, as the heartbeat says.
    fn address(&self) -> Option<String> {
        self.config.listeners.first().map(|a| a.to_string())
    }

    /// Records the first heartbeat, so that the daemon is listed from its start.
    pub(super) async fn first_heartbeat(&self) -> Result<(), PlatformError> {
        self.store
            .heartbeat(self.address().as_deref(), Utc::now())
            .await?;
        Ok(())
    }

    /// Starts the heartbeat and the takeover of silent daemons.
    pub(super) fn spawn_heartbeat(self: &Arc<Self>) {
        let platform = Arc::downgrade(self);
        self.spawn_every(self.heartbeat_period(), move || {
            let platform = platform.clone();
            async move {
                if let Some(platform) = platform.upgrade() {
                    platform.beat().await;
                    platform.take_over_silent().await;
                }
            }
        });
    }

    /// One heartbeat. A daemon the store no longer counts alive is fenced: the store drops
    /// what it writes of the calls taken from it (see `skiff_store::Store::write_calls`),
    /// its dispatcher claims nothing, and `/readyz` says so, until a heartbeat counts it
    /// alive again (once its takeover is complete).
    async fn beat(&self) {
        let lost = &self.taken_over;
        match self
            .store
            .heartbeat(self.address().as_deref(), Utc::now())
            .await
        {
            Ok(Beat::Alive) => {
                if lost.load(Ordering::Acquire) {
                    // Its containers were removed by the takeover.
                    self.contracts.exec.drop_ready();
                    lost.store(false, Ordering::Release);
                    tracing::info!("the store counts this daemon alive again");
                    self.queued.notify_one();
                }
            }
            Ok(Beat::Listed) => {
                // Not listed any more: taken over and forgotten while it was silent (its
                // first beat, at start, is `first_heartbeat`'s); its containers were
                // removed meanwhile.
                self.contracts.exec.drop_ready();
                if !lost.swap(false, Ordering::AcqRel) {
                    tracing::error!(
                        lease = ?self.config.lease,
                        "this daemon was silent past its lease: another daemon took its calls \
                         and containers over meanwhile; what it still writes of those calls is \
                         dropped"
                    );
                }
                tracing::info!("the store counts this daemon alive again");
                self.queued.notify_one();
            }
            Ok(Beat::TakenOver) => {
                if !lost.swap(true, Ordering::AcqRel) {
                    self.contracts.exec.drop_ready();
                    tracing::error!(
                        lease = ?self.config.lease,
                        "this daemon was silent past its lease: another daemon took its calls \
                         and containers over; what it still writes of those calls is dropped, \
                         and it claims no queued call until the store counts it alive again"
                    );
                }
            }
            Err(err) => tracing::warn!(%err, "cannot record a heartbeat"),
        }
    }

    /// Takes over the daemons silent past the lease (see the module's documentation).
    async fn take_over_silent(&self) {
        let now = Utc::now();
        let Ok(lease) = chrono::Duration::from_std(self.config.lease) else {
            return;
        };
        let cutoff = now - lease;
        let silent = match self.store.expired_daemons(cutoff).await {
            Ok(silent) => silent,
            Err(err) => {
                tracing::warn!(%err, "cannot look for daemons past their lease");
                return;
            }
        };
        for dead in silent {
            match self.store.take_over(&dead, cutoff, now).await {
                Ok(Some(recovered)) => {
                    tracing::warn!(
                        daemon = %dead,
                        requeued = recovered.requeued,
                        interrupted = recovered.interrupted,
                        "a daemon was silent past its lease: its async calls are queued \
                         again, its sync calls interrupted, its containers removed"
                    );
                    if recovered.requeued > 0 {
                        self.queued.notify_one();
                    }
                    self.sweep(dead);
                }
                Ok(None) => {}
                Err(err) => tracing::warn!(daemon = %dead, %err, "cannot take over a daemon"),
            }
        }
    }

    /// Removes the containers of daemon `dead`, taken over, in a task of its own (past the
    /// engine gate: they must not wait behind this daemon's own creates): again
    /// until a pass finds none (a create the engine was still carrying out when the daemon
    /// died lands after the first pass), at most [`SWEEPS`] times, then drops the daemon
    /// from the list. A sweep that cannot finish leaves it `recovering`, to be taken over
    /// again after another lease.
    fn sweep(&self, dead: String) {
        let engine = self.ungated.clone();
        let store = self.store.clone();
        let cancel = self.cancel.clone();
        self.tracker.spawn(async move {
            let mut removed_total = 0;
            for pass in 0..SWEEPS {
                if pass > 0 {
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(SWEEP_PAUSE) => {}
                    }
                }
                if let Err(err) = store.hold_takeover(&dead, Utc::now()).await {
                    tracing::warn!(daemon = %dead, %err, "cannot record that a takeover goes on");
                }
                match setup::reap(&*engine, &dead).await {
                    Ok(0) if pass > 0 => {
                        tracing::info!(daemon = %dead, removed = removed_total, "removed the containers of a daemon taken over");
                        if let Err(err) = store.forget_daemon(&dead).await {
                            tracing::warn!(daemon = %dead, %err, "cannot remove a daemon taken over from the list");
                        }
                        return;
                    }
                    Ok(removed) => {
                        tracing::debug!(daemon = %dead, pass, removed, "swept the containers of a daemon taken over");
                        removed_total += removed;
                    }
                    Err(err) => {
                        tracing::warn!(daemon = %dead, %err, "cannot remove the containers of a daemon taken over")
                    }
                }
            }
            tracing::error!(daemon = %dead, "the containers of a daemon taken over are still there; it is taken over again after another lease");
        });
    }

    /// The daemons of the store, as `GET /v1/cluster` shows them.
    pub async fn cluster(&self) -> Result<ClusterView, PlatformError> {
        let now = Utc::now();
        let lease = chrono::Duration::from_std(self.config.lease).unwrap_or(chrono::Duration::MAX);
        let daemons = self
            .store
            .daemons()
            .await?
            .into_iter()
            .map(|d| DaemonView {
                state: match d.state {
                    DaemonState::Recovering => "recovering",
                    DaemonState::Stopped => "stopped",
                    DaemonState::Alive if now - d.heartbeat_at > lease => "expired",
                    DaemonState::Alive => "alive",
                }
                .to_string(),
                this: d.id == self.daemon_id,
                id: d.id,
                address: d.address,
                started_at: d.started_at,
                heartbeat_at: d.heartbeat_at,
                running_calls: d.running_calls,
            })
            .collect();
        Ok(ClusterView {
            store: self.store.backend().as_str().to_string(),
            daemon: self.daemon_id.clone(),
            lease_ms: u64::try_from(self.config.lease.as_millis()).unwrap_or(u64::MAX),
            daemons,
        })
    }
}
