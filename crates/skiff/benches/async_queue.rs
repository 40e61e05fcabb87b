//! Async calls, measured in one run: durable enqueue throughput (202s per second with many
//! clients), dispatch throughput to a warm http instance, and end-to-end latency of a lone
//! async call (accepted -> final status seen by polling).
//!
//! Run: `cargo bench -p skiff --bench async_queue` (CALLS=n to change the enqueue count).

use serde_json::{json, Value};
use skiff_testing::bench::{count, engine_ready, wrk_requests};
use skiff_testing::stats::{millis, Latencies};
use skiff_testing::{skiff_bin, Daemon};
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    engine_ready();
    let calls = count("CALLS", 5000);
    let d = Daemon::start(skiff_bin!(), &["--max-concurrent-calls", "256"]).await;
    let client = d.client_with(reqwest::Client::builder().pool_max_idle_per_host(128));
    d.deploy(
        "web",
        json!({"image": "skiff/echo-http:latest", "contract": "http", "readiness_path": "/ready",
               "memory": "64Mi", "concurrency": 128, "min_instances": 1, "max_instances": 2,
               "public": true}),
    )
    .await;
    let url = format!("{}/fn/web/", d.url);
    // Warm up.
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

    // Enqueue throughput: 64 connections, from wrk (a separate, light client process) when
    // it is installed, else from this process.
    let started = Instant::now();
    let (calls, enqueue_time, client_name) = match wrk_enqueue(&url) {
        Some((count, took)) => (count, took, "wrk -t1 -c64"),
        None => {
            let mut pending = futures::stream::FuturesUnordered::new();
            use futures::StreamExt;
            let mut accepted = 0;
            for _ in 0..calls {
                let client = client.clone();
                let url = url.clone();
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
    };

    // Dispatch throughput: until the queue is empty.
    loop {
        let page: Value = client
            .get(format!(
                "{}/v1/calls?function=web&status=queued&limit=1",
                d.url
            ))
            .send()
            .await
            .expect("queued")
            .json()
            .await
            .expect("json");
        let running: Value = client
            .get(format!(
                "{}/v1/calls?function=web&status=running&limit=1",
                d.url
            ))
            .send()
            .await
            .expect("running")
            .json()
            .await
            .expect("json");
        let empty = |v: &Value| v["calls"].as_array().is_none_or(Vec::is_empty);
        if empty(&page) && empty(&running) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drain_time = started.elapsed();

    // End-to-end latency of one async call at a time.
    let mut latencies = Latencies::new();
    for _ in 0..50 {
        let started = Instant::now();
        let response = client
            .post(&url)
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
    d.stop().await;
    println!("| measure | result | target |");
    println!("| --- | --- | --- |");
    println!(
        "| durable enqueue ({calls} calls, {client_name}) | {:.0} calls/s | >= 10,000 calls/s |",
        calls as f64 / enqueue_time.as_secs_f64()
    );
    println!(
        "| enqueue + dispatch to a warm http instance, until the queue is empty | {:.0} calls/s | - |",
        calls as f64 / drain_time.as_secs_f64()
    );
    println!(
        "| end-to-end async latency (accepted -> succeeded seen by polling), p50 / p99 | {:.2} / {:.2} ms | - |",
        millis(latencies.median()),
        millis(latencies.p99())
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
    let count = wrk_requests(&text)?;
    let seconds: f64 = text.lines().find_map(|l| {
        let rest = l.trim().split_once("requests in ")?.1;
        rest.split_once('s')?.0.parse().ok()
    })?;
    Some((count, Duration::from_secs_f64(seconds)))
}
