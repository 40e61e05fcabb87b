//! Tokens, invoke keys, the audit log and namespace quotas on the wire.

use crate::access::Scope;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `POST /v1/tokens`: a new API token.
///
/// More kinds of credentials (AWS access keys for the Lambda API) extend this body with
/// fields of their own; a field this daemon does not know is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// A label: who or what uses the token (shown in listings and the audit log).
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
    /// What it allows; at least one.
    pub scopes: Vec<Scope>,
    /// The namespaces it reaches (`*`: every one). Default: `default`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// How long it stays valid (`30d`, `12h`); default: until revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "30d")]
    pub expires_in: Option<String>,
}

/// An API token or an invoke key, as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    /// Its id (`tok_...` or `key_...`): to revoke it, and in the audit log.
    pub id: String,
    /// Its label.
    pub name: String,
    /// What it allows.
    pub scopes: Vec<Scope>,
    /// The namespaces it reaches.
    pub namespaces: Vec<String>,
    /// An invoke key's function (its name in its namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it stops being valid, if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A token or key just made: the only answer that holds its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenCreated {
    /// The secret, shown this once: send it as `Authorization: Bearer <secret>` (a key also
    /// as `X-Skiff-Key`). skiff keeps only its hash.
    pub secret: String,
    /// The token as listed from now on.
    pub token: TokenView,
}

/// `GET /v1/tokens`, `GET /v1/functions/{name}/keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenList {
    /// Newest first.
    pub tokens: Vec<TokenView>,
}

/// One management action, as the audit log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    /// Its id (UUIDv7: ids sort by time).
    pub id: String,
    /// When it was answered.
    pub at: DateTime<Utc>,
    /// The credential used, when one was valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// Who: the credential's name, or `anonymous`.
    pub actor: String,
    /// The namespace acted in.
    pub namespace: String,
    /// What: `deploy function`, `delete trigger`, `create token`, ...
    pub action: String,
    /// What it acted on: a function, a trigger, a token id, ...
    pub target: String,
    /// The request's method.
    pub method: String,
    /// The request's path.
    pub path: String,
    /// The status answered: the result.
    pub status: u16,
}

/// `GET /v1/audit`: the query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only entries of this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Only entries older than this entry id (the previous page's `next`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// Most entries (default 100, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// `GET /v1/audit`: one page of entries, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    /// The entries.
    pub entries: Vec<AuditEntry>,
    /// The `before` of the next page, when there may be one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// A namespace's quotas; an absent field has no limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// Most functions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_functions: Option<u64>,
    /// Most calls running at once (on each daemon).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_calls: Option<u64>,
    /// Most memory of its running containers, as the functions' memory limits add up
    /// (`2Gi`, or bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "2Gi")]
    pub max_memory: Option<crate::ByteSize>,
}

/// A namespace: its quotas and what it uses now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NamespaceView {
    /// Its name.
    pub name: String,
    /// Its quotas.
    pub quota: Quota,
    /// Its functions.
    pub functions: u64,
    /// Its calls running now, on the daemon that answered.
    pub running_calls: u64,
    /// Memory its running calls and instances hold now, on the daemon that answered.
    #[schema(value_type = String, example = "256Mi")]
    pub memory: crate::ByteSize,
}

/// `GET /v1/namespaces`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NamespaceList {
    /// Every namespace with a function or a quota, by name.
    pub namespaces: Vec<NamespaceView>,
}
