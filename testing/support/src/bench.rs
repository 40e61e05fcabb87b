//! What the benchmarks share besides their statistics: their settings from the
//! environment, the raw-engine baseline they measure skiff against, and waiting for a
//! function's idle instance to be paused.

use crate::daemon::Daemon;
use crate::poll::{poll, EVERY};
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{RemoveContainerOptionsBuilder, WaitContainerOptionsBuilder};
use futures::StreamExt;
use std::time::{Duration, Instant};

/// Checks that the Docker engine answers and builds the images; panics if it does not: a
/// benchmark is never skipped.
pub fn engine_ready() {
    assert!(crate::ready(), "the benchmark needs the Docker engine");
}

/// The number in environment variable `name` (`SAMPLES`, `CALLS`, ...), or `default` when
/// it is not set or not a number.
pub fn count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// One sample of the baseline: creates a container from `body` (labelled `skiff.bench`)
/// and starts it through the Engine API, and with `until_exit` waits until it has exited
/// (with status 0, or this panics). Returns the time that took; the container is removed
/// afterwards, outside the timing.
pub async fn raw_start(
    docker: &bollard::Docker,
    mut body: ContainerCreateBody,
    until_exit: bool,
) -> Duration {
    body.labels = Some([("skiff.bench".to_string(), "true".to_string())].into());
    let started = Instant::now();
    let id = docker
        .create_container(None, body)
        .await
        .expect("create")
        .id;
    docker.start_container(&id, None).await.expect("start");
    let exit = if until_exit {
        let wait = WaitContainerOptionsBuilder::default()
            .condition("not-running")
            .build();
        Some(docker.wait_container(&id, Some(wait)).next().await)
    } else {
        None
    };
    let took = started.elapsed();
    if let Some(exit) = exit {
        assert!(
            matches!(exit, Some(Ok(ref r)) if r.status_code == 0),
            "{exit:?}"
        );
    }
    let rm = RemoveContainerOptionsBuilder::default().force(true).build();
    docker
        .remove_container(&id, Some(rm))
        .await
        .expect("remove");
    took
}

/// Waits (up to 10 s) until the first instance of function `name` is paused, as it is once
/// idle; after that the measurement goes on whatever the state.
pub async fn until_paused(d: &Daemon, name: &str) {
    let _ = poll(Duration::from_secs(10), EVERY, async || {
        (d.instances(name).await.first()?["state"] == "paused").then_some(())
    })
    .await;
}

/// The address (`IP:8080`) of the first instance of `name` once it has started: where a
/// bench calls the instance directly, as its baseline.
pub async fn instance_addr(d: &Daemon, name: &str) -> String {
    let container = crate::eventually(
        &format!("an instance of {name} ready"),
        Duration::from_secs(20),
        async || {
            let instances = d.instances(name).await;
            let first = instances.first()?;
            (first["state"] != "starting")
                .then(|| first["container"].as_str().map(str::to_string))
                .flatten()
        },
    )
    .await;
    format!("{}:8080", crate::container_ip(&container))
}

/// The number of requests a `wrk` run's output reports (`123456 requests in 5.00s, ...`).
pub fn wrk_requests(output: &str) -> Option<usize> {
    output.lines().find_map(|l| {
        let (n, rest) = l.trim().split_once(' ')?;
        rest.starts_with("requests in").then(|| n.parse().ok())?
    })
}
