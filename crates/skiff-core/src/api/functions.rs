//! Bodies of the function routes: the list, the instances and the scale request. A single
//! function is a [`FunctionSpec`](crate::FunctionSpec) in and a
//! [`FunctionView`](crate::FunctionView) out.

use crate::function::FunctionView;
use crate::instance::InstanceState;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A list of functions (`GET /v1/functions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FunctionList {
    /// The functions, by name.
    pub functions: Vec<FunctionView>,
}

/// Instances of a function (`GET /v1/functions/{name}/instances`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InstanceList {
    /// The instances (none for `exec` functions: each of their containers serves one call).
    pub instances: Vec<InstanceView>,
}

/// An instance as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InstanceView {
    /// Instance id (the `skiff.instance` label).
    pub id: String,
    /// Container id.
    pub container: String,
    /// Function version it runs.
    pub version: u64,
    /// Lifecycle state.
    pub state: InstanceState,
    /// Calls it is serving.
    pub in_flight: u32,
    /// Seconds since it last finished a call (or started).
    pub idle_seconds: u64,
}

/// The body of `POST /v1/functions/{name}/scale`: the bounds to change, the others kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScaleRequest {
    /// New `min_instances`, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_instances: Option<u32>,
    /// New `max_instances`, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_instances: Option<u32>,
}
