//! [`ApiError`]: every failure the HTTP API reports, as `{"error": {"code", "message"}}`
//! with the right status. Internal details (store, engine) are logged, not sent.

use axum::extract::rejection::JsonRejection;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use skiff_core::api::headers::CALL_ID_HEADER;
use skiff_core::api::{ErrorBody, ErrorDetail};
use skiff_core::CallErrorType;
use skiff_invoker::PlatformError;

/// An error response of the API.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    detail: ErrorDetail,
    /// Seconds for the `Retry-After` header of a refusal.
    retry_after: Option<u32>,
}

/// The `Retry-After` of a 429: the limiter's queue and the file descriptors free up fast.
const RETRY_AFTER_SECS: u32 = 1;

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            detail: ErrorDetail {
                code: code.to_string(),
                message: message.into(),
                field: None,
                call_id: None,
            },
            retry_after: None,
        }
    }

    /// A 400 about the request itself.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// A 404 for a path that names nothing.
    pub fn no_route() -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
    }

    /// A 413 for a body over `limit` bytes.
    pub fn payload_too_large(limit: usize) -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    }

    /// The answer to a JSON body that could not be read: 413 `payload_too_large` past
    /// [`crate::MAX_JSON_BODY_BYTES`], else 400 with `code`, saying what (`what`) was wrong.
    pub fn json_rejection(rejection: &JsonRejection, code: &str, what: &str) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::payload_too_large(crate::MAX_JSON_BODY_BYTES)
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                code,
                format!("{what} is not valid: {}", rejection.body_text()),
            )
        }
    }

    /// A management request's body refused (see [`crate::body`]): 413 past the limit,
    /// else 400 with `code`, naming `what` was not valid.
    pub fn body_rejection(rejection: &crate::body::BodyRejection, code: &str, what: &str) -> Self {
        if rejection.too_large() {
            ApiError::payload_too_large(crate::MAX_JSON_BODY_BYTES)
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                code,
                format!("{what} is not valid: {}", rejection.message()),
            )
        }
    }

    /// The status of this error.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The code of this error.
    pub fn code(&self) -> &str {
        &self.detail.code
    }
}

/// The HTTP status for a failed call of each error type.
fn call_failure_status(kind: CallErrorType) -> StatusCode {
    match kind {
        CallErrorType::Timeout => StatusCode::GATEWAY_TIMEOUT,
        CallErrorType::Interrupted => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_GATEWAY,
    }
}

impl ApiError {
    /// What went wrong, without its status: the last line of a stream that failed after
    /// its head was sent.
    pub(crate) fn into_detail(self) -> ErrorDetail {
        self.detail
    }
}

impl From<PlatformError> for ApiError {
    fn from(err: PlatformError) -> Self {
        match err {
            PlatformError::InvalidSpec(spec) => ApiError {
                status: StatusCode::BAD_REQUEST,
                detail: ErrorDetail {
                    code: "invalid_spec".to_string(),
                    message: spec.to_string(),
                    field: Some(spec.field),
                    call_id: None,
                },
                retry_after: None,
            },
            PlatformError::InvalidTrigger(spec) => ApiError {
                status: StatusCode::BAD_REQUEST,
                detail: ErrorDetail {
                    code: "invalid_trigger".to_string(),
                    message: spec.to_string(),
                    field: Some(spec.field),
                    call_id: None,
                },
                retry_after: None,
            },
            err @ PlatformError::TriggerNotFound { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "trigger_not_found", err.to_string())
            }
            err @ PlatformError::FunctionNotFound { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "function_not_found", err.to_string())
            }
            err @ PlatformError::AccessKeyNotFound { .. } => ApiError::new(
                StatusCode::NOT_FOUND,
                "access_key_not_found",
                err.to_string(),
            ),
            err @ PlatformError::Conflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", err.to_string())
            }
            err @ PlatformError::CallNotFound { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "call_not_found", err.to_string())
            }
            err @ PlatformError::ImageNotFound { .. } => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                detail: ErrorDetail {
                    code: "image_not_found".to_string(),
                    message: err.to_string(),
                    field: Some("image".to_string()),
                    call_id: None,
                },
                retry_after: None,
            },
            err @ PlatformError::Overloaded { .. } => ApiError {
                retry_after: Some(RETRY_AFTER_SECS),
                ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "overloaded", err.to_string())
            },
            err @ (PlatformError::NearFdLimit { .. } | PlatformError::TooManyFollowers { .. }) => {
                ApiError {
                    retry_after: Some(RETRY_AFTER_SECS),
                    ..ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "too_many_requests",
                        err.to_string(),
                    )
                }
            }
            PlatformError::CallFailed {
                call_id,
                error_type,
                message,
                ..
            } => ApiError {
                status: call_failure_status(error_type),
                detail: ErrorDetail {
                    code: error_type.as_str().to_string(),
                    message,
                    field: None,
                    call_id: Some(call_id),
                },
                retry_after: None,
            },
            PlatformError::PayloadTooLarge { limit } => ApiError::payload_too_large(limit),
            PlatformError::BadRequest { message } => ApiError::bad_request(message),
            err @ PlatformError::LoopDetected { .. } => {
                ApiError::new(StatusCode::LOOP_DETECTED, "loop_detected", err.to_string())
            }
            PlatformError::InvalidToken { field, message } => ApiError {
                status: StatusCode::BAD_REQUEST,
                detail: ErrorDetail {
                    code: "invalid_token".to_string(),
                    message: format!("{field}: {message}"),
                    field: Some(field),
                    call_id: None,
                },
                retry_after: None,
            },
            err @ PlatformError::TokenNotFound { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "token_not_found", err.to_string())
            }
            PlatformError::Unauthorized { message } => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
            }
            PlatformError::Forbidden { message } => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
            }
            err @ PlatformError::QuotaExceeded { .. } => ApiError {
                retry_after: Some(RETRY_AFTER_SECS),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "quota_exceeded",
                    err.to_string(),
                )
            },
            err @ PlatformError::NotInRegistry { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "image_not_found", err.to_string())
            }
            err @ PlatformError::Registry { .. } => {
                ApiError::new(StatusCode::BAD_GATEWAY, "registry_error", err.to_string())
            }
            err @ PlatformError::ShuttingDown => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                err.to_string(),
            ),
            PlatformError::Engine(err) => {
                tracing::error!(%err, "container engine error");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "engine_unavailable",
                    "the container engine failed; see the daemon's log",
                )
            }
            PlatformError::Store(err) => {
                tracing::error!(%err, "store error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the store failed; see the daemon's log",
                )
            }
            other => {
                tracing::error!(err = %other, "internal error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the daemon's log",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let call_id = self.detail.call_id;
        let mut response = (self.status, Json(ErrorBody { error: self.detail })).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(id) = call_id {
            if let Ok(value) = HeaderValue::from_str(&id.to_string()) {
                response.headers_mut().insert(CALL_ID_HEADER, value);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_429_with_retry_after() {
        for err in [
            PlatformError::Overloaded {
                running: 64,
                queued: 1024,
            },
            PlatformError::NearFdLimit {
                in_use: 900,
                limit: 1024,
            },
        ] {
            let response = ApiError::from(err).into_response();
            assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        }
        let response = ApiError::bad_request("no").into_response();
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
    }
}
