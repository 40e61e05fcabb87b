//! What a user asks for when deploying a function ([`FunctionSpec`]) and its validated,
//! defaults-applied form ([`FunctionConfig`]).

use crate::units::{ByteSize, HumanDuration};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;
use utoipa::ToSchema;

/// Default memory limit of a function's container.
pub const DEFAULT_MEMORY: ByteSize = ByteSize::mib(256);
/// Default CPU quota, in CPUs.
pub const DEFAULT_CPUS: f64 = 1.0;
/// Default pids limit.
pub const DEFAULT_PIDS: u32 = 256;
/// Default size of the writable `/tmp`.
pub const DEFAULT_TMP_SIZE: ByteSize = ByteSize::mib(64);
/// Default call timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default port of an `http` instance.
pub const DEFAULT_PORT: u16 = 8080;
/// Default time an `http` instance may take to become ready.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Default calls served at once by one instance.
pub const DEFAULT_CONCURRENCY: u32 = 10;
/// Default most instances of a function.
pub const DEFAULT_MAX_INSTANCES: u32 = 10;
/// Default share of an instance's concurrency the autoscaler aims to use.
pub const DEFAULT_TARGET_UTILIZATION: f64 = 0.7;
/// Default idle time before an extra instance is stopped.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

const MIN_MEMORY: ByteSize = ByteSize::mib(6);
const MAX_MEMORY: ByteSize = ByteSize(64 << 30);
const MAX_CPUS: f64 = 256.0;
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// Most retries of a failed async call.
const MAX_RETRIES: u32 = 10;
/// Range of the oldest an async call may get.
const MIN_EVENT_AGE: Duration = Duration::from_secs(1);
const MAX_EVENT_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
const MAX_ENV_ENTRIES: usize = 256;
const MAX_ENV_VALUE: usize = 32 * 1024;
const MAX_VOLUMES: usize = 16;
/// Paths a volume may not be mounted on, nor below: the sandbox's own mounts.
const RESERVED_MOUNT_PATHS: [&str; 5] = ["/tmp", "/proc", "/dev", "/sys", "/.skiff"];

/// A validated function name: 1 to 64 ASCII letters, digits, `-` or `_`, starting with a
/// letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct FunctionName(String);

impl FunctionName {
    /// Checks `name` and wraps it.
    pub fn parse(name: &str) -> Result<Self, SpecError> {
        let ok_len = (1..=64).contains(&name.len());
        let ok_first = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
        let ok_chars = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if ok_len && ok_first && ok_chars {
            Ok(FunctionName(name.to_string()))
        } else {
            Err(SpecError::new(
                "name",
                format!("`{name}` is not a valid function name: use 1 to 64 letters, digits, `-` or `_`, starting with a letter or digit"),
            ))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FunctionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for FunctionName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        FunctionName::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// How skiff talks to a function's container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Contract {
    /// A fresh container per call: request body on stdin, response on stdout, log on stderr.
    #[default]
    Exec,
    /// A long-lived instance serving HTTP/1.1 on `$PORT`.
    Http,
    /// The AWS Lambda Runtime API.
    Lambda,
}

impl Contract {
    /// The contract's name as users write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Contract::Exec => "exec",
            Contract::Http => "http",
            Contract::Lambda => "lambda",
        }
    }
}

impl fmt::Display for Contract {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A function as a user describes it (the body of `PUT /v1/functions/{name}`, or a
/// `skiff.toml`). Every field but `image` is optional; [`FunctionSpec::validate`] applies the
/// defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec {
    /// The container image, as a reference the engine knows (`hello:1`, `repo/x@sha256:...`).
    pub image: String,
    /// How skiff talks to the container. Default `exec`.
    #[serde(default)]
    pub contract: Option<Contract>,
    /// Memory limit (`128Mi`, `1Gi` or bytes), with no extra swap. Default 256Mi.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "128Mi")]
    pub memory: Option<ByteSize>,
    /// CPU quota in CPUs (`0.5` is half a CPU). Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Most processes and threads the container may hold. Default 256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<u32>,
    /// Size of the writable tmpfs at `/tmp` (counts against memory). Default 64Mi, or the
    /// memory limit if that is smaller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "64Mi")]
    pub tmp_size: Option<ByteSize>,
    /// Longest a call may run (`10s`, `2m`, or seconds). Default 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "10s")]
    pub timeout: Option<HumanDuration>,
    /// Environment variables for the function.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Secrets, passed to the function as environment variables; their values are never
    /// returned by the API nor logged.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, String>,
    /// Port the instance serves HTTP on, passed as `$PORT` (`http` contract). Default 8080.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// A path that answers 2xx once an instance is ready (`http` contract). Default: ready
    /// as soon as the port accepts connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_path: Option<String>,
    /// Longest an instance may take to become ready (`http` contract). Default 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "30s")]
    pub startup_timeout: Option<HumanDuration>,
    /// Calls one instance serves at once (`http` contract). Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// Instances kept running even with no calls (`http` contract). Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_instances: Option<u32>,
    /// Most instances at once (`http` contract). Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_instances: Option<u32>,
    /// An instance beyond `min_instances` with no call for this long is stopped (`http`
    /// contract). Default 5m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "5m")]
    pub idle_timeout: Option<HumanDuration>,
    /// The autoscaler's stable window for this function (`http` contract); its panic window
    /// is a tenth of it. Default: the daemon's `--autoscale-window`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "60s")]
    pub autoscale_window: Option<HumanDuration>,
    /// Share of each instance's concurrency the autoscaler aims to use, 0.1 to 1 (`http`
    /// contract). Default 0.7.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_utilization: Option<f64>,
    /// The handler (`lambda` contract): passed as `_HANDLER` and as the container's command,
    /// as AWS does for images (e.g. `app.handler`). Default: the image's command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
    /// Retries of a failed async call after its first attempt, 0 to 10, with exponential
    /// backoff and jitter. Default: the daemon's `--async-max-attempts` less one (2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Oldest an async call may get, counted from when it was accepted: past it, the call
    /// is not attempted again and is `dead` with error type `expired`. 1s to 7d. Default:
    /// the daemon's `--async-max-event-age` (6h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "1h")]
    pub max_event_age: Option<HumanDuration>,
    /// Docker named volumes to mount, `NAME:/path` (read-write) or `NAME:/path:ro`. skiff
    /// creates a missing volume (labelled `skiff.managed=true`, `skiff.volume=NAME`) and
    /// never removes one. An existing volume without that label (one made with `docker
    /// volume create`) is refused unless the daemon allows it (`--allow-volume NAME`).
    /// Host paths are refused, and so are `/`, `/tmp`, `/proc`, `/dev` and `/sys` as
    /// targets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(example = json!(["voting-data:/data"]))]
    pub volumes: Vec<String>,
}

/// A named volume mounted in a function's containers: `name:/target` or `name:/target:ro`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VolumeMount {
    /// The Docker volume's name.
    pub name: String,
    /// Where it is mounted in the container (an absolute path).
    pub target: String,
    /// Whether it is mounted read-only.
    pub read_only: bool,
}

impl fmt::Display for VolumeMount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.target)?;
        if self.read_only {
            f.write_str(":ro")?;
        }
        Ok(())
    }
}

/// Checks that `name` is a Docker named volume's name (not a host path); the error says
/// what is wrong.
pub fn check_volume_name(name: &str) -> Result<(), String> {
    if name.starts_with(['/', '.', '~']) || name.contains('/') {
        return Err(format!(
            "`{name}` is a host path: only Docker named volumes can be mounted"
        ));
    }
    let valid_name = (2..=128).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !valid_name {
        return Err(format!(
            "`{name}` is not a volume name: use 2 to 128 letters, digits, `_`, `.` or `-`, starting with a letter or digit"
        ));
    }
    Ok(())
}

impl VolumeMount {
    /// Reads `NAME:/path[:ro|:rw]`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split(':').collect();
        let (name, target, mode) = match parts.as_slice() {
            [name, target] => (*name, *target, None),
            [name, target, mode] => (*name, *target, Some(*mode)),
            _ => {
                return Err(format!(
                    "`{text}` is not a volume: use NAME:/path or NAME:/path:ro"
                ))
            }
        };
        check_volume_name(name)?;
        let valid_path = target.starts_with('/')
            && target.len() <= 512
            && !target.chars().any(|c| c.is_whitespace() || c.is_control())
            && (target == "/"
                || target[1..]
                    .split('/')
                    .all(|part| !matches!(part, "" | "." | "..")));
        if !valid_path {
            return Err(format!(
                "`{target}` is not a mount path: use an absolute path such as /data, without `.`, `..` or `//`"
            ));
        }
        if target == "/" {
            return Err("a volume cannot be mounted over `/`".to_string());
        }
        if let Some(reserved) = RESERVED_MOUNT_PATHS
            .iter()
            .find(|r| target == **r || target.starts_with(&format!("{r}/")))
        {
            return Err(format!(
                "`{target}` is reserved: a volume cannot be mounted on or below {reserved}"
            ));
        }
        let read_only = match mode {
            None | Some("rw") => false,
            Some("ro") => true,
            Some(other) => {
                return Err(format!(
                    "`{other}` is not a mount mode: use ro (read-only) or rw (the default)"
                ))
            }
        };
        Ok(VolumeMount {
            name: name.to_string(),
            target: target.to_string(),
            read_only,
        })
    }
}

/// A spec that was refused: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    /// The field at fault, as written in the spec (`memory`, `env.PATH`, ...).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl SpecError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        SpecError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Resource limits of a function's containers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Resources {
    /// Memory limit in bytes (no extra swap).
    pub memory_bytes: u64,
    /// CPU quota in CPUs.
    pub cpus: f64,
    /// Pids limit.
    pub pids: u32,
    /// Size of the `/tmp` tmpfs in bytes.
    pub tmp_bytes: u64,
}

/// A validated function configuration with every default applied: what the platform runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionConfig {
    /// The image reference as the user gave it.
    pub image: String,
    /// The contract.
    pub contract: Contract,
    /// Resource limits.
    pub resources: Resources,
    /// Call timeout in milliseconds.
    pub timeout_ms: u64,
    /// Environment variables.
    pub env: BTreeMap<String, String>,
    /// Secrets (passed as environment variables).
    pub secrets: BTreeMap<String, String>,
    /// How instances are reached (`http` contract).
    #[serde(default)]
    pub http: HttpSettings,
    /// How many instances run (`http` and `lambda` contracts).
    #[serde(default)]
    pub scaling: Scaling,
    /// The handler (`lambda` contract).
    #[serde(default)]
    pub handler: Option<String>,
    /// Retries of a failed async call; `None`: the daemon's default.
    #[serde(default)]
    pub retries: Option<u32>,
    /// Oldest an async call may get, in milliseconds; `None`: the daemon's default.
    #[serde(default)]
    pub max_event_age_ms: Option<u64>,
    /// Named volumes mounted in every container.
    #[serde(default)]
    pub volumes: Vec<VolumeMount>,
}

/// How skiff reaches an `http` instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HttpSettings {
    /// Port the instance listens on.
    pub port: u16,
    /// Path that answers 2xx when ready; `None`: a TCP connect is enough.
    pub readiness_path: Option<String>,
    /// Longest an instance may take to become ready, in milliseconds.
    pub startup_timeout_ms: u64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            port: DEFAULT_PORT,
            readiness_path: None,
            startup_timeout_ms: DEFAULT_STARTUP_TIMEOUT.as_millis() as u64,
        }
    }
}

impl HttpSettings {
    /// The startup timeout.
    pub fn startup_timeout(&self) -> Duration {
        Duration::from_millis(self.startup_timeout_ms)
    }
}

/// How many instances of a function run, and how many calls each takes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Scaling {
    /// Calls one instance serves at once.
    pub concurrency: u32,
    /// Instances kept running with no calls.
    pub min_instances: u32,
    /// Most instances at once.
    pub max_instances: u32,
    /// Idle time after which an instance beyond the minimum is stopped, in milliseconds.
    pub idle_timeout_ms: u64,
    /// The autoscaler's stable window in milliseconds; `None`: the daemon's default.
    #[serde(default)]
    pub window_ms: Option<u64>,
    /// Share of each instance's concurrency the autoscaler aims to use.
    #[serde(default = "default_target_utilization")]
    pub target_utilization: f64,
}

fn default_target_utilization() -> f64 {
    DEFAULT_TARGET_UTILIZATION
}

impl Default for Scaling {
    fn default() -> Self {
        Scaling {
            concurrency: DEFAULT_CONCURRENCY,
            min_instances: 0,
            max_instances: DEFAULT_MAX_INSTANCES,
            idle_timeout_ms: DEFAULT_IDLE_TIMEOUT.as_millis() as u64,
            window_ms: None,
            target_utilization: DEFAULT_TARGET_UTILIZATION,
        }
    }
}

impl Scaling {
    /// The idle timeout.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }
}

impl FunctionConfig {
    /// A spec that validates back to this configuration (every field set), to change one
    /// setting and deploy again.
    pub fn to_spec(&self) -> FunctionSpec {
        let instances = self.contract != Contract::Exec;
        let http = self.contract == Contract::Http;
        FunctionSpec {
            image: self.image.clone(),
            contract: Some(self.contract),
            memory: Some(ByteSize(self.resources.memory_bytes)),
            cpus: Some(self.resources.cpus),
            pids: Some(self.resources.pids),
            tmp_size: Some(ByteSize(self.resources.tmp_bytes)),
            timeout: Some(HumanDuration(self.timeout())),
            env: self.env.clone(),
            secrets: self.secrets.clone(),
            port: http.then_some(self.http.port),
            readiness_path: self.http.readiness_path.clone().filter(|_| http),
            startup_timeout: instances.then(|| HumanDuration(self.http.startup_timeout())),
            concurrency: http.then_some(self.scaling.concurrency),
            min_instances: instances.then_some(self.scaling.min_instances),
            max_instances: instances.then_some(self.scaling.max_instances),
            idle_timeout: instances.then(|| HumanDuration(self.scaling.idle_timeout())),
            autoscale_window: self
                .scaling
                .window_ms
                .filter(|_| instances)
                .map(|ms| HumanDuration(Duration::from_millis(ms))),
            target_utilization: instances.then_some(self.scaling.target_utilization),
            handler: self.handler.clone(),
            retries: self.retries,
            max_event_age: self
                .max_event_age_ms
                .map(|ms| HumanDuration(Duration::from_millis(ms))),
            volumes: self.volumes.iter().map(ToString::to_string).collect(),
        }
    }

    /// The call timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

impl FunctionSpec {
    /// Checks every field and applies the defaults. The first problem found is returned,
    /// naming its field.
    pub fn validate(&self) -> Result<FunctionConfig, SpecError> {
        let image = self.image.trim();
        if image.is_empty() {
            return Err(SpecError::new("image", "is required"));
        }
        crate::syntax::check_image(image).map_err(|m| SpecError::new("image", m))?;
        let contract = self.contract.unwrap_or_default();
        if let Some(handler) = &self.handler {
            if contract != Contract::Lambda {
                return Err(SpecError::new(
                    "handler",
                    "applies to the `lambda` contract only",
                ));
            }
            if handler.is_empty()
                || handler.len() > 256
                || handler.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(SpecError::new(
                    "handler",
                    format!("`{handler}` is not a handler name"),
                ));
            }
        }
        if contract == Contract::Lambda {
            for (field, set) in [
                ("port", self.port.is_some()),
                ("readiness_path", self.readiness_path.is_some()),
            ] {
                if set {
                    return Err(SpecError::new(
                        field,
                        "does not apply to the `lambda` contract: instances talk to skiff's Runtime API",
                    ));
                }
            }
            if self.concurrency.is_some_and(|c| c != 1) {
                return Err(SpecError::new(
                    "concurrency",
                    "a `lambda` instance serves one event at a time: leave it unset or 1",
                ));
            }
        }
        let memory = self.memory.unwrap_or(DEFAULT_MEMORY);
        if memory < MIN_MEMORY || memory > MAX_MEMORY {
            return Err(SpecError::new(
                "memory",
                format!("{memory} is out of range: use {MIN_MEMORY} to {MAX_MEMORY}"),
            ));
        }
        let cpus = self.cpus.unwrap_or(DEFAULT_CPUS);
        if !cpus.is_finite() || !(0.01..=MAX_CPUS).contains(&cpus) {
            return Err(SpecError::new(
                "cpus",
                format!("{cpus} is out of range: use 0.01 to {MAX_CPUS}"),
            ));
        }
        let pids = self.pids.unwrap_or(DEFAULT_PIDS);
        if !(8..=65_536).contains(&pids) {
            return Err(SpecError::new(
                "pids",
                format!("{pids} is out of range: use 8 to 65536"),
            ));
        }
        // /tmp is charged to the memory limit: by default it is capped by it too.
        let tmp = self.tmp_size.unwrap_or(DEFAULT_TMP_SIZE.min(memory));
        if tmp < ByteSize::mib(1) || tmp > memory {
            return Err(SpecError::new(
                "tmp_size",
                format!("{tmp} is out of range: use 1Mi up to the memory limit ({memory})"),
            ));
        }
        let timeout = self.timeout.map(|t| t.0).unwrap_or(DEFAULT_TIMEOUT);
        if timeout < Duration::from_millis(100) || timeout > MAX_TIMEOUT {
            return Err(SpecError::new(
                "timeout",
                format!(
                    "{} is out of range: use 100ms to 1h",
                    HumanDuration(timeout)
                ),
            ));
        }
        check_vars("env", &self.env)?;
        check_vars("secrets", &self.secrets)?;
        if self.env.len() + self.secrets.len() > MAX_ENV_ENTRIES {
            return Err(SpecError::new(
                "env",
                format!("too many variables: at most {MAX_ENV_ENTRIES} env and secrets together"),
            ));
        }
        if let Some(key) = self.secrets.keys().find(|k| self.env.contains_key(*k)) {
            return Err(SpecError::new(
                format!("secrets.{key}"),
                "is also set in env; a name may be in only one of them",
            ));
        }
        let (http, scaling) = self.validate_instances(contract)?;
        if let Some(retries) = self.retries.filter(|r| *r > MAX_RETRIES) {
            return Err(SpecError::new(
                "retries",
                format!("{retries} is out of range: use 0 to {MAX_RETRIES}"),
            ));
        }
        let max_event_age = self.max_event_age.map(|d| d.0);
        if let Some(age) = max_event_age.filter(|a| *a < MIN_EVENT_AGE || *a > MAX_EVENT_AGE) {
            return Err(SpecError::new(
                "max_event_age",
                format!("{} is out of range: use 1s to 7d", HumanDuration(age)),
            ));
        }
        let volumes = self.validate_volumes()?;
        Ok(FunctionConfig {
            retries: self.retries,
            max_event_age_ms: max_event_age
                .map(|a| u64::try_from(a.as_millis()).unwrap_or(u64::MAX)),
            http,
            scaling,
            volumes,
            handler: self.handler.clone(),
            image: image.to_string(),
            contract,
            resources: Resources {
                memory_bytes: memory.bytes(),
                cpus,
                pids,
                tmp_bytes: tmp.bytes(),
            },
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            env: self.env.clone(),
            secrets: self.secrets.clone(),
        })
    }
}

impl FunctionSpec {
    /// The named volumes, checked: at most 16, one per mount path.
    fn validate_volumes(&self) -> Result<Vec<VolumeMount>, SpecError> {
        if self.volumes.len() > MAX_VOLUMES {
            return Err(SpecError::new(
                "volumes",
                format!("too many volumes: at most {MAX_VOLUMES}"),
            ));
        }
        let mut volumes: Vec<VolumeMount> = Vec::with_capacity(self.volumes.len());
        for (i, text) in self.volumes.iter().enumerate() {
            let field = format!("volumes[{i}]");
            let volume = VolumeMount::parse(text.trim()).map_err(|m| SpecError::new(&field, m))?;
            if volumes.iter().any(|v| v.target == volume.target) {
                return Err(SpecError::new(
                    field,
                    format!("{} is already mounted by another volume", volume.target),
                ));
            }
            volumes.push(volume);
        }
        Ok(volumes)
    }

    /// The settings of long-lived instances; refused on contracts that have none.
    fn validate_instances(&self, contract: Contract) -> Result<(HttpSettings, Scaling), SpecError> {
        if contract == Contract::Exec {
            let given = [
                ("port", self.port.is_some()),
                ("readiness_path", self.readiness_path.is_some()),
                ("startup_timeout", self.startup_timeout.is_some()),
                ("concurrency", self.concurrency.is_some()),
                ("min_instances", self.min_instances.is_some()),
                ("max_instances", self.max_instances.is_some()),
                ("idle_timeout", self.idle_timeout.is_some()),
                ("autoscale_window", self.autoscale_window.is_some()),
                ("target_utilization", self.target_utilization.is_some()),
            ];
            if let Some((field, _)) = given.iter().find(|(_, set)| *set) {
                return Err(SpecError::new(
                    *field,
                    "applies to long-lived instances; the `exec` contract runs a fresh container per call",
                ));
            }
            return Ok((HttpSettings::default(), Scaling::default()));
        }
        let port = self.port.unwrap_or(DEFAULT_PORT);
        if port == 0 {
            return Err(SpecError::new("port", "0 is not a port: use 1 to 65535"));
        }
        if let Some(path) = &self.readiness_path {
            crate::syntax::check_readiness_path(path)
                .map_err(|m| SpecError::new("readiness_path", m))?;
        }
        let startup = self
            .startup_timeout
            .map_or(DEFAULT_STARTUP_TIMEOUT, |d| d.0);
        if startup < Duration::from_millis(100) || startup > Duration::from_secs(600) {
            return Err(SpecError::new(
                "startup_timeout",
                format!(
                    "{} is out of range: use 100ms to 10m",
                    HumanDuration(startup)
                ),
            ));
        }
        let concurrency = match contract {
            Contract::Lambda => 1,
            _ => self.concurrency.unwrap_or(DEFAULT_CONCURRENCY),
        };
        if !(1..=1000).contains(&concurrency) {
            return Err(SpecError::new(
                "concurrency",
                format!("{concurrency} is out of range: use 1 to 1000"),
            ));
        }
        let max = self.max_instances.unwrap_or(DEFAULT_MAX_INSTANCES);
        if !(1..=1000).contains(&max) {
            return Err(SpecError::new(
                "max_instances",
                format!("{max} is out of range: use 1 to 1000"),
            ));
        }
        let min = self.min_instances.unwrap_or(0);
        if min > max {
            return Err(SpecError::new(
                "min_instances",
                format!("{min} is more than max_instances ({max})"),
            ));
        }
        let idle = self.idle_timeout.map_or(DEFAULT_IDLE_TIMEOUT, |d| d.0);
        if idle < Duration::from_millis(100) || idle > Duration::from_secs(7 * 24 * 3600) {
            return Err(SpecError::new(
                "idle_timeout",
                format!(
                    "{} is out of range: use 100ms to 7 days",
                    HumanDuration(idle)
                ),
            ));
        }
        let window = self.autoscale_window.map(|d| d.0);
        if let Some(window) = window {
            if window < Duration::from_secs(1) || window > Duration::from_secs(3600) {
                return Err(SpecError::new(
                    "autoscale_window",
                    format!("{} is out of range: use 1s to 1h", HumanDuration(window)),
                ));
            }
        }
        let target = self
            .target_utilization
            .unwrap_or(DEFAULT_TARGET_UTILIZATION);
        if !target.is_finite() || !(0.1..=1.0).contains(&target) {
            return Err(SpecError::new(
                "target_utilization",
                format!("{target} is out of range: use 0.1 to 1"),
            ));
        }
        Ok((
            HttpSettings {
                port,
                readiness_path: self.readiness_path.clone(),
                startup_timeout_ms: startup.as_millis() as u64,
            },
            Scaling {
                concurrency,
                min_instances: min,
                max_instances: max,
                idle_timeout_ms: idle.as_millis() as u64,
                window_ms: window.map(|w| w.as_millis() as u64),
                target_utilization: target,
            },
        ))
    }
}

fn check_vars(field: &str, vars: &BTreeMap<String, String>) -> Result<(), SpecError> {
    for (key, value) in vars {
        let valid_name = key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            return Err(SpecError::new(
                format!("{field}.{key}"),
                "is not a valid variable name: use letters, digits and `_`, not starting with a digit",
            ));
        }
        if key.starts_with("SKIFF_") {
            return Err(SpecError::new(
                format!("{field}.{key}"),
                "names starting with SKIFF_ are reserved for call metadata",
            ));
        }
        if value.contains('\0') {
            return Err(SpecError::new(
                format!("{field}.{key}"),
                "must not contain a NUL byte",
            ));
        }
        if value.len() > MAX_ENV_VALUE {
            return Err(SpecError::new(
                format!("{field}.{key}"),
                format!("is longer than {MAX_ENV_VALUE} bytes"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Result<FunctionSpec, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn a_minimal_spec_gets_the_documented_defaults() {
        let config = spec(r#"{"image":"hello:1"}"#)
            .expect("parses")
            .validate()
            .expect("valid");
        assert_eq!(config.image, "hello:1");
        assert_eq!(config.contract, Contract::Exec);
        assert_eq!(config.resources.memory_bytes, 256 << 20);
        assert_eq!(config.resources.cpus, 1.0);
        assert_eq!(config.resources.pids, 256);
        assert_eq!(config.resources.tmp_bytes, 64 << 20);
        assert_eq!(config.timeout(), Duration::from_secs(30));
    }

    #[test]
    fn every_field_is_read() {
        let config = spec(
            r#"{"image":"hello:1","contract":"exec","memory":"128Mi","cpus":0.5,"pids":64,
                "tmp_size":"16Mi","timeout":"10s","env":{"GREETING":"hi"},"secrets":{"TOKEN":"s3cret"}}"#,
        )
        .expect("parses")
        .validate()
        .expect("valid");
        assert_eq!(config.resources.memory_bytes, 128 << 20);
        assert_eq!(config.resources.cpus, 0.5);
        assert_eq!(config.resources.pids, 64);
        assert_eq!(config.resources.tmp_bytes, 16 << 20);
        assert_eq!(config.timeout(), Duration::from_secs(10));
        assert_eq!(config.env.get("GREETING").map(String::as_str), Some("hi"));
        assert_eq!(
            config.secrets.get("TOKEN").map(String::as_str),
            Some("s3cret")
        );
    }

    #[test]
    fn http_functions_get_instance_defaults_and_their_settings() {
        let config = spec(r#"{"image":"x","contract":"http"}"#)
            .expect("parses")
            .validate()
            .expect("valid");
        assert_eq!(config.http, HttpSettings::default());
        assert_eq!(config.http.port, 8080);
        assert_eq!(config.scaling, Scaling::default());
        let config = spec(
            r#"{"image":"x","contract":"http","port":9000,"readiness_path":"/ready","concurrency":4,
                "min_instances":1,"max_instances":3,"idle_timeout":"2s","startup_timeout":"5s"}"#,
        )
        .expect("parses")
        .validate()
        .expect("valid");
        assert_eq!(config.http.port, 9000);
        assert_eq!(config.http.readiness_path.as_deref(), Some("/ready"));
        assert_eq!(config.http.startup_timeout(), Duration::from_secs(5));
        assert_eq!(
            config.scaling,
            Scaling {
                concurrency: 4,
                min_instances: 1,
                max_instances: 3,
                idle_timeout_ms: 2000,
                window_ms: None,
                target_utilization: 0.7,
            }
        );
    }

    #[test]
    fn the_autoscaler_is_configurable_per_function() {
        let config = spec(
            r#"{"image":"x","contract":"http","autoscale_window":"10s","target_utilization":0.5}"#,
        )
        .expect("parses")
        .validate()
        .expect("valid");
        assert_eq!(config.scaling.window_ms, Some(10_000));
        assert_eq!(config.scaling.target_utilization, 0.5);
        assert_eq!(
            field_of(r#"{"image":"x","contract":"http","autoscale_window":"10ms"}"#),
            "autoscale_window"
        );
        assert_eq!(
            field_of(r#"{"image":"x","contract":"http","target_utilization":1.5}"#),
            "target_utilization"
        );
        assert_eq!(
            field_of(r#"{"image":"x","target_utilization":0.5}"#),
            "target_utilization"
        );
    }

    #[test]
    fn a_config_turns_back_into_the_same_config() {
        for json in [
            r#"{"image":"x","memory":"64Mi","env":{"A":"1"},"secrets":{"S":"2"}}"#,
            r#"{"image":"x","contract":"http","port":9000,"readiness_path":"/r","concurrency":3,"autoscale_window":"5s"}"#,
            r#"{"image":"x","contract":"lambda","handler":"app.handler","max_instances":4}"#,
        ] {
            let config = spec(json).expect("parses").validate().expect("valid");
            assert_eq!(
                config.to_spec().validate().expect("still valid"),
                config,
                "{json}"
            );
        }
    }

    #[test]
    fn configs_stored_before_instances_existed_still_read() {
        let old = r#"{"image":"x","contract":"exec","resources":{"memory_bytes":1,"cpus":1.0,"pids":8,"tmp_bytes":1},
                     "timeout_ms":1000,"env":{},"secrets":{}}"#;
        let config: FunctionConfig = serde_json::from_str(old).expect("old config");
        assert_eq!(config.scaling, Scaling::default());
    }

    #[test]
    fn tmp_defaults_to_at_most_the_memory_limit() {
        let config = spec(r#"{"image":"x","memory":"32Mi"}"#)
            .expect("parses")
            .validate()
            .expect("valid");
        assert_eq!(config.resources.tmp_bytes, 32 << 20);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = spec(r#"{"image":"hello:1","memroy":"1Gi"}"#).expect_err("unknown field");
        assert!(err.to_string().contains("memroy"), "{err}");
    }

    fn field_of(json: &str) -> String {
        spec(json)
            .expect("parses")
            .validate()
            .expect_err("invalid")
            .field
    }

    #[test]
    fn each_invalid_field_is_named() {
        assert_eq!(field_of(r#"{"image":""}"#), "image");
        assert_eq!(field_of(r#"{"image":"a b"}"#), "image");
        assert_eq!(field_of(r#"{"image":"UPPER:1"}"#), "image");
        assert_eq!(field_of(r#"{"image":"a::b"}"#), "image");
        assert_eq!(
            field_of(r#"{"image":"x","handler":"app.handler"}"#),
            "handler"
        );
        assert_eq!(
            field_of(r#"{"image":"x","contract":"lambda","port":8080}"#),
            "port"
        );
        assert_eq!(
            field_of(r#"{"image":"x","contract":"lambda","concurrency":4}"#),
            "concurrency"
        );
        assert_eq!(field_of(r#"{"image":"x","concurrency":4}"#), "concurrency");
        assert_eq!(
            field_of(r#"{"image":"x","contract":"http","port":0}"#),
            "port"
        );
        for path in ["ready", "//evil.example/x", "/a b", "/x#y"] {
            assert_eq!(
                field_of(&format!(
                    r#"{{"image":"x","contract":"http","readiness_path":"{path}"}}"#
                )),
                "readiness_path",
                "{path}"
            );
        }
        assert_eq!(
            field_of(r#"{"image":"x","contract":"http","concurrency":0}"#),
            "concurrency"
        );
        assert_eq!(
            field_of(r#"{"image":"x","contract":"http","max_instances":0}"#),
            "max_instances"
        );
        assert_eq!(
            field_of(r#"{"image":"x","contract":"http","min_instances":3,"max_instances":2}"#),
            "min_instances"
        );
        assert_eq!(
            field_of(r#"{"image":"x","contract":"http","idle_timeout":"1ms"}"#),
            "idle_timeout"
        );
        assert_eq!(
            field_of(r#"{"image":"x","contract":"http","startup_timeout":"1h"}"#),
            "startup_timeout"
        );
        assert_eq!(field_of(r#"{"image":"x","memory":"1Mi"}"#), "memory");
        assert_eq!(field_of(r#"{"image":"x","memory":"1Ti"}"#), "memory");
        assert_eq!(field_of(r#"{"image":"x","cpus":0}"#), "cpus");
        assert_eq!(field_of(r#"{"image":"x","pids":1}"#), "pids");
        assert_eq!(
            field_of(r#"{"image":"x","memory":"64Mi","tmp_size":"128Mi"}"#),
            "tmp_size"
        );
        assert_eq!(field_of(r#"{"image":"x","tmp_size":"0"}"#), "tmp_size");
        assert_eq!(field_of(r#"{"image":"x","timeout":"2h"}"#), "timeout");
        assert_eq!(field_of(r#"{"image":"x","timeout":"1ms"}"#), "timeout");
        assert_eq!(field_of(r#"{"image":"x","env":{"1X":"v"}}"#), "env.1X");
        assert_eq!(
            field_of(r#"{"image":"x","env":{"SKIFF_X":"v"}}"#),
            "env.SKIFF_X"
        );
        assert_eq!(
            field_of(r#"{"image":"x","env":{"A":"v"},"secrets":{"A":"w"}}"#),
            "secrets.A"
        );
    }

    #[test]
    fn named_volumes_are_read_with_their_mode() {
        let config = spec(r#"{"image":"x","volumes":["voting-data:/data","cache.v1:/var/cache/app:ro","logs:/logs:rw"]}"#)
            .expect("parses")
            .validate()
            .expect("valid");
        assert_eq!(
            config.volumes,
            vec![
                VolumeMount {
                    name: "voting-data".into(),
                    target: "/data".into(),
                    read_only: false
                },
                VolumeMount {
                    name: "cache.v1".into(),
                    target: "/var/cache/app".into(),
                    read_only: true
                },
                VolumeMount {
                    name: "logs".into(),
                    target: "/logs".into(),
                    read_only: false
                },
            ]
        );
        assert_eq!(
            config.to_spec().volumes,
            vec![
                "voting-data:/data",
                "cache.v1:/var/cache/app:ro",
                "logs:/logs"
            ]
        );
        assert_eq!(config.to_spec().validate().expect("valid"), config);
    }

    #[test]
    fn host_paths_reserved_targets_and_bad_modes_are_refused() {
        let message_of = |volume: &str| {
            let err = FunctionSpec {
                image: "x".into(),
                volumes: vec![volume.to_string()],
                ..Default::default()
            }
            .validate()
            .expect_err(volume);
            assert_eq!(err.field, "volumes[0]", "{volume}");
            err.message
        };
        for path in [
            "/srv/data:/data",
            "./data:/data",
            "~/data:/data",
            "a/b:/data",
        ] {
            assert!(message_of(path).contains("host path"), "{path}");
        }
        for reserved in [
            "v1:/",
            "v1:/tmp",
            "v1:/tmp/x",
            "v1:/proc",
            "v1:/dev/shm",
            "v1:/sys",
            "v1:/.skiff",
        ] {
            let message = message_of(reserved);
            assert!(
                message.contains("reserved") || message.contains("over `/`"),
                "{reserved}: {message}"
            );
        }
        assert!(message_of("v1:/data:rx").contains("mount mode"));
        assert!(message_of("v1:/data:ro:x").contains("not a volume"));
        assert!(message_of("v1").contains("not a volume"));
        assert!(message_of("v1:data").contains("mount path"));
        assert!(message_of("v1:/a/../b").contains("mount path"));
        assert!(message_of("v1:/a//b").contains("mount path"));
        assert!(message_of("x:/data").contains("volume name"));
        assert!(message_of("-x:/data").contains("volume name"));
        // One mount per path.
        let err = spec(r#"{"image":"x","volumes":["a1:/data","b1:/data:ro"]}"#)
            .expect("parses")
            .validate()
            .expect_err("twice /data");
        assert_eq!(err.field, "volumes[1]");
        // /tmp's neighbours are fine.
        assert!(VolumeMount::parse("v1:/tmpdata").is_ok());
    }

    #[test]
    fn configs_stored_before_volumes_existed_still_read() {
        let old = r#"{"image":"x","contract":"exec","resources":{"memory_bytes":1,"cpus":1.0,"pids":8,"tmp_bytes":1},
                     "timeout_ms":1000,"env":{},"secrets":{}}"#;
        let config: FunctionConfig = serde_json::from_str(old).expect("old config");
        assert!(config.volumes.is_empty());
    }

    #[test]
    fn function_names_are_checked() {
        assert!(FunctionName::parse("hello").is_ok());
        assert!(FunctionName::parse("Hello_World-2").is_ok());
        for bad in ["", "-x", "a/b", "a b", "ü", &"x".repeat(65)] {
            let err = FunctionName::parse(bad).expect_err(bad);
            assert_eq!(err.field, "name");
        }
    }

    #[test]
    fn the_async_retry_policy_is_checked_and_round_trips() {
        let config = spec(r#"{"image":"x","retries":0,"max_event_age":"90s"}"#)
            .expect("parses")
            .validate()
            .expect("valid");
        assert_eq!(config.retries, Some(0));
        assert_eq!(config.max_event_age_ms, Some(90_000));
        assert_eq!(config.to_spec().validate().expect("valid again"), config);
        let defaults = spec(r#"{"image":"x"}"#)
            .expect("parses")
            .validate()
            .expect("valid");
        assert_eq!((defaults.retries, defaults.max_event_age_ms), (None, None));
        assert_eq!(field_of(r#"{"image":"x","retries":11}"#), "retries");
        assert_eq!(
            field_of(r#"{"image":"x","max_event_age":"500ms"}"#),
            "max_event_age"
        );
        assert_eq!(
            field_of(r#"{"image":"x","max_event_age":"8d"}"#),
            "max_event_age"
        );
    }
}
