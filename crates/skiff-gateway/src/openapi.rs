//! The OpenAPI document of the API, generated from the handlers' annotations and the
//! wire types of [`skiff_core::api`].

use crate::{access_api, access_keys_api, api, images_api, logs_api, triggers_api};
use axum::Json;
use utoipa::OpenApi;

/// The OpenAPI description of skiff's HTTP API.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "skiff",
        description = "Run functions packaged as container images on demand.\n\nEvery route but `/healthz`, `/readyz` and this document needs a credential, `Authorization: Bearer <token>` (401 `unauthorized` without a valid one, 403 `forbidden` when it does not allow the route): an API token (`skt_...`) with a scope (`admin`, `deploy`, `invoke`, `read`) in the request's namespace (`X-Skiff-Namespace`, default `default`), or on the invoke routes a function's invoke key (`skk_...`, also as `X-Skiff-Key`). A path's `{name}` is a name in that namespace, or `NS.NAME`. The public route `/fn/{name}` (`NAME` in `default`, `NS.NAME` elsewhere) is open without a credential for `public` functions.\n\nFunction containers reach the invoke routes (`POST /v1/functions/{name}/invoke`, `/fn/{name}/{*path}`) and `GET /v1/calls/{id}` at `$SKIFF_API_URL`, the function API on the functions' network, with `Authorization: Bearer $SKIFF_TOKEN` (401 `unauthorized` without a valid token); it has no other route."
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
        images_api::pull,
        images_api::push,
        triggers_api::list_triggers,
        triggers_api::get_trigger,
        triggers_api::put_trigger,
        triggers_api::delete_trigger,
        access_keys_api::create,
        access_keys_api::list,
        access_keys_api::revoke,
        access_keys_api::rotate_key,
        access_api::create_token,
        access_api::list_tokens,
        access_api::revoke_token,
        access_api::create_key,
        access_api::list_keys,
        access_api::revoke_key,
        access_api::list_audit,
        access_api::list_namespaces,
        access_api::put_namespace,
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
        skiff_core::api::PullRequest,
        skiff_core::api::PushRequest,
        skiff_core::api::ImageEvent,
        skiff_core::api::ImageStep,
        skiff_core::api::ImageDone,
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
        skiff_core::access::Scope,
        skiff_core::api::TokenRequest,
        skiff_core::api::TokenView,
        skiff_core::api::TokenCreated,
        skiff_core::api::TokenList,
        skiff_core::api::AuditEntry,
        skiff_core::api::AuditPage,
        skiff_core::api::Quota,
        skiff_core::api::NamespaceView,
        skiff_core::api::NamespaceList,
        access_api::KeyRequest,
    )),
    modifiers(&Security),
    tags(
        (name = "functions", description = "Deploy and manage functions"),
        (name = "calls", description = "Invoke functions and inspect calls"),
        (name = "triggers", description = "Cron schedules and broker subscriptions that start calls"),
        (name = "health", description = "Liveness and readiness"),
        (name = "security", description = "Secrets at rest and the Lambda API's access keys"),
        (name = "access", description = "API tokens, invoke keys, the audit log and namespace quotas"),
        (name = "images", description = "Images pulled from and pushed to registries"),
    )
)]
pub struct ApiDoc;

/// `GET /v1/openapi.json`
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// The bearer credential every guarded route takes.
#[derive(Debug)]
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token (`skt_...`) or, on invoke routes, an invoke key (`skk_...`)",
                    ))
                    .build(),
            ),
        );
        openapi.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "token",
            Vec::<String>::new(),
        )]);
        for (path, item) in &mut openapi.paths.paths {
            let open = OPEN_PATHS.contains(&path.as_str());
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                if open {
                    // Open to anyone: no credential, no 401 nor 403.
                    operation.security = Some(Vec::new());
                    continue;
                }
                add_error(
                    operation,
                    "401",
                    "No valid credential (code `unauthorized`)",
                );
                add_error(
                    operation,
                    "403",
                    "The credential does not allow this route or namespace (code `forbidden`)",
                );
                let named = operation.parameters.iter().flatten().any(|p| {
                    p.name == "name" && p.parameter_in == utoipa::openapi::path::ParameterIn::Path
                });
                if path.starts_with("/v1/functions/") || path.starts_with("/v1/triggers/") {
                    for parameter in operation.parameters.iter_mut().flatten() {
                        if parameter.name == "name"
                            && parameter.parameter_in == utoipa::openapi::path::ParameterIn::Path
                        {
                            parameter.schema = Some(name_schema().into());
                        }
                    }
                }
                if named {
                    add_error(
                        operation,
                        "400",
                        "Not a valid function or trigger name (code `invalid_spec`, `field` \
                         `name`)",
                    );
                }
            }
        }
    }
}

/// A function's or trigger's name in a path: `NAME`, or `NS.NAME` (see
/// `skiff_core::access`).
fn name_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(
            r"^([a-z0-9][a-z0-9-]{0,31}\.)?[A-Za-z0-9][A-Za-z0-9_-]{0,63}$",
        ))
        .into()
}

/// The routes anyone may call, without a credential.
const OPEN_PATHS: [&str; 3] = ["/healthz", "/readyz", "/v1/openapi.json"];

/// Documents answer `status` of `operation` as an [`skiff_core::api::ErrorBody`], unless it
/// is documented already.
fn add_error(operation: &mut utoipa::openapi::path::Operation, status: &str, description: &str) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let responses = &mut operation.responses.responses;
    if responses.contains_key(status) {
        return;
    }
    let response = ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build();
    responses.insert(status.to_string(), response.into());
}
