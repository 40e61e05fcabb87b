//! The platform's settings, with their defaults.

use std::path::PathBuf;
use std::time::Duration;

/// How the platform runs. [`PlatformConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct PlatformConfig {
    /// Where skiff keeps its state (the store, the `skiff-init` binary).
    pub data_dir: PathBuf,
    /// Most calls running at once, across all functions.
    pub max_concurrent_calls: usize,
    /// Most calls waiting for a slot; beyond this, calls are refused (HTTP 429).
    pub max_queued_calls: usize,
    /// Largest response a function may write; past it the call fails and the container is
    /// killed.
    pub max_response_bytes: usize,
    /// Most bytes of a call's log (stderr) kept in its record.
    pub max_log_bytes: usize,
    /// How long a call may wait for a slot and a container before its code receives it,
    /// for functions that set no `max_wait` (the start budget, apart from the timeout).
    pub max_wait: Duration,
    /// Containers kept created and started ahead of calls, per `exec` function, at the
    /// least: more are prepared as calls arrive faster, up to `exec_prewarm_max`.
    pub exec_prewarm: usize,
    /// Most containers kept prepared per `exec` function, however fast calls arrive.
    pub exec_prewarm_max: usize,
    /// A function not called for this long has its prepared containers removed.
    pub exec_idle_timeout: Duration,
    /// The Docker network functions join (created if missing).
    pub network: String,
    /// Open files limit inside function containers.
    pub nofile: u64,
    /// Largest request body of a call; larger ones are refused (HTTP 413).
    pub max_request_bytes: usize,
    /// Keep the last instance of an idle `http` function paused rather than stopped, so that
    /// its next call resumes it in milliseconds (it keeps its memory meanwhile).
    pub keep_paused: bool,
    /// A paused instance unused for this long is removed.
    pub paused_ttl: Duration,
    /// The autoscaler's stable window (its panic window is a tenth of it).
    pub autoscale_window: Duration,
    /// How often serving instances are health-checked.
    pub health_interval: Duration,
    /// The AWS region reported to Lambda functions and in ARNs.
    pub region: String,
    /// Port of the Lambda Runtime API on the functions' network gateway (0: any free one).
    pub runtime_api_port: u16,
    /// Largest request body of an async call.
    pub max_async_request_bytes: usize,
    /// Attempts of an async call before it is dead (1 + retries).
    pub async_max_attempts: u32,
    /// Delay before the first retry of an async call (doubling after each).
    pub async_retry_base: Duration,
    /// Oldest an async call may get before it is given up, for functions that set no
    /// `max_event_age`.
    pub async_max_event_age: Duration,
    /// Most bytes of an async call's response kept as its result.
    pub async_result_bytes: usize,
    /// Calls that ended longer ago than this are deleted, with their logs, payloads and
    /// results (queued and running calls are kept whatever their age).
    pub retention: Duration,
    /// The least and most container creates, starts and removes run at once; the
    /// limit adapts between them to the engine's latency.
    pub engine_concurrency: (usize, usize),
    /// Most function-to-function hops a call may be from an outside call (then 508).
    pub max_call_depth: u32,
    /// Whether this daemon runs async calls from the queue. A daemon that does not still
    /// takes calls and queues async ones, for daemons sharing its store to run.
    pub dispatch: bool,
    /// Address ranges callbacks may reach even though they are refused by default
    /// (loopback, link-local, the functions' network, the daemon's own listeners).
    pub callback_allow: Vec<ipnet::IpNet>,
    /// A PEM file of CA certificates that https callbacks trust besides the system's.
    pub callback_ca: Option<std::path::PathBuf>,
    /// The addresses the daemon's API listens on (callbacks may not reach them).
    pub listeners: Vec<std::net::SocketAddr>,
    /// Existing volumes that functions may mount although skiff did not create them (they
    /// lack the `skiff.managed=true` label); any other such volume is refused.
    pub allowed_volumes: Vec<String>,
    /// How long a daemon sharing its store may go without a heartbeat before another one
    /// takes its calls and containers over (it beats every fifth of it).
    pub lease: Duration,
    /// Credentials for the registries images are pulled from and pushed to.
    pub registries: crate::registries::Registries,
    /// Where `/metrics` reads the memory allocator's figures from, if the binary's
    /// allocator keeps them.
    pub heap: Option<crate::metrics::HeapProbe>,
}

impl PlatformConfig {
    /// The defaults, keeping state in `data_dir`.
    pub fn new(data_dir: PathBuf) -> Self {
        PlatformConfig {
            data_dir,
            max_concurrent_calls: 64,
            max_queued_calls: 1024,
            max_response_bytes: 6 << 20,
            max_log_bytes: 64 << 10,
            max_wait: Duration::from_secs(60),
            exec_prewarm: 1,
            exec_prewarm_max: 8,
            exec_idle_timeout: Duration::from_secs(300),
            network: "skiff-functions".to_string(),
            nofile: 4096,
            max_request_bytes: 6 << 20,
            keep_paused: true,
            paused_ttl: Duration::from_secs(3600),
            autoscale_window: Duration::from_secs(60),
            health_interval: Duration::from_secs(10),
            region: "us-east-1".to_string(),
            runtime_api_port: 0,
            max_async_request_bytes: 256 << 10,
            async_max_attempts: 3,
            async_retry_base: Duration::from_secs(1),
            async_max_event_age: Duration::from_secs(6 * 3600),
            async_result_bytes: 256 << 10,
            max_call_depth: 16,
            dispatch: true,
            engine_concurrency: (2, 32),
            retention: Duration::from_secs(7 * 24 * 3600),
            callback_allow: Vec::new(),
            callback_ca: None,
            listeners: Vec::new(),
            allowed_volumes: Vec::new(),
            lease: Duration::from_secs(15),
            registries: crate::registries::Registries::none(),
            heap: None,
        }
    }
}
