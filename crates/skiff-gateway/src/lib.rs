//! skiff-gateway: skiff's HTTP surface.
//!
//! - the management API under `/v1` (functions, invoke, calls, logs followed live, stats,
//!   triggers), described by the
//!   OpenAPI document at `/v1/openapi.json`, generated from this code;
//! - the Lambda API (2015-03-31) subset, its requests checked with SigV4 ([`sigv4`]) against
//!   the daemon's access keys (`/v1/access-keys`);
//! - the public invocation route `ANY /fn/{name}/{*path}`;
//! - the dashboard at `/` ([`skiff_dashboard`]), under the same layers as the API;
//! - `/healthz` and `/readyz`;
//! - on the functions' network only, the function API ([`function_api`]) and the Lambda
//!   Runtime API ([`runtime_api`]).
//!
//! Handlers only parse and dispatch: each one turns a request into a call on
//! [`skiff_invoker::Platform`] and its answer (or [`PlatformError`](skiff_invoker::PlatformError))
//! into a response. Every error body is `{"error": {"code", "message"}}` ([`ApiError`]). The
//! bodies and header names are [`skiff_core::api`]'s, shared with the CLI.

mod access_api;
mod access_keys_api;
mod api;
pub mod auth;
mod body;
mod error;
pub mod function_api;
mod images_api;
mod lambda_api;
mod logs_api;
mod openapi;
mod public;
pub mod runtime_api;
pub mod sigv4;
pub mod tls;
mod triggers_api;

pub use access_keys_api::AwsCaller;
pub use error::ApiError;
pub use openapi::ApiDoc;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{any, delete, get, post, put};
use axum::Router;
use skiff_invoker::Platform;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

/// Largest JSON body of the management and Lambda API routes (function specs, triggers,
/// scale requests): larger ones get 413. Invoke bodies have limits of their own.
pub const MAX_JSON_BODY_BYTES: usize = 2 << 20;

/// Settings of the HTTP surface.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Whether requests need credentials (see [`auth`]). On by default; `skiff serve
    /// --no-auth` turns it off, on a loopback address only (or with `--insecure`).
    pub auth: bool,
    /// Whether `/metrics` answers without credentials.
    pub open_metrics: bool,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            auth: true,
            open_metrics: false,
        }
    }
}

impl GatewayConfig {
    /// No authentication: every request may do everything (tests, and `--no-auth`).
    pub fn without_auth() -> Self {
        GatewayConfig {
            auth: false,
            open_metrics: true,
        }
    }
}

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The platform.
    pub platform: Arc<Platform>,
    /// The gateway's settings.
    pub config: Arc<GatewayConfig>,
}

/// The whole HTTP surface as one router.
pub fn app(platform: Arc<Platform>, config: GatewayConfig) -> Router {
    let state = AppState {
        platform,
        config: Arc::new(config.clone()),
    };
    // The platform takes invoke bodies as streams and enforces their limit itself (413).
    let invoke_limit = DefaultBodyLimit::disable();
    let guard = middleware::from_fn_with_state(state.clone(), auth::guard);
    // The public route checks its credentials itself: a public function needs none.
    let public_routes = Router::new()
        .route("/fn/{name}", any(public::invoke))
        .route("/fn/{name}/", any(public::invoke))
        .route("/fn/{name}/{*path}", any(public::invoke_path))
        .layer(invoke_limit);
    let invoke_routes = Router::new()
        .route("/v1/functions/{name}/invoke", post(api::invoke))
        .route_layer(guard.clone())
        .layer(invoke_limit)
        .merge(public_routes);
    Router::new()
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/metrics", get(api::metrics))
        .route("/v1/openapi.json", get(openapi::document))
        .route("/v1/functions", get(api::list_functions))
        .route(
            "/v1/functions/{name}",
            get(api::get_function)
                .put(api::put_function)
                .delete(api::delete_function),
        )
        .route("/v1/functions/{name}/instances", get(api::list_instances))
        .route(
            "/v1/functions/{name}/instances/{id}/logs",
            get(logs_api::instance_logs),
        )
        .route("/v1/functions/{name}/logs/follow", get(logs_api::follow))
        .route("/v1/functions/{name}/stats", get(logs_api::stats))
        .route("/v1/functions/{name}/scale", post(api::scale))
        .route(
            "/v1/functions/{name}/keys",
            get(access_api::list_keys).post(access_api::create_key),
        )
        .route(
            "/v1/functions/{name}/keys/{id}",
            delete(access_api::revoke_key),
        )
        .route(
            "/v1/tokens",
            get(access_api::list_tokens).post(access_api::create_token),
        )
        .route("/v1/tokens/{id}", delete(access_api::revoke_token))
        .route("/v1/audit", get(access_api::list_audit))
        .route("/v1/namespaces", get(access_api::list_namespaces))
        .route("/v1/namespaces/{name}", put(access_api::put_namespace))
        .route("/v1/calls", get(api::list_calls))
        .route("/v1/calls/{id}", get(api::get_call))
        .route("/v1/calls/{id}/logs", get(api::call_logs))
        .route("/v1/calls/{id}/redrive", post(api::redrive))
        .route("/v1/cluster", get(api::cluster))
        .route("/v1/images/pull", post(images_api::pull))
        .route("/v1/images/push", post(images_api::push))
        .route("/v1/triggers", get(triggers_api::list_triggers))
        .route(
            "/v1/triggers/{name}",
            get(triggers_api::get_trigger)
                .put(triggers_api::put_trigger)
                .delete(triggers_api::delete_trigger),
        )
        .route(
            "/v1/access-keys",
            get(access_keys_api::list).post(access_keys_api::create),
        )
        .route("/v1/access-keys/{id}", delete(access_keys_api::revoke))
        .route("/v1/secrets/rotate-key", post(access_keys_api::rotate_key))
        .route_layer(guard)
        // The Lambda API answers in AWS's shapes and checks SigV4 signatures against the
        // access keys; a key acts in its own namespace.
        .merge(
            lambda_api::routes().route_layer(middleware::from_fn_with_state(
                state.clone(),
                access_keys_api::require_signature,
            )),
        )
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY_BYTES))
        .merge(invoke_routes)
        .with_state(state.clone())
        // The dashboard's pages, under the same layers as the API below; they need a
        // session (see `dashboard_guard`).
        .merge(skiff_dashboard::routes(state.platform.clone()).route_layer(
            middleware::from_fn_with_state(state.clone(), dashboard_guard),
        ))
        .merge(skiff_dashboard::open_routes(
            state.platform.clone(),
            state.config.auth,
        ))
        .fallback(|| async { ApiError::no_route() })
        .method_not_allowed_fallback(|| async { method_not_allowed() })
        .layer(catch_panic())
        .layer(TraceLayer::new_for_http())
}

/// The dashboard's pages need a session: a token (not an invoke key) with `read` in any
/// namespace, and `invoke` to redrive, as `POST /v1/calls/{id}/redrive` does. Without one, a
/// page is a redirect to the login form. The session's [`Grant`](skiff_core::access::Grant)
/// goes to the handlers as a request extension: each page shows only what it reaches.
async fn dashboard_guard(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut request: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    use skiff_core::access::Scope;
    let scope = if request.method() == http::Method::POST {
        Scope::Invoke
    } else {
        Scope::Read
    };
    let grant = match auth::grant_of(&state, request.headers(), true).await {
        Ok(grant) => grant,
        Err(_) => return axum::response::Redirect::to(skiff_dashboard::LOGIN_PATH).into_response(),
    };
    if !grant.may_browse(scope) {
        return auth::forbidden(format!(
            "this session's token does not have the `{scope}` scope this page needs"
        ))
        .into_response();
    }
    request.extensions_mut().insert(grant);
    next.run(request).await
}

/// The 405 of every router.
pub(crate) fn method_not_allowed() -> ApiError {
    ApiError::new(
        http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
    )
}

/// A handler that panics answers a JSON 500 `internal`.
fn on_panic(_panic: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    axum::response::IntoResponse::into_response(ApiError::new(
        http::StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error; see the daemon's log",
    ))
}

/// The layer that turns a handler's panic into that request's 500.
pub(crate) fn catch_panic() -> CatchPanicLayer<OnPanic> {
    CatchPanicLayer::custom(on_panic as OnPanic)
}

type OnPanic = fn(Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response;

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting connections
/// and returns once the requests in flight are answered. With `tls`, over TLS.
pub async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some(acceptor) => {
            axum::serve(tls::TlsListener::new(listener, acceptor)?, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}
