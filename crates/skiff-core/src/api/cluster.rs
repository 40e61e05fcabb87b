//! `GET /v1/cluster`: the daemons sharing the store.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The daemons of the store, as the daemon answering sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClusterView {
    /// The store's backend: `sqlite` (this daemon alone) or `postgres`.
    pub store: String,
    /// The id of the daemon that answered.
    pub daemon: String,
    /// How long a daemon may go without a heartbeat before another takes it over, in
    /// milliseconds.
    pub lease_ms: u64,
    /// Every daemon, oldest start first.
    pub daemons: Vec<DaemonView>,
}

/// One daemon of the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DaemonView {
    /// Its id (the `skiff.daemon` label of its containers).
    pub id: String,
    /// Where its API listens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// `alive`, `expired` (silent past the lease, not taken over yet) or `recovering`
    /// (another daemon is taking its calls and containers over).
    pub state: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat.
    pub heartbeat_at: DateTime<Utc>,
    /// The calls running on it.
    pub running_calls: u64,
    /// Whether it is the daemon that answered.
    #[serde(default)]
    pub this: bool,
}
