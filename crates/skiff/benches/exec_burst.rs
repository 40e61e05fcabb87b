//! A burst of exec calls, measured in one run against the engine's own container churn.
//!
//! Baseline: the rate at which the engine turns containers over: create + start + wait +
//! remove of the same image doing the same work (`skiff/testfn` sleeping 200 ms), through
//! the Engine API, at concurrency 1, 2, 4, 8 and 16; the best of those rates is the baseline.
//! skiff:
//! - `async`: 1,000 async calls enqueued at once (50 clients) to an exec function that works
//!   200 ms; timed from the first enqueue until every call has succeeded;
//! - `sync`: 500 sync calls to the same function, 50 at a time; timed until the last answer.
//!   A call refused with 429 (overload) is sent again after its `Retry-After`, and counted.
//!
//! Each call runs in a fresh container, so the best skiff can do is the engine's churn rate.
//! Design target: at least 0.8x of it.
//!
//! Run: `cargo bench -p skiff --bench exec_burst` (`CALLS=n` for the async burst,
//! `CHURN=n` for the containers per baseline concurrency).

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{RemoveContainerOptionsBuilder, WaitContainerOptionsBuilder};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::json;
use skiff_runtime::docker::DockerEngine;
use skiff_testing::bench::{count, engine_ready};
use skiff_testing::{skiff_bin, Daemon};
use std::time::{Duration, Instant};

const IMAGE: &str = "skiff/testfn:latest";
const WORK_MS: &str = "200";

/// One container of the baseline: create, start, wait for its exit, remove.
async fn churn_one(docker: &bollard::Docker) {
    let body = ContainerCreateBody {
        image: Some(IMAGE.to_string()),
        env: Some(vec![
            "MODE=sleep".to_string(),
            format!("SLEEP_MS={WORK_MS}"),
        ]),
        labels: Some([("skiff.bench".to_string(), "true".to_string())].into()),
        host_config: Some(HostConfig {
            memory: Some(128 << 20),
            readonly_rootfs: Some(true),
            cap_drop: Some(vec!["ALL".to_string()]),
            network_mode: Some("skiff-functions".to_string()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = docker
        .create_container(None, body)
        .await
        .expect("create")
        .id;
    docker.start_container(&id, None).await.expect("start");
    let wait = WaitContainerOptionsBuilder::default()
        .condition("not-running")
        .build();
    let exit = docker.wait_container(&id, Some(wait)).next().await;
    assert!(
        matches!(exit, Some(Ok(ref r)) if r.status_code == 0),
        "{exit:?}"
    );
    let rm = RemoveContainerOptionsBuilder::default().force(true).build();
    docker
        .remove_container(&id, Some(rm))
        .await
        .expect("remove");
}

/// Containers turned over per second with `concurrency` in flight.
async fn churn_rate(docker: &bollard::Docker, concurrency: usize, total: usize) -> f64 {
    let started = Instant::now();
    futures::stream::iter((0..total).map(|_| churn_one(docker)))
        .buffer_unordered(concurrency)
        .collect::<Vec<()>>()
        .await;
    total as f64 / started.elapsed().as_secs_f64()
}

/// Calls of `function` that have succeeded so far (among the newest `limit`).
async fn succeeded(d: &Daemon, function: &str, limit: usize) -> usize {
    d.calls(&format!(
        "function={function}&status=succeeded&limit={limit}"
    ))
    .await
    .len()
}

async fn async_burst(d: &Daemon, calls: usize) -> Duration {
    // The function is private, as by default: every call carries the daemon's token.
    let client = d.client();
    let url = format!("{}/v1/functions/work/invoke", d.url);
    let started = Instant::now();
    let enqueues = (0..calls).map(|i| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let response = client
                .post(url)
                .header("Prefer", "respond-async")
                .body(format!("call {i}"))
                .send()
                .await
                .expect("enqueue");
            assert_eq!(response.status(), StatusCode::ACCEPTED);
        }
    });
    futures::stream::iter(enqueues)
        .buffer_unordered(50)
        .collect::<Vec<()>>()
        .await;
    let enqueued = started.elapsed();
    loop {
        let done = succeeded(d, "work", calls).await;
        if done >= calls {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "only {done} of {calls} calls succeeded in 30 minutes"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let took = started.elapsed();
    println!(
        "async burst: {calls} enqueued in {:.1} s, all succeeded after {:.1} s",
        enqueued.as_secs_f64(),
        took.as_secs_f64()
    );
    let failed = d.calls("function=work&status=failed&limit=10").await;
    assert!(failed.is_empty(), "calls failed: {failed:?}");
    took
}

/// 500 sync calls, 50 at a time; a call refused for overload (429) is sent again after its
/// `Retry-After`, as a client should. Returns the time taken and the number of 429s.
async fn sync_burst(d: &Daemon, calls: usize) -> (Duration, usize) {
    // The function is private, as by default: every call carries the daemon's token.
    let client = d.client();
    let url = format!("{}/v1/functions/work/invoke", d.url);
    let started = Instant::now();
    let requests = (0..calls).map(|i| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let mut refused = 0;
            loop {
                let response = client
                    .post(&url)
                    .body(format!("call {i}"))
                    .send()
                    .await
                    .expect("call");
                let status = response.status();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                let body = response.text().await.expect("body");
                if status == StatusCode::TOO_MANY_REQUESTS {
                    refused += 1;
                    let wait = retry_after.expect("a 429 says when to try again");
                    tokio::time::sleep(Duration::from_secs(wait)).await;
                    continue;
                }
                assert_eq!(status, StatusCode::OK, "{body}");
                return refused;
            }
        }
    });
    let refused: Vec<usize> = futures::stream::iter(requests)
        .buffer_unordered(50)
        .collect()
        .await;
    (started.elapsed(), refused.iter().sum())
}

#[tokio::main]
async fn main() {
    engine_ready();
    let calls = count("CALLS", 1000);
    let churn = count("CHURN", 48);
    let engine = DockerEngine::connect().await.expect("docker");

    // A daemon first, so that the functions' network exists for the baseline too.
    let d = Daemon::start(skiff_bin!(), &[]).await;
    d.deploy(
        "work",
        json!({"image": IMAGE, "timeout": "10s", "memory": "128Mi",
               "env": {"MODE": "sleep", "SLEEP_MS": WORK_MS}}),
    )
    .await;

    churn_rate(engine.client(), 2, 4).await; // warm-up
    let mut rates = Vec::new();
    for concurrency in [1, 2, 4, 8, 16] {
        let rate = churn_rate(engine.client(), concurrency, churn).await;
        println!("raw churn at concurrency {concurrency}: {rate:.2} containers/s");
        rates.push((concurrency, rate));
    }
    let (best_at, best) = rates
        .iter()
        .copied()
        .fold((0, 0.0), |a, b| if b.1 > a.1 { b } else { a });

    let async_took = async_burst(&d, calls).await;
    let async_rate = calls as f64 / async_took.as_secs_f64();
    let sync_calls = calls / 2;
    let (sync_took, refused) = sync_burst(&d, sync_calls).await;
    let sync_rate = sync_calls as f64 / sync_took.as_secs_f64();
    d.stop().await;

    println!("\nexec burst, {IMAGE} working {WORK_MS} ms per call\n");
    println!("| path | calls | time | calls/s | vs baseline (target >= 0.8x) |");
    println!("| --- | --- | --- | --- | --- |");
    println!(
        "| raw Docker API create+start+wait+remove, best concurrency ({best_at}) (baseline) | {} | - | {best:.2} | 1.00x |",
        churn
    );
    println!(
        "| skiff, async burst (enqueued at once, until all succeeded) | {calls} | {:.1} s | {async_rate:.2} | {:.2}x |",
        async_took.as_secs_f64(),
        async_rate / best
    );
    println!(
        "| skiff, sync calls 50 at a time ({refused} refused with 429 and sent again after Retry-After) | {sync_calls} | {:.1} s | {sync_rate:.2} | {:.2}x |",
        sync_took.as_secs_f64(),
        sync_rate / best
    );
}
