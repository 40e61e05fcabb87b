//! One instance's container on the engine: starting it and waiting until it is ready,
//! watching its output until it exits, stopping and killing it.

use super::events::{InstanceTarget, NewInstance};
use super::output::{self, Output};
use crate::backoff::Backoff;
use bytes::Bytes;
use futures::StreamExt;
use skiff_core::api::LogStream;
use skiff_core::{labels, Contract};
use skiff_runtime::{ContainerEngine, ContainerSpec, EngineError, Limits};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The waits between readiness probes of a starting instance: 2 ms, doubling, at most 50 ms.
const READINESS_POLL: Backoff = Backoff::new(Duration::from_millis(2), Duration::from_millis(50));

/// How long a stopped instance has to finish its calls after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// What every instance container gets, whatever its function.
#[derive(Debug, Clone)]
pub(super) struct Launch {
    /// The daemon id, on every container's labels.
    pub daemon_id: String,
    /// The network instances join.
    pub network: Option<String>,
    /// Open files limit.
    pub nofile: u64,
    /// The key that signs each instance's `SKIFF_TOKEN`.
    pub tokens: Arc<crate::token::TokenKey>,
    /// Where each instance's output goes, line by line, as it is written.
    pub logs: crate::logs::LogSink,
}

/// The engine work on instance containers. Background work (watchers, stops) runs on the
/// manager's tracker.
#[derive(Debug)]
pub(super) struct Containers {
    engine: Arc<dyn ContainerEngine>,
    launch: Launch,
    client: crate::proxy::Client,
    lambda: Arc<crate::lambda::LambdaRegistry>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl Containers {
    pub(super) fn new(
        engine: Arc<dyn ContainerEngine>,
        launch: Launch,
        client: crate::proxy::Client,
        lambda: Arc<crate::lambda::LambdaRegistry>,
        cancel: CancellationToken,
        tracker: TaskTracker,
    ) -> Self {
        Containers {
            engine,
            launch,
            client,
            lambda,
            cancel,
            tracker,
        }
    }

    pub(super) fn engine(&self) -> &Arc<dyn ContainerEngine> {
        &self.engine
    }

    /// Creates and starts an instance of `target` and waits until it is ready. A watcher
    /// keeps its output and calls `on_exit` when the output ends (the container exited or
    /// was removed). On failure, the container is removed and the message says why (with
    /// the end of its output).
    pub(super) async fn start(
        &self,
        target: &InstanceTarget,
        on_exit: impl FnOnce(String, Output) + Send + 'static,
    ) -> Result<NewInstance, String> {
        let id = crate::exec::instance_id();
        let r = &target.resources;
        let mut env = target.env.clone();
        env.push(format!(
            "SKIFF_TOKEN={}",
            self.launch.tokens.mint(&target.function, &id)
        ));
        let spec = ContainerSpec {
            name: format!("skiff-{}-{id}", target.function),
            image: target.image.clone(),
            image_reference: Some(target.image_reference.clone()),
            entrypoint: None,
            cmd: target.cmd.clone(),
            env,
            labels: labels::for_container(
                &target.function,
                &id,
                &self.launch.daemon_id,
                target.contract,
            ),
            limits: Limits {
                memory_bytes: r.memory_bytes,
                cpus: r.cpus,
                pids: r.pids,
                tmp_bytes: r.tmp_bytes,
                nofile: self.launch.nofile,
            },
            stdin: false,
            network: self.launch.network.clone(),
            mounts: Vec::new(),
            volumes: crate::exec::named_volumes(&target.volumes),
        };
        let container = match self.engine.create(&spec).await {
            Ok(container) => container,
            Err(err) => {
                if matches!(err, EngineError::TimedOut { .. }) {
                    // The engine may make it still: remove it by name, not to leave it behind.
                    self.stop(spec.name.clone());
                }
                return Err(format!("the instance could not be created: {err}"));
            }
        };
        let output = Output::default();
        match self
            .start_and_wait_ready(target, &id, &container, &output, on_exit)
            .await
        {
            Ok(addr) => Ok(NewInstance {
                id,
                container,
                addr,
                version: target.version,
                ready_at: Instant::now(),
                output,
            }),
            Err(message) => {
                if let Err(err) = self.engine.remove(&container).await {
                    tracing::warn!(%err, container, "could not remove an instance that failed to start");
                }
                let tail = output::quoted(&output);
                Err(if tail.is_empty() {
                    message
                } else {
                    format!("{message}; its output ended with: {tail}")
                })
            }
        }
    }

    async fn start_and_wait_ready(
        &self,
        target: &InstanceTarget,
        id: &str,
        container: &str,
        output: &Output,
        on_exit: impl FnOnce(String, Output) + Send + 'static,
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
        let mut stream = attachment.output;
        let watched = (container.to_string(), output.clone());
        let mut tap = self.launch.logs.instance_tap(&target.function, id);
        self.tracker.spawn(async move {
            let (container, output) = watched;
            while let Some(Ok(chunk)) = stream.next().await {
                let (stream, bytes): (LogStream, Bytes) = match chunk {
                    skiff_runtime::Output::Stdout(b) => (LogStream::Stdout, b),
                    skiff_runtime::Output::Stderr(b) => (LogStream::Stderr, b),
                };
                tap.push(stream, &bytes);
                output::push(&output, &bytes);
            }
            tap.finish();
            let _ = exited_tx.send(true);
            on_exit(container, output);
        });
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
        let mut tries = 0;
        loop {
            tries += 1;
            let pause = READINESS_POLL.delay(tries);
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
        }
    }

    /// Stops (SIGTERM, grace) and removes a container in the background.
    pub(super) fn stop(&self, container: String) {
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

    /// Kills (no grace) and removes a container in the background.
    pub(super) fn spawn_kill(&self, container: String) {
        let engine = self.engine.clone();
        self.tracker
            .spawn(async move { kill(engine.as_ref(), &container).await });
    }

    /// Kills and removes containers, all at once (the removals wait their turn at the
    /// engine's gate), and waits for it.
    pub(super) async fn kill_all(&self, containers: Vec<String>) {
        let engine = self.engine.as_ref();
        futures::future::join_all(containers.iter().map(|container| kill(engine, container))).await;
    }
}

async fn kill(engine: &dyn ContainerEngine, container: &str) {
    let _ = engine.kill(container).await;
    if let Err(err) = engine.remove(container).await {
        tracing::warn!(%err, container, "could not remove an instance");
    }
}
