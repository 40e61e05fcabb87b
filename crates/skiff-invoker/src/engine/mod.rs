//! The container engine as a managed resource.
//!
//! Every create, start and remove goes through one [`Gate`], which lets at most its
//! [`AdaptiveLimit`] of them run at once and makes the rest wait their turn. The limit follows
//! the engine's latency between a floor and a ceiling (`--engine-concurrency-min`,
//! `--engine-concurrency-max`): a burst of calls queues at skiff instead of piling container
//! creates on the engine until each of them times out. [`GatedEngine`] is the engine the
//! drivers are given: the real one behind the gate. Inspections, attaches, waits, kills and
//! pauses are light and pass straight through, and so does a stop: it is a signal and a wait
//! as long as the container's grace period, which says nothing of the engine's load and
//! must not hold a turn that a create could use (the remove after it is gated).

pub(crate) mod limit;

use async_trait::async_trait;
use limit::{AdaptiveLimit, OpKind};
use parking_lot::Mutex;
use skiff_runtime::{
    Attachment, ContainerEngine, ContainerSpec, ContainerState, ContainerSummary, EngineError,
    ImageInfo, NetworkInfo,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// What the gate looks like now (for metrics and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateStats {
    /// How many operations may run at once.
    pub limit: usize,
    /// How many run.
    pub in_flight: usize,
    /// How many wait for their turn.
    pub waiting: usize,
}

#[derive(Debug)]
struct GateState {
    limit: AdaptiveLimit,
    in_flight: usize,
    waiting: usize,
}

/// Bounds the heavy engine operations running at once.
#[derive(Debug)]
pub(crate) struct Gate {
    state: Mutex<GateState>,
    freed: Notify,
}

/// Counts one operation waiting, then running; uncounts it however it ends.
struct Turn<'a> {
    gate: &'a Gate,
    running: bool,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut state = self.gate.state.lock();
        if self.running {
            state.in_flight -= 1;
        } else {
            state.waiting -= 1;
        }
        drop(state);
        self.gate.freed.notify_waiters();
    }
}

impl Gate {
    /// A gate whose limit starts at `initial` and stays within `floor..=ceiling`.
    pub(crate) fn new(initial: usize, floor: usize, ceiling: usize) -> Arc<Self> {
        Arc::new(Gate {
            state: Mutex::new(GateState {
                limit: AdaptiveLimit::new(initial, floor, ceiling),
                in_flight: 0,
                waiting: 0,
            }),
            freed: Notify::new(),
        })
    }

    /// The gate now.
    pub fn stats(&self) -> GateStats {
        let state = self.state.lock();
        GateStats {
            limit: state.limit.current(),
            in_flight: state.in_flight,
            waiting: state.waiting,
        }
    }

    /// Runs `op` when its turn comes, and learns from how long it took.
    async fn run<T>(
        &self,
        kind: OpKind,
        op: impl std::future::Future<Output = Result<T, EngineError>>,
    ) -> Result<T, EngineError> {
        let mut turn = Turn {
            gate: self,
            running: false,
        };
        self.state.lock().waiting += 1;
        loop {
            let freed = self.freed.notified();
            {
                let mut state = self.state.lock();
                if state.in_flight < state.limit.current() {
                    state.waiting -= 1;
                    state.in_flight += 1;
                    turn.running = true;
                    break;
                }
            }
            freed.await;
        }
        let started = Instant::now();
        let result = op.await;
        {
            let mut state = self.state.lock();
            let in_flight = state.in_flight;
            state.limit.observe(kind, started.elapsed(), in_flight);
        }
        drop(turn);
        result
    }
}

/// The engine behind the gate.
#[derive(Debug)]
pub(crate) struct GatedEngine {
    inner: Arc<dyn ContainerEngine>,
    gate: Arc<Gate>,
}

impl GatedEngine {
    pub(crate) fn new(inner: Arc<dyn ContainerEngine>, gate: Arc<Gate>) -> Self {
        GatedEngine { inner, gate }
    }
}

#[async_trait]
impl ContainerEngine for GatedEngine {
    fn capabilities(&self) -> skiff_runtime::Capabilities {
        self.inner.capabilities()
    }

    async fn ping(&self) -> Result<(), EngineError> {
        self.inner.ping().await
    }

    async fn inspect_image(&self, reference: &str) -> Result<ImageInfo, EngineError> {
        self.inner.inspect_image(reference).await
    }

    // Pulls and pushes go around the gate: they move bytes for long, not containers.
    fn pull_image(
        &self,
        reference: &str,
        auth: Option<skiff_runtime::RegistryAuth>,
    ) -> skiff_runtime::Progress {
        self.inner.pull_image(reference, auth)
    }

    fn push_image(
        &self,
        reference: &str,
        auth: Option<skiff_runtime::RegistryAuth>,
    ) -> skiff_runtime::Progress {
        self.inner.push_image(reference, auth)
    }

    async fn tag_image(&self, source: &str, target: &str) -> Result<(), EngineError> {
        self.inner.tag_image(source, target).await
    }

    async fn ensure_network(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> Result<NetworkInfo, EngineError> {
        self.inner.ensure_network(name, labels).await
    }

    async fn network_info(&self, id: &str) -> Result<NetworkInfo, EngineError> {
        self.inner.network_info(id).await
    }

    async fn remove_network(&self, id: &str) -> Result<(), EngineError> {
        self.inner.remove_network(id).await
    }

    async fn ensure_volume(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> Result<HashMap<String, String>, EngineError> {
        self.inner.ensure_volume(name, labels).await
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String, EngineError> {
        self.gate.run(OpKind::Create, self.inner.create(spec)).await
    }

    async fn attach(&self, id: &str) -> Result<Attachment, EngineError> {
        self.inner.attach(id).await
    }

    async fn start(&self, id: &str) -> Result<(), EngineError> {
        self.gate.run(OpKind::Start, self.inner.start(id)).await
    }

    async fn wait(&self, id: &str) -> Result<i64, EngineError> {
        self.inner.wait(id).await
    }

    async fn inspect(&self, id: &str) -> Result<ContainerState, EngineError> {
        self.inner.inspect(id).await
    }

    async fn kill(&self, id: &str) -> Result<(), EngineError> {
        self.inner.kill(id).await
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<(), EngineError> {
        self.inner.stop(id, grace).await
    }

    async fn pause(&self, id: &str) -> Result<(), EngineError> {
        self.inner.pause(id).await
    }

    async fn unpause(&self, id: &str) -> Result<(), EngineError> {
        self.inner.unpause(id).await
    }

    async fn remove(&self, id: &str) -> Result<(), EngineError> {
        self.gate.run(OpKind::Remove, self.inner.remove(id)).await
    }

    async fn list(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerSummary>, EngineError> {
        self.inner.list(labels).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn operations_past_the_limit_wait_their_turn() {
        let gate = Gate::new(2, 2, 2);
        let ops: Vec<_> = (0..5)
            .map(|_| {
                let gate = gate.clone();
                tokio::spawn(async move {
                    gate.run(OpKind::Create, async {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Ok::<_, EngineError>(())
                    })
                    .await
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(
            gate.stats(),
            GateStats {
                limit: 2,
                in_flight: 2,
                waiting: 3
            }
        );
        for op in ops {
            op.await.expect("task").expect("op");
        }
        assert_eq!(gate.stats().in_flight, 0);
        assert_eq!(gate.stats().waiting, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_that_gives_up_is_no_longer_counted() {
        let gate = Gate::new(1, 1, 1);
        let busy = {
            let gate = gate.clone();
            tokio::spawn(async move {
                gate.run(OpKind::Start, async {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    Ok::<_, EngineError>(())
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        let gave_up = tokio::time::timeout(
            Duration::from_millis(100),
            gate.run(OpKind::Start, async { Ok::<_, EngineError>(()) }),
        )
        .await;
        assert!(gave_up.is_err(), "it waited its turn");
        assert_eq!(gate.stats().waiting, 0);
        busy.await.expect("task").expect("op");
        assert_eq!(gate.stats().in_flight, 0);
    }
}
