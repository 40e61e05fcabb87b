//! Async calls, measured in one run: on a fresh store, the end-to-end latency of a lone
//! async call (accepted -> final status seen by polling) and durable enqueue throughput
//! (202s per second from 64 connections) while the dispatcher drains the queue; then the
//! two split: enqueueing with the dispatcher off (`--dispatch false`), and the same daemon
//! restarted with its dispatcher draining that backlog.
//!
//! Run: `cargo bench -p skiff --bench async_queue` (CALLS=n to change the enqueue count).

use serde_json::{json, Value};
use skiff_testing::bench::{count, engine_ready, wrk_requests};
use skiff_testing::stats::{millis, Latencies};
use skiff_testing::{skiff_bin, Daemon};
use std::time::{Duration, Instant};

/// Enqueues async calls to `url` for about 5 s from 64 connections: wrk (a separate, light
/// client process) when it is installed, else `calls` calls from this process. (calls
/// accepted, time taken, the client's name)
async fn enqueue_burst(
    client: &reqwest::Client,
    url: &str,
    calls: usize,
) -> (usize, Duration, &'static str) {
    let started = Instant::now();
    if let Some((count, took)) = wrk_enqueue(url) {
        return (count, took, "wrk -t1 -c64");
    }
    let mut pending = futures::stream::FuturesUnordered::new();
    use futures::StreamExt;
    let mut accepted = 0;
    for _ in 0..calls {
        let client = client.clone();
        let url = url.to_string();
        pending.push(async move {
            client
                .post(url)
                .header("Prefer", "respond-async")
                .body("x")
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
    assert_eq!(accepted, calls);
    (calls, started.elapsed(), "64 clients in the bench")
}

/// Waits until function `web` has no call queued or running.
async fn drained(client: &reqwest::Client, d: &Daemon) {
    loop {
        let mut empty = true;
        for status in ["queued", "running"] {
            let page: Value = client
                .get(format!(
                    "{}/v1/calls?function=web&status={status}&limit=1",
                    d.url
                ))
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

/// End-to-end latency of one async call at a time: accepted, then `succeeded` seen by
/// polling its record.
async fn lone_calls(client: &reqwest::Client, d: &Daemon, url: &str) -> Latencies {
    let mut latencies = Latencies::new();
    for _ in 0..50 {
        let started = Instant::now();
        let response = client
            .post(url)
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
            let record: Value = client
                .get(format!("{}/v1/calls/{id}", d.url))
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

#[tokio::main]
async fn main() {
    engine_ready();
    let calls = count("CALLS", 5000);
    let mut d = Daemon::start(skiff_bin!(), &["--max-concurrent-calls", "256"]).await;
    let client = d.client_with(reqwest::Client::builder().pool_max_idle_per_host(128));
    d.deploy(
        "web",
        json!({"image": "skiff/echo-http:latest", "contract": "http", "readiness_path": "/ready",
               "memory": "64Mi", "concurrency": 128, "min_instances": 1, "max_instances": 2,
               "public": true}),
    )
    .await;
    let url = format!("{}/fn/web/", d.url);
    for _ in 0..20 {
        client
            .get(&url)
            .send()
            .await
            .expect("warm")
            .bytes()
            .await
            .expect("body");
    }

    // On a fresh store: lone calls, then enqueueing while the dispatcher drains, until the
    // queue is empty.
    let lone = lone_calls(&client, &d, &url).await;
    let started = Instant::now();
    let (both, enqueue_time, client_name) = enqueue_burst(&client, &url, calls).await;
    drained(&client, &d).await;
    let drain_time = started.elapsed();

    // Then split: the same daemon restarted without a dispatcher (`--dispatch false`)
    // enqueues alone; restarted with it, it drains that backlog with nothing enqueued.
    assert!(d.terminate().await, "a clean stop:\n{}", d.log());
    d.restart_with(&["--max-concurrent-calls", "256", "--dispatch", "false"])
        .await;
    // Each start listens on a port of its own.
    let url = format!("{}/fn/web/", d.url);
    let (alone, alone_time, _) = enqueue_burst(&client, &url, calls).await;
    assert!(d.terminate().await, "a clean stop:\n{}", d.log());
    d.restart_with(&["--max-concurrent-calls", "256"]).await;
    let started = Instant::now();
    drained(&client, &d).await;
    let dispatch_alone_time = started.elapsed();
    d.stop().await;

    println!("| measure | result | target |");
    println!("| --- | --- | --- |");
    println!(
        "| end-to-end async latency on a fresh store (accepted -> succeeded seen by polling), p50 / p99 | {:.2} / {:.2} ms | - |",
        millis(lone.median()),
        millis(lone.p99())
    );
    println!(
        "| durable enqueue while the dispatcher drains ({both} calls, {client_name}) | {:.0} calls/s | - |",
        both as f64 / enqueue_time.as_secs_f64()
    );
    println!(
        "| enqueue + dispatch to a warm http instance, until the queue is empty | {:.0} calls/s | - |",
        both as f64 / drain_time.as_secs_f64()
    );
    println!(
        "| durable enqueue alone, dispatcher off ({alone} calls, 202 after the commit) | {:.0} calls/s | >= 10,000 calls/s |",
        alone as f64 / alone_time.as_secs_f64()
    );
    println!(
        "| dispatch alone: that backlog of {alone} calls drained, nothing enqueued meanwhile | {:.0} calls/s | - |",
        alone as f64 / dispatch_alone_time.as_secs_f64()
    );
}

/// Async calls from wrk for 5 s over 64 connections: (calls accepted, time taken), or
/// `None` when wrk is not installed. Every answer must be a 202.
fn wrk_enqueue(url: &str) -> Option<(usize, Duration)> {
    let dir = tempfile::tempdir().ok()?;
    let script = dir.path().join("async.lua");
    std::fs::write(
        &script,
        "wrk.method = \"POST\"\nwrk.body = \"x\"\nwrk.headers[\"Prefer\"] = \"respond-async\"\n",
    )
    .ok()?;
    let out = std::process::Command::new("wrk")
        .args(["-t1", "-c64", "-d5s", "-s"])
        .arg(&script)
        .arg(url)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("Non-2xx") && !text.contains("Socket errors"),
        "wrk saw errors: {text}"
    );
    // wrk ran: what it printed must be read, or the run says why.
    let unreadable = || -> ! {
        panic!(
            "cannot read wrk's output: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let count = wrk_requests(&text).unwrap_or_else(|| unreadable());
    let seconds: f64 = text
        .lines()
        .find_map(|l| {
            let rest = l.trim().split_once("requests in ")?.1;
            rest.split_once('s')?.0.parse().ok()
        })
        .unwrap_or_else(|| unreadable());
    Some((count, Duration::from_secs_f64(seconds)))
}
