//! The API on the wire: every body the gateway serves and the CLI reads, and the name of
//! every header skiff uses, each declared once. The gateway's handlers and its OpenAPI
//! document use these types; the CLI's client decodes the same ones.
//!
//! | route | request | answer |
//! | --- | --- | --- |
//! | `GET /healthz`, `GET /readyz` | | [`Health`] |
//! | `GET /v1/functions` | | [`FunctionList`] |
//! | `GET`, `PUT`, `DELETE /v1/functions/{name}` | [`FunctionSpec`] | [`FunctionView`] |
//! | `GET /v1/functions/{name}/instances` | | [`InstanceList`] |
//! | `POST /v1/functions/{name}/scale` | [`ScaleRequest`] | [`FunctionView`] |
//! | `POST /v1/functions/{name}/invoke`, `ANY /fn/{name}` | the function's input | its output, or [`Accepted`] (async) |
//! | `GET /v1/calls` | [`CallQuery`] (read as [`CallQueryText`]) | [`CallPage`] |
//! | `GET /v1/calls/{id}` | | [`CallDetails`] |
//! | `POST /v1/calls/{id}/redrive` | | [`CallRecord`] |
//! | `GET /v1/functions/{name}/logs/follow` | | [`LogEvent`]s, as NDJSON or server-sent events |
//! | `GET /v1/functions/{name}/instances/{id}/logs` | [`InstanceLogQuery`] | [`InstanceLogs`] |
//! | `GET /v1/functions/{name}/stats` | [`StatsQuery`] | [`FunctionStats`] |
//! | `GET /v1/triggers` | | [`TriggerList`] |
//! | `GET /v1/cluster` | | [`ClusterView`] |
//! | `GET`, `PUT`, `DELETE /v1/triggers/{name}` | [`TriggerSpec`] | [`TriggerView`] |
//! | `POST /v1/secrets/rotate-key` | | [`KeyRotation`] |
//! | `GET`, `POST /v1/access-keys`, `DELETE /v1/access-keys/{id}` | [`AccessKeyRequest`] | [`AccessKeyList`], [`AccessKeyCreated`] |
//! | `GET`, `POST /v1/tokens`, `DELETE /v1/tokens/{id}` | [`TokenRequest`] | [`TokenList`], [`TokenCreated`] |
//! | `GET`, `POST /v1/functions/{name}/keys` | | [`TokenList`], [`TokenCreated`] |
//! | `GET /v1/audit` | [`AuditQuery`] | [`AuditPage`] |
//! | `POST /v1/images/pull`, `POST /v1/images/push` | [`PullRequest`], [`PushRequest`] | [`ImageEvent`]s, as NDJSON |
//! | `GET /v1/namespaces`, `PUT /v1/namespaces/{name}` | [`Quota`] | [`NamespaceList`], [`NamespaceView`] |
//! | any error | | [`ErrorBody`] |
//!
//! Header names are in [`headers`].

mod access;
mod calls;
mod cluster;
mod error;
mod functions;
pub mod headers;
mod health;
mod images;
mod logs;
mod security;
mod stats;
mod triggers;

pub use access::{
    AuditEntry, AuditPage, AuditQuery, NamespaceList, NamespaceView, Quota, TokenCreated,
    TokenList, TokenRequest, TokenView,
};
pub use calls::{Accepted, CallPage, CallQuery, CallQueryText};
pub use cluster::{ClusterView, DaemonView};
pub use error::{ErrorBody, ErrorDetail};
pub use functions::{
    FunctionList, FunctionState, FunctionStatus, InstanceList, InstanceView, ScaleRequest,
};
pub use health::{Health, HealthStatus};
pub use images::{ImageDone, ImageEvent, ImageStep, PullRequest, PushRequest};
pub use logs::{InstanceLogQuery, InstanceLogs, LogEvent, LogLine, LogStream};
pub use security::{AccessKeyCreated, AccessKeyList, AccessKeyRequest, AccessKeyView, KeyRotation};
pub use stats::{FunctionStats, StatsBucket, StatsQuery, StatsTotals};
pub use triggers::TriggerList;

// Bodies that live with their domain types.
pub use crate::call::{CallDetails, CallRecord};
pub use crate::function::FunctionView;
pub use crate::spec::FunctionSpec;
pub use crate::trigger::{TriggerSpec, TriggerView};
