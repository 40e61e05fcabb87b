//! A deployed function as the platform keeps it, and as the API shows it.

use crate::spec::{Contract, FunctionConfig, FunctionName};
use crate::units::{ByteSize, HumanDuration};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// A deployed function: its validated configuration and the image it is pinned to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Function {
    /// The function's name.
    pub name: FunctionName,
    /// Its validated configuration.
    pub config: FunctionConfig,
    /// The image id (`sha256:...`) the reference resolved to at deploy: every container of
    /// this version runs exactly that image, even if the tag moves.
    pub image_digest: String,
    /// Starts at 1; each update adds one.
    pub version: u64,
    /// When the function was first deployed.
    pub created_at: DateTime<Utc>,
    /// When it was last updated.
    pub updated_at: DateTime<Utc>,
}

/// A function as the API returns it. Secret values are never included, only their names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FunctionView {
    /// The function's name within its namespace.
    pub name: String,
    /// The namespace it lives in.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Whether anyone may call it on its public route without a credential.
    #[serde(default)]
    pub public: bool,
    /// The only functions it may call through the function API, when restricted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callees: Option<Vec<String>>,
    /// The image reference as deployed.
    pub image: String,
    /// The image id the reference was pinned to at deploy.
    pub image_digest: String,
    /// How skiff talks to the container.
    pub contract: Contract,
    /// Memory limit.
    #[schema(example = "128Mi")]
    pub memory: String,
    /// CPU quota in CPUs.
    pub cpus: f64,
    /// Pids limit.
    pub pids: u32,
    /// Size of `/tmp`.
    #[schema(example = "64Mi")]
    pub tmp_size: String,
    /// Call timeout.
    #[schema(example = "10s")]
    pub timeout: String,
    /// Environment variables.
    pub env: BTreeMap<String, String>,
    /// Names of the secrets (values are never returned).
    pub secrets: Vec<String>,
    /// Port of the instances (`http` contract).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Readiness path of the instances (`http` contract).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_path: Option<String>,
    /// Startup timeout of the instances (`http` contract).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_timeout: Option<String>,
    /// Calls one instance serves at once (`http` contract).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// Instances kept running (`http` contract).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_instances: Option<u32>,
    /// Most instances at once (`http` contract).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_instances: Option<u32>,
    /// Idle time before an extra instance is stopped (`http` contract).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<String>,
    /// The autoscaler's stable window, when set for this function (`http` contract).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscale_window: Option<String>,
    /// Share of each instance's concurrency the autoscaler aims to use (`http` contract).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_utilization: Option<f64>,
    /// The handler (`lambda` contract).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
    /// Retries of a failed async call, when the function sets them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Oldest an async call may get, when the function sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_event_age: Option<String>,
    /// Named volumes mounted in the function's containers, `NAME:/path[:ro]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    /// Version, starting at 1.
    pub version: u64,
    /// When the function was first deployed.
    pub created_at: DateTime<Utc>,
    /// When it was last updated.
    pub updated_at: DateTime<Utc>,
    /// Where it stands now: ready, idle, starting, backing off (set by the daemon when it
    /// answers; absent in bodies that describe a function as deployed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<crate::api::FunctionState>,
}

fn default_namespace() -> String {
    crate::access::DEFAULT_NAMESPACE.to_string()
}

impl From<&Function> for FunctionView {
    fn from(f: &Function) -> Self {
        let r = &f.config.resources;
        let instances = f.config.contract != Contract::Exec;
        let (http, scaling) = (&f.config.http, &f.config.scaling);
        let served_http = f.config.contract == Contract::Http;
        FunctionView {
            handler: f.config.handler.clone(),
            retries: f.config.retries,
            max_event_age: f
                .config
                .max_event_age_ms
                .map(|ms| HumanDuration(std::time::Duration::from_millis(ms)).to_string()),
            volumes: f
                .config
                .volumes
                .iter()
                .map(|v| v.as_seen_in(f.name.namespace()).to_string())
                .collect(),
            public: f.config.public,
            callees: f.config.callees.clone(),
            namespace: f.name.namespace().to_string(),
            port: served_http.then_some(http.port),
            readiness_path: http.readiness_path.clone().filter(|_| served_http),
            startup_timeout: instances.then(|| HumanDuration(http.startup_timeout()).to_string()),
            concurrency: instances.then_some(scaling.concurrency),
            min_instances: instances.then_some(scaling.min_instances),
            max_instances: instances.then_some(scaling.max_instances),
            idle_timeout: instances.then(|| HumanDuration(scaling.idle_timeout()).to_string()),
            autoscale_window: scaling
                .window_ms
                .filter(|_| instances)
                .map(|ms| HumanDuration(std::time::Duration::from_millis(ms)).to_string()),
            target_utilization: instances.then_some(scaling.target_utilization),
            name: f.name.local_name().to_string(),
            image: f.config.image.clone(),
            image_digest: f.image_digest.clone(),
            contract: f.config.contract,
            memory: ByteSize(r.memory_bytes).to_string(),
            cpus: r.cpus,
            pids: r.pids,
            tmp_size: ByteSize(r.tmp_bytes).to_string(),
            timeout: HumanDuration(f.config.timeout()).to_string(),
            env: f.config.env.clone(),
            secrets: f.config.secrets.keys().cloned().collect(),
            version: f.version,
            created_at: f.created_at,
            updated_at: f.updated_at,
            state: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::FunctionSpec;

    #[test]
    fn the_view_never_holds_secret_values() {
        let spec: FunctionSpec = serde_json::from_str(
            r#"{"image":"hello:1","memory":"128Mi","timeout":"10s","secrets":{"TOKEN":"hunter2"}}"#,
        )
        .expect("parses");
        let function = Function {
            name: FunctionName::parse("hello").expect("name"),
            config: spec.validate().expect("valid"),
            image_digest: "sha256:abc".into(),
            version: 1,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        let view = FunctionView::from(&function);
        let json = serde_json::to_string(&view).expect("serializes");
        assert!(!json.contains("hunter2"), "{json}");
        assert_eq!(view.secrets, vec!["TOKEN".to_string()]);
        assert_eq!(view.memory, "128Mi");
        assert_eq!(view.timeout, "10s");
    }
}
