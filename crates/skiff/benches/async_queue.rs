//! Async calls, measured in one run: on a fresh store, the end-to-end latency of a lone
//! async call (accepted -> final status seen by polling) and durable enqueue throughput
//! (202s per second from 64 connections) while the dispatcher drains the queue; then the
//! two split: enqueueing with the dispatcher off (`--dispatch false`), and the same daemon
//! restarted with its dispatcher draining that backlog.
//!
//! Run: `cargo bench -p skiff --bench async_queue` (CALLS=n to change the enqueue count).

use serde_json::json;
use skiff_testing::bench::{
    count, engine_ready, enqueue_async, lone_async_calls, until_drained, wrk_requests,
};
use skiff_testing::stats::millis;
use skiff_testing::{skiff_bin, Daemon};
use std::time::{Duration, Instant};

/// Enqueues async calls to `d`'s function `web` for about 5 s from 64 connections: wrk (a
/// separate, light client process) when it is installed, else `calls` calls from this
/// process. (calls accepted, time taken, the client's name)
async fn enqueue_burst(
    client: &reqwest::Client,
    d: &Daemon,
    calls: usize,
) -> (usize, Duration, &'static str) {
    let started = Instant::now();
    if let Some((count, took)) = wrk_enqueue(&format!("{}/fn/web/", d.url)) {
        return (count, took, "wrk -t1 -c64");
    }
    let accepted = enqueue_async(client, &[d], "web", calls).await;
    assert_eq!(accepted, calls);
    (calls, started.elapsed(), "64 clients in the bench")
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
    let lone = lone_async_calls(&client, &[&d], "web", 50).await;
    let started = Instant::now();
    let (both, enqueue_time, client_name) = enqueue_burst(&client, &d, calls).await;
    until_drained(&client, &d, "web").await;
    let drain_time = started.elapsed();

    // Then split: the same daemon restarted without a dispatcher (`--dispatch false`)
    // enqueues alone; restarted with it, it drains that backlog with nothing enqueued.
    assert!(d.terminate().await, "a clean stop:\n{}", d.log());
    d.restart_with(&["--max-concurrent-calls", "256", "--dispatch", "false"])
        .await;
    let (alone, alone_time, _) = enqueue_burst(&client, &d, calls).await;
    assert!(d.terminate().await, "a clean stop:\n{}", d.log());
    d.restart_with(&["--max-concurrent-calls", "256"]).await;
    let started = Instant::now();
    until_drained(&client, &d, "web").await;
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
