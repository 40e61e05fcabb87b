//! A round of health checks: every probe at once, each bounded by `http::is_ready`
//! (500 ms for a TCP connect, 1 s for a readiness path).

use super::events::{HealthResult, Probe};

/// Probes the instances concurrently and reports each one's outcome.
pub(super) async fn probe(client: &crate::proxy::Client, probes: Vec<Probe>) -> Vec<HealthResult> {
    futures::future::join_all(probes.into_iter().map(|probe| async move {
        let healthy =
            crate::proxy::is_ready(client, probe.addr, probe.readiness_path.as_deref()).await;
        HealthResult {
            function: probe.function,
            instance: probe.instance,
            healthy,
        }
    }))
    .await
}
