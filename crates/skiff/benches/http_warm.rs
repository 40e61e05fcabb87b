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
use bollard::query_parameters::RemoveContainerOptionsBuilder;
use serde_json::{json, Value};
use skiff_runtime::docker::DockerEngine;
use skiff_testing::Daemon;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const IMAGE: &str = "skiff/echo-http:latest";

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

struct Summary {
    p50: Duration,
    p99: Duration,
}

fn summarize(mut samples: Vec<Duration>) -> Summary {
    samples.sort();
    Summary {
        p50: percentile(&samples, 0.5),
        p99: percentile(&samples, 0.99),
    }
}

async fn deploy(d: &Daemon, name: &str, spec: Value) {
    let response = reqwest::Client::new()
        .put(format!("{}/v1/functions/{name}", d.url))
        .json(&spec)
        .send()
        .await
        .expect("deploy");
    assert!(
        response.status().is_success(),
        "{:?}",
        response.text().await
    );
}

async fn instance_addr(d: &Daemon, name: &str) -> String {
    for _ in 0..200 {
        let body: Value = reqwest::get(format!("{}/v1/functions/{name}/instances", d.url))
            .await
            .expect("instances")
            .json()
            .await
            .expect("json");
        if let Some(container) = body["instances"][0]["container"].as_str() {
            if body["instances"][0]["state"] != "starting" {
                let out = Command::new("docker")
                    .args([
                        "inspect",
                        "-f",
                        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                        container,
                    ])
                    .output()
                    .expect("docker inspect");
                return format!("{}:8080", String::from_utf8_lossy(&out.stdout).trim());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no instance of {name} became ready");
}

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

async fn raw_create_start(engine: &DockerEngine, samples: usize) -> Vec<Duration> {
    let docker = engine.client();
    let mut times = Vec::new();
    for _ in 0..samples {
        let body = ContainerCreateBody {
            image: Some(IMAGE.to_string()),
            host_config: Some(HostConfig {
                memory: Some(64 << 20),
                network_mode: Some("skiff-functions".to_string()),
                ..Default::default()
            }),
            labels: Some([("skiff.bench".to_string(), "true".to_string())].into()),
            ..Default::default()
        };
        let started = Instant::now();
        let id = docker
            .create_container(None, body)
            .await
            .expect("create")
            .id;
        docker.start_container(&id, None).await.expect("start");
        times.push(started.elapsed());
        let rm = RemoveContainerOptionsBuilder::default().force(true).build();
        docker
            .remove_container(&id, Some(rm))
            .await
            .expect("remove");
    }
    times
}

#[tokio::main]
async fn main() {
    assert!(
        skiff_testing::ready(),
        "the benchmark needs the Docker engine"
    );
    let samples: usize = std::env::var("SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let skiff = Path::new(env!("CARGO_BIN_EXE_skiff"));
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
    deploy(
        &d,
        "web",
        json!({"image": IMAGE, "contract": "http", "readiness_path": "/ready",
        "concurrency": 128, "min_instances": 1, "max_instances": 1}),
    )
    .await;
    let direct = format!("http://{}/", instance_addr(&d, "web").await);
    let through = format!("{}/fn/web/", d.url);
    let client = reqwest::Client::new();
    sequential(&client, &direct, 200).await;
    sequential(&client, &through, 200).await;
    let (mut direct_samples, mut skiff_samples) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        direct_samples.extend(sequential(&client, &direct, samples / 10).await);
        skiff_samples.extend(sequential(&client, &through, samples / 10).await);
    }
    let direct_lat = summarize(direct_samples);
    let skiff_lat = summarize(skiff_samples);
    let throughput = match (wrk(&direct), wrk(&through)) {
        (Some(a), Some(b)) => Some((a, b)),
        _ => None,
    };

    // 3: first call to an idle function (its last instance paused) vs raw create+start.
    deploy(
        &d,
        "idle",
        json!({"image": IMAGE, "contract": "http", "readiness_path": "/ready",
        "idle_timeout": "1s"}),
    )
    .await;
    let idle_url = format!("{}/fn/idle/", d.url);
    let mut resumes = Vec::new();
    for _ in 0..10 {
        client
            .get(&idle_url)
            .send()
            .await
            .expect("call")
            .bytes()
            .await
            .expect("body");
        // Wait until the instance is paused again.
        for _ in 0..100 {
            let body: Value = reqwest::get(format!("{}/v1/functions/idle/instances", d.url))
                .await
                .expect("instances")
                .json()
                .await
                .expect("json");
            if body["instances"][0]["state"] == "paused" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let started = Instant::now();
        let response = client.get(&idle_url).send().await.expect("call");
        assert_eq!(response.headers()["x-skiff-cold"], "true");
        response.bytes().await.expect("body");
        resumes.push(started.elapsed());
    }
    let resume = summarize(resumes);
    let raw = summarize(raw_create_start(&engine, 10).await);

    // 4: a burst from zero to 500 concurrent calls.
    deploy(
        &d,
        "burst",
        json!({"image": IMAGE, "contract": "http", "readiness_path": "/ready",
        "concurrency": 50, "max_instances": 10}),
    )
    .await;
    let burst_url = format!("{}/fn/burst/?sleep_ms=50", d.url);
    let burst_client = reqwest::Client::builder()
        .pool_max_idle_per_host(600)
        .build()
        .expect("client");
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
    let burst = summarize(results.into_iter().map(|(_, t)| t).collect());
    d.stop().await;

    println!("http contract, image {IMAGE}, {samples} sequential samples per path\n");
    println!("| measure | baseline (same run) | through skiff | result | target |");
    println!("| --- | --- | --- | --- | --- |");
    println!(
        "| warm latency p50 (keep-alive) | {} direct | {} | +{} | <= +0.2 ms |",
        ms(direct_lat.p50),
        ms(skiff_lat.p50),
        ms(skiff_lat.p50.saturating_sub(direct_lat.p50))
    );
    println!(
        "| warm latency p99 (keep-alive) | {} direct | {} | +{} | <= +1 ms |",
        ms(direct_lat.p99),
        ms(skiff_lat.p99),
        ms(skiff_lat.p99.saturating_sub(direct_lat.p99))
    );
    match throughput {
        Some((direct, through)) => println!(
            "| warm throughput (wrk -t2 -c64) | {direct:.0} req/s direct | {through:.0} req/s | {:.2}x | >= 0.85x |",
            through / direct
        ),
        None => println!("| warm throughput | wrk not installed | - | not measured | >= 0.85x |"),
    }
    println!(
        "| first call to an idle function (paused instance), p50 / p99 | {} / {} raw create+start | {} / {} | {:.2}x | <= 0.1x |",
        ms(raw.p50),
        ms(raw.p99),
        ms(resume.p50),
        ms(resume.p99),
        resume.p50.as_secs_f64() / raw.p50.as_secs_f64()
    );
    println!(
        "| burst 0 -> 500 concurrent calls (50 ms each) | - | p50 {} / p99 {} | {errors} errors | 0 errors |",
        ms(burst.p50),
        ms(burst.p99)
    );
}
