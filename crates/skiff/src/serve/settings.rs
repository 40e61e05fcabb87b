//! The settings of `skiff serve`: flags, environment variables (`SKIFF_*`), a TOML config
//! file (`--config`) and built-in defaults, in falling precedence, resolved into
//! [`Settings`].

use anyhow::{Context, Result};
use serde::Deserialize;
use skiff_core::{ByteSize, HumanDuration};
use skiff_gateway::GatewayConfig;
use skiff_invoker::PlatformConfig;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the functions run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// One Docker engine (the one `DOCKER_HOST` names).
    #[default]
    Docker,
    /// A Docker Swarm, through the manager node `DOCKER_HOST` names: every instance is a
    /// service, placed by Swarm on any node.
    Swarm,
}

/// Flags of `skiff serve`; each can also be set by its environment variable or in the
/// config file (same name, with `_` for `-`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// A TOML file with any of the settings below.
    #[arg(long, env = "SKIFF_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "SKIFF_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Where skiff keeps its state [default: $XDG_DATA_HOME/skiff or ~/.local/share/skiff].
    #[arg(long, env = "SKIFF_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where functions run: `docker`, the engine `DOCKER_HOST` names, or `swarm`, a Docker
    /// Swarm through the manager node `DOCKER_HOST` names [default: docker].
    #[arg(long, env = "SKIFF_ENGINE", value_name = "KIND", value_enum)]
    pub engine: Option<EngineKind>,
    /// With `--engine swarm`: skiff's own image as the nodes pull it (pinned by digest),
    /// which carries `skiff-init` to them for exec functions [default: the image of the
    /// container skiff runs in, when it runs in one on the manager; without either, exec
    /// functions are refused].
    #[arg(long, env = "SKIFF_SWARM_IMAGE", value_name = "IMAGE")]
    pub swarm_image: Option<String>,
    /// Where skiff keeps its records: a PostgreSQL URL (`postgres://user:password@host/db`),
    /// which several daemons may share [default: SQLite, `skiff.db` in the data directory].
    #[arg(long, env = "SKIFF_STORE", value_name = "URL")]
    pub store: Option<String>,
    /// With a shared store: how long a daemon may go without a heartbeat before another
    /// takes its calls and containers over; it beats every fifth of it [default: 15s].
    #[arg(long, env = "SKIFF_LEASE", value_name = "DURATION")]
    pub lease: Option<HumanDuration>,
    /// Registry credentials for pulls and pushes: a Docker client configuration file (its
    /// `auths`, as `docker login` writes them) [default: none]
    #[arg(long, env = "SKIFF_REGISTRY_AUTH", value_name = "FILE")]
    pub registry_auth: Option<PathBuf>,
    /// A file holding the first admin token's secret (`skt_` and at least 32 characters),
    /// such as a Docker secret: used instead of a random one when the store has no token
    /// yet, and ignored once it has [default: a random token, written to `admin.token` in
    /// the data directory].
    #[arg(long, env = "SKIFF_ADMIN_TOKEN_FILE", value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Most calls running at once, across all functions [default: 64].
    #[arg(long, env = "SKIFF_MAX_CONCURRENT_CALLS", value_name = "N")]
    pub max_concurrent_calls: Option<usize>,
    /// Most calls waiting for a slot before new ones get 429 [default: 1024].
    #[arg(long, env = "SKIFF_MAX_QUEUED_CALLS", value_name = "N")]
    pub max_queued_calls: Option<usize>,
    /// Largest request body of a synchronous call [default: 6Mi].
    #[arg(long, env = "SKIFF_MAX_REQUEST_SIZE", value_name = "SIZE")]
    pub max_request_size: Option<ByteSize>,
    /// Largest response a function may write [default: 6Mi].
    #[arg(long, env = "SKIFF_MAX_RESPONSE_SIZE", value_name = "SIZE")]
    pub max_response_size: Option<ByteSize>,
    /// Most bytes of a call's log kept [default: 64Ki].
    #[arg(long, env = "SKIFF_MAX_LOG_SIZE", value_name = "SIZE")]
    pub max_log_size: Option<ByteSize>,
    /// How long a call may wait for a slot and a container before it runs, for functions
    /// that set no max_wait; then 429 (an async call goes back to the queue) [default: 60s].
    #[arg(long, env = "SKIFF_MAX_WAIT", value_name = "DURATION")]
    pub max_wait: Option<HumanDuration>,
    /// Containers prepared ahead of calls, per exec function, at the least [default: 1].
    #[arg(long, env = "SKIFF_EXEC_PREWARM", value_name = "N")]
    pub exec_prewarm: Option<usize>,
    /// Most containers prepared per exec function as calls arrive faster [default: 8].
    #[arg(long, env = "SKIFF_EXEC_PREWARM_MAX", value_name = "N")]
    pub exec_prewarm_max: Option<usize>,
    /// Remove a function's prepared containers after it is idle this long [default: 5m].
    #[arg(long, env = "SKIFF_EXEC_IDLE_TIMEOUT", value_name = "DURATION")]
    pub exec_idle_timeout: Option<HumanDuration>,
    /// Delete call records, logs, async payloads and results this long after the call
    /// ended [default: 7d].
    #[arg(long, env = "SKIFF_RETENTION", value_name = "DURATION")]
    pub retention: Option<HumanDuration>,
    /// On SIGTERM/SIGINT, how long calls in flight may finish [default: 30s].
    #[arg(long, env = "SKIFF_SHUTDOWN_GRACE", value_name = "DURATION")]
    pub shutdown_grace: Option<HumanDuration>,
    /// Docker network for function containers [default: skiff-functions].
    #[arg(long, env = "SKIFF_NETWORK", value_name = "NAME")]
    pub network: Option<String>,
    /// Keep the last instance of an idle http function paused, so its next call resumes it
    /// in milliseconds [default: true].
    #[arg(long, env = "SKIFF_KEEP_PAUSED", value_name = "BOOL")]
    pub keep_paused: Option<bool>,
    /// Remove a paused instance unused for this long [default: 1h].
    #[arg(long, env = "SKIFF_PAUSED_TTL", value_name = "DURATION")]
    pub paused_ttl: Option<HumanDuration>,
    /// The autoscaler's stable window; its panic window is a tenth of it [default: 60s].
    #[arg(long, env = "SKIFF_AUTOSCALE_WINDOW", value_name = "DURATION")]
    pub autoscale_window: Option<HumanDuration>,
    /// How often serving http instances are health-checked; 3 failures in a row replace one
    /// [default: 10s].
    #[arg(long, env = "SKIFF_HEALTH_INTERVAL", value_name = "DURATION")]
    pub health_interval: Option<HumanDuration>,
    /// Attempts of an async call before it is dead (1 + retries) [default: 3].
    #[arg(long, env = "SKIFF_ASYNC_MAX_ATTEMPTS", value_name = "N")]
    pub async_max_attempts: Option<u32>,
    /// Delay before the first retry of an async call; it doubles after each [default: 1s].
    #[arg(long, env = "SKIFF_ASYNC_RETRY_DELAY", value_name = "DURATION")]
    pub async_retry_delay: Option<HumanDuration>,
    /// Oldest an async call may get before it is given up (`dead`, error type `expired`),
    /// for functions that set no `max_event_age` [default: 6h].
    #[arg(long, env = "SKIFF_ASYNC_MAX_EVENT_AGE", value_name = "DURATION")]
    pub async_max_event_age: Option<HumanDuration>,
    /// Most bytes of an async call's response kept as its result [default: 256Ki].
    #[arg(long, env = "SKIFF_ASYNC_RESULT_BYTES", value_name = "SIZE")]
    pub async_result_bytes: Option<ByteSize>,
    /// Most function-to-function hops a call may be from an outside call; deeper calls
    /// get 508 `loop_detected` [default: 16].
    #[arg(long, env = "SKIFF_MAX_CALL_DEPTH", value_name = "N")]
    pub max_call_depth: Option<u32>,
    /// Run async calls from the queue; with false this daemon takes calls and queues async
    /// ones, and daemons sharing its store run them [default: true].
    #[arg(long, env = "SKIFF_DISPATCH", value_name = "BOOL")]
    pub dispatch: Option<bool>,
    /// Longest a request to the container engine may take before it fails (the wait for
    /// a container's exit is bounded by its call instead) [default: 30s].
    #[arg(long, env = "SKIFF_ENGINE_TIMEOUT", value_name = "DURATION")]
    pub engine_timeout: Option<HumanDuration>,
    /// Least container creates, starts and removes run at once; the limit adapts to
    /// the engine's latency between this and the maximum [default: 2].
    #[arg(long, env = "SKIFF_ENGINE_CONCURRENCY_MIN", value_name = "N")]
    pub engine_concurrency_min: Option<usize>,
    /// Most container creates, starts and removes run at once [default: 32].
    #[arg(long, env = "SKIFF_ENGINE_CONCURRENCY_MAX", value_name = "N")]
    pub engine_concurrency_max: Option<usize>,
    /// An address range (CIDR, e.g. 127.0.0.1/32) that async callbacks may reach although
    /// it is refused by default: loopback, link-local, the functions' network, this
    /// daemon's listeners. Repeatable; comma-separated in the environment.
    #[arg(
        long,
        env = "SKIFF_CALLBACK_ALLOW",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    pub callback_allow: Vec<ipnet::IpNet>,
    /// An existing Docker volume that functions may mount although skiff did not create it
    /// (repeatable; comma-separated in the environment). Any other volume without the
    /// `skiff.managed=true` label is refused [default: none].
    #[arg(
        long = "allow-volume",
        env = "SKIFF_ALLOW_VOLUME",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub allow_volume: Vec<String>,
    /// Serve the API over TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(
        long,
        env = "SKIFF_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(
        long,
        env = "SKIFF_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// A PEM file of CA certificates that https:// callbacks trust besides the system's.
    #[arg(long, env = "SKIFF_CALLBACK_CA", value_name = "FILE")]
    pub callback_ca: Option<PathBuf>,
    /// Let every request do everything, without a token. Refused on an address other than
    /// loopback unless `--insecure` is given too.
    #[arg(long, env = "SKIFF_NO_AUTH")]
    pub no_auth: bool,
    /// Allow `--no-auth` on an address other than loopback: anyone who reaches it can run
    /// any image on this Docker engine.
    #[arg(long, env = "SKIFF_INSECURE")]
    pub insecure: bool,
    /// Serve `/metrics` without a token (for a Prometheus scraper).
    #[arg(long, env = "SKIFF_OPEN_METRICS")]
    pub open_metrics: bool,
}

/// The config file: the same settings as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    engine: Option<EngineKind>,
    swarm_image: Option<String>,
    store: Option<String>,
    lease: Option<HumanDuration>,
    registry_auth: Option<PathBuf>,
    admin_token_file: Option<PathBuf>,
    max_concurrent_calls: Option<usize>,
    max_queued_calls: Option<usize>,
    max_request_size: Option<ByteSize>,
    max_response_size: Option<ByteSize>,
    max_log_size: Option<ByteSize>,
    max_wait: Option<HumanDuration>,
    exec_prewarm: Option<usize>,
    exec_prewarm_max: Option<usize>,
    exec_idle_timeout: Option<HumanDuration>,
    retention: Option<HumanDuration>,
    shutdown_grace: Option<HumanDuration>,
    network: Option<String>,
    keep_paused: Option<bool>,
    paused_ttl: Option<HumanDuration>,
    autoscale_window: Option<HumanDuration>,
    health_interval: Option<HumanDuration>,
    async_max_attempts: Option<u32>,
    async_retry_delay: Option<HumanDuration>,
    async_max_event_age: Option<HumanDuration>,
    async_result_bytes: Option<ByteSize>,
    max_call_depth: Option<u32>,
    dispatch: Option<bool>,
    engine_timeout: Option<HumanDuration>,
    engine_concurrency_min: Option<usize>,
    engine_concurrency_max: Option<usize>,
    callback_allow: Option<Vec<ipnet::IpNet>>,
    allow_volume: Option<Vec<String>>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    callback_ca: Option<PathBuf>,
    no_auth: Option<bool>,
    insecure: Option<bool>,
    open_metrics: Option<bool>,
}

/// Everything the daemon needs, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    /// Where functions run.
    pub engine: EngineKind,
    /// skiff's own image on a swarm, if given.
    pub swarm_image: Option<String>,
    /// The store's URL; `None`: SQLite in the data directory.
    pub store: Option<String>,
    pub platform: PlatformConfig,
    pub gateway: GatewayConfig,
    pub shutdown_grace: Duration,
    pub engine_timeout: Duration,
    /// The file with the first admin token's secret, if the operator gives one.
    pub admin_token_file: Option<PathBuf>,
    /// The certificate chain and private key of the API's TLS, when it has TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
}

fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("skiff");
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/skiff"),
        None => PathBuf::from("/var/lib/skiff"),
    }
}

fn read_file_config(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    toml::from_str(&text)
        .with_context(|| format!("the config file {} is not valid", path.display()))
}

fn to_usize(size: ByteSize) -> usize {
    usize::try_from(size.bytes()).unwrap_or(usize::MAX)
}

impl ServeArgs {
    /// Merges flags and environment (already in `self`) over the config file and defaults.
    pub fn resolve(self) -> Result<Settings> {
        let file = match &self.config {
            Some(path) => read_file_config(path)?,
            None => FileConfig::default(),
        };
        let data_dir = self
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(default_data_dir);
        let mut platform = PlatformConfig::new(data_dir);
        if let Some(n) = self.max_concurrent_calls.or(file.max_concurrent_calls) {
            anyhow::ensure!(n > 0, "max-concurrent-calls must be at least 1");
            platform.max_concurrent_calls = n;
        }
        if let Some(n) = self.max_queued_calls.or(file.max_queued_calls) {
            platform.max_queued_calls = n;
        }
        if let Some(size) = self.max_response_size.or(file.max_response_size) {
            platform.max_response_bytes = to_usize(size);
        }
        if let Some(size) = self.max_log_size.or(file.max_log_size) {
            platform.max_log_bytes = to_usize(size);
        }
        if let Some(d) = self.max_wait.or(file.max_wait) {
            anyhow::ensure!(
                d.0 >= Duration::from_millis(100),
                "max-wait must be at least 100ms"
            );
            platform.max_wait = d.0;
        }
        if let Some(n) = self.exec_prewarm.or(file.exec_prewarm) {
            platform.exec_prewarm = n;
        }
        if let Some(n) = self.exec_prewarm_max.or(file.exec_prewarm_max) {
            platform.exec_prewarm_max = n;
        }
        anyhow::ensure!(
            platform.exec_prewarm <= platform.exec_prewarm_max,
            "exec-prewarm ({}) must not be more than exec-prewarm-max ({})",
            platform.exec_prewarm,
            platform.exec_prewarm_max
        );
        if let Some(d) = self.exec_idle_timeout.or(file.exec_idle_timeout) {
            platform.exec_idle_timeout = d.0;
        }
        if let Some(d) = self.retention.or(file.retention) {
            anyhow::ensure!(
                d.0 >= Duration::from_secs(1),
                "retention must be at least 1s"
            );
            platform.retention = d.0;
        }
        if let Some(network) = self.network.or(file.network) {
            platform.network = network;
        }
        if let Some(size) = self.max_request_size.or(file.max_request_size) {
            platform.max_request_bytes = to_usize(size);
        }
        if let Some(keep) = self.keep_paused.or(file.keep_paused) {
            platform.keep_paused = keep;
        }
        if let Some(d) = self.paused_ttl.or(file.paused_ttl) {
            platform.paused_ttl = d.0;
        }
        if let Some(d) = self.autoscale_window.or(file.autoscale_window) {
            anyhow::ensure!(
                d.0 >= Duration::from_secs(1),
                "autoscale-window must be at least 1s"
            );
            platform.autoscale_window = d.0;
        }
        if let Some(d) = self.health_interval.or(file.health_interval) {
            anyhow::ensure!(
                d.0 >= Duration::from_millis(100),
                "health-interval must be at least 100ms"
            );
            platform.health_interval = d.0;
        }
        if let Some(n) = self.async_max_attempts.or(file.async_max_attempts) {
            anyhow::ensure!(n >= 1, "async-max-attempts must be at least 1");
            platform.async_max_attempts = n;
        }
        if let Some(d) = self.async_retry_delay.or(file.async_retry_delay) {
            platform.async_retry_base = d.0;
        }
        if let Some(d) = self.async_max_event_age.or(file.async_max_event_age) {
            anyhow::ensure!(
                d.0 >= Duration::from_secs(1),
                "async-max-event-age must be at least 1s"
            );
            platform.async_max_event_age = d.0;
        }
        if let Some(n) = self.async_result_bytes.or(file.async_result_bytes) {
            platform.async_result_bytes = usize::try_from(n.bytes()).unwrap_or(usize::MAX);
        }
        platform.callback_allow = if self.callback_allow.is_empty() {
            file.callback_allow.unwrap_or_default()
        } else {
            self.callback_allow
        };
        if let Some(n) = self.max_call_depth.or(file.max_call_depth) {
            anyhow::ensure!(n >= 1, "max-call-depth must be at least 1");
            platform.max_call_depth = n;
        }
        if let Some(dispatch) = self.dispatch.or(file.dispatch) {
            platform.dispatch = dispatch;
        }
        let (mut floor, mut ceiling) = platform.engine_concurrency;
        if let Some(n) = self.engine_concurrency_min.or(file.engine_concurrency_min) {
            anyhow::ensure!(n >= 1, "engine-concurrency-min must be at least 1");
            floor = n;
        }
        if let Some(n) = self.engine_concurrency_max.or(file.engine_concurrency_max) {
            ceiling = n;
        }
        anyhow::ensure!(
            floor <= ceiling,
            "engine-concurrency-min ({floor}) is above engine-concurrency-max ({ceiling})"
        );
        platform.engine_concurrency = (floor, ceiling);
        // Flags (or the environment) replace the file's list, as for every other setting.
        let allowed = if self.allow_volume.is_empty() {
            file.allow_volume.unwrap_or_default()
        } else {
            self.allow_volume
        };
        for name in &allowed {
            skiff_core::spec::check_volume_name(name)
                .map_err(|message| anyhow::anyhow!("allow-volume: {message}"))?;
        }
        platform.allowed_volumes = allowed;
        platform.callback_ca = self.callback_ca.or(file.callback_ca);
        let tls = match (
            self.tls_cert.or(file.tls_cert),
            self.tls_key.or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => anyhow::bail!("tls-cert and tls-key go together: give both or neither"),
        };
        let gateway = GatewayConfig {
            auth: !(self.no_auth || file.no_auth.unwrap_or(false)),
            open_metrics: self.open_metrics || file.open_metrics.unwrap_or(false),
        };
        let insecure = self.insecure || file.insecure.unwrap_or(false);
        if let Some(d) = self.lease.or(file.lease) {
            anyhow::ensure!(d.0 >= Duration::from_secs(1), "lease must be at least 1s");
            platform.lease = d.0;
        }
        // Only credentials the operator hands the daemon: not `docker login`'s by default.
        platform.heap = crate::heap::probe();
        platform.registries = match self.registry_auth.or(file.registry_auth) {
            Some(path) => skiff_invoker::registries::Registries::load(&path)?,
            None => skiff_invoker::registries::Registries::none(),
        };
        let store = self.store.or(file.store).filter(|url| !url.is_empty());
        if let Some(url) = &store {
            anyhow::ensure!(
                ["postgres://", "postgresql://"]
                    .iter()
                    .any(|scheme| url.starts_with(scheme)),
                "store must be a postgres:// URL (leave it out for SQLite in the data directory)"
            );
        }
        let listen = self
            .listen
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        anyhow::ensure!(
            gateway.auth || insecure || listen.ip().is_loopback(),
            "refusing to listen on {listen} without authentication: anyone who reaches it \
             could run any image on this Docker engine; drop --no-auth, or add --insecure"
        );
        Ok(Settings {
            engine: self.engine.or(file.engine).unwrap_or_default(),
            swarm_image: self.swarm_image.or(file.swarm_image),
            admin_token_file: self.admin_token_file.or(file.admin_token_file),
            tls,
            store,
            listen,
            platform,
            gateway,
            shutdown_grace: self
                .shutdown_grace
                .or(file.shutdown_grace)
                .map_or(Duration::from_secs(30), |d| d.0),
            engine_timeout: match self.engine_timeout.or(file.engine_timeout) {
                Some(d) => {
                    anyhow::ensure!(
                        d.0 >= Duration::from_secs(1),
                        "engine-timeout must be at least 1s"
                    );
                    d.0
                }
                None => skiff_runtime::docker::DEFAULT_TIMEOUT,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("skiff.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\nmax_concurrent_calls = 8\nexec_idle_timeout = \"1m\"\nmax_request_size = \"1Mi\"\n",
        )
        .expect("write");
        let args = ServeArgs {
            config: Some(file),
            max_concurrent_calls: Some(4),
            data_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let settings = args.resolve().expect("valid");
        assert_eq!(settings.listen, "127.0.0.1:9000".parse().expect("addr"));
        assert_eq!(settings.platform.max_concurrent_calls, 4);
        assert_eq!(settings.platform.exec_idle_timeout, Duration::from_secs(60));
        assert_eq!(settings.platform.max_request_bytes, 1 << 20);
        assert_eq!(settings.platform.max_queued_calls, 1024);
        assert_eq!(settings.shutdown_grace, Duration::from_secs(30));
    }

    #[test]
    fn allowed_volumes_come_from_the_flags_or_else_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("skiff.toml");
        std::fs::write(&file, "allow_volume = [\"shared-data\", \"media\"]\n").expect("write");
        let args = ServeArgs {
            config: Some(file.clone()),
            data_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let settings = args.resolve().expect("valid");
        assert_eq!(settings.platform.allowed_volumes, ["shared-data", "media"]);
        let args = ServeArgs {
            config: Some(file),
            data_dir: Some(dir.path().to_path_buf()),
            allow_volume: vec!["other".into()],
            ..Default::default()
        };
        let settings = args.resolve().expect("valid");
        assert_eq!(settings.platform.allowed_volumes, ["other"]);
        let err = ServeArgs {
            data_dir: Some(dir.path().to_path_buf()),
            allow_volume: vec!["/etc".into()],
            ..Default::default()
        }
        .resolve()
        .expect_err("a host path");
        assert!(format!("{err:#}").contains("host path"), "{err:#}");
        assert!(ServeArgs::default()
            .resolve()
            .expect("defaults")
            .platform
            .allowed_volumes
            .is_empty());
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("skiff.toml");
        std::fs::write(&file, "max_concurent_calls = 8\n").expect("write");
        let err = ServeArgs {
            config: Some(file),
            ..Default::default()
        }
        .resolve()
        .expect_err("typo");
        assert!(
            format!("{err:#}").contains("max_concurent_calls"),
            "{err:#}"
        );
    }

    #[test]
    fn the_store_is_sqlite_unless_a_postgres_url_is_given() {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = || ServeArgs {
            data_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        assert_eq!(base().resolve().expect("defaults").store, None);
        let file = dir.path().join("skiff.toml");
        std::fs::write(&file, "store = \"postgres://skiff@db-a/skiff\"\n").expect("write");
        let from_file = ServeArgs {
            config: Some(file.clone()),
            ..base()
        };
        assert_eq!(
            from_file.resolve().expect("valid").store.as_deref(),
            Some("postgres://skiff@db-a/skiff")
        );
        let flag = ServeArgs {
            config: Some(file),
            store: Some("postgresql://skiff@db-b/skiff".into()),
            ..base()
        };
        assert_eq!(
            flag.resolve().expect("valid").store.as_deref(),
            Some("postgresql://skiff@db-b/skiff")
        );
        let err = ServeArgs {
            store: Some("mysql://db/skiff".into()),
            ..base()
        }
        .resolve()
        .expect_err("not PostgreSQL");
        assert!(format!("{err:#}").contains("postgres://"), "{err:#}");
    }
}
