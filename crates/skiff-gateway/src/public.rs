//! The public invocation route: `ANY /fn/{name}/{*path}`, where `name` is the function's
//! name in the `default` namespace and `NS.NAME` in namespace `NS`. A `public` function is
//! open to anyone; a private one needs a credential (see [`crate::auth::authorize_invoke`]).

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
    let (mut parts, body) = request.into_parts();
    let caller = parts.extensions.get::<skiff_invoker::Caller>().cloned();
    let name = match &caller {
        // The function API: its token was checked; names are of the caller's namespace.
        Some(caller) => in_namespace_of(caller, &name)?,
        None => {
            crate::auth::authorize_invoke(&state, &mut parts.headers, &name).await?;
            name
        }
    };
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
        caller,
        from_queue: false,
    };
    if asynchronous {
        return crate::api::accepted(state.platform.enqueue(&name, request).await?);
    }
    let outcome = state.platform.invoke(&name, request).await?;
    Ok(invoke_response(outcome))
}

/// The full name of `name` as function `caller` means it: a function of its own namespace
/// (`NAME`, or `NS.NAME` with its own `NS`); another namespace's functions do not exist for
/// it.
pub(crate) fn in_namespace_of(
    caller: &skiff_invoker::Caller,
    name: &str,
) -> Result<String, ApiError> {
    let own = caller.function.namespace();
    let (namespace, local) = match name.split_once(skiff_core::access::NAMESPACE_SEPARATOR) {
        Some((namespace, local)) => (namespace, local),
        None => (own, name),
    };
    if namespace != own {
        return Err(skiff_invoker::PlatformError::FunctionNotFound {
            name: name.to_string(),
        }
        .into());
    }
    Ok(skiff_core::access::qualify(own, local))
}
