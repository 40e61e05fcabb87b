//! The public invocation route: `ANY /fn/{name}/{*path}`.

use crate::api::{invoke_response, stream};
use crate::error::ApiError;
use crate::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::Request;
use axum::response::Response;
use skiff_core::Trigger;
use skiff_invoker::InvokeRequest;

/// `ANY /fn/{name}`: invokes the function with the request's method, headers and body.
pub async fn invoke(
    State(state): State<AppState>,
    Path(name): Path<String>,
    request: Request<Body>,
) -> Result<Response, ApiError> {
    run(state, name, "/".to_string(), request).await
}

/// `ANY /fn/{name}/{*path}`: the same, with a path below the function.
pub async fn invoke_path(
    State(state): State<AppState>,
    Path((name, path)): Path<(String, String)>,
    request: Request<Body>,
) -> Result<Response, ApiError> {
    run(state, name, format!("/{path}"), request).await
}

async fn run(
    state: AppState,
    name: String,
    path: String,
    request: Request<Body>,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let asynchronous = crate::api::wants_async(&parts.headers);
    let request = InvokeRequest {
        trigger: Trigger::Http,
        method: parts.method,
        path,
        query: parts.uri.query().unwrap_or_default().to_string(),
        headers: parts.headers,
        body: stream(body),
        call_id: None,
        attempt: 1,
        caller: parts.extensions.get::<skiff_invoker::Caller>().cloned(),
        from_queue: false,
    };
    if asynchronous {
        return crate::api::accepted(state.platform.enqueue(&name, request).await?);
    }
    let outcome = state.platform.invoke(&name, request).await?;
    Ok(invoke_response(outcome))
}
