//! Secrets at rest and the Lambda API's credentials: `POST /v1/secrets/rotate-key` and
//! `/v1/access-keys`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a rotation of the key of secrets at rest did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KeyRotation {
    /// The id of the key that encrypts secrets now.
    pub key: String,
    /// The id of the key that encrypted them before.
    pub previous: String,
    /// Secrets encrypted again with the new key.
    pub reencrypted: u64,
    /// Keys that no secret needs any more: dropped from the key file, or to drop from
    /// `SKIFF_SECRET_KEY`.
    pub retired: Vec<String>,
    /// Where the daemon's keys come from: `file` (the key file in its data directory) or
    /// `env` (`SKIFF_SECRET_KEY`).
    pub source: String,
}

/// `POST /v1/access-keys`: a new access key of the Lambda API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessKeyRequest {
    /// The namespace its requests act in [default: `default`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 32)]
    pub namespace: Option<String>,
    /// What it is for (at most 256 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// An access key of the Lambda API, as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccessKeyView {
    /// The access key id (`aws_access_key_id`).
    pub id: String,
    /// The namespace its requests act in.
    pub namespace: String,
    /// What it is for.
    pub description: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

/// A new access key, with its secret: the only answer that ever shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccessKeyCreated {
    /// The key.
    #[serde(flatten)]
    pub key: AccessKeyView,
    /// The secret access key (`aws_secret_access_key`).
    pub secret: String,
}

/// `GET /v1/access-keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccessKeyList {
    /// Every access key, oldest first.
    pub access_keys: Vec<AccessKeyView>,
}
