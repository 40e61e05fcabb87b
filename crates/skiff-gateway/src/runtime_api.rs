//! The AWS Lambda Runtime API (2018-06-01) that `lambda` instances talk to. It listens on
//! the functions' network gateway only (see `Platform::take_runtime_listener`). Each request
//! is matched to its instance by the peer address; the handlers only translate to and from
//! [`skiff_invoker::lambda::LambdaRegistry`]. The same listener serves the function API
//! ([`crate::function_api`]).

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use skiff_core::api::headers::{
    RUNTIME_DEADLINE_MS_HEADER, RUNTIME_ERROR_TYPE_HEADER, RUNTIME_FUNCTION_ARN_HEADER,
    RUNTIME_REQUEST_ID_HEADER, RUNTIME_TRACE_ID_HEADER,
};
use skiff_invoker::lambda::{Outcome, RuntimeError};
use skiff_invoker::Platform;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Errors as the Runtime API reports them: `{"errorMessage", "errorType"}`.
fn runtime_error(err: RuntimeError) -> Response {
    let status = match err {
        RuntimeError::UnknownInstance(_) => StatusCode::FORBIDDEN,
        RuntimeError::UnknownRequest(_) => StatusCode::BAD_REQUEST,
        RuntimeError::Stopping => StatusCode::GONE,
    };
    let kind = match err {
        RuntimeError::UnknownInstance(_) => "UnknownInstance",
        RuntimeError::UnknownRequest(_) => "InvalidRequestID",
        RuntimeError::Stopping => "InstanceStopping",
    };
    (
        status,
        Json(json!({"errorMessage": err.to_string(), "errorType": kind})),
    )
        .into_response()
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, Json(json!({"status": "OK"}))).into_response()
}

/// The error type of a failure report: the header, else the body's `errorType`.
fn error_type(headers: &HeaderMap, body: &Bytes) -> String {
    headers
        .get(RUNTIME_ERROR_TYPE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v["errorType"].as_str().map(str::to_string))
        })
        .unwrap_or_else(|| "Unhandled".to_string())
}

async fn next(
    State(platform): State<Arc<Platform>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    match platform.lambda_registry().next(peer.ip()).await {
        Ok(event) => {
            let mut response = (StatusCode::OK, event.payload).into_response();
            let headers = response.headers_mut();
            let pairs = [
                (RUNTIME_REQUEST_ID_HEADER, event.request_id),
                (RUNTIME_DEADLINE_MS_HEADER, event.deadline_ms.to_string()),
                (RUNTIME_FUNCTION_ARN_HEADER, event.function_arn),
                (RUNTIME_TRACE_ID_HEADER, event.trace_id),
            ];
            for (name, value) in pairs {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    headers.insert(name, value);
                }
            }
            headers.insert("content-type", HeaderValue::from_static("application/json"));
            response
        }
        Err(err) => runtime_error(err),
    }
}

async fn respond(
    State(platform): State<Arc<Platform>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(request_id): Path<String>,
    body: Bytes,
) -> Response {
    match platform
        .lambda_registry()
        .complete(peer.ip(), &request_id, Outcome::Response(body))
    {
        Ok(()) => accepted(),
        Err(err) => runtime_error(err),
    }
}

async fn fail(
    State(platform): State<Arc<Platform>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(request_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let outcome = Outcome::Error {
        error_type: error_type(&headers, &body),
        body,
    };
    match platform
        .lambda_registry()
        .complete(peer.ip(), &request_id, outcome)
    {
        Ok(()) => accepted(),
        Err(err) => runtime_error(err),
    }
}

async fn init_error(
    State(platform): State<Arc<Platform>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let message = format!(
        "{}: {}",
        error_type(&headers, &body),
        String::from_utf8_lossy(&body)
    );
    match platform.lambda_registry().init_error(peer.ip(), message) {
        Ok(()) => accepted(),
        Err(err) => runtime_error(err),
    }
}

/// The Runtime API routes.
pub fn router(platform: Arc<Platform>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(respond),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(fail))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(platform)
}

/// Serves the Runtime API and the function API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    platform: Arc<Platform>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = crate::function_api::router(platform.clone()).merge(router(platform));
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
