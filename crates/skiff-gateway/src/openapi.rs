//! The OpenAPI document of the API, generated from the handlers' annotations and the
//! wire types of [`skiff_core::api`].

use crate::{access_keys_api, api, logs_api, triggers_api};
use axum::Json;
use utoipa::OpenApi;

/// The OpenAPI description of skiff's HTTP API.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "skiff",
        description = "Run functions packaged as container images on demand.\n\nFunction containers reach the invoke routes (`POST /v1/functions/{name}/invoke`, `/fn/{name}/{*path}`) and `GET /v1/calls/{id}` at `$SKIFF_API_URL`, the function API on the functions' network, with `Authorization: Bearer $SKIFF_TOKEN` (401 `unauthorized` without a valid token); it has no other route."
    ),
    paths(
        api::healthz,
        api::readyz,
        api::metrics,
        api::list_functions,
        api::get_function,
        api::put_function,
        api::delete_function,
        api::invoke,
        api::list_instances,
        api::scale,
        logs_api::follow,
        logs_api::instance_logs,
        logs_api::stats,
        api::list_calls,
        api::get_call,
        api::call_logs,
        api::redrive,
        api::cluster,
        triggers_api::list_triggers,
        triggers_api::get_trigger,
        triggers_api::put_trigger,
        triggers_api::delete_trigger,
        access_keys_api::create,
        access_keys_api::list,
        access_keys_api::revoke,
        access_keys_api::rotate_key,
    ),
    components(schemas(
        skiff_core::FunctionSpec,
        skiff_core::FunctionView,
        skiff_core::CallRecord,
        skiff_core::CallDetails,
        skiff_core::CallOutput,
        skiff_core::BodyEncoding,
        skiff_core::CallStatus,
        skiff_core::CallErrorType,
        skiff_core::Trigger,
        skiff_core::Contract,
        skiff_core::api::ErrorBody,
        skiff_core::api::ErrorDetail,
        skiff_core::api::FunctionList,
        skiff_core::api::FunctionState,
        skiff_core::api::FunctionStatus,
        skiff_core::api::CallPage,
        skiff_core::api::Health,
        skiff_core::api::HealthStatus,
        skiff_core::api::InstanceList,
        skiff_core::api::ScaleRequest,
        skiff_core::api::InstanceView,
        skiff_core::api::ClusterView,
        skiff_core::api::DaemonView,
        skiff_core::InstanceState,
        skiff_core::TriggerSpec,
        skiff_core::TriggerView,
        skiff_core::TriggerKind,
        skiff_core::TriggerState,
        skiff_core::CronSpec,
        skiff_core::NatsSpec,
        skiff_core::MissedTicks,
        skiff_core::api::TriggerList,
        skiff_core::api::LogEvent,
        skiff_core::api::LogLine,
        skiff_core::api::LogStream,
        skiff_core::api::InstanceLogs,
        skiff_core::api::FunctionStats,
        skiff_core::api::StatsBucket,
        skiff_core::api::StatsTotals,
        skiff_core::api::AccessKeyRequest,
        skiff_core::api::AccessKeyView,
        skiff_core::api::AccessKeyCreated,
        skiff_core::api::AccessKeyList,
        skiff_core::api::KeyRotation,
    )),
    tags(
        (name = "functions", description = "Deploy and manage functions"),
        (name = "calls", description = "Invoke functions and inspect calls"),
        (name = "triggers", description = "Cron schedules and broker subscriptions that start calls"),
        (name = "health", description = "Liveness and readiness"),
        (name = "security", description = "Secrets at rest and the Lambda API's access keys"),
    )
)]
pub struct ApiDoc;

/// `GET /v1/openapi.json`
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
