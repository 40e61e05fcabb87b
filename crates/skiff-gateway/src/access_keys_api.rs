//! The Lambda API's credentials: `/v1/access-keys` (make, list, revoke access keys), and
//! the layer that checks the SigV4 signature of every Lambda API request ([`crate::sigv4`])
//! against the access key it names.

use crate::lambda_api::AwsError;
use crate::{sigv4, ApiError, AppState};
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use skiff_core::api::{AccessKeyCreated, AccessKeyList, AccessKeyRequest, ErrorBody};

/// Who signed a Lambda API request: put in the request's extensions by [`require_signature`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsCaller {
    /// The access key id.
    pub key_id: String,
    /// The namespace the key acts in.
    pub namespace: String,
}

/// Refuses a Lambda API request whose SigV4 signature does not check out, in AWS's error
/// shapes; passes the others on with an [`AwsCaller`]. The body is read whole (the
/// signature covers it), up to the daemon's largest request.
pub async fn require_signature(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let credential = match sigv4::credential(&parts) {
        Ok(credential) => credential,
        Err(err) => return refusal(&err),
    };
    let limit = state.platform.config().max_request_bytes;
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return AwsError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestTooLargeException",
            format!("the request body is larger than the limit of {limit} bytes"),
        )
        .into_response();
    };
    let key = match state.platform.access_key(&credential.key_id).await {
        Ok(Some(key)) => key,
        Ok(None) => return refusal(&sigv4::SignatureError::UnknownKey),
        Err(err) => return AwsError::from(err).into_response(),
    };
    if let Err(err) = sigv4::verify(&parts, &bytes, &credential, &key.secret, Utc::now()) {
        tracing::debug!(key = credential.key_id, ?err, "Lambda API request refused");
        return refusal(&err);
    }
    let mut request = Request::from_parts(parts, Body::from(bytes));
    request.extensions_mut().insert(AwsCaller {
        key_id: credential.key_id,
        namespace: key.namespace,
    });
    next.run(request).await
}

fn refusal(err: &sigv4::SignatureError) -> Response {
    let (status, kind, message) = err.parts();
    AwsError::new(status, kind, message).into_response()
}

/// `POST /v1/access-keys`: makes an access key for the Lambda API (SigV4). The answer is
/// the only place its secret is ever shown.
#[utoipa::path(post, path = "/v1/access-keys", tag = "security",
    request_body = AccessKeyRequest,
    responses((status = 201, body = AccessKeyCreated), (status = 400, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    request: Result<crate::body::Object<AccessKeyRequest>, crate::body::BodyRejection>,
) -> Result<(StatusCode, Json<AccessKeyCreated>), ApiError> {
    let crate::body::Object(request) = request
        .map_err(|r| ApiError::body_rejection(&r, "invalid_request", "the access key request"))?;
    let created = state.platform.create_access_key(&request).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// `GET /v1/access-keys`: the access keys of the Lambda API, without their secrets.
#[utoipa::path(get, path = "/v1/access-keys", tag = "security",
    responses((status = 200, body = AccessKeyList)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<AccessKeyList>, ApiError> {
    Ok(Json(AccessKeyList {
        access_keys: state.platform.list_access_keys().await?,
    }))
}

/// `DELETE /v1/access-keys/{id}`: revokes an access key at once.
#[utoipa::path(delete, path = "/v1/access-keys/{id}", tag = "security",
    params(("id" = String, Path, description = "Access key id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.platform.revoke_access_key(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/secrets/rotate-key`: encrypts every secret at rest with a new key (see the
/// README's Security section).
#[utoipa::path(post, path = "/v1/secrets/rotate-key", tag = "security",
    responses((status = 200, body = skiff_core::api::KeyRotation), (status = 409, body = ErrorBody)))]
pub async fn rotate_key(
    State(state): State<AppState>,
) -> Result<Json<skiff_core::api::KeyRotation>, ApiError> {
    Ok(Json(state.platform.rotate_secret_key().await?))
}
