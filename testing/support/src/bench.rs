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

/// Sends `calls` async calls (`Prefer: respond-async`, body `x`) to `/fn/{function}/` of
/// `daemons` in turn, 64 in flight at a time, each with its daemon's token; returns how
/// many were accepted (202).
pub async fn enqueue_async(
    client: &reqwest::Client,
    daemons: &[&Daemon],
    function: &str,
    calls: usize,
) -> usize {
    let mut pending = futures::stream::FuturesUnordered::new();
    let mut accepted = 0;
    for n in 0..calls {
        let d = daemons[n % daemons.len()];
        let request = client
            .post(format!("{}/fn/{function}/", d.url))
            .bearer_auth(&d.token)
            .header("Prefer", "respond-async")
            .body("x");
        pending.push(async move {
            request
                .send()
                .await
                .map(|r| r.status().as_u16() == 202)
                .unwrap_or(false)
        });
        if pending.len() >= 64 && pending.next().await == Some(true) {
            accepted += 1;
        }
    }
    while let Some(ok) = pending.next().await {
        accepted += usize::from(ok);
    }
    accepted
}

/// Waits until `function` has no call queued or running, as `d` lists them.
pub async fn until_drained(client: &reqwest::Client, d: &Daemon, function: &str) {
    loop {
        let mut empty = true;
        for status in ["queued", "running"] {
            let page: serde_json::Value = client
                .get(format!(
                    "{}/v1/calls?function={function}&status={status}&limit=1",
                    d.url
                ))
                .bearer_auth(&d.token)
                .send()
                .await
                .expect("calls")
                .json()
                .await
                .expect("json");
            empty &= page["calls"].as_array().is_none_or(Vec::is_empty);
        }
        if empty {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// End-to-end latency of `n` async calls to `/fn/{function}/`, one at a time, sent to
/// `daemons` in turn: from sending each until its record, read through the same daemon,
/// says `succeeded`.
pub async fn lone_async_calls(
    client: &reqwest::Client,
    daemons: &[&Daemon],
    function: &str,
    n: usize,
) -> crate::stats::Latencies {
    let mut latencies = crate::stats::Latencies::new();
    for i in 0..n {
        let d = daemons[i % daemons.len()];
        let started = Instant::now();
        let response = client
            .post(format!("{}/fn/{function}/", d.url))
            .bearer_auth(&d.token)
            .header("Prefer", "respond-async")
            .body("x")
            .send()
            .await
            .expect("enqueue");
        let id = response.headers()["x-skiff-call-id"]
            .to_str()
            .expect("id")
            .to_string();
        loop {
            let record: serde_json::Value = client
                .get(format!("{}/v1/calls/{id}", d.url))
                .bearer_auth(&d.token)
                .send()
                .await
                .expect("get")
                .json()
                .await
                .expect("json");
            if record["status"] == "succeeded" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        latencies.record(started.elapsed());
    }
    latencies
}
