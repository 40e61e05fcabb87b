//! The `http` contract, measured in one run against direct calls to the same container.
//!
//! 1. Warm latency: sequential keep-alive requests, directly to the instance's address and
//!    through skiff's public route, interleaved in blocks; p50 and p99 of each, and the
//!    latency skiff adds.
//! 2. Warm throughput: `wrk` (64 connections, 2 threads) directly and through skiff; the
//!    ratio of requests per second. Skipped with a note when `wrk` is not installed.
//! 3. First call to an idle function: skiff resuming its paused instance, against a raw
//!    Docker API create+start of the same image (to "started", not even "ready").
//! 4. A burst from zero to 500 concurrent calls: errors, p50, p99.
//!
//! Run: `cargo bench -p skiff --bench http_warm` (SAMPLES=n for the latency sample count).

use bollard::models::{ContainerCreateBody, HostConfig};
use serde_json::json;
use skiff_runtime::docker::DockerEngine;
use skiff_testing::bench::{count, engine_ready, instance_addr, raw_start, until_paused};
use skiff_testing::stats::{ms, ratio, Latencies};
use skiff_testing::{skiff_bin, Daemon};
use std::process::Command;
use std::time::{Duration, Instant};

const IMAGE: &str = "skiff/echo-http:latest";

async fn sequential(client: &reqwest::Client, url: &str, n: usize) -> Vec<Duration> {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let response = client.get(url).send().await.expect("request");
        let status = response.status();
        let _ = response.bytes().await.expect("body");
        times.push(started.elapsed());
        assert!(status.is_success());
    }
    times
}

fn wrk(url: &str) -> Option<f64> {
    let out = Command::new("wrk")
        .args(["-t2", "-c64", "-d8s", "--latency", url])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let errors = text
        .lines()
        .find(|l| l.contains("Non-2xx") || l.contains("Socket errors"));
    if let Some(line) = errors {
        eprintln!("wrk {url}: {line}");
    }
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
}

/// The baseline: create and start through the Engine API (to "started", not "ready").
async fn raw_create_start(engine: &DockerEngine, samples: usize) -> Latencies {
    let mut times = Latencies::new();
    for _ in 0..samples {
        let body = ContainerCreateBody {
            image: Some(IMAGE.to_string()),
            host_config: Some(HostConfig {
                memory: Some(64 << 20),
                network_mode: Some("skiff-functions".to_string()),
                ..Default::default()
            }),
            ..Default::default()
        };
        times.record(raw_start(engine.client(), body, false).await);
    }
    times
}

#[tokio::main]
async fn main() {
    engine_ready();
    let samples = count("SAMPLES", 2000);
    let skiff = skiff_bin!();
    let engine = DockerEngine::connect().await.expect("docker");
    let d = Daemon::start(
        skiff,
        &[
            "--autoscale-window",
            "2s",
            "--max-concurrent-calls",
            "1024",
            "--max-queued-calls",
            "4096",
        ],
    )
    .await;

    // 1 and 2: warm latency and throughput, one instance.
    d.deploy(
        "web",
        json!({"image": IMAGE, "contract": "http", "readiness_path": "/ready", "public": true,
        "concurrency": 128, "min_instances": 1, "max_instances": 1}),
    )
    .await;
    let direct = format!("http://{}/", instance_addr(&d, "web").await);
    let through = format!("{}/fn/web/", d.url);
    let client = d.client();
    sequential(&client, &direct, 200).await;
    sequential(&client, &through, 200).await;
    let (mut direct_lat, mut skiff_lat) = (Latencies::new(), Latencies::new());
    for _ in 0..10 {
        direct_lat.extend(sequential(&client, &direct, samples / 10).await);
        skiff_lat.extend(sequential(&client, &through, samples / 10).await);
    }
    let throughput = match (wrk(&direct), wrk(&through)) {
        (Some(a), Some(b)) => Some((a, b)),
        _ => None,
    };

    // 3: first call to an idle function (its last instance paused) vs raw create+start.
    d.deploy(
        "idle",
        json!({"image": IMAGE, "contract": "http", "readiness_path": "/ready",
        "idle_timeout": "1s"}),
    )
    .await;
    let idle_url = format!("{}/fn/idle/", d.url);
    let mut resume = Latencies::new();
    for _ in 0..10 {
        client
            .get(&idle_url)
            .send()
            .await
            .expect("call")
            .bytes()
            .await
            .expect("body");
        until_paused(&d, "idle").await;
        let started = Instant::now();
        let response = client.get(&idle_url).send().await.expect("call");
        assert_eq!(response.headers()["x-skiff-cold"], "true");
        response.bytes().await.expect("body");
        resume.record(started.elapsed());
    }
    let raw = raw_create_start(&engine, 10).await;

    // 4: a burst from zero to 500 concurrent calls.
    d.deploy(
        "burst",
        json!({"image": IMAGE, "contract": "http", "readiness_path": "/ready",
        "concurrency": 50, "max_instances": 10}),
    )
    .await;
    let burst_url = format!("{}/fn/burst/?sleep_ms=50", d.url);
    let burst_client = d.client_with(reqwest::Client::builder().pool_max_idle_per_host(600));
    let calls = (0..500).map(|_| {
        let client = burst_client.clone();
        let url = burst_url.clone();
        async move {
            let started = Instant::now();
            let ok = match client.get(&url).send().await {
                Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
                Err(_) => false,
            };
            (ok, started.elapsed())
        }
    });
    let results = futures::future::join_all(calls).await;
    let errors = results.iter().filter(|(ok, _)| !ok).count();
    let burst: Latencies = results.into_iter().map(|(_, t)| t).collect();
    d.stop().await;

    println!("http contract, image {IMAGE}, {samples} sequential samples per path\n");
    println!("| measure | baseline (same run) | through skiff | result | target |");
    println!("| --- | --- | --- | --- | --- |");
    println!(
        "| warm latency p50 (keep-alive) | {} direct | {} | +{} | <= +0.2 ms |",
        ms(direct_lat.median(), 3),
        ms(skiff_lat.median(), 3),
        ms(skiff_lat.median().saturating_sub(direct_lat.median()), 3)
    );
    println!(
        "| warm latency p99 (keep-alive) | {} direct | {} | +{} | <= +1 ms |",
        ms(direct_lat.p99(), 3),
        ms(skiff_lat.p99(), 3),
        ms(skiff_lat.p99().saturating_sub(direct_lat.p99()), 3)
    );
    match throughput {
        Some((direct, through)) => println!(
            "| warm throughput (wrk -t2 -c64) | {direct:.0} req/s direct | {through:.0} req/s | {:.2}x | >= 0.85x |",
            through / direct
        ),
        None => println!("| warm throughput | wrk not installed | - | not measured | >= 0.85x |"),
    }
    println!(
        "| first call to an idle function (paused instance), p50 / p99 | {} / {} raw create+start | {} / {} | {} | <= 0.1x |",
        ms(raw.median(), 3),
        ms(raw.p99(), 3),
        ms(resume.median(), 3),
        ms(resume.p99(), 3),
        ratio(resume.median(), raw.median())
    );
    println!(
        "| burst 0 -> 500 concurrent calls (50 ms each) | - | p50 {} / p99 {} | {errors} errors | 0 errors |",
        ms(burst.median(), 3),
        ms(burst.p99(), 3)
    );
}
