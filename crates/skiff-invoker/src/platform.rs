//! [`Platform`]: the operations every transport calls.

use crate::config::PlatformConfig;
use crate::error::PlatformError;
use crate::exec::{ExecDriver, ExecSettings, ExecTarget};
use crate::limiter::{Limiter, Refused};
use crate::recorder::Recorder;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use skiff_core::{
    labels, CallErrorType, CallRecord, CallStatus, Function, FunctionName, FunctionSpec,
    FunctionView, Trigger,
};
use skiff_runtime::{ContainerEngine, EngineError};
use skiff_store::{CallFilter, CallWrite, Store};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, Notify, OnceCell};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

/// One invocation as a transport hands it over.
#[derive(Debug, Clone)]
pub struct InvokeRequest {
    /// What started the call.
    pub trigger: Trigger,
    /// HTTP method (`POST` for the API and CLI).
    pub method: String,
    /// Path below the function's route (`/` when none).
    pub path: String,
    /// Query string, without `?`.
    pub query: String,
    /// Request headers (name, value); repeated names allowed.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Bytes,
}

/// A call that succeeded.
#[derive(Debug, Clone)]
pub struct InvokeOutcome {
    /// The call's id.
    pub call_id: Uuid,
    /// The function's response.
    pub body: Bytes,
    /// Whether the call waited for a container start.
    pub cold: bool,
}

/// A deployed function and, once resolved, what its containers run.
#[derive(Debug)]
struct Entry {
    function: Function,
    target: OnceCell<Arc<ExecTarget>>,
}

/// Counts calls in flight; shutdown waits for it to reach zero.
#[derive(Debug, Default)]
struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

struct InFlightGuard<'a>(&'a InFlight);

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// The platform: functions, calls, containers. Create it with [`Platform::start`], share it
/// in an `Arc`, stop it with [`Platform::shutdown`].
#[derive(Debug)]
pub struct Platform {
    config: PlatformConfig,
    store: Store,
    engine: Arc<dyn ContainerEngine>,
    daemon_id: String,
    functions: RwLock<HashMap<String, Arc<Entry>>>,
    deploys: Mutex<()>,
    limiter: Limiter,
    recorder: Recorder,
    exec: Arc<ExecDriver>,
    tracker: TaskTracker,
    cancel: CancellationToken,
    accepting: AtomicBool,
    in_flight: InFlight,
}

impl Platform {
    /// Sets the platform up on `store` and `engine`: installs `skiff-init`, creates the
    /// functions' network, removes containers a previous run of this daemon left behind,
    /// marks calls that run left unfinished as interrupted, loads the functions, and starts
    /// the background tasks.
    pub async fn start(
        config: PlatformConfig,
        store: Store,
        engine: Arc<dyn ContainerEngine>,
    ) -> Result<Arc<Platform>, PlatformError> {
        let daemon_id = store.daemon_id().await?;
        let init_path =
            skiff_runtime::init::install(&config.data_dir.join("bin")).map_err(|e| {
                PlatformError::Setup {
                    what: "installing skiff-init",
                    message: format!("{}: {e}", config.data_dir.join("bin").display()),
                }
            })?;
        let network = engine
            .ensure_network(
                &config.network,
                &HashMap::from([(labels::MANAGED.to_string(), "true".to_string())]),
            )
            .await?;
        let reaped = reap(&*engine, &daemon_id).await?;
        if reaped > 0 {
            tracing::info!(reaped, "removed containers left by a previous run");
        }
        let interrupted = store.interrupt_unfinished_calls(Utc::now()).await?;
        if interrupted > 0 {
            tracing::warn!(
                interrupted,
                "calls in flight when the daemon last stopped were marked failed"
            );
        }
        let functions = store
            .list_functions()
            .await?
            .into_iter()
            .map(|function| {
                (
                    function.name.to_string(),
                    Arc::new(Entry {
                        function,
                        target: OnceCell::new(),
                    }),
                )
            })
            .collect();

        let tracker = TaskTracker::new();
        let cancel = CancellationToken::new();
        let exec = ExecDriver::new(
            engine.clone(),
            ExecSettings {
                daemon_id: daemon_id.clone(),
                init_path,
                network: Some(network),
                nofile: config.nofile,
                prewarm: config.exec_prewarm,
                idle_timeout: config.exec_idle_timeout,
                max_background_prepares: config.max_background_prepares,
                max_response_bytes: config.max_response_bytes,
                max_log_bytes: config.max_log_bytes,
            },
            cancel.clone(),
        );
        let platform = Arc::new(Platform {
            limiter: Limiter::new(config.max_concurrent_calls, config.max_queued_calls),
            recorder: Recorder::start(store.clone(), &tracker),
            config,
            store,
            engine,
            daemon_id,
            functions: RwLock::new(functions),
            deploys: Mutex::new(()),
            exec,
            tracker,
            cancel,
            accepting: AtomicBool::new(true),
            in_flight: InFlight::default(),
        });
        platform.spawn_idle_reaper();
        Ok(platform)
    }

    /// This daemon's id, found on the `skiff.daemon` label of its containers.
    pub fn daemon_id(&self) -> &str {
        &self.daemon_id
    }

    /// The configuration in force.
    pub fn config(&self) -> &PlatformConfig {
        &self.config
    }

    /// Whether new calls are taken (false once shutdown has begun).
    pub fn is_accepting(&self) -> bool {
        self.accepting.load(Ordering::Acquire)
    }

    /// Calls running now and calls waiting for a slot.
    pub fn load(&self) -> (usize, usize) {
        (self.limiter.running(), self.limiter.queued())
    }

    fn spawn_idle_reaper(self: &Arc<Self>) {
        let exec = self.exec.clone();
        let cancel = self.cancel.clone();
        let period = (self.config.exec_idle_timeout / 2)
            .clamp(Duration::from_millis(100), Duration::from_secs(30));
        self.tracker.spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = ticks.tick() => exec.expire_idle(),
                }
            }
        });
    }

    fn entry(&self, name: &str) -> Option<Arc<Entry>> {
        self.functions
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(name)
            .cloned()
    }

    /// Creates or updates a function. The image must be on the engine; it is pinned to its
    /// id. Returns the function and whether it was created.
    pub async fn deploy(
        &self,
        name: &str,
        spec: &FunctionSpec,
    ) -> Result<(FunctionView, bool), PlatformError> {
        let name = FunctionName::parse(name)?;
        let config = spec.validate()?;
        let image = self
            .engine
            .inspect_image(&config.image)
            .await
            .map_err(|err| match err {
                EngineError::ImageNotFound { reference } => {
                    PlatformError::ImageNotFound { image: reference }
                }
                other => PlatformError::Engine(other),
            })?;
        let _serialized = self.deploys.lock().await;
        let now = Utc::now();
        let previous = self.entry(name.as_str());
        let function = Function {
            name: name.clone(),
            config,
            image_digest: image.id.clone(),
            version: previous.as_ref().map_or(1, |e| e.function.version + 1),
            created_at: previous.as_ref().map_or(now, |e| e.function.created_at),
            updated_at: now,
        };
        self.store.put_function(&function).await?;
        let target = Arc::new(exec_target(&function, image.command()));
        let entry = Arc::new(Entry {
            function,
            target: OnceCell::new_with(Some(target.clone())),
        });
        let view = FunctionView::from(&entry.function);
        self.functions
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(name.to_string(), entry);
        if previous.is_some() {
            self.exec.forget(name.as_str());
        }
        if self.is_accepting() {
            self.exec.refill(&target);
        }
        Ok((view, previous.is_none()))
    }

    /// One function.
    pub fn get_function(&self, name: &str) -> Result<FunctionView, PlatformError> {
        self.entry(name)
            .map(|e| FunctionView::from(&e.function))
            .ok_or_else(|| PlatformError::FunctionNotFound {
                name: name.to_string(),
            })
    }

    /// All functions, by name.
    pub fn list_functions(&self) -> Vec<FunctionView> {
        let functions = self
            .functions
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut views: Vec<FunctionView> = functions
            .values()
            .map(|e| FunctionView::from(&e.function))
            .collect();
        views.sort_by(|a, b| a.name.cmp(&b.name));
        views
    }

    /// Deletes a function. Calls in flight finish; its prepared containers are removed.
    pub async fn delete_function(&self, name: &str) -> Result<(), PlatformError> {
        let _serialized = self.deploys.lock().await;
        if self.entry(name).is_none() {
            return Err(PlatformError::FunctionNotFound {
                name: name.to_string(),
            });
        }
        self.store.delete_function(name).await?;
        self.functions
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(name);
        self.exec.forget(name);
        Ok(())
    }

    /// What an entry's containers run, resolving its image on first use after a restart.
    async fn target(&self, entry: &Entry) -> Result<Arc<ExecTarget>, EngineError> {
        entry
            .target
            .get_or_try_init(|| async {
                let image = self
                    .engine
                    .inspect_image(&entry.function.image_digest)
                    .await?;
                Ok(Arc::new(exec_target(&entry.function, image.command())))
            })
            .await
            .cloned()
    }

    /// Invokes a function synchronously and returns its response.
    pub async fn invoke(
        &self,
        name: &str,
        request: InvokeRequest,
    ) -> Result<InvokeOutcome, PlatformError> {
        if !self.is_accepting() {
            return Err(PlatformError::ShuttingDown);
        }
        self.in_flight.count.fetch_add(1, Ordering::AcqRel);
        let _in_flight = InFlightGuard(&self.in_flight);
        let entry = self
            .entry(name)
            .ok_or_else(|| PlatformError::FunctionNotFound {
                name: name.to_string(),
            })?;
        let function = &entry.function;
        let timeout = function.config.timeout();
        let call_id = Uuid::now_v7();
        let received_at = Utc::now();
        let clock = Instant::now();

        let _slot = self
            .limiter
            .acquire(timeout)
            .await
            .map_err(|refused| match refused {
                Refused::QueueFull { running, queued } | Refused::TimedOut { running, queued } => {
                    PlatformError::Overloaded { running, queued }
                }
            })?;
        let started_at = Utc::now();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut record = CallRecord {
            id: call_id,
            function: function.name.to_string(),
            trigger: request.trigger,
            status: CallStatus::Running,
            attempt: 1,
            received_at,
            started_at: Some(started_at),
            finished_at: None,
            cold: None,
            instance: None,
            exit_code: None,
            error_type: None,
            error_message: None,
            request_size: request.body.len() as u64,
            response_size: None,
            duration_ms: None,
        };
        self.recorder
            .record(CallWrite {
                record: record.clone(),
                logs: None,
            })
            .await;

        let outcome = match self.target(&entry).await {
            Ok(target) => {
                let frame = call_frame(
                    &request,
                    function.name.as_str(),
                    call_id,
                    started_at,
                    timeout,
                );
                self.exec.run(&target, frame, request.body, deadline).await
            }
            Err(err) => crate::exec::ExecOutcome {
                instance: None,
                cold: true,
                stdout: Bytes::new(),
                logs: Vec::new(),
                exit_code: None,
                error: Some((
                    CallErrorType::StartFailed,
                    format!("the function's image cannot be used: {err}"),
                )),
            },
        };

        record.finished_at = Some(Utc::now());
        record.duration_ms = Some(u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX));
        record.cold = Some(outcome.cold);
        record.instance = outcome.instance.clone();
        record.exit_code = outcome.exit_code;
        match &outcome.error {
            None => {
                record.status = CallStatus::Succeeded;
                record.response_size = Some(outcome.stdout.len() as u64);
            }
            Some((kind, message)) => {
                record.status = kind.final_status();
                record.error_type = Some(*kind);
                record.error_message = Some(message.clone());
            }
        }
        self.recorder
            .record(CallWrite {
                record: record.clone(),
                logs: Some(outcome.logs),
            })
            .await;
        match outcome.error {
            None => Ok(InvokeOutcome {
                call_id,
                body: outcome.stdout,
                cold: outcome.cold,
            }),
            Some((error_type, message)) => Err(PlatformError::CallFailed {
                call_id,
                error_type,
                message,
                exit_code: outcome.exit_code,
            }),
        }
    }

    /// One call's record.
    pub async fn get_call(&self, id: Uuid) -> Result<CallRecord, PlatformError> {
        self.recorder.flush().await;
        self.store
            .get_call(id)
            .await?
            .ok_or(PlatformError::CallNotFound { id })
    }

    /// Call records, newest first.
    pub async fn list_calls(&self, filter: &CallFilter) -> Result<Vec<CallRecord>, PlatformError> {
        self.recorder.flush().await;
        Ok(self.store.list_calls(filter).await?)
    }

    /// One call's log (what the function wrote to stderr, capped).
    pub async fn call_logs(&self, id: Uuid) -> Result<Vec<u8>, PlatformError> {
        self.recorder.flush().await;
        self.store
            .call_logs(id)
            .await?
            .ok_or(PlatformError::CallNotFound { id })
    }

    /// Stops taking calls, lets calls in flight finish for up to `grace`, then removes every
    /// container of this daemon and stops the background tasks after writing pending records.
    pub async fn shutdown(&self, grace: Duration) {
        self.accepting.store(false, Ordering::Release);
        let drained = tokio::time::timeout(grace, async {
            loop {
                let idle = self.in_flight.idle.notified();
                if self.in_flight.count.load(Ordering::Acquire) == 0 {
                    return;
                }
                idle.await;
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                in_flight = self.in_flight.count.load(Ordering::Acquire),
                "calls still running after the grace period are stopped"
            );
        }
        self.cancel.cancel();
        self.exec.shutdown().await;
        match reap(&*self.engine, &self.daemon_id).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "removed the remaining function containers"),
            Err(err) => tracing::error!(%err, "could not remove every function container"),
        }
        self.recorder.close().await;
        self.tracker.close();
        if tokio::time::timeout(Duration::from_secs(10), self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("background tasks did not finish within 10s of shutdown");
        }
    }
}

/// Removes every container of this daemon; returns how many there were.
async fn reap(engine: &dyn ContainerEngine, daemon_id: &str) -> Result<usize, EngineError> {
    let containers = engine
        .list(&[(labels::MANAGED, "true"), (labels::DAEMON, daemon_id)])
        .await?;
    let count = containers.len();
    futures::future::join_all(containers.iter().map(|c| engine.remove(&c.id)))
        .await
        .into_iter()
        .collect::<Result<Vec<()>, _>>()?;
    Ok(count)
}

fn exec_target(function: &Function, command: Vec<String>) -> ExecTarget {
    let config = &function.config;
    ExecTarget {
        function: function.name.to_string(),
        version: function.version,
        image: function.image_digest.clone(),
        command,
        env: config
            .env
            .iter()
            .chain(&config.secrets)
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
        resources: config.resources,
    }
}

/// The `SKIFF_*` variables of one call, framed for `skiff-init`.
fn call_frame(
    request: &InvokeRequest,
    function: &str,
    call_id: Uuid,
    started_at: DateTime<Utc>,
    timeout: Duration,
) -> Vec<u8> {
    let deadline =
        started_at + chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX);
    let mut vars: Vec<(String, String)> = vec![
        ("SKIFF_CALL_ID".into(), call_id.to_string()),
        ("SKIFF_FUNCTION".into(), function.to_string()),
        ("SKIFF_METHOD".into(), request.method.clone()),
        ("SKIFF_PATH".into(), request.path.clone()),
        ("SKIFF_QUERY".into(), request.query.clone()),
        (
            "SKIFF_DEADLINE".into(),
            deadline.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        ),
    ];
    let mut headers: Vec<(String, String)> = Vec::new();
    for (name, value) in &request.headers {
        let key = format!("SKIFF_HEADER_{}", header_var(name));
        match headers.iter_mut().find(|(k, _)| *k == key) {
            Some((_, existing)) => {
                existing.push_str(", ");
                existing.push_str(value);
            }
            None => headers.push((key, value.clone())),
        }
    }
    vars.extend(headers);
    skiff_runtime::init::encode_frame(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// A header name as an environment variable suffix: upper case, `-` (and anything else that
/// is not a letter or digit) as `_`.
fn header_var(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(frame: &[u8]) -> Vec<String> {
        frame[4..]
            .split(|b| *b == 0)
            .filter(|e| !e.is_empty())
            .map(|e| String::from_utf8_lossy(e).to_string())
            .collect()
    }

    #[test]
    fn call_metadata_follows_the_contract() {
        let request = InvokeRequest {
            trigger: Trigger::Http,
            method: "PUT".into(),
            path: "/a/b".into(),
            query: "x=1&y=2".into(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("x-trace-id".into(), "t1".into()),
                ("Accept".into(), "a".into()),
                ("accept".into(), "b".into()),
            ],
            body: Bytes::new(),
        };
        let id = Uuid::now_v7();
        let started = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .expect("date")
            .with_timezone(&Utc);
        let vars = decode(&call_frame(
            &request,
            "hello",
            id,
            started,
            Duration::from_secs(10),
        ));
        assert!(vars.contains(&format!("SKIFF_CALL_ID={id}")));
        assert!(vars.contains(&"SKIFF_FUNCTION=hello".to_string()));
        assert!(vars.contains(&"SKIFF_METHOD=PUT".to_string()));
        assert!(vars.contains(&"SKIFF_PATH=/a/b".to_string()));
        assert!(vars.contains(&"SKIFF_QUERY=x=1&y=2".to_string()));
        assert!(vars.contains(&"SKIFF_DEADLINE=2026-01-02T03:04:15.000Z".to_string()));
        assert!(vars.contains(&"SKIFF_HEADER_CONTENT_TYPE=application/json".to_string()));
        assert!(vars.contains(&"SKIFF_HEADER_X_TRACE_ID=t1".to_string()));
        assert!(
            vars.contains(&"SKIFF_HEADER_ACCEPT=a, b".to_string()),
            "{vars:?}"
        );
    }
}
