//! The management API under `/v1`, plus `/healthz` and `/readyz`.

use crate::auth::Access;
use crate::error::ApiError;
use crate::AppState;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use http::Method;
use http_body_util::BodyExt;
use skiff_core::api::headers::{
    CALL_ID_HEADER, COLD_HEADER, PREFERENCE_APPLIED_HEADER, PREFER_HEADER, RESPOND_ASYNC,
};
use skiff_core::api::{
    Accepted, CallDetails, CallPage, CallQueryText, CallRecord, ErrorBody, FunctionList,
    FunctionSpec, FunctionView, Health, HealthStatus, InstanceList, ScaleRequest,
};
use skiff_core::{CallStatus, Trigger};
use skiff_invoker::{Caller, InvokeOutcome, InvokeRequest};
use skiff_store::CallFilter;
use uuid::Uuid;

/// `GET /healthz`: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
pub async fn healthz(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: HealthStatus::Ok,
        daemon: state.platform.daemon_id().to_string(),
        message: None,
    })
}

/// `GET /readyz`: the daemon takes calls (503 while shutting down, while the container
/// engine does not answer, while another daemon has taken it over past its lease, or while
/// containers a previous run left are being removed).
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, body = Health), (status = 503, body = Health)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let daemon = state.platform.daemon_id().to_string();
    let (code, status, message) = if !state.platform.is_accepting() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            HealthStatus::ShuttingDown,
            None,
        )
    } else if let Some(problem) = state.platform.engine_problem() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            HealthStatus::EngineUnavailable,
            Some(problem),
        )
    } else if state.platform.is_taken_over() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            HealthStatus::TakenOver,
            Some(
                "this daemon was silent past its lease and another took its calls over; \
                 it claims no queued call until the store counts it alive again"
                    .to_string(),
            ),
        )
    } else if let Some(left) = state.platform.leftovers() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            HealthStatus::Starting,
            Some(format!(
                "removing {left} container(s) a previous run of this daemon left behind"
            )),
        )
    } else {
        (StatusCode::OK, HealthStatus::Ready, None)
    };
    (
        code,
        Json(Health {
            status,
            daemon,
            message,
        }),
    )
}

/// `GET /v1/functions`
#[utoipa::path(get, path = "/v1/functions", tag = "functions",
    responses((status = 200, body = FunctionList)))]
pub async fn list_functions(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
) -> Json<FunctionList> {
    Json(FunctionList {
        functions: state.platform.list_functions_in(&access.namespace),
    })
}

/// `GET /v1/functions/{name}`
#[utoipa::path(get, path = "/v1/functions/{name}", tag = "functions",
    params(("name" = String, Path, description = "Function name")),
    responses((status = 200, body = FunctionView), (status = 404, body = ErrorBody)))]
pub async fn get_function(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Path(name): Path<String>,
) -> Result<Json<FunctionView>, ApiError> {
    Ok(Json(state.platform.get_function(&access.full(&name)?)?))
}

/// `PUT /v1/functions/{name}`: creates (201) or updates (200) a function.
#[utoipa::path(put, path = "/v1/functions/{name}", tag = "functions",
    params(("name" = String, Path, description = "Function name")),
    request_body = FunctionSpec,
    responses(
        (status = 201, description = "Created", body = FunctionView),
        (status = 200, description = "Updated", body = FunctionView),
        (status = 400, description = "Invalid spec; `field` names the culprit", body = ErrorBody),
        (status = 413, description = "Spec body over 2 MiB (code `payload_too_large`)", body = ErrorBody),
        (status = 422, description = "The image is not on the engine", body = ErrorBody)))]
pub async fn put_function(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Path(name): Path<String>,
    spec: Result<crate::body::Object<FunctionSpec>, crate::body::BodyRejection>,
) -> Result<(StatusCode, Json<FunctionView>), ApiError> {
    let crate::body::Object(spec) =
        spec.map_err(|r| ApiError::body_rejection(&r, "invalid_spec", "the function spec"))?;
    let (view, created) = state.platform.deploy(&access.full(&name)?, &spec).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)))
}

/// `DELETE /v1/functions/{name}`
#[utoipa::path(delete, path = "/v1/functions/{name}", tag = "functions",
    params(("name" = String, Path, description = "Function name")),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody)))]
pub async fn delete_function(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.platform.delete_function(&access.full(&name)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/functions/{name}/invoke`: runs the function with the body as input and answers
/// with its output; with `Prefer: respond-async`, stores the call and answers 202 at once.
#[utoipa::path(post, path = "/v1/functions/{name}/invoke", tag = "calls",
    params(("name" = String, Path, description = "Function name"),
        ("Prefer" = Option<String>, Header, description = "`respond-async`: accept the call durably, answer 202 with its id, run it in the background (retried on failure)"),
        ("X-Skiff-Callback-Url" = Option<String>, Header, description = "Async calls: an http:// URL that receives the call's result once it is final")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "The function's output; `X-Skiff-Call-Id` names the call",
            content_type = "application/octet-stream", body = Vec<u8>),
        (status = 404, body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
        (status = 429, description = "Too many calls", body = ErrorBody),
        (status = 502, description = "The function failed (code: function_error, crashed, out_of_memory, output_too_large, start_failed)", body = ErrorBody),
        (status = 504, description = "The function timed out", body = ErrorBody),
        (status = 508, description = "Too deep a chain of functions calling functions (`loop_detected`)", body = ErrorBody)))]
pub async fn invoke(
    State(state): State<AppState>,
    Path(name): Path<String>,
    caller: Option<Extension<Caller>>,
    access: Option<Extension<Access>>,
    mut headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let name = match (&caller, access) {
        // The function API: a name in the caller's namespace.
        (Some(Extension(caller)), _) => crate::public::in_namespace_of(caller, &name)?,
        (None, Some(Extension(access))) => {
            let full = access.full(&name)?;
            crate::auth::may_invoke(&access.grant, &full)?;
            crate::auth::strip_credentials(&mut headers);
            full
        }
        (None, None) => return Err(crate::auth::unauthorized("this route needs a token")),
    };
    let asynchronous = wants_async(&headers);
    let request = InvokeRequest {
        trigger: Trigger::Api,
        method: Method::POST,
        path: "/".to_string(),
        query: String::new(),
        headers,
        body: stream(body),
        call_id: None,
        attempt: 1,
        caller: caller.map(|Extension(c)| c),
        from_queue: false,
    };
    if asynchronous {
        return accepted(state.platform.enqueue(&name, request).await?);
    }
    let outcome = state.platform.invoke(&name, request).await?;
    Ok(invoke_response(outcome))
}

/// Whether the caller asked for an async call (`Prefer: respond-async`).
pub(crate) fn wants_async(headers: &HeaderMap) -> bool {
    headers
        .get_all(PREFER_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case(RESPOND_ASYNC))
        })
}

/// The answer to an accepted async call: 202, its id, where to follow it.
pub(crate) fn accepted(id: uuid::Uuid) -> Result<Response, ApiError> {
    let mut response = (
        StatusCode::ACCEPTED,
        Json(Accepted {
            call_id: id,
            status: CallStatus::Queued,
        }),
    )
        .into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&id.to_string()) {
        headers.insert(CALL_ID_HEADER, value);
    }
    if let Ok(value) = HeaderValue::from_str(&format!("/v1/calls/{id}")) {
        headers.insert(header::LOCATION, value);
    }
    headers.insert(
        PREFERENCE_APPLIED_HEADER,
        HeaderValue::from_static(RESPOND_ASYNC),
    );
    Ok(response)
}

/// `POST /v1/calls/{id}/redrive`: puts a dead call back in the queue.
#[utoipa::path(post, path = "/v1/calls/{id}/redrive", tag = "calls",
    params(("id" = String, Path, description = "Call id")),
    responses((status = 200, body = CallRecord), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn redrive(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
) -> Result<Json<CallRecord>, ApiError> {
    let id = parse_call_id(&id)?;
    Ok(Json(
        state.platform.redrive_in(&access.namespace, id).await?,
    ))
}

/// A request body as the platform takes it.
pub(crate) fn stream(body: Body) -> skiff_invoker::Body {
    fn boxed(err: axum::Error) -> skiff_invoker::BoxError {
        Box::new(err)
    }
    body.map_err(boxed).boxed_unsync()
}

/// The response to an answered invocation: the function's status, headers and body, plus
/// the call id and whether it was cold.
pub(crate) fn invoke_response(outcome: InvokeOutcome) -> Response {
    let mut response = Response::new(Body::new(outcome.body));
    *response.status_mut() = outcome.status;
    *response.headers_mut() = outcome.headers;
    let headers = response.headers_mut();
    if let Ok(id) = HeaderValue::from_str(&outcome.call_id.to_string()) {
        headers.insert(CALL_ID_HEADER, id);
    }
    headers.insert(
        COLD_HEADER,
        HeaderValue::from_static(if outcome.cold { "true" } else { "false" }),
    );
    response
}

/// `GET /v1/calls`
#[utoipa::path(get, path = "/v1/calls", tag = "calls", params(CallQueryText),
    responses((status = 200, body = CallPage), (status = 400, body = ErrorBody)))]
pub async fn list_calls(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    query: Result<Query<CallQueryText>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<CallPage>, ApiError> {
    let Query(query) = query.map_err(|r| ApiError::bad_request(r.body_text()))?;
    let query = query
        .parse()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let function = query.function.map(|f| access.full(&f)).transpose()?;
    let filter = CallFilter {
        namespace: Some(access.namespace.clone()),
        function,
        status: query.status,
        trigger: query.trigger,
        before: query.before,
        since: query.since,
        limit: query.limit.unwrap_or(0),
    };
    let calls = state.platform.list_calls(&filter).await?;
    let next = if calls.len() as u32 >= filter.effective_limit() {
        calls.last().map(|c| c.id)
    } else {
        None
    };
    Ok(Json(CallPage { calls, next }))
}

fn parse_call_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "call_not_found",
            format!("`{id}` is not a call id"),
        )
    })
}

/// `GET /v1/calls/{id}`
#[utoipa::path(get, path = "/v1/calls/{id}", tag = "calls",
    params(("id" = String, Path, description = "Call id")),
    responses((status = 200, body = CallDetails), (status = 404, body = ErrorBody)))]
pub async fn get_call(
    State(state): State<AppState>,
    Path(id): Path<String>,
    caller: Option<Extension<Caller>>,
    access: Option<Extension<Access>>,
) -> Result<Json<CallDetails>, ApiError> {
    let id = parse_call_id(&id)?;
    // On the function API, a function reads only the calls it made; on the main API, a
    // token reads the calls of its namespace.
    let details = match (caller, access) {
        (Some(Extension(caller)), _) => state.platform.call_details_for(&caller, id).await?,
        (None, Some(Extension(access))) => {
            state
                .platform
                .call_details_in(&access.namespace, id)
                .await?
        }
        (None, None) => return Err(crate::auth::unauthorized("this route needs a token")),
    };
    Ok(Json(details))
}

/// `GET /v1/calls/{id}/logs`: what the function wrote to stderr during the call (capped).
#[utoipa::path(get, path = "/v1/calls/{id}/logs", tag = "calls",
    params(("id" = String, Path, description = "Call id")),
    responses((status = 200, content_type = "text/plain", body = String), (status = 404, body = ErrorBody)))]
pub async fn call_logs(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let logs = state
        .platform
        .call_logs_in(&access.namespace, parse_call_id(&id)?)
        .await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        logs,
    )
        .into_response())
}

/// `GET /v1/cluster`: the daemons sharing the store, their heartbeats and running calls.
#[utoipa::path(get, path = "/v1/cluster", tag = "cluster",
    responses((status = 200, body = skiff_core::api::ClusterView)))]
pub async fn cluster(
    State(state): State<AppState>,
) -> Result<Json<skiff_core::api::ClusterView>, ApiError> {
    Ok(Json(state.platform.cluster().await?))
}

/// `GET /v1/functions/{name}/instances`
#[utoipa::path(get, path = "/v1/functions/{name}/instances", tag = "functions",
    params(("name" = String, Path, description = "Function name")),
    responses((status = 200, body = InstanceList), (status = 404, body = ErrorBody)))]
pub async fn list_instances(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Path(name): Path<String>,
) -> Result<Json<InstanceList>, ApiError> {
    Ok(Json(InstanceList {
        instances: state.platform.instances(&access.full(&name)?)?,
    }))
}

/// `POST /v1/functions/{name}/scale`: changes the instance bounds without a new version.
#[utoipa::path(post, path = "/v1/functions/{name}/scale", tag = "functions",
    params(("name" = String, Path, description = "Function name")),
    request_body = ScaleRequest,
    responses((status = 200, body = FunctionView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn scale(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Path(name): Path<String>,
    request: Result<crate::body::Object<ScaleRequest>, crate::body::BodyRejection>,
) -> Result<Json<FunctionView>, ApiError> {
    let crate::body::Object(request) = request
        .map_err(|r| ApiError::body_rejection(&r, "invalid_request", "the scale request"))?;
    Ok(Json(
        state
            .platform
            .scale(
                &access.full(&name)?,
                request.min_instances,
                request.max_instances,
            )
            .await?,
    ))
}

/// `GET /metrics`: Prometheus metrics (text format).
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, content_type = "application/openmetrics-text", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        state.platform.render_metrics(),
    )
        .into_response()
}
