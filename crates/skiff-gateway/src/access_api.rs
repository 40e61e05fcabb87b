//! `/v1/tokens`, `/v1/functions/{name}/keys`, `/v1/audit` and `/v1/namespaces`: who may do
//! what, what was done, and how much each namespace may use. What each route needs is in
//! [`crate::auth::RULES`].

use crate::auth::Access;
use crate::error::ApiError;
use crate::AppState;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use skiff_core::api::{
    AuditPage, AuditQuery, ErrorBody, NamespaceList, NamespaceView, Quota, TokenCreated, TokenList,
    TokenRequest, TokenView,
};
use skiff_store::AuditFilter;

/// The body of `POST /v1/functions/{name}/keys`.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyRequest {
    /// A label: who uses the key.
    #[serde(default)]
    pub name: Option<String>,
}

/// `POST /v1/tokens`: makes an API token. Its secret is in this answer only.
#[utoipa::path(post, path = "/v1/tokens", tag = "access",
    request_body = TokenRequest,
    responses(
        (status = 201, description = "Made; `secret` is shown this once", body = TokenCreated),
        (status = 400, description = "Invalid request (code `invalid_token`); `field` names the culprit", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create_token(
    State(state): State<AppState>,
    request: Result<crate::body::Object<TokenRequest>, crate::body::BodyRejection>,
) -> Result<(StatusCode, Json<TokenCreated>), ApiError> {
    let crate::body::Object(request) =
        request.map_err(|r| ApiError::body_rejection(&r, "invalid_token", "the token request"))?;
    let created = state.platform.create_token(&request).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// `GET /v1/tokens`: every API token (never a secret), newest first.
#[utoipa::path(get, path = "/v1/tokens", tag = "access",
    responses((status = 200, body = TokenList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_tokens(State(state): State<AppState>) -> Result<Json<TokenList>, ApiError> {
    Ok(Json(TokenList {
        tokens: state.platform.list_tokens().await?,
    }))
}

/// `DELETE /v1/tokens/{id}`: revokes a token, at once, on every daemon of the store.
#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "access",
    params(("id" = String, Path, description = "Token id (`tok_...`)")),
    responses((status = 200, description = "Revoked", body = TokenView), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn revoke_token(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<TokenView>, ApiError> {
    Ok(Json(state.platform.revoke_token(&id).await?))
}

/// `POST /v1/functions/{name}/keys`: makes an invoke key of the function: it calls that
/// function (`Authorization: Bearer` or `X-Skiff-Key`) and nothing else.
#[utoipa::path(post, path = "/v1/functions/{name}/keys", tag = "access",
    params(("name" = String, Path, description = "Function name")),
    request_body = KeyRequest,
    responses((status = 201, description = "Made; `secret` is shown this once", body = TokenCreated),
        (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create_key(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Path(name): Path<String>,
    request: Result<crate::body::Object<KeyRequest>, crate::body::BodyRejection>,
) -> Result<(StatusCode, Json<TokenCreated>), ApiError> {
    // The body is optional.
    let request = match request {
        Ok(crate::body::Object(request)) => request,
        Err(crate::body::BodyRejection::Json(JsonRejection::MissingJsonContentType(_))) => {
            KeyRequest::default()
        }
        Err(r) => {
            return Err(ApiError::body_rejection(
                &r,
                "invalid_token",
                "the key request",
            ))
        }
    };
    let full = access.full(&name)?;
    let label = request.name.unwrap_or_else(|| format!("{name} key"));
    let created = state.platform.create_key(&full, &label).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// `GET /v1/functions/{name}/keys`: the function's invoke keys (never a secret).
#[utoipa::path(get, path = "/v1/functions/{name}/keys", tag = "access",
    params(("name" = String, Path, description = "Function name")),
    responses((status = 200, body = TokenList), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_keys(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Path(name): Path<String>,
) -> Result<Json<TokenList>, ApiError> {
    Ok(Json(TokenList {
        tokens: state.platform.list_keys(&access.full(&name)?).await?,
    }))
}

/// `DELETE /v1/functions/{name}/keys/{id}`: revokes one of the function's keys.
#[utoipa::path(delete, path = "/v1/functions/{name}/keys/{id}", tag = "access",
    params(("name" = String, Path, description = "Function name"),
        ("id" = String, Path, description = "Key id (`key_...`)")),
    responses((status = 200, description = "Revoked", body = TokenView), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn revoke_key(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<TokenView>, ApiError> {
    Ok(Json(
        state.platform.revoke_key(&access.full(&name)?, &id).await?,
    ))
}

/// `GET /v1/audit`: management actions (who, with which token, what, when, the status
/// answered), newest first.
#[utoipa::path(get, path = "/v1/audit", tag = "access", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_audit(
    State(state): State<AppState>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    let Query(query) = query.map_err(|r| ApiError::bad_request(r.body_text()))?;
    let filter = AuditFilter {
        namespace: query.namespace,
        before: query.before,
        limit: query.limit.unwrap_or(0),
    };
    let entries = state.platform.list_audit(&filter).await?;
    let next = if entries.len() as u32 >= filter.effective_limit() {
        entries.last().map(|e| e.id.clone())
    } else {
        None
    };
    Ok(Json(AuditPage { entries, next }))
}

/// `GET /v1/namespaces`: every namespace with a function or a quota: its quotas and what it
/// uses on the daemon that answers.
#[utoipa::path(get, path = "/v1/namespaces", tag = "access",
    responses((status = 200, body = NamespaceList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_namespaces(State(state): State<AppState>) -> Json<NamespaceList> {
    Json(NamespaceList {
        namespaces: state.platform.namespaces(),
    })
}

/// `PUT /v1/namespaces/{name}`: sets a namespace's quotas (an absent field: no limit).
/// Past one, a deploy or a call gets 429 `quota_exceeded`.
#[utoipa::path(put, path = "/v1/namespaces/{name}", tag = "access",
    params(("name" = String, Path, description = "Namespace")),
    request_body = Quota,
    responses((status = 200, body = NamespaceView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn put_namespace(
    State(state): State<AppState>,
    Path(name): Path<String>,
    quota: Result<crate::body::Object<Quota>, crate::body::BodyRejection>,
) -> Result<Json<NamespaceView>, ApiError> {
    let crate::body::Object(quota) =
        quota.map_err(|r| ApiError::body_rejection(&r, "invalid_request", "the quota"))?;
    Ok(Json(state.platform.set_quota(&name, quota).await?))
}
