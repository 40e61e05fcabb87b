//! `/v1/triggers`: cron schedules and broker subscriptions that start calls.

use crate::auth::Access;
use crate::error::ApiError;
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use skiff_core::api::{ErrorBody, TriggerList, TriggerSpec, TriggerView};

/// `GET /v1/triggers`
#[utoipa::path(get, path = "/v1/triggers", tag = "triggers",
    responses((status = 200, body = TriggerList)))]
pub async fn list_triggers(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
) -> Json<TriggerList> {
    Json(TriggerList {
        triggers: state
            .platform
            .list_triggers_in(&access.namespace)
            .into_iter()
            .map(local)
            .collect(),
    })
}

/// A trigger as its namespace sees it: its name and its function's without the namespace.
fn local(mut view: TriggerView) -> TriggerView {
    view.name = skiff_core::access::split(&view.name).1.to_string();
    view.function = skiff_core::access::split(&view.function).1.to_string();
    view
}

/// `GET /v1/triggers/{name}`: the trigger, with its state (`scheduled`, `connecting`,
/// `connected`, `error`), last error, and last and next cron ticks.
#[utoipa::path(get, path = "/v1/triggers/{name}", tag = "triggers",
    params(("name" = String, Path, description = "Trigger name")),
    responses((status = 200, body = TriggerView), (status = 404, body = ErrorBody)))]
pub async fn get_trigger(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Path(name): Path<String>,
) -> Result<Json<TriggerView>, ApiError> {
    Ok(Json(local(
        state.platform.get_trigger(&access.full(&name)?)?,
    )))
}

/// `PUT /v1/triggers/{name}`: creates (201) or replaces (200) a trigger. Exactly one of
/// `cron` and `nats` is given.
#[utoipa::path(put, path = "/v1/triggers/{name}", tag = "triggers",
    params(("name" = String, Path, description = "Trigger name")),
    request_body = TriggerSpec,
    responses(
        (status = 201, description = "Created", body = TriggerView),
        (status = 200, description = "Replaced", body = TriggerView),
        (status = 400, description = "Invalid trigger (code `invalid_trigger`); `field` names the culprit", body = ErrorBody),
        (status = 413, description = "Body over 2 MiB (code `payload_too_large`)", body = ErrorBody),
        (status = 404, description = "The function does not exist (code `function_not_found`)", body = ErrorBody)))]
pub async fn put_trigger(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Path(name): Path<String>,
    spec: Result<crate::body::Object<TriggerSpec>, crate::body::BodyRejection>,
) -> Result<(StatusCode, Json<TriggerView>), ApiError> {
    let crate::body::Object(mut spec) =
        spec.map_err(|r| ApiError::body_rejection(&r, "invalid_trigger", "the trigger"))?;
    let invalid = |field: &str, message: String| {
        ApiError::from(skiff_invoker::PlatformError::InvalidTrigger(
            skiff_core::SpecError::new(field, message),
        ))
    };
    let name = access.full(&name).map_err(|e| {
        if e.status() == StatusCode::NOT_FOUND {
            e
        } else {
            invalid("name", format!("`{name}` is not a valid trigger name"))
        }
    })?;
    // A trigger calls a function of its own namespace.
    let function = skiff_core::FunctionName::local(&spec.function).map_err(|_| {
        invalid(
            "function",
            format!("`{}` is not a function name", spec.function),
        )
    })?;
    spec.function =
        skiff_core::access::qualify(skiff_core::access::namespace_of(&name), function.as_str());
    let (view, created) = state.platform.put_trigger(&name, &spec).await?;
    let view = local(view);
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)))
}

/// `DELETE /v1/triggers/{name}`: no further call starts from it.
#[utoipa::path(delete, path = "/v1/triggers/{name}", tag = "triggers",
    params(("name" = String, Path, description = "Trigger name")),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody)))]
pub async fn delete_trigger(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.platform.delete_trigger(&access.full(&name)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
