//! [`Platform`]: the operations every transport calls.

use crate::config::PlatformConfig;
use crate::error::PlatformError;
use crate::exec::{ExecDriver, ExecSettings, ExecTarget};
use crate::fds::{FdBudget, FdReservation, Short, FDS_PER_CALL};
use crate::http::Body;
use crate::lambda::{LambdaRegistry, Outcome};
use crate::limiter::{Limiter, Refused};
use crate::pool::{
    AcquireError, InstanceManager, InstanceSettings, InstanceTarget, InstanceView, Lease,
};
use crate::recorder::Recorder;
use crate::running::{CallGuard, Parent, RunningCalls, StopReason};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use skiff_core::api::headers::{CALLBACK_HEADER, DEPTH_HEADER};
use skiff_core::{
    labels, CallErrorType, CallRecord, CallStatus, Contract, Function, FunctionName, FunctionSpec,
    FunctionView, Trigger,
};
use skiff_runtime::{ContainerEngine, EngineError};
use skiff_store::{CallFilter, CallWrite, Store};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, Mutex, Notify, OnceCell};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

/// One invocation as a transport hands it over.
#[derive(Debug)]
pub struct InvokeRequest {
    /// What started the call.
    pub trigger: Trigger,
    /// HTTP method (`POST` for the API and CLI).
    pub method: Method,
    /// Path below the function's route (`/` when none).
    pub path: String,
    /// Query string, without `?`.
    pub query: String,
    /// Request headers.
    pub headers: HeaderMap,
    /// Request body, streamed; at most `max_request_bytes` of it are taken.
    pub body: Body,
    /// The call id to use (a new one when `None`).
    pub call_id: Option<Uuid>,
    /// The attempt this is (1 for the first; more for retries of async calls).
    pub attempt: u32,
    /// The function container that made the request, for requests of the function API.
    pub caller: Option<crate::token::Caller>,
}

impl InvokeRequest {
    /// A `POST /` with `body` and no headers.
    pub fn post(trigger: Trigger, body: impl Into<Bytes>) -> Self {
        InvokeRequest {
            trigger,
            method: Method::POST,
            path: "/".to_string(),
            query: String::new(),
            headers: HeaderMap::new(),
            body: crate::http::full(body),
            call_id: None,
            attempt: 1,
            caller: None,
        }
    }
}

/// A call that was answered by the function.
#[derive(Debug)]
pub struct InvokeOutcome {
    /// The call's id.
    pub call_id: Uuid,
    /// Whether the call waited for a container or instance to start (or resume).
    pub cold: bool,
    /// The response status (200 for `exec`).
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The response body, streamed; the call's record is finished when it ends.
    pub body: Body,
}

/// A deployed function and, once resolved, what its containers run.
#[derive(Debug)]
struct Entry {
    function: Function,
    target: OnceCell<Arc<ExecTarget>>,
    /// Why its containers may not start, when its volumes failed their check at start-up
    /// (a volume skiff did not create and no `--allow-volume` allows): its calls fail
    /// with `start_failed` until it is deployed again.
    refused: Option<String>,
}

/// What a call carries from start to finish.
#[derive(Debug, Clone)]
struct CallContext {
    record: CallRecord,
    clock: Instant,
    deadline: tokio::time::Instant,
    timeout: Duration,
    started_at: DateTime<Utc>,
}

/// How a call ended.
#[derive(Debug)]
enum CallResult {
    Succeeded {
        response_size: u64,
    },
    Failed {
        kind: CallErrorType,
        message: String,
    },
}

/// What an `http` call holds until its response has been sent.
#[derive(Debug)]
struct Held {
    _slot: tokio::sync::OwnedSemaphorePermit,
    _fds: FdReservation,
    _in_flight: InFlightGuard,
}

/// Finishes an `http` call's record when its response body ends (or is dropped).
#[derive(Debug)]
pub(crate) struct CompletionState {
    platform: Arc<Platform>,
    call: CallContext,
    status: StatusCode,
    _lease: Lease,
    _held: Held,
}

impl CompletionState {
    /// Records the call as ended after `bytes` of response, as its stream ended.
    pub(crate) fn complete(mut self, bytes: u64, end: crate::http::StreamEnd) {
        use crate::http::StreamEnd;
        let result = match end {
            StreamEnd::Broken(message) => CallResult::Failed {
                kind: CallErrorType::Crashed,
                message: format!("the response stream broke: {message}"),
            },
            StreamEnd::Dropped => CallResult::Failed {
                kind: CallErrorType::ClientDisconnected,
                message: "the caller went away before the whole response was sent".to_string(),
            },
            StreamEnd::Finished if self.status.is_server_error() => CallResult::Failed {
                kind: CallErrorType::FunctionError,
                message: format!("the function answered {}", self.status),
            },
            StreamEnd::Finished => CallResult::Succeeded {
                response_size: bytes,
            },
        };
        if let CallResult::Failed { .. } = result {
            self.call.record.response_size = Some(bytes);
        }
        let record = self.platform.finish_record(&mut self.call, result);
        self.platform
            .recorder
            .record_soon(CallWrite { record, logs: None });
    }
}

impl Platform {
    /// Sets a call record's final fields, and counts the call in the metrics.
    fn finish_record(&self, call: &mut CallContext, result: CallResult) -> CallRecord {
        let record = finish_fields(call, result);
        self.metrics.call_finished(
            &record.function,
            record.status,
            call.clock.elapsed(),
            record.cold.unwrap_or(false),
        );
        record
    }
}

/// Sets a call record's final fields.
fn finish_fields(call: &mut CallContext, result: CallResult) -> CallRecord {
    let record = &mut call.record;
    record.finished_at = Some(Utc::now());
    record.duration_ms = Some(u64::try_from(call.clock.elapsed().as_millis()).unwrap_or(u64::MAX));
    match result {
        CallResult::Succeeded { response_size } => {
            record.status = CallStatus::Succeeded;
            record.response_size = Some(response_size);
        }
        CallResult::Failed { kind, message } => {
            record.status = kind.final_status();
            record.error_type = Some(kind);
            record.error_message = Some(message);
        }
    }
    record.clone()
}

/// `body`, failing with a `LengthLimitError` past `limit` bytes. (A plain function, so that
/// async code holding the result sees only the boxed type.)
fn limited(body: Body, limit: usize) -> Body {
    http_body_util::Limited::new(body, limit).boxed_unsync()
}

/// How long after a `lambda` call its instance's output is read again for the call's log.
const LATE_OUTPUT: Duration = Duration::from_millis(100);

/// How often the container engine is pinged for readiness (also the ping's bound).
const ENGINE_PROBE: Duration = Duration::from_secs(2);

/// How long calls stopped at shutdown may take to end (kill and remove their containers).
const STOP_BOUND: Duration = Duration::from_secs(10);

/// How long after a call's deadline its caller waits for the answer before it gets a
/// `timeout` failure of its own (the call's task is then still stopping the container).
const ANSWER_MARGIN: Duration = Duration::from_secs(2);

/// Where a call comes from.
#[derive(Debug, Clone)]
struct Lineage {
    /// The calling function (function API requests).
    caller: Option<String>,
    /// The call its container was serving, when skiff could tell.
    parent: Option<Parent>,
    /// Function-to-function hops that led here.
    depth: u32,
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// A `lambda` call's log as AWS writes it: START, the function's output, END, REPORT.
fn lambda_log(id: Uuid, output: &[u8], took: Duration) -> Vec<u8> {
    let mut log = format!("START RequestId: {id} Version: $LATEST\n").into_bytes();
    log.extend_from_slice(output);
    if !output.is_empty() && !output.ends_with(b"\n") {
        log.push(b'\n');
    }
    log.extend_from_slice(
        format!(
            "END RequestId: {id}\nREPORT RequestId: {id}\tDuration: {:.2} ms\n",
            took.as_secs_f64() * 1000.0
        )
        .as_bytes(),
    );
    log
}

/// Bodies up to this size are read before an `http` call is sent, so that it can be sent
/// again to another instance.
const REPLAYABLE_BODY: u64 = 64 * 1024;

/// The request's declared body length.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// The whole of a request body of at most `limit` bytes.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, PlatformError> {
    match limited(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            Err(PlatformError::PayloadTooLarge { limit })
        }
        Err(err) => Err(PlatformError::BadRequest {
            message: format!("cannot read the request body: {err}"),
        }),
    }
}

/// Whether the request declares a body over `limit` bytes.
fn request_too_large(headers: &HeaderMap, limit: usize) -> bool {
    content_length(headers).is_some_and(|len| len > limit as u64)
}

/// The first error of type `E` in `err`'s chain of sources.
fn find_source<'a, E: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// Counts calls in flight; shutdown waits for it to reach zero.
#[derive(Debug, Default)]
struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

/// Counts one call in flight for as long as it lives.
#[derive(Debug)]
struct InFlightGuard(Arc<Platform>);

impl InFlightGuard {
    fn enter(platform: Arc<Platform>) -> Self {
        platform.in_flight.count.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(platform)
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let in_flight = &self.0.in_flight;
        if in_flight.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            in_flight.idle.notify_waiters();
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
    fds: FdBudget,
    recorder: Recorder,
    exec: Arc<ExecDriver>,
    instances: Arc<InstanceManager>,
    client: crate::http::Client,
    metrics: crate::metrics::Metrics,
    lambda: Arc<LambdaRegistry>,
    queue_wakeup: Notify,
    enqueuer: crate::queue::Enqueuer,
    callbacks: crate::callback::Callbacks,
    callback_policy: Arc<crate::destinations::CallbackPolicy>,
    triggers: crate::triggers::Triggers,
    runtime_api: SocketAddr,
    tokens: Arc<crate::token::TokenKey>,
    running: Arc<RunningCalls>,
    runtime_listener: std::sync::Mutex<Option<tokio::net::TcpListener>>,
    tracker: TaskTracker,
    cancel: CancellationToken,
    accepting: AtomicBool,
    in_flight: InFlight,
    /// The last engine probe's error; `None` while the engine answers.
    engine_problem: std::sync::Mutex<Option<String>>,
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
        let reaped = reap(&*engine, &daemon_id).await?;
        if reaped > 0 {
            tracing::info!(reaped, "removed containers left by a previous run");
        }
        let network_info = isolated_network(&*engine, &config.network).await?;
        let network = network_info.id.clone();
        let interrupted = store.interrupt_unfinished_calls(Utc::now()).await?;
        let requeued = store.requeue_interrupted().await?;
        if requeued > 0 {
            tracing::info!(
                requeued,
                "async calls in flight when the daemon last stopped are queued again"
            );
        }
        if interrupted > 0 {
            tracing::warn!(
                interrupted,
                "calls in flight when the daemon last stopped were marked failed"
            );
        }
        let mut functions = HashMap::new();
        for function in store.list_functions().await? {
            // Volumes removed by hand since the last run are created again, with labels; one
            // replaced by a volume skiff did not create is not mounted.
            let allowed = &config.allowed_volumes;
            let refused = match ensure_volumes(&*engine, &function.config.volumes, allowed).await {
                Ok(()) => None,
                Err(err) => {
                    let why = match err {
                        PlatformError::InvalidSpec(spec) => spec.message,
                        other => format!("its volumes cannot be checked: {other}"),
                    };
                    let reason = format!(
                        "{why}; the function's containers do not start until it is deployed again (or the daemon restarts with the volume allowed)"
                    );
                    tracing::warn!(function = %function.name, "{reason}");
                    Some(reason)
                }
            };
            let entry = Entry {
                function,
                target: OnceCell::new(),
                refused,
            };
            functions.insert(entry.function.name.to_string(), Arc::new(entry));
        }

        let tokens =
            Arc::new(
                crate::token::TokenKey::generate().map_err(|e| PlatformError::Setup {
                    what: "drawing the key of invoke tokens",
                    message: e.to_string(),
                })?,
            );
        let tracker = TaskTracker::new();
        let cancel = CancellationToken::new();
        let fds = FdBudget::new();
        let exec = ExecDriver::new(
            engine.clone(),
            ExecSettings {
                daemon_id: daemon_id.clone(),
                init_path,
                network: Some(network.clone()),
                nofile: config.nofile,
                prewarm: config.exec_prewarm,
                idle_timeout: config.exec_idle_timeout,
                max_background_prepares: config.max_background_prepares,
                max_response_bytes: config.max_response_bytes,
                max_log_bytes: config.max_log_bytes,
                tokens: tokens.clone(),
                fds: fds.clone(),
            },
            cancel.clone(),
        );
        let client = crate::http::client();
        // The Runtime API listens where function containers reach the host, and nowhere else.
        let gateway = network_info
            .gateway
            .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
        let runtime_listener = tokio::net::TcpListener::bind((gateway, config.runtime_api_port))
            .await
            .map_err(|e| PlatformError::Setup {
                what: "binding the Lambda Runtime API",
                message: format!("{gateway}:{}: {e}", config.runtime_api_port),
            })?;
        let runtime_api = runtime_listener
            .local_addr()
            .map_err(|e| PlatformError::Setup {
                what: "binding the Lambda Runtime API",
                message: e.to_string(),
            })?;
        let lambda = LambdaRegistry::new();
        let instances = InstanceManager::new(
            engine.clone(),
            InstanceSettings {
                daemon_id: daemon_id.clone(),
                network: Some(network.clone()),
                nofile: config.nofile,
                max_queued: config.max_queued_calls,
                keep_paused: config.keep_paused,
                paused_ttl: config.paused_ttl,
                autoscale_window: config.autoscale_window,
                tokens: tokens.clone(),
            },
            cancel.clone(),
            client.clone(),
            lambda.clone(),
        );
        let enqueuer = crate::queue::Enqueuer::start(store.clone(), &tracker, cancel.clone());
        let callback_policy = Arc::new(crate::destinations::CallbackPolicy::new(
            config.callback_allow.clone(),
            network_info.subnets.clone(),
            network_info.gateway,
            &config.listeners,
        ));
        let callbacks = crate::callback::Callbacks::start(
            store.clone(),
            callback_policy.clone(),
            &tracker,
            cancel.clone(),
        );
        let platform = Arc::new(Platform {
            limiter: Limiter::new(config.max_concurrent_calls, config.max_queued_calls),
            fds,
            recorder: Recorder::start(store.clone(), &tracker),
            config,
            store,
            engine,
            daemon_id,
            functions: RwLock::new(functions),
            deploys: Mutex::new(()),
            exec,
            instances,
            client,
            metrics: crate::metrics::Metrics::new(),
            lambda,
            queue_wakeup: Notify::new(),
            enqueuer,
            callbacks,
            callback_policy,
            triggers: crate::triggers::Triggers::new(),
            runtime_api,
            tokens,
            running: Arc::new(RunningCalls::default()),
            runtime_listener: std::sync::Mutex::new(Some(runtime_listener)),
            tracker,
            cancel,
            accepting: AtomicBool::new(true),
            in_flight: InFlight::default(),
            engine_problem: std::sync::Mutex::new(None),
        });
        for entry in platform.all_entries() {
            if entry.refused.is_some() {
                continue;
            }
            if let Some(target) = platform.instance_target(&entry.function) {
                platform.instances.set_target(Arc::new(target));
            }
        }
        platform.spawn_engine_probe();
        platform.spawn_fd_sampler();
        platform.spawn_idle_reaper();
        platform.spawn_autoscaler();
        platform.spawn_health_checks();
        platform.spawn_dispatcher();
        platform.start_triggers().await?;
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

    /// Runs `tick` every `period` on the platform's tracker until shutdown.
    fn spawn_every<F, Fut>(&self, period: Duration, mut tick: F)
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

    /// Why the container engine is not usable now, if it is not (from the last probe).
    pub fn engine_problem(&self) -> Option<String> {
        self.engine_problem
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Pings the engine every [`ENGINE_PROBE`]; what it finds is [`Platform::engine_problem`].
    fn spawn_engine_probe(self: &Arc<Self>) {
        let platform = Arc::downgrade(self);
        self.spawn_every(ENGINE_PROBE, move || {
            let platform = platform.clone();
            async move {
                let Some(platform) = platform.upgrade() else {
                    return;
                };
                let problem = match tokio::time::timeout(ENGINE_PROBE, platform.engine.ping()).await
                {
                    Ok(Ok(())) => None,
                    Ok(Err(err)) => Some(err.to_string()),
                    Err(_) => Some(format!(
                        "the container engine did not answer a ping within {}s",
                        ENGINE_PROBE.as_secs()
                    )),
                };
                let mut current = platform
                    .engine_problem
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                match (&*current, &problem) {
                    (None, Some(problem)) => {
                        tracing::error!(problem, "the container engine is unavailable")
                    }
                    (Some(_), None) => tracing::info!("the container engine answers again"),
                    _ => {}
                }
                *current = problem;
            }
        });
    }

    /// Counts the open file descriptors every [`crate::fds::SAMPLE_PERIOD`].
    fn spawn_fd_sampler(self: &Arc<Self>) {
        let fds = self.fds.clone();
        self.spawn_every(crate::fds::SAMPLE_PERIOD, move || {
            fds.sample();
            std::future::ready(())
        });
    }

    /// Whether a call would be admitted by the file descriptor budget now.
    pub(crate) fn fds_admit_a_call(&self) -> bool {
        self.fds.admits(FDS_PER_CALL).is_ok()
    }

    /// Removes the prepared containers of idle exec functions.
    fn spawn_idle_reaper(self: &Arc<Self>) {
        let exec = self.exec.clone();
        let period = (self.config.exec_idle_timeout / 2)
            .clamp(Duration::from_millis(100), Duration::from_secs(30));
        self.spawn_every(period, move || {
            exec.expire_idle();
            std::future::ready(())
        });
    }

    /// The autoscaler's ticks.
    fn spawn_autoscaler(self: &Arc<Self>) {
        let instances = self.instances.clone();
        let period = (self.config.autoscale_window / 30)
            .clamp(Duration::from_millis(50), Duration::from_secs(2));
        self.spawn_every(period, move || {
            instances.tick();
            std::future::ready(())
        });
    }

    /// Health checks of serving instances.
    fn spawn_health_checks(self: &Arc<Self>) {
        let instances = self.instances.clone();
        let period = self.config.health_interval.max(Duration::from_millis(100));
        self.spawn_every(period, move || {
            let instances = instances.clone();
            async move { instances.check_health().await }
        });
    }

    fn all_entries(&self) -> Vec<Arc<Entry>> {
        self.functions
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .values()
            .cloned()
            .collect()
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
        self: &Arc<Self>,
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
                err @ EngineError::InvalidReference { .. } => {
                    PlatformError::InvalidSpec(skiff_core::SpecError::new("image", err.to_string()))
                }
                other => PlatformError::Engine(other),
            })?;
        ensure_volumes(&*self.engine, &config.volumes, &self.config.allowed_volumes).await?;
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
        let exec = Arc::new(exec_target(&function, image.command(), self.calling_env()));
        let instances = self.instance_target(&function);
        let was_instances = previous
            .as_ref()
            .is_some_and(|e| e.function.config.contract != Contract::Exec);
        let entry = Arc::new(Entry {
            function,
            target: OnceCell::new_with(Some(exec.clone())),
            refused: None,
        });
        let view = FunctionView::from(&entry.function);
        self.functions
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(name.to_string(), entry);
        if previous.is_some() {
            self.exec.forget(name.as_str());
        }
        match instances {
            Some(target) => self.instances.set_target(Arc::new(target)),
            None if was_instances => self.instances.remove_function(name.as_str()),
            None => {
                if self.is_accepting() {
                    self.exec.refill(&exec);
                }
            }
        }
        Ok((view, previous.is_none()))
    }

    /// Accepts an async call: once this returns, the call is durable in the store and will
    /// run (at least once), retried on failure up to the configured attempts.
    pub async fn enqueue(
        &self,
        name: &str,
        mut request: InvokeRequest,
    ) -> Result<Uuid, PlatformError> {
        if !self.is_accepting() {
            return Err(PlatformError::ShuttingDown);
        }
        let entry = self
            .entry(name)
            .ok_or_else(|| PlatformError::FunctionNotFound {
                name: name.to_string(),
            })?;
        let limit = self.config.max_async_request_bytes;
        if request_too_large(&request.headers, limit) {
            return Err(PlatformError::PayloadTooLarge { limit });
        }
        let lineage = self.lineage(&mut request)?;
        // The stored call carries its caller's depth: it counts one more hop when it runs.
        request.headers.remove(DEPTH_HEADER);
        if let Some(from) = lineage.depth.checked_sub(1) {
            request
                .headers
                .insert(DEPTH_HEADER, HeaderValue::from(from));
        }
        let callback_url = match request.headers.get(CALLBACK_HEADER) {
            Some(value) => {
                let url = value.to_str().map_err(|_| PlatformError::BadRequest {
                    message: format!("{CALLBACK_HEADER} is not a URL"),
                })?;
                crate::callback::check_destination(url, &self.callback_policy)
                    .await
                    .map_err(|e| PlatformError::BadRequest {
                        message: format!("{CALLBACK_HEADER}: {e}"),
                    })?;
                Some(url.to_string())
            }
            None => None,
        };
        let body = read_body(request.body, limit).await?;
        let id = request.call_id.unwrap_or_else(Uuid::now_v7);
        let now = Utc::now();
        let record = CallRecord {
            request_size: body.len() as u64,
            caller: lineage.caller,
            parent: lineage.parent.map(|p| p.call),
            depth: lineage.depth,
            ..CallRecord::new(
                id,
                entry.function.name.as_str(),
                Trigger::Async,
                CallStatus::Queued,
                now,
            )
        };
        let payload = skiff_store::Payload {
            method: request.method.to_string(),
            path: request.path,
            query: request.query,
            headers: request
                .headers
                .iter()
                .filter(|(k, _)| k.as_str() != CALLBACK_HEADER)
                .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
                .collect(),
            body: body.to_vec(),
            expires_at: Some(now + self.max_event_age(&entry.function)),
            callback_url,
        };
        self.enqueuer.enqueue(record, payload).await?;
        self.queue_wakeup.notify_one();
        Ok(id)
    }

    /// Puts a dead call back in the queue for a new round of attempts.
    pub async fn redrive(&self, id: Uuid) -> Result<CallRecord, PlatformError> {
        self.recorder.flush().await;
        let record = self
            .store
            .get_call(id)
            .await?
            .ok_or(PlatformError::CallNotFound { id })?;
        // A new round of attempts gets a new event age.
        let age = match self.entry(&record.function) {
            Some(entry) => self.max_event_age(&entry.function),
            None => to_chrono(self.config.async_max_event_age),
        };
        if !self.store.redrive(id, Some(Utc::now() + age)).await? {
            return Err(PlatformError::BadRequest {
                message: format!(
                    "call {id} is {}, not dead: only dead calls are redriven",
                    record.status
                ),
            });
        }
        self.queue_wakeup.notify_one();
        self.store
            .get_call(id)
            .await?
            .ok_or(PlatformError::CallNotFound { id })
    }

    /// How old an async call of `function` may get.
    pub(crate) fn max_event_age(&self, function: &Function) -> chrono::Duration {
        to_chrono(
            function
                .config
                .max_event_age_ms
                .map_or(self.config.async_max_event_age, Duration::from_millis),
        )
    }

    /// Attempts an async call of `function` gets (1 + retries).
    pub(crate) fn max_attempts(&self, function: &Function) -> u32 {
        function
            .config
            .retries
            .map_or(self.config.async_max_attempts, |r| r.saturating_add(1))
            .max(1)
    }

    pub(crate) fn callbacks(&self) -> &crate::callback::Callbacks {
        &self.callbacks
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn background(&self) -> &TaskTracker {
        &self.tracker
    }

    pub(crate) fn cancelled(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.cancel.cancelled()
    }

    pub(crate) fn queue_wakeup(&self) -> tokio::sync::futures::Notified<'_> {
        self.queue_wakeup.notified()
    }

    pub(crate) fn wake_dispatcher(&self) {
        self.queue_wakeup.notify_one();
    }

    pub(crate) fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    pub(crate) fn triggers(&self) -> &crate::triggers::Triggers {
        &self.triggers
    }

    /// A token cancelled at shutdown, or earlier by its holder.
    pub(crate) fn child_token(&self) -> CancellationToken {
        self.cancel.child_token()
    }

    /// Serializes deploys, deletes and trigger changes.
    pub(crate) async fn deploy_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.deploys.lock().await
    }

    pub(crate) async fn flush_records(&self) {
        self.recorder.flush().await;
    }

    /// One function, whole (its validated configuration included, secrets too: for
    /// transports that must rebuild a spec, never to be shown as is).
    pub fn function(&self, name: &str) -> Result<Function, PlatformError> {
        self.entry(name).map(|e| e.function.clone()).ok_or_else(|| {
            PlatformError::FunctionNotFound {
                name: name.to_string(),
            }
        })
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

    /// Deletes a function and its triggers. Its calls in flight are stopped (`interrupted`)
    /// and every container of it is removed.
    pub async fn delete_function(&self, name: &str) -> Result<(), PlatformError> {
        let _serialized = self.deploys.lock().await;
        if self.entry(name).is_none() {
            return Err(PlatformError::FunctionNotFound {
                name: name.to_string(),
            });
        }
        self.delete_triggers_of(name).await?;
        self.store.delete_function(name).await?;
        {
            let mut functions = self
                .functions
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            functions.remove(name);
            self.exec.forget(name);
        }
        // Its calls in flight stop now: their containers are killed and removed.
        let stopped = self
            .running
            .stop_function(name, StopReason::FunctionDeleted);
        if stopped > 0 {
            tracing::info!(
                function = name,
                calls = stopped,
                "stopped the calls of a deleted function"
            );
        }
        self.instances.remove_function(name);
        Ok(())
    }

    /// The instances of a function (empty for `exec` functions, whose containers serve a
    /// single call each).
    pub fn instances(&self, name: &str) -> Result<Vec<InstanceView>, PlatformError> {
        self.entry(name)
            .ok_or_else(|| PlatformError::FunctionNotFound {
                name: name.to_string(),
            })?;
        Ok(self.instances.instances(name))
    }

    /// The metrics in the Prometheus text format.
    pub fn render_metrics(&self) -> String {
        let (running, queued) = self.load();
        let (instances, _waiting) = self.instances.totals();
        self.metrics.render(running, queued, &instances)
    }

    /// Instances by state and calls waiting for one, across all functions.
    pub fn instance_totals(&self) -> (HashMap<skiff_core::InstanceState, usize>, usize) {
        self.instances.totals()
    }

    /// Changes how many instances a function may have, without a new version.
    pub async fn scale(
        self: &Arc<Self>,
        name: &str,
        min: Option<u32>,
        max: Option<u32>,
    ) -> Result<FunctionView, PlatformError> {
        let _serialized = self.deploys.lock().await;
        let entry = self
            .entry(name)
            .ok_or_else(|| PlatformError::FunctionNotFound {
                name: name.to_string(),
            })?;
        let mut function = entry.function.clone();
        if function.config.contract == Contract::Exec {
            return Err(PlatformError::InvalidSpec(skiff_core::SpecError::new(
                "min_instances",
                "the `exec` contract runs a fresh container per call; it has no instances to scale",
            )));
        }
        let scaling = &mut function.config.scaling;
        if let Some(min) = min {
            scaling.min_instances = min;
        }
        if let Some(max) = max {
            if !(1..=1000).contains(&max) {
                return Err(PlatformError::InvalidSpec(skiff_core::SpecError::new(
                    "max_instances",
                    format!("{max} is out of range: use 1 to 1000"),
                )));
            }
            scaling.max_instances = max;
        }
        if scaling.min_instances > scaling.max_instances {
            return Err(PlatformError::InvalidSpec(skiff_core::SpecError::new(
                "min_instances",
                format!(
                    "{} is more than max_instances ({})",
                    scaling.min_instances, scaling.max_instances
                ),
            )));
        }
        let scaling = *scaling;
        function.updated_at = Utc::now();
        self.store.put_function(&function).await?;
        let view = FunctionView::from(&function);
        let target = entry.target.get().cloned();
        self.functions
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(
                name.to_string(),
                Arc::new(Entry {
                    function,
                    target: OnceCell::new_with(target),
                    refused: entry.refused.clone(),
                }),
            );
        self.instances.set_scaling(name, scaling);
        Ok(view)
    }

    /// Prepares the next containers of an exec function, unless the function was deleted
    /// or updated meanwhile. The registry's lock orders this against
    /// [`Platform::delete_function`], which forgets the function's pool under it: a pool is
    /// never made again for a deleted function.
    fn refill_exec(&self, target: &Arc<ExecTarget>) {
        if !self.is_accepting() {
            return;
        }
        let functions = self
            .functions
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let current = functions
            .get(&target.function)
            .and_then(|e| e.target.get())
            .is_some_and(|t| Arc::ptr_eq(t, target));
        if current {
            self.exec.refill(target);
        }
    }

    /// What an entry's containers run, resolving its image on first use after a restart.
    async fn exec_target(&self, entry: &Entry) -> Result<Arc<ExecTarget>, EngineError> {
        entry
            .target
            .get_or_try_init(|| async {
                let image = self
                    .engine
                    .inspect_image(&entry.function.image_digest)
                    .await?;
                Ok(Arc::new(exec_target(
                    &entry.function,
                    image.command(),
                    self.calling_env(),
                )))
            })
            .await
            .cloned()
    }

    /// Invokes a function synchronously and returns its response.
    ///
    /// The call runs in a task of its own, which holds the call's slot: whatever the caller
    /// does, the call keeps its deadline and limits, ends with a record, and its container
    /// is removed before the slot is given back. If the caller goes away, an `exec` or
    /// `http` call is stopped (`client_disconnected`); a `lambda` call runs to its end. The
    /// caller gets its answer by the deadline (and a short margin) whatever the engine
    /// does: past it, a `timeout` failure, while the call's task stops the container.
    pub async fn invoke(
        self: &Arc<Self>,
        name: &str,
        mut request: InvokeRequest,
    ) -> Result<InvokeOutcome, PlatformError> {
        if !self.is_accepting() {
            return Err(PlatformError::ShuttingDown);
        }
        let in_flight = InFlightGuard::enter(self.clone());
        let entry = self
            .entry(name)
            .ok_or_else(|| PlatformError::FunctionNotFound {
                name: name.to_string(),
            })?;
        let limit = self.config.max_request_bytes;
        if request_too_large(&request.headers, limit) {
            return Err(PlatformError::PayloadTooLarge { limit });
        }
        let lineage = self.lineage(&mut request)?;
        let function = &entry.function;
        let call_id = request.call_id.unwrap_or_else(Uuid::now_v7);
        let received_at = Utc::now();
        let clock = Instant::now();
        // Near the limit of open files a call is refused, not queued; once it has a slot,
        // the descriptors it may need are promised to it for as long as it runs.
        let near_limit = |Short { in_use, limit }| PlatformError::NearFdLimit { in_use, limit };
        self.fds.admits(FDS_PER_CALL).map_err(near_limit)?;
        // A callee never gets more time than its caller has left.
        let own_timeout = function.config.timeout();
        let inherited = lineage.parent.map(|p| {
            p.deadline
                .saturating_duration_since(tokio::time::Instant::now())
        });
        let slot = self
            .limiter
            .acquire(inherited.map_or(own_timeout, |left| left.min(own_timeout)))
            .await
            .map_err(|refused| match refused {
                Refused::QueueFull { running, queued } | Refused::TimedOut { running, queued } => {
                    PlatformError::Overloaded { running, queued }
                }
            })?;
        let fds = self.fds.try_reserve(FDS_PER_CALL).map_err(near_limit)?;
        let started_at = Utc::now();
        let waited = clock.elapsed();
        let now = tokio::time::Instant::now();
        let deadline = match lineage.parent {
            Some(parent) => parent.deadline.min(now + own_timeout),
            None => now + own_timeout,
        };
        let record = CallRecord {
            attempt: request.attempt.max(1),
            started_at: Some(started_at),
            wait_ms: Some(u64::try_from(waited.as_millis()).unwrap_or(u64::MAX)),
            caller: lineage.caller.clone(),
            parent: lineage.parent.map(|p| p.call),
            depth: lineage.depth,
            ..CallRecord::new(
                call_id,
                function.name.as_str(),
                request.trigger,
                CallStatus::Running,
                received_at,
            )
        };
        let mut call = CallContext {
            record,
            clock,
            deadline,
            timeout: deadline.saturating_duration_since(now),
            started_at,
        };
        if let Some(reason) = &entry.refused {
            return Err(self
                .fail(&mut call, CallErrorType::StartFailed, reason.clone())
                .await);
        }
        let guard = self
            .running
            .register(call_id, function.name.as_str(), deadline, lineage.depth);
        let (answer, answered) = oneshot::channel();
        let held = Held {
            _slot: slot,
            _fds: fds,
            _in_flight: in_flight,
        };
        self.tracker.spawn(self.clone().run_call(
            entry.clone(),
            request,
            call,
            held,
            guard,
            answer,
        ));
        match tokio::time::timeout_at(deadline + ANSWER_MARGIN, answered).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(PlatformError::Internal {
                message: format!("call {call_id} ended without an answer"),
            }),
            Err(_elapsed) => Err(PlatformError::CallFailed {
                call_id,
                error_type: CallErrorType::Timeout,
                message: "the call ran past its timeout; it is being stopped".to_string(),
                exit_code: None,
            }),
        }
    }

    /// Where a call comes from: the function that made it and the call it was made
    /// during (for requests of the function API), and its depth. Refuses a call deeper than
    /// `max_call_depth` (`LoopDetected`). Sets the depth header the function receives.
    fn lineage(&self, request: &mut InvokeRequest) -> Result<Lineage, PlatformError> {
        let declared = request
            .headers
            .get(DEPTH_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u32>().ok());
        let hint = request
            .headers
            .get(crate::http::CALL_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Uuid::parse_str(v.trim()).ok());
        let parent = request
            .caller
            .as_ref()
            .and_then(|caller| self.running.parent(&caller.instance, hint));
        // The caller's own depth, as skiff knows it or as the request says (whichever is
        // deeper: a request can only make itself deeper).
        let from = parent.map(|p| p.depth).into_iter().chain(declared).max();
        let depth = match (&request.caller, from) {
            (_, Some(from)) => from.saturating_add(1),
            (Some(_), None) => 1,
            (None, None) => 0,
        };
        let max = self.config.max_call_depth;
        if depth > max {
            return Err(PlatformError::LoopDetected { depth, max });
        }
        request.headers.remove(DEPTH_HEADER);
        if depth > 0 {
            request
                .headers
                .insert(DEPTH_HEADER, HeaderValue::from(depth));
        }
        Ok(Lineage {
            caller: request.caller.as_ref().map(|c| c.function.to_string()),
            parent,
            depth,
        })
    }

    /// Runs one sync call to its end (see [`Platform::invoke`]) and answers on `answer`.
    async fn run_call(
        self: Arc<Self>,
        entry: Arc<Entry>,
        request: InvokeRequest,
        call: CallContext,
        held: Held,
        guard: CallGuard,
        mut answer: oneshot::Sender<Result<InvokeOutcome, PlatformError>>,
    ) {
        let contract = entry.function.config.contract;
        let snapshot = call.clone();
        // An exec call keeps its slot until its container is removed; an instance call
        // gives it back when its response has been sent.
        let mut kept = None;
        let mut used = None;
        let result = {
            let mut work: std::pin::Pin<
                Box<
                    dyn std::future::Future<Output = Result<InvokeOutcome, PlatformError>>
                        + Send
                        + '_,
                >,
            > = match contract {
                Contract::Exec => {
                    kept = Some(held);
                    Box::pin(self.invoke_exec(&entry, request, call, &guard, &mut used))
                }
                Contract::Lambda => {
                    Box::pin(self.invoke_lambda(&entry, request, call, held, &guard))
                }
                Contract::Http => Box::pin(self.invoke_http(&entry, request, call, held, &guard)),
            };
            let mut caller_gone = false;
            loop {
                tokio::select! {
                    biased;
                    result = &mut work => break result,
                    // A lambda event cannot be taken back from its runtime: it runs on.
                    _ = answer.closed(), if !caller_gone => {
                        caller_gone = true;
                        if contract != Contract::Lambda {
                            guard.stop(StopReason::ClientGone);
                        }
                    }
                    // An exec call stops its own container; an instance call is dropped
                    // where it stands (its request to the instance is cancelled).
                    _ = guard.stopped(), if contract != Contract::Exec => {
                        drop(work);
                        break Err(self.abandon(snapshot, &guard).await);
                    }
                }
            }
        };
        let _ = answer.send(result);
        if let Some(container) = used {
            self.exec.remove_used(&container).await;
        }
        drop(kept);
        drop(guard);
    }

    /// Ends the record of an instance call stopped where it stood.
    async fn abandon(&self, mut call: CallContext, guard: &CallGuard) -> PlatformError {
        let reason = guard.reason().unwrap_or(StopReason::ShuttingDown);
        call.record.instance = guard.instance();
        self.fail(&mut call, reason.error_type(), reason.message().to_string())
            .await
    }

    /// Ends a call's record as failed with `kind`, and gives the error its caller gets.
    async fn fail(
        &self,
        call: &mut CallContext,
        kind: CallErrorType,
        message: String,
    ) -> PlatformError {
        self.finish(
            call,
            CallResult::Failed {
                kind,
                message: message.clone(),
            },
            None,
        )
        .await;
        PlatformError::CallFailed {
            call_id: call.record.id,
            error_type: kind,
            message,
            exit_code: None,
        }
    }

    /// Ends a call's record: final status, timing, logs.
    async fn finish(&self, call: &mut CallContext, result: CallResult, logs: Option<Vec<u8>>) {
        let record = self.finish_record(call, result);
        self.recorder.record(CallWrite { record, logs }).await;
    }

    async fn invoke_exec(
        &self,
        entry: &Entry,
        request: InvokeRequest,
        mut call: CallContext,
        guard: &CallGuard,
        used: &mut Option<String>,
    ) -> Result<InvokeOutcome, PlatformError> {
        let limit = self.config.max_request_bytes;
        let body = read_body(request.body, limit).await?;
        call.record.request_size = body.len() as u64;
        self.recorder
            .record(CallWrite {
                record: call.record.clone(),
                logs: None,
            })
            .await;
        let function = &entry.function;
        let outcome = match self.exec_target(entry).await {
            Ok(target) => {
                let frame = call_frame(
                    &request.method,
                    &request.path,
                    &request.query,
                    &request.headers,
                    function.name.as_str(),
                    call.record.id,
                    call.started_at,
                    call.timeout,
                );
                let outcome = self
                    .exec
                    .run(&target, frame, body, call.deadline, guard)
                    .await;
                self.refill_exec(&target);
                outcome
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
                container: None,
            },
        };
        used.clone_from(&outcome.container);
        call.record.cold = Some(outcome.cold);
        call.record.instance = outcome.instance.clone();
        call.record.exit_code = outcome.exit_code;
        let result = match &outcome.error {
            None => CallResult::Succeeded {
                response_size: outcome.stdout.len() as u64,
            },
            Some((kind, message)) => CallResult::Failed {
                kind: *kind,
                message: message.clone(),
            },
        };
        self.finish(&mut call, result, Some(outcome.logs)).await;
        let call_id = call.record.id;
        match outcome.error {
            None => {
                let mut headers = HeaderMap::new();
                headers.insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                Ok(InvokeOutcome {
                    call_id,
                    cold: outcome.cold,
                    status: StatusCode::OK,
                    headers,
                    body: crate::http::full(outcome.stdout),
                })
            }
            Some((error_type, message)) => Err(PlatformError::CallFailed {
                call_id,
                error_type,
                message,
                exit_code: outcome.exit_code,
            }),
        }
    }

    async fn invoke_lambda(
        self: &Arc<Self>,
        entry: &Entry,
        request: InvokeRequest,
        mut call: CallContext,
        held: Held,
        guard: &CallGuard,
    ) -> Result<InvokeOutcome, PlatformError> {
        let limit = self.config.max_request_bytes;
        let function = entry.function.name.to_string();
        let payload = read_body(request.body, limit).await?;
        call.record.request_size = payload.len() as u64;
        self.recorder
            .record(CallWrite {
                record: call.record.clone(),
                logs: None,
            })
            .await;
        let failed = |kind: CallErrorType, message: String| (kind, message);
        let mut logs = Vec::new();
        let mut source = None;
        let outcome = match self.instances.acquire(&function, call.deadline).await {
            Err(AcquireError::QueueFull { .. }) => Err((
                failed(
                    CallErrorType::Rejected,
                    "the function's queue is full".into(),
                ),
                Some(PlatformError::Overloaded {
                    running: self.load().0,
                    queued: self.load().1,
                }),
            )),
            Err(AcquireError::ShuttingDown) => Err((
                failed(CallErrorType::Interrupted, "skiff is shutting down".into()),
                Some(PlatformError::ShuttingDown),
            )),
            Err(err @ AcquireError::Timeout) => {
                Err((failed(CallErrorType::Timeout, err.to_string()), None))
            }
            Err(AcquireError::StartFailed(message)) => {
                Err((failed(CallErrorType::StartFailed, message), None))
            }
            Ok(mut lease) => {
                guard.bind(&lease.instance);
                call.record.cold = Some(lease.cold);
                call.record.instance = Some(lease.instance.clone());
                call.record.wait_ms = Some(
                    call.record.wait_ms.unwrap_or(0)
                        + u64::try_from(lease.waited.as_millis()).unwrap_or(u64::MAX),
                );
                self.metrics.queue_waited(&function, lease.waited);
                let mark = lease
                    .output
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .mark();
                let deadline_ms = (call.started_at
                    + chrono::Duration::from_std(call.timeout).unwrap_or(chrono::Duration::MAX))
                .timestamp_millis();
                let answer = tokio::time::timeout_at(
                    call.deadline,
                    self.lambda.invoke(
                        lease.addr.ip(),
                        call.record.id.to_string(),
                        payload,
                        deadline_ms,
                        self.function_arn(&function),
                    ),
                )
                .await;
                // One event at a time: what the instance wrote meanwhile is this call's log.
                logs = lease
                    .output
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .since(mark);
                source = Some((lease.output.clone(), mark));
                match answer {
                    Ok(Ok(Outcome::Response(body))) => Ok((body, lease.cold)),
                    Ok(Ok(Outcome::Error { error_type, body })) => Err((
                        failed(
                            CallErrorType::FunctionError,
                            format!("{error_type}: {}", String::from_utf8_lossy(&body)),
                        ),
                        None,
                    )),
                    Ok(Err(_gone)) => {
                        lease.mark_broken();
                        Err((
                            failed(
                                CallErrorType::Crashed,
                                "the instance died while handling the event".into(),
                            ),
                            None,
                        ))
                    }
                    Err(_elapsed) => {
                        // The runtime is still busy with the event: the instance cannot take
                        // another, so it goes.
                        lease.mark_broken();
                        Err((
                            failed(
                                CallErrorType::Timeout,
                                "the call ran past its timeout and its instance was stopped".into(),
                            ),
                            None,
                        ))
                    }
                }
            }
        };
        drop(held);
        let id = call.record.id;
        let logs = lambda_log(id, &logs, call.clock.elapsed());
        if let Some((output, mark)) = source {
            // Output reaches skiff a little after the answer: rewrite the log once it has.
            let platform = self.clone();
            let seen = logs.len();
            let elapsed = call.clock.elapsed();
            self.tracker.spawn(async move {
                tokio::time::sleep(LATE_OUTPUT).await;
                let late = output.lock().unwrap_or_else(|p| p.into_inner()).since(mark);
                let logs = lambda_log(id, &late, elapsed);
                if logs.len() > seen {
                    // The final record was sent before this task woke; write it first.
                    platform.recorder.flush().await;
                    if let Ok(Some(record)) = platform.store.get_call(id).await {
                        platform
                            .recorder
                            .record(CallWrite {
                                record,
                                logs: Some(logs),
                            })
                            .await;
                    }
                }
            });
        }
        match outcome {
            Ok((body, cold)) => {
                self.finish(
                    &mut call,
                    CallResult::Succeeded {
                        response_size: body.len() as u64,
                    },
                    Some(logs),
                )
                .await;
                let mut headers = HeaderMap::new();
                headers.insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                Ok(InvokeOutcome {
                    call_id: call.record.id,
                    cold,
                    status: StatusCode::OK,
                    headers,
                    body: crate::http::full(body),
                })
            }
            Err(((kind, message), refusal)) => {
                self.finish(
                    &mut call,
                    CallResult::Failed {
                        kind,
                        message: message.clone(),
                    },
                    Some(logs),
                )
                .await;
                Err(refusal.unwrap_or(PlatformError::CallFailed {
                    call_id: call.record.id,
                    error_type: kind,
                    message,
                    exit_code: None,
                }))
            }
        }
    }

    async fn invoke_http(
        self: &Arc<Self>,
        entry: &Entry,
        request: InvokeRequest,
        mut call: CallContext,
        held: Held,
        guard: &CallGuard,
    ) -> Result<InvokeOutcome, PlatformError> {
        let limit = self.config.max_request_bytes;
        let function = entry.function.name.to_string();
        call.record.request_size = http_body::Body::size_hint(&request.body)
            .exact()
            .unwrap_or(0);
        let call_id = call.record.id.to_string();
        let deadline_text = (call.started_at
            + chrono::Duration::from_std(call.timeout).unwrap_or(chrono::Duration::MAX))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        // A small body is read first, so that the call can be sent again to another instance
        // if the first turns out to be gone before it took the request; a larger (or
        // unsized) body streams through and cannot be replayed.
        let small = http_body::Body::is_end_stream(&request.body)
            || content_length(&request.headers).is_some_and(|n| n <= REPLAYABLE_BODY);
        let (replay, mut body) = if small {
            let bytes = read_body(request.body, limit).await?;
            (Some(bytes), None)
        } else {
            (None, Some(limited(request.body, limit)))
        };
        if let Some(bytes) = &replay {
            call.record.request_size = bytes.len() as u64;
        }
        // From here on, the call has a record, and every way out finishes it.
        self.recorder
            .record(CallWrite {
                record: call.record.clone(),
                logs: None,
            })
            .await;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let lease = match self.instances.acquire(&function, call.deadline).await {
                Ok(lease) => lease,
                Err(err) => {
                    let (kind, message) = match err {
                        AcquireError::QueueFull { .. } => {
                            let message = err.to_string();
                            self.finish(
                                &mut call,
                                CallResult::Failed {
                                    kind: CallErrorType::Rejected,
                                    message,
                                },
                                None,
                            )
                            .await;
                            let (running, queued) = self.load();
                            return Err(PlatformError::Overloaded { running, queued });
                        }
                        AcquireError::ShuttingDown => {
                            let message = err.to_string();
                            self.finish(
                                &mut call,
                                CallResult::Failed {
                                    kind: CallErrorType::Interrupted,
                                    message,
                                },
                                None,
                            )
                            .await;
                            return Err(PlatformError::ShuttingDown);
                        }
                        AcquireError::Timeout => (CallErrorType::Timeout, err.to_string()),
                        AcquireError::StartFailed(message) => (CallErrorType::StartFailed, message),
                    };
                    self.finish(
                        &mut call,
                        CallResult::Failed {
                            kind,
                            message: message.clone(),
                        },
                        None,
                    )
                    .await;
                    return Err(PlatformError::CallFailed {
                        call_id: call.record.id,
                        error_type: kind,
                        message,
                        exit_code: None,
                    });
                }
            };
            call.record.cold = Some(lease.cold);
            call.record.wait_ms = Some(
                call.record.wait_ms.unwrap_or(0)
                    + u64::try_from(lease.waited.as_millis()).unwrap_or(u64::MAX),
            );
            self.metrics.queue_waited(&function, lease.waited);
            call.record.instance = Some(lease.instance.clone());
            guard.bind(&lease.instance);
            let this_body = match (&replay, body.take()) {
                (Some(bytes), _) => crate::http::full(bytes.clone()),
                (None, Some(streamed)) => streamed,
                (None, None) => crate::http::full(Bytes::new()),
            };
            let outgoing = crate::http::instance_request(
                lease.addr,
                &request.method,
                &request.path,
                &request.query,
                &request.headers,
                &call_id,
                &deadline_text,
                this_body,
            );
            let outgoing = match outgoing {
                Ok(outgoing) => outgoing,
                Err(err) => {
                    let message = format!("the request cannot be forwarded: {err}");
                    self.finish(
                        &mut call,
                        CallResult::Failed {
                            kind: CallErrorType::Rejected,
                            message: message.clone(),
                        },
                        None,
                    )
                    .await;
                    return Err(PlatformError::BadRequest { message });
                }
            };
            let sent = tokio::time::timeout_at(call.deadline, self.client.request(outgoing)).await;
            let mut lease = lease;
            let failure = match sent {
                Ok(Ok(response)) => {
                    let cold = lease.cold;
                    let status = response.status();
                    let headers = crate::http::response_headers(&response);
                    let id = call.record.id;
                    let body = crate::http::Completion::wrap(
                        response.into_body(),
                        CompletionState {
                            platform: self.clone(),
                            call,
                            status,
                            _lease: lease,
                            _held: held,
                        },
                    );
                    return Ok(InvokeOutcome {
                        call_id: id,
                        cold,
                        status,
                        headers,
                        body,
                    });
                }
                Ok(Err(err)) => err,
                Err(_elapsed) => {
                    let message = "the call ran past its timeout".to_string();
                    self.finish(
                        &mut call,
                        CallResult::Failed {
                            kind: CallErrorType::Timeout,
                            message: message.clone(),
                        },
                        None,
                    )
                    .await;
                    return Err(PlatformError::CallFailed {
                        call_id: call.record.id,
                        error_type: CallErrorType::Timeout,
                        message,
                        exit_code: None,
                    });
                }
            };
            if find_source::<http_body_util::LengthLimitError>(&failure).is_some() {
                let message = format!("the request body is larger than the limit of {limit} bytes");
                self.finish(
                    &mut call,
                    CallResult::Failed {
                        kind: CallErrorType::Rejected,
                        message,
                    },
                    None,
                )
                .await;
                return Err(PlatformError::PayloadTooLarge { limit });
            }
            lease.mark_broken();
            drop(lease);
            if failure.is_connect() && replay.is_some() && attempts < 3 {
                tracing::warn!(function, err = %failure, "an instance refused a call before taking it; retrying on another");
                continue;
            }
            let message = format!("the instance failed while serving the call: {failure}");
            self.finish(
                &mut call,
                CallResult::Failed {
                    kind: CallErrorType::Crashed,
                    message: message.clone(),
                },
                None,
            )
            .await;
            return Err(PlatformError::CallFailed {
                call_id: call.record.id,
                error_type: CallErrorType::Crashed,
                message,
                exit_code: None,
            });
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

    /// A call's record and, for an async call that answered, its (size-capped) result.
    pub async fn call_details(&self, id: Uuid) -> Result<skiff_core::CallDetails, PlatformError> {
        let record = self.get_call(id).await?;
        let result =
            self.store.get_result(id).await?.map(|r| {
                skiff_core::CallOutput::new(r.status_code, r.content_type, &r.body, r.size)
            });
        Ok(skiff_core::CallDetails { record, result })
    }

    /// A call's details as the function API shows them to `caller`: only calls its
    /// function made (any other is "not found", whether it exists or not).
    pub async fn call_details_for(
        &self,
        caller: &crate::token::Caller,
        id: Uuid,
    ) -> Result<skiff_core::CallDetails, PlatformError> {
        let details = self.call_details(id).await?;
        if details.record.caller.as_deref() != Some(caller.function.as_str()) {
            return Err(PlatformError::CallNotFound { id });
        }
        Ok(details)
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

    /// Waits until no call is in flight, for at most `bound`; true if none is.
    async fn drain(&self, bound: Duration) -> bool {
        tokio::time::timeout(bound, async {
            loop {
                let idle = self.in_flight.idle.notified();
                if self.in_flight.count.load(Ordering::Acquire) == 0 {
                    return;
                }
                idle.await;
            }
        })
        .await
        .is_ok()
    }

    /// Stops taking calls, lets calls in flight finish for up to `grace`, then stops the
    /// rest (each ends `interrupted`), removes every container of this daemon, and stops the
    /// background tasks after writing pending records. Every call record is final when it
    /// returns (an async call in flight is queued again, without spending an attempt).
    pub async fn shutdown(&self, grace: Duration) {
        self.accepting.store(false, Ordering::Release);
        if !self.drain(grace).await {
            let stopped = self.running.stop_all(StopReason::ShuttingDown);
            tracing::warn!(
                in_flight = self.in_flight.count.load(Ordering::Acquire),
                stopped,
                "calls still running after the grace period are stopped"
            );
            if !self.drain(STOP_BOUND).await {
                tracing::warn!(
                    in_flight = self.in_flight.count.load(Ordering::Acquire),
                    "calls still in flight {}s after they were stopped",
                    STOP_BOUND.as_secs()
                );
            }
        }
        self.cancel.cancel();
        self.exec.shutdown().await;
        self.instances.shutdown().await;
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
        // Whatever could not finish its own record (a call whose task is stuck on the
        // engine) is marked interrupted now rather than left running until the next start.
        match self.store.interrupt_unfinished_calls(Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                calls = n,
                "calls still unfinished at shutdown were marked interrupted"
            ),
            Err(err) => tracing::error!(%err, "cannot mark unfinished calls as interrupted"),
        }
    }
}

/// The functions' network, made sure to keep containers from reaching each other. One made
/// by an older skiff (containers connect) is replaced when nothing is attached to it;
/// otherwise skiff refuses to start rather than run functions that can reach each other.
async fn isolated_network(
    engine: &dyn ContainerEngine,
    name: &str,
) -> Result<skiff_runtime::NetworkInfo, PlatformError> {
    let labels = HashMap::from([(labels::MANAGED.to_string(), "true".to_string())]);
    let network = engine.ensure_network(name, &labels).await?;
    if !network.containers_connect {
        return Ok(network);
    }
    if network.containers > 0 {
        return Err(PlatformError::Setup {
            what: "preparing the functions' network",
            message: format!(
                "network `{name}` lets containers reach each other, and {} container(s) are \
                 attached to it: remove it (`docker network rm {name}`) once they are gone, \
                 or pick another with --network",
                network.containers
            ),
        });
    }
    tracing::info!(
        network = name,
        "replacing the functions' network: containers on it could reach each other"
    );
    engine.remove_network(&network.id).await?;
    let network = engine.ensure_network(name, &labels).await?;
    if network.containers_connect {
        return Err(PlatformError::Setup {
            what: "preparing the functions' network",
            message: format!("network `{name}` still lets containers reach each other"),
        });
    }
    Ok(network)
}

/// Creates the volumes a function mounts that do not exist yet, labelled as skiff's, and
/// checks that every one is skiff's (`skiff.managed=true`) or in `allowed` (the daemon's
/// `--allow-volume`): any other volume on the engine is refused, as an invalid spec.
async fn ensure_volumes(
    engine: &dyn ContainerEngine,
    volumes: &[skiff_core::VolumeMount],
    allowed: &[String],
) -> Result<(), PlatformError> {
    for volume in volumes {
        let name = &volume.name;
        let found = engine
            .ensure_volume(name, &labels::for_volume(name))
            .await?;
        let managed = found.get(labels::MANAGED).is_some_and(|v| v == "true");
        if !managed && !allowed.contains(name) {
            return Err(PlatformError::InvalidSpec(skiff_core::SpecError::new(
                "volumes",
                format!(
                    "volume `{name}` was not created by skiff (it has no {}=true label); skiff mounts such a volume only when the daemon allows it with `skiff serve --allow-volume {name}`",
                    labels::MANAGED
                ),
            )));
        }
    }
    Ok(())
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

/// What the instances of an `http` function run; `None` for `exec` functions.
impl Platform {
    /// What the instances of an `http` or `lambda` function run; `None` for `exec`.
    fn instance_target(&self, function: &Function) -> Option<InstanceTarget> {
        let config = &function.config;
        let mut env: Vec<String> = config
            .env
            .iter()
            .chain(&config.secrets)
            .map(|(k, v)| format!("{k}={v}"))
            .chain(self.calling_env())
            .collect();
        let mut cmd = None;
        match config.contract {
            Contract::Exec => return None,
            Contract::Http => env.push(format!("PORT={}", config.http.port)),
            Contract::Lambda => {
                let region = &self.config.region;
                env.extend([
                    format!("AWS_LAMBDA_RUNTIME_API={}", self.runtime_api),
                    format!("AWS_LAMBDA_FUNCTION_NAME={}", function.name),
                    format!(
                        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE={}",
                        config.resources.memory_bytes >> 20
                    ),
                    format!("AWS_LAMBDA_FUNCTION_VERSION={}", function.version),
                    format!("AWS_REGION={region}"),
                    format!("AWS_DEFAULT_REGION={region}"),
                    "LAMBDA_TASK_ROOT=/var/task".to_string(),
                    "LAMBDA_RUNTIME_DIR=/var/runtime".to_string(),
                    format!("AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/{}", function.name),
                ]);
                if let Some(handler) = &config.handler {
                    env.push(format!("_HANDLER={handler}"));
                    cmd = Some(vec![handler.clone()]);
                }
            }
        }
        Some(InstanceTarget {
            function: function.name.to_string(),
            version: function.version,
            image: function.image_digest.clone(),
            env,
            resources: config.resources,
            http: config.http.clone(),
            scaling: config.scaling,
            contract: config.contract,
            cmd,
            volumes: config.volumes.clone(),
        })
    }

    /// The ARN skiff gives a function, in AWS's shape.
    pub fn function_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:lambda:{}:000000000000:function:{name}",
            self.config.region
        )
    }

    /// The Runtime API's state, for the gateway's Runtime API routes.
    pub fn lambda_registry(&self) -> &Arc<LambdaRegistry> {
        &self.lambda
    }

    /// The listener for the Runtime API (on the functions' network gateway), once: the
    /// caller serves it.
    pub fn take_runtime_listener(&self) -> Option<tokio::net::TcpListener> {
        self.runtime_listener
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// Where instances reach the Runtime API.
    pub fn runtime_api_address(&self) -> SocketAddr {
        self.runtime_api
    }

    /// The URL of the function API, as function containers reach it (`SKIFF_API_URL`): the
    /// Runtime API's listener, on the functions' network gateway.
    pub fn function_api_url(&self) -> String {
        format!("http://{}", self.runtime_api)
    }

    /// The function container a bearer token of the function API was minted for.
    pub fn verify_token(
        &self,
        token: &str,
    ) -> Result<crate::token::Caller, crate::token::TokenError> {
        self.tokens.verify(token)
    }

    /// The variable that lets a function's containers call other functions:
    /// `SKIFF_API_URL`. (Each container also gets its own `SKIFF_TOKEN`, minted by the
    /// driver that creates it.)
    fn calling_env(&self) -> [String; 1] {
        [format!("SKIFF_API_URL={}", self.function_api_url())]
    }
}

/// Numbers each exec target made in this process (see [`ExecTarget::generation`]).
static EXEC_GENERATION: AtomicU64 = AtomicU64::new(1);

/// What an `exec` function's containers run; `calling` is [`Platform::calling_env`].
fn exec_target(function: &Function, command: Vec<String>, calling: [String; 1]) -> ExecTarget {
    let config = &function.config;
    ExecTarget {
        function: function.name.to_string(),
        version: function.version,
        generation: EXEC_GENERATION.fetch_add(1, Ordering::Relaxed),
        image: function.image_digest.clone(),
        command,
        env: config
            .env
            .iter()
            .chain(&config.secrets)
            .map(|(k, v)| format!("{k}={v}"))
            .chain(calling)
            .collect(),
        resources: config.resources,
        volumes: config.volumes.clone(),
    }
}

/// The `SKIFF_*` variables of one call, framed for `skiff-init`.
#[allow(clippy::too_many_arguments)]
fn call_frame(
    method: &Method,
    path: &str,
    query: &str,
    request_headers: &HeaderMap,
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
        ("SKIFF_METHOD".into(), method.to_string()),
        ("SKIFF_PATH".into(), path.to_string()),
        ("SKIFF_QUERY".into(), query.to_string()),
        (
            "SKIFF_DEADLINE".into(),
            deadline.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        ),
    ];
    let mut headers: Vec<(String, String)> = Vec::new();
    for (name, value) in request_headers {
        let Ok(value) = value.to_str() else { continue };
        let key = format!("SKIFF_HEADER_{}", header_var(name.as_str()));
        match headers.iter_mut().find(|(k, _)| *k == key) {
            Some((_, existing)) => {
                existing.push_str(", ");
                existing.push_str(value);
            }
            None => headers.push((key, value.to_string())),
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

    #[tokio::test]
    async fn only_skiffs_own_or_allowed_volumes_are_mounted() {
        let engine = skiff_runtime::fake::FakeEngine::new();
        engine.add_volume("theirs", HashMap::new());
        engine.add_volume("allowed", HashMap::new());
        let mount = |name: &str| skiff_core::VolumeMount {
            name: name.to_string(),
            target: "/data".to_string(),
            read_only: false,
        };
        let allowed = ["allowed".to_string()];
        // A missing volume is created with skiff's labels, and then it is skiff's own.
        ensure_volumes(&engine, &[mount("fresh")], &allowed)
            .await
            .expect("created");
        assert_eq!(
            engine.volumes().get("fresh"),
            Some(&labels::for_volume("fresh"))
        );
        ensure_volumes(&engine, &[mount("fresh"), mount("allowed")], &allowed)
            .await
            .expect("skiff's own and an allowed one");
        match ensure_volumes(&engine, &[mount("fresh"), mount("theirs")], &allowed).await {
            Err(PlatformError::InvalidSpec(err)) => {
                assert_eq!(err.field, "volumes");
                assert!(err.message.contains("`theirs`"), "{}", err.message);
                assert!(
                    err.message.contains("--allow-volume theirs"),
                    "{}",
                    err.message
                );
            }
            other => panic!("a foreign volume must be refused: {other:?}"),
        }
        assert_eq!(engine.volumes().get("theirs"), Some(&HashMap::new()));
    }

    fn decode(frame: &[u8]) -> Vec<String> {
        frame[4..]
            .split(|b| *b == 0)
            .filter(|e| !e.is_empty())
            .map(|e| String::from_utf8_lossy(e).to_string())
            .collect()
    }

    #[test]
    fn call_metadata_follows_the_contract() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert("x-trace-id", HeaderValue::from_static("t1"));
        headers.append("accept", HeaderValue::from_static("a"));
        headers.append("accept", HeaderValue::from_static("b"));
        let id = Uuid::now_v7();
        let started = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .expect("date")
            .with_timezone(&Utc);
        let vars = decode(&call_frame(
            &Method::PUT,
            "/a/b",
            "x=1&y=2",
            &headers,
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
