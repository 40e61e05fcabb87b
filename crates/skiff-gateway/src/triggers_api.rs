//! `/v1/triggers`: cron schedules and broker subscriptions that start calls.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use skiff_core::api::{ErrorBody, TriggerList, TriggerSpec, TriggerView};

/// `GET /v1/triggers`
#[utoipa::path(get, path = "/v1/triggers", tag = "triggers",
    responses((status = 200, body = TriggerList)))]
pub async fn list_triggers(State(state): State<AppState>) -> Json<TriggerList> {
    Json(TriggerList {
        triggers: state.platform.list_triggers(),
    })
}

/// `GET /v1/triggers/{name}`: the trigger, with its state (`scheduled`, `connecting`,
/// `connected`, `error`), last error, and last and next cron ticks.
#[utoipa::path(get, path = "/v1/triggers/{name}", tag = "triggers",
    params(("name" = String, Path, description = "Trigger name")),
    responses((status = 200, body = TriggerView), (status = 404, body = ErrorBody)))]
pub async fn get_trigger(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<TriggerView>, ApiError> {
    Ok(Json(state.platform.get_trigger(&name)?))
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
    Path(name): Path<String>,
    spec: Result<Json<TriggerSpec>, JsonRejection>,
) -> Result<(StatusCode, Json<TriggerView>), ApiError> {
    let Json(spec) =
        spec.map_err(|r| ApiError::json_rejection(&r, "invalid_trigger", "the trigger"))?;
    let (view, created) = state.platform.put_trigger(&name, &spec).await?;
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
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.platform.delete_trigger(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
