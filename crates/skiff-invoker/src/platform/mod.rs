//! [`Platform`]: the one entry point of every transport, and a thin one.
//!
//! It admits calls (registry lookup, limits, call ids, deadlines: `admission.rs`) and hands
//! them to the contract drivers ([`crate::invoke`]); it deploys, updates and deletes
//! functions (`functions.rs`), checks credentials and keeps the audit log and quotas
//! (`access.rs`), reads call records (`calls.rs`) and logs and stats (`logs.rs`), and runs its background
//! loops and its shutdown (`lifecycle.rs`). Start-up is here and in `setup.rs`. The async
//! dispatcher and the triggers are types of their own, which reach the platform only
//! through the narrow [`Invoker`] interface.

mod access;
mod admission;
mod calls;
mod cluster;
mod functions;
mod images;
mod lifecycle;
mod logs;
mod security;
mod setup;
mod sync;

pub(crate) use access::QuotaReservation;
pub use images::{ImageSteps, IMAGE_IDLE};
pub use security::{AccessKey, DEFAULT_NAMESPACE};

use crate::callback::Callbacks;
use crate::calls::{CallLog, InFlight};
use crate::config::PlatformConfig;
use crate::destinations::CallbackPolicy;
use crate::dispatcher::{Dispatcher, Unsettled};
use crate::error::PlatformError;
use crate::exec::{ExecDriver, ExecSettings};
use crate::fds::{FdBudget, FDS_PER_CALL};
use crate::invoke::{Contracts, InvokeOutcome, InvokeRequest, Invoker};
use crate::lambda::LambdaRegistry;
use crate::limiter::Limiter;
use crate::logs::LogSink;
use crate::pool::{InstanceManager, InstanceSettings};
use crate::queue::{AsyncPolicy, Enqueuer};
use crate::recorder::Recorder;
use crate::registry::{Functions, Targets};
use crate::running::RunningCalls;
use crate::token::{Caller, TokenError, TokenKey};
use crate::triggers::Triggers;
use chrono::Utc;
use skiff_core::Function;
use skiff_runtime::ContainerEngine;
use skiff_store::Store;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The platform: functions, calls, containers. Create it with [`Platform::start`], share it
/// in an `Arc`, stop it with [`Platform::shutdown`].
#[derive(Debug)]
pub struct Platform {
    /// The platform itself, for the tasks and types it hands itself to.
    me: Weak<Platform>,
    config: PlatformConfig,
    store: Store,
    engine: Arc<dyn ContainerEngine>,
    /// The engine without the gate: for removing the containers of a daemon taken over,
    /// which must not wait behind this daemon's own creates.
    ungated: Arc<dyn ContainerEngine>,
    daemon_id: String,
    functions: Arc<Functions>,
    /// Serializes deploys, deletes, scaling and trigger changes.
    deploys: tokio::sync::Mutex<()>,
    limiter: Arc<Limiter>,
    fds: FdBudget,
    contracts: Arc<Contracts>,
    policy: AsyncPolicy,
    /// Wakes the async dispatcher when a call is queued.
    queued: Arc<Notify>,
    enqueuer: Enqueuer,
    callback_policy: Arc<CallbackPolicy>,
    triggers: Arc<Triggers>,
    tokens: Arc<TokenKey>,
    running: Arc<RunningCalls>,
    runtime_listener: parking_lot::Mutex<Option<tokio::net::TcpListener>>,
    tracker: TaskTracker,
    cancel: CancellationToken,
    accepting: Arc<AtomicBool>,
    in_flight: Arc<InFlight>,
    /// The last engine probe's error; `None` while the engine answers.
    engine_problem: parking_lot::Mutex<Option<String>>,
    /// Whether the store no longer counts this daemon alive (taken over past its lease):
    /// the dispatcher claims nothing meanwhile.
    taken_over: Arc<AtomicBool>,
    /// The queued calls the dispatcher is running.
    unsettled: Arc<Unsettled>,
    /// Bounds the heavy engine operations.
    gate: Arc<crate::engine::Gate>,
    /// Containers a previous run left behind that are still being removed.
    leftovers: Arc<AtomicUsize>,
    /// Output, line by line, to followers and (instances') to the store.
    logs: LogSink,
    /// The namespaces' quotas and what their calls hold on this daemon.
    quotas: Arc<access::Quotas>,
}

impl Platform {
    /// Sets the platform up on `store` and `engine`: installs `skiff-init`, finds the
    /// containers a previous run of this daemon left behind (removed by a background task),
    /// prepares the functions' network, marks calls that run left unfinished as
    /// interrupted, loads the functions, and starts the background tasks.
    pub async fn start(
        config: PlatformConfig,
        store: Store,
        engine: Arc<dyn ContainerEngine>,
    ) -> Result<Arc<Platform>, PlatformError> {
        let daemon_id = store.daemon_id().await?;
        // Every heavy engine operation from here on goes through one adaptive gate.
        let ungated = engine.clone();
        let (floor, ceiling) = config.engine_concurrency;
        let gate = crate::engine::Gate::new(floor.max(4).min(ceiling), floor, ceiling);
        let engine: Arc<dyn ContainerEngine> =
            Arc::new(crate::engine::GatedEngine::new(engine, gate.clone()));
        let bin = config.data_dir.join("bin");
        let init_path = skiff_runtime::init::install(&bin).map_err(|e| PlatformError::Setup {
            what: "installing skiff-init",
            message: format!("{}: {e}", bin.display()),
        })?;
        // Listed before this run creates any container: every one is a leftover of a
        // previous run. They are removed in the background, once the platform serves.
        let mut leftovers = setup::containers_of(&*engine, &daemon_id).await?;
        let network = setup::isolated_network(&*engine, &config.network, &mut leftovers).await?;
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
        let functions = Arc::new(Functions::new(
            setup::load_functions(&store, &*engine, &config.allowed_volumes).await?,
        ));

        let quotas = Arc::new(access::Quotas::default());
        quotas.set_all(store.quotas().await?);
        let tokens = Arc::new(TokenKey::generate().map_err(|e| PlatformError::Setup {
            what: "drawing the key of invoke tokens",
            message: e.to_string(),
        })?);
        let tracker = TaskTracker::new();
        let cancel = CancellationToken::new();
        let fds = FdBudget::new();
        let logs = LogSink::start(store.clone(), &tracker);
        let exec = ExecDriver::new(
            engine.clone(),
            ExecSettings {
                daemon_id: daemon_id.clone(),
                init_path,
                network: Some(network.id.clone()),
                nofile: config.nofile,
                prewarm: config.exec_prewarm,
                idle_timeout: config.exec_idle_timeout,
                prewarm_max: config.exec_prewarm_max,
                max_response_bytes: config.max_response_bytes,
                max_log_bytes: config.max_log_bytes,
                tokens: tokens.clone(),
                fds: fds.clone(),
                logs: logs.clone(),
            },
            cancel.clone(),
        );
        let client = crate::proxy::client();
        // The Runtime API listens where function containers reach the host, and nowhere else.
        let gateway = network
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
                network: Some(network.id.clone()),
                nofile: config.nofile,
                max_queued: config.max_queued_calls,
                // Where the engine cannot pause, the last idle instance stops instead.
                keep_paused: config.keep_paused && engine.capabilities().pause,
                paused_ttl: config.paused_ttl,
                autoscale_window: config.autoscale_window,
                tokens: tokens.clone(),
                logs: logs.clone(),
            },
            cancel.clone(),
            client.clone(),
            lambda.clone(),
        );
        let recorder = Recorder::start(store.clone(), &tracker);
        let metrics = crate::metrics::Metrics::new();
        let metrics = Arc::new(match config.heap {
            Some(probe) => metrics.with_heap(probe),
            None => metrics,
        });
        let limiter = Arc::new(Limiter::new(
            config.max_concurrent_calls,
            config.max_queued_calls,
        ));
        let accepting = Arc::new(AtomicBool::new(true));
        let contracts = Arc::new(Contracts {
            engine: engine.clone(),
            targets: Targets {
                api_url: format!("http://{runtime_api}"),
                runtime_api,
                region: config.region.clone(),
            },
            functions: functions.clone(),
            exec,
            instances,
            lambda,
            client,
            log: CallLog::new(recorder.clone(), metrics.clone()),
            store: store.clone(),
            limiter: limiter.clone(),
            accepting: accepting.clone(),
            tracker: tracker.clone(),
            max_request_bytes: config.max_request_bytes,
            max_response_bytes: config.max_response_bytes,
        });
        let callback_policy = Arc::new(CallbackPolicy::new(
            config.callback_allow.clone(),
            network.subnets.clone(),
            network.gateway,
            &config.listeners,
        ));
        let callback_tls =
            crate::tls::client_config(config.callback_ca.as_deref()).map_err(|e| {
                PlatformError::Setup {
                    what: "the TLS configuration of callbacks",
                    message: e.to_string(),
                }
            })?;
        let callbacks = Callbacks::start(
            store.clone(),
            callback_policy.clone(),
            Arc::new(callback_tls),
            &tracker,
            cancel.clone(),
        );
        let policy = AsyncPolicy::new(&config);
        let queued = Arc::new(Notify::new());
        let triggers = Triggers::new(
            store.clone(),
            policy,
            metrics,
            queued.clone(),
            tracker.clone(),
            cancel.clone(),
        );
        let platform = Arc::new_cyclic(|me| Platform {
            me: me.clone(),
            enqueuer: Enqueuer::start(store.clone(), &tracker, cancel.clone()),
            limiter,
            fds,
            contracts,
            policy,
            queued,
            callback_policy,
            triggers,
            tokens,
            running: Arc::new(RunningCalls::default()),
            runtime_listener: parking_lot::Mutex::new(Some(runtime_listener)),
            accepting,
            in_flight: Arc::new(InFlight::default()),
            engine_problem: parking_lot::Mutex::new(None),
            taken_over: Arc::new(AtomicBool::new(false)),
            unsettled: Arc::new(Unsettled::default()),
            gate,
            leftovers: Arc::new(AtomicUsize::new(leftovers.len())),
            logs,
            quotas,
            deploys: tokio::sync::Mutex::new(()),
            functions,
            daemon_id,
            engine,
            ungated,
            store,
            config,
            tracker,
            cancel,
        });
        for entry in platform.functions.all() {
            if entry.refused.is_some() {
                continue;
            }
            if let Some(target) = platform.contracts.targets.instance(&entry.function) {
                platform.contracts.instances.set_target(Arc::new(target));
            }
        }
        if !leftovers.is_empty() {
            tracing::info!(
                containers = leftovers.len(),
                "removing the containers a previous run left behind"
            );
            platform.tracker.spawn(setup::remove_leftovers(
                platform.engine.clone(),
                leftovers,
                platform.leftovers.clone(),
                platform.cancel.clone(),
            ));
        }
        platform.first_heartbeat().await?;
        platform.spawn_background();
        platform.spawn_heartbeat();
        platform.spawn_sync().await?;
        if platform.config.dispatch {
            Arc::new(Dispatcher {
                store: platform.store.clone(),
                invoker: platform.clone(),
                recorder,
                callbacks,
                policy: platform.policy,
                wakeup: platform.queued.clone(),
                max_running: platform.config.max_concurrent_calls,
                unsettled: platform.unsettled.clone(),
                taken_over: platform.taken_over.clone(),
                results: crate::dispatcher::results_writer(
                    platform.store.clone(),
                    &platform.tracker,
                    platform.cancel.clone(),
                ),
            })
            .spawn(&platform.tracker, platform.cancel.clone());
        } else {
            tracing::info!("this daemon runs no async calls (--dispatch false): daemons sharing its store run them");
        }
        platform.triggers.start(platform.clone()).await?;
        Ok(platform)
    }

    /// The platform as the types it hands itself to hold it. (It lives as long as anyone
    /// calls its methods.)
    fn me(&self) -> Arc<Platform> {
        match self.me.upgrade() {
            Some(me) => me,
            // `self` is borrowed from an `Arc<Platform>`, which is alive.
            None => unreachable!("the platform is used after it was dropped"),
        }
    }

    /// This daemon's id, found on the `skiff.daemon` label of its containers.
    pub fn daemon_id(&self) -> &str {
        &self.daemon_id
    }

    /// The configuration in force.
    pub fn config(&self) -> &PlatformConfig {
        &self.config
    }

    /// How many containers a previous run left behind are still being removed (`None` once
    /// all are gone). The daemon serves meanwhile; `/readyz` says it is starting.
    pub fn leftovers(&self) -> Option<usize> {
        match self.leftovers.load(Ordering::Acquire) {
            0 => None,
            n => Some(n),
        }
    }

    /// Whether new calls are taken (false once shutdown has begun).
    pub fn is_accepting(&self) -> bool {
        self.accepting.load(Ordering::Acquire)
    }

    /// Whether the store no longer counts this daemon alive: another daemon took its calls
    /// and containers over after it was silent past its lease.
    pub fn is_taken_over(&self) -> bool {
        self.taken_over.load(Ordering::Acquire)
    }

    /// Calls running now and calls waiting for a slot.
    pub fn load(&self) -> (usize, usize) {
        (self.limiter.running(), self.limiter.queued())
    }

    /// The ARN skiff gives a function, in AWS's shape.
    pub fn function_arn(&self, name: &str) -> String {
        self.contracts.targets.function_arn(name)
    }

    /// The Runtime API's state, for the gateway's Runtime API routes.
    pub fn lambda_registry(&self) -> &Arc<LambdaRegistry> {
        &self.contracts.lambda
    }

    /// The listener for the Runtime API (on the functions' network gateway), once: the
    /// caller serves it.
    pub fn take_runtime_listener(&self) -> Option<tokio::net::TcpListener> {
        self.runtime_listener.lock().take()
    }

    /// Where instances reach the Runtime API.
    pub fn runtime_api_address(&self) -> SocketAddr {
        self.contracts.targets.runtime_api
    }

    /// The URL of the function API, as function containers reach it (`SKIFF_API_URL`): the
    /// Runtime API's listener, on the functions' network gateway.
    pub fn function_api_url(&self) -> String {
        self.contracts.targets.api_url.clone()
    }

    /// The function container a bearer token of the function API was minted for.
    pub fn verify_token(&self, token: &str) -> Result<Caller, TokenError> {
        self.tokens.verify(token)
    }
}

#[async_trait::async_trait]
impl Invoker for Platform {
    async fn invoke(
        &self,
        function: &str,
        request: InvokeRequest,
    ) -> Result<InvokeOutcome, PlatformError> {
        Platform::invoke(self, function, request).await
    }

    fn function(&self, name: &str) -> Option<Function> {
        self.functions.get(name).map(|e| e.function.clone())
    }

    fn is_accepting(&self) -> bool {
        Platform::is_accepting(self)
    }

    fn has_room(&self) -> bool {
        self.fds.admits(FDS_PER_CALL).is_ok()
    }

    fn capacities(&self) -> Vec<(String, usize)> {
        self.functions
            .all()
            .iter()
            .filter_map(|entry| {
                let function = &entry.function;
                let capacity = function.config.capacity()?;
                Some((function.name.to_string(), capacity))
            })
            .collect()
    }
}
