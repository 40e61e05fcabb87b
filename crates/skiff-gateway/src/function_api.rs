//! The function API: what function containers call to invoke other functions.
//!
//! It is served with the Lambda Runtime API on the functions' network gateway (the address
//! in `SKIFF_API_URL`), so containers reach it and nothing else does. It has the invoke
//! routes of the main API and nothing more, with the same handlers:
//!
//! - `POST /v1/functions/{name}/invoke` (sync; `Prefer: respond-async` answers 202 and a
//!   call id);
//! - `ANY /fn/{name}/{*path}`;
//! - `GET /v1/calls/{id}`, to follow a call the calling function made (an async one, say);
//!   any other call is 404.
//!
//! Every request carries `Authorization: Bearer <token>`, the caller's `SKIFF_TOKEN`; a
//! missing or invalid token is 401 `unauthorized`. The header is taken off the request
//! once checked: the called function never sees the caller's token, and an async call
//! never stores it. Management routes (deploy, delete,
//! scale, ...) do not exist here (404): a token only lets a function invoke.

use crate::error::ApiError;
use crate::{api, public, AppState};
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{any, get, post};
use axum::Router;
use skiff_invoker::{Platform, TokenError};
use std::sync::Arc;
use tracing::Instrument;

/// The bearer token of a request.
fn bearer(headers: &HeaderMap) -> Result<&str, TokenError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(TokenError::Missing)?
        .to_str()
        .map_err(|_| TokenError::Malformed)?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(token.trim()),
        _ => Err(TokenError::Malformed),
    }
}

/// Lets a request through only with a valid token; logs who calls what.
async fn authenticate(
    State(platform): State<Arc<Platform>>,
    mut request: Request<Body>,
    next: Next,
) -> Result<Response, ApiError> {
    let caller = bearer(request.headers())
        .and_then(|token| platform.verify_token(token))
        .map_err(|err| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", err.to_string()))?;
    let span = tracing::info_span!(
        "function_api",
        caller = %caller.function,
        instance = %caller.instance
    );
    span.in_scope(|| {
        tracing::info!(
            method = %request.method(),
            path = request.uri().path(),
            "call from a function"
        )
    });
    request.headers_mut().remove(header::AUTHORIZATION);
    // The handlers find the caller here: its calls carry it, and it reads only its own.
    request.extensions_mut().insert(caller);
    Ok(next.run(request).instrument(span).await)
}

/// The function API's routes, every one behind a token.
pub fn router(platform: Arc<Platform>) -> Router {
    let state = AppState {
        platform: platform.clone(),
        config: Arc::default(),
    };
    Router::new()
        .route("/v1/functions/{name}/invoke", post(api::invoke))
        .route("/fn/{name}", any(public::invoke))
        .route("/fn/{name}/", any(public::invoke))
        .route("/fn/{name}/{*path}", any(public::invoke_path))
        .layer(DefaultBodyLimit::disable())
        .route("/v1/calls/{id}", get(api::get_call))
        .route_layer(middleware::from_fn_with_state(platform, authenticate))
        .fallback(|| async { ApiError::no_route() })
        .method_not_allowed_fallback(|| async { crate::method_not_allowed() })
        .with_state(state)
        .layer(crate::catch_panic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_token_is_read() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), Err(TokenError::Missing));
        headers.insert(
            header::AUTHORIZATION,
            "Bearer skf2.a.b.c".parse().expect("v"),
        );
        assert_eq!(bearer(&headers), Ok("skf2.a.b.c"));
        headers.insert(
            header::AUTHORIZATION,
            "bearer  skf2.a.b.c ".parse().expect("v"),
        );
        assert_eq!(bearer(&headers), Ok("skf2.a.b.c"));
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().expect("v"));
        assert_eq!(bearer(&headers), Err(TokenError::Malformed));
    }
}
