//! What a user asks for when deploying a function ([`FunctionSpec`]) and its validated,
//! defaults-applied form ([`FunctionConfig`]).
//!
//! [`FunctionSpec::validate`] checks the spec area by area, each area in its own module with
//! its validated type and defaults: `resources` (memory, CPUs, pids, `/tmp`, timeout), `env`
//! (environment and secrets), `lambda` (the handler), `http` (how instances are reached),
//! `scaling` (how many instances, how many calls each), `async_calls` (the retry policy)
//! and `volumes`. The syntax of image references and readiness paths is checked by
//! [`crate::syntax`]. Every bound is checked by the one helper in `range`.

mod async_calls;
mod env;
mod http;
mod lambda;
mod name;
mod range;
mod resources;
mod scaling;
mod volumes;

pub use http::{HttpSettings, DEFAULT_PORT, DEFAULT_STARTUP_TIMEOUT};
pub use name::FunctionName;
pub use resources::{
    Resources, DEFAULT_CPUS, DEFAULT_MEMORY, DEFAULT_PIDS, DEFAULT_TIMEOUT, DEFAULT_TMP_SIZE,
};
pub use scaling::{
    Scaling, DEFAULT_CONCURRENCY, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_INSTANCES,
    DEFAULT_TARGET_UTILIZATION,
};
pub use volumes::{check_volume_name, VolumeMount};

use crate::units::{ByteSize, HumanDuration};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;
use utoipa::ToSchema;

/// The fields of a spec that only long-lived instances (the `http` and `lambda` contracts)
/// take, in the order they are checked.
pub const INSTANCE_FIELDS: [&str; 9] = [
    "port",
    "readiness_path",
    "startup_timeout",
    "concurrency",
    "min_instances",
    "max_instances",
    "idle_timeout",
    "autoscale_window",
    "target_utilization",
];

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
    #[schema(min_length = 1, example = "hello:1")]
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
    /// Longest a call may wait for a slot and a container before its code receives it (its
    /// start budget, apart from `timeout`); past it a sync caller gets 429 `overloaded` and
    /// an async call goes back to the queue. Default: the daemon's `--max-wait`, 60s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "60s")]
    pub max_wait: Option<HumanDuration>,
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
    /// Whether anyone may call the function on its public route (`/fn/NAME`) without a
    /// credential. Default `false`: a call needs a token with the `invoke` scope in the
    /// function's namespace, or one of the function's invoke keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<bool>,
    /// The functions (of its own namespace) this function may call through the function
    /// API with its `SKIFF_TOKEN`. Default: any function of its namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callees: Option<Vec<String>>,
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
    /// Start budget in milliseconds; `None`: the daemon's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wait_ms: Option<u64>,
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
    /// Callable by anyone on its public route.
    #[serde(default)]
    pub public: bool,
    /// The only functions (names in its namespace) it may call through the function API;
    /// `None`: any of its namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callees: Option<Vec<String>>,
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
            max_wait: self
                .max_wait_ms
                .map(|ms| HumanDuration(Duration::from_millis(ms))),
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
            public: Some(self.public),
            callees: self.callees.clone(),
        }
    }

    /// The call timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Most calls the function's instances serve at once (`concurrency` times
    /// `max_instances`); `None` for `exec`, whose calls each get a container of their own.
    pub fn capacity(&self) -> Option<usize> {
        (self.contract != Contract::Exec).then(|| {
            (self.scaling.concurrency as usize).saturating_mul(self.scaling.max_instances as usize)
        })
    }

    /// The function's own start budget, if it sets one.
    pub fn max_wait(&self) -> Option<Duration> {
        self.max_wait_ms.map(Duration::from_millis)
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
        lambda::check(self, contract)?;
        let resources = resources::validate(self)?;
        let timeout = resources::timeout(self)?;
        let max_wait = resources::max_wait(self)?;
        env::check(&self.env, &self.secrets)?;
        let (http, scaling) = self.validate_instances(contract)?;
        let policy = async_calls::validate(self)?;
        let volumes = volumes::validate(&self.volumes)?;
        let callees = match &self.callees {
            None => None,
            Some(names) => {
                let mut callees = Vec::with_capacity(names.len());
                for (i, name) in names.iter().enumerate() {
                    let name = FunctionName::local(name)
                        .map_err(|e| SpecError::new(format!("callees[{i}]"), e.message))?;
                    callees.push(name.as_str().to_string());
                }
                callees.sort();
                callees.dedup();
                Some(callees)
            }
        };
        Ok(FunctionConfig {
            public: self.public.unwrap_or(false),
            callees,
            retries: policy.retries,
            max_event_age_ms: policy.max_event_age_ms,
            http,
            scaling,
            volumes,
            handler: self.handler.clone(),
            image: image.to_string(),
            contract,
            resources,
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            max_wait_ms: max_wait.map(|w| u64::try_from(w.as_millis()).unwrap_or(u64::MAX)),
            env: self.env.clone(),
            secrets: self.secrets.clone(),
        })
    }

    /// The first of [`INSTANCE_FIELDS`] this spec sets, if any.
    fn first_instance_field(&self) -> Option<&'static str> {
        // In the order of INSTANCE_FIELDS.
        let set = [
            self.port.is_some(),
            self.readiness_path.is_some(),
            self.startup_timeout.is_some(),
            self.concurrency.is_some(),
            self.min_instances.is_some(),
            self.max_instances.is_some(),
            self.idle_timeout.is_some(),
            self.autoscale_window.is_some(),
            self.target_utilization.is_some(),
        ];
        INSTANCE_FIELDS
            .into_iter()
            .zip(set)
            .find_map(|(field, set)| set.then_some(field))
    }

    /// The settings of long-lived instances; refused on contracts that have none.
    fn validate_instances(&self, contract: Contract) -> Result<(HttpSettings, Scaling), SpecError> {
        if contract == Contract::Exec {
            if let Some(field) = self.first_instance_field() {
                return Err(SpecError::new(
                    field,
                    "applies to long-lived instances; the `exec` contract runs a fresh container per call",
                ));
            }
            return Ok((HttpSettings::default(), Scaling::default()));
        }
        Ok((http::validate(self)?, scaling::validate(self, contract)?))
    }
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

    #[test]
    fn the_start_budget_is_optional_bounded_and_kept_apart_from_the_timeout() {
        let config = spec(r#"{"image":"x","timeout":"1s","max_wait":"45s"}"#)
            .expect("parses")
            .validate()
            .expect("valid");
        assert_eq!(config.timeout(), Duration::from_secs(1));
        assert_eq!(config.max_wait(), Some(Duration::from_secs(45)));
        assert_eq!(config.to_spec().validate().expect("round trip"), config);
        let defaults = spec(r#"{"image":"x"}"#)
            .expect("parses")
            .validate()
            .expect("valid");
        assert_eq!(defaults.max_wait(), None, "the daemon's default applies");
        assert_eq!(field_of(r#"{"image":"x","max_wait":"10ms"}"#), "max_wait");
        assert_eq!(field_of(r#"{"image":"x","max_wait":"2h"}"#), "max_wait");
    }
}
