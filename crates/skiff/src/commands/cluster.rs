//! `skiff cluster`: the daemons sharing the store, their heartbeats and running calls.

use crate::client::ApiClient;
use crate::output::{self, Table};
use chrono::Utc;
use skiff_core::api::ClusterView;
use std::process::ExitCode;

/// The table `skiff cluster` prints: one line per daemon, `*` marking the one that
/// answered.
pub fn cluster_table(cluster: &ClusterView) -> Table {
    let now = Utc::now();
    let mut table = Table::new(["ID", "ADDRESS", "STATE", "HEARTBEAT", "CALLS", "STARTED"]);
    for d in &cluster.daemons {
        let ago = u64::try_from((now - d.heartbeat_at).num_seconds()).unwrap_or(0);
        table.push(vec![
            if d.this {
                format!("{} *", d.id)
            } else {
                d.id.clone()
            },
            d.address.clone().unwrap_or_else(|| "-".into()),
            d.state.clone(),
            format!("{} ago", output::format_duration_secs(ago)),
            d.running_calls.to_string(),
            output::local_time(&d.started_at),
        ]);
    }
    table
}

/// Runs `skiff cluster`.
pub async fn run(client: &ApiClient, json: bool) -> anyhow::Result<ExitCode> {
    let cluster = client.cluster().await?;
    if json {
        output::print_json(&cluster)?;
    } else {
        output::print_text(&cluster_table(&cluster).render())?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_core::api::DaemonView;

    #[test]
    fn the_table_marks_the_daemon_that_answered() {
        let now = Utc::now();
        let daemon = |id: &str, this| DaemonView {
            id: id.into(),
            address: Some("127.0.0.1:8080".into()),
            state: "alive".into(),
            started_at: now,
            heartbeat_at: now,
            running_calls: 2,
            this,
        };
        let text = cluster_table(&ClusterView {
            store: "postgres".into(),
            daemon: "aaaaaaaaaaaa".into(),
            lease_ms: 15_000,
            daemons: vec![daemon("aaaaaaaaaaaa", true), daemon("bbbbbbbbbbbb", false)],
        })
        .render();
        assert!(text.contains("aaaaaaaaaaaa *"), "{text}");
        assert!(text.contains("bbbbbbbbbbbb"), "{text}");
        assert!(!text.contains("bbbbbbbbbbbb *"), "{text}");
        assert!(text.contains("alive"), "{text}");
    }
}
