//! The body of every error response of the API: `{"error": {"code", "message", ...}}`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable, machine-readable code (`function_not_found`, `invalid_spec`, `timeout`, ...).
    pub code: String,
    /// A readable explanation.
    pub message: String,
    /// The request field at fault, for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The call that failed, when one was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<Uuid>,
}
