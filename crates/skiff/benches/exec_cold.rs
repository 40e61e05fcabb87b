//! Exec cold calls through skiff against the raw Docker API, measured in one run.
//!
//! Baseline: create + start + wait of the same image through the Engine API (bollard), with
//! the container removed after each sample, outside the timing (as skiff removes its
//! containers off the call's path). skiff: an HTTP call to `/fn/hello` answered once the
//! function's output has ended and its exit status is known.
//! - `prepared`: the default: a container was created and started ahead of the call.
//! - `cold`: `--exec-prewarm 0`: the call creates and starts its own container.
//!
//! Run: `cargo bench -p skiff --bench exec_cold` (SAMPLES=n to change the sample count).

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{RemoveContainerOptionsBuilder, WaitContainerOptionsBuilder};
use futures::StreamExt;
use skiff_runtime::docker::DockerEngine;
use skiff_testing::Daemon;
use std::path::Path;
use std::time::{Duration, Instant};

const IMAGE: &str = "skiff/hello:latest";

struct Stats {
    median: Duration,
    p99: Duration,
    min: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Stats {
        median: at(0.5),
        p99: at(0.99),
        min: samples[0],
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

async fn raw_docker(engine: &DockerEngine, samples: usize) -> Vec<Duration> {
    let docker = engine.client();
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let body = ContainerCreateBody {
            image: Some(IMAGE.to_string()),
            host_config: Some(HostConfig {
                memory: Some(128 << 20),
                readonly_rootfs: Some(true),
                cap_drop: Some(vec!["ALL".to_string()]),
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
        let wait = WaitContainerOptionsBuilder::default()
            .condition("not-running")
            .build();
        let exit = docker.wait_container(&id, Some(wait)).next().await;
        times.push(started.elapsed());
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
    times
}

async fn through_skiff(daemon: &Daemon, samples: usize, settle: Duration) -> Vec<Duration> {
    let client = reqwest::Client::new();
    let deploy = client
        .put(format!("{}/v1/functions/hello", daemon.url))
        .json(&serde_json::json!({"image": IMAGE, "memory": "128Mi"}))
        .send()
        .await
        .expect("deploy");
    assert!(deploy.status().is_success());
    let url = format!("{}/fn/hello", daemon.url);
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        tokio::time::sleep(settle).await;
        let started = Instant::now();
        let response = client
            .post(&url)
            .body(r#"{"name":"bench"}"#)
            .send()
            .await
            .expect("call");
        let status = response.status();
        let body = response.bytes().await.expect("body");
        times.push(started.elapsed());
        assert!(status.is_success(), "{status}: {body:?}");
        assert_eq!(&body[..], b"Hello bench!\n");
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
        .unwrap_or(40);
    let skiff = Path::new(env!("CARGO_BIN_EXE_skiff"));
    let engine = DockerEngine::connect().await.expect("docker");

    // A daemon first, so that the functions' network exists for the baseline too.
    let prepared = Daemon::start(skiff, &[]).await;
    raw_docker(&engine, 3).await; // warm-up
    let baseline = stats(raw_docker(&engine, samples).await);
    // The replacement container is prepared in the background; give it time, as calls
    // arriving a few hundred ms apart would.
    let warm = stats(through_skiff(&prepared, samples, Duration::from_millis(600)).await);
    prepared.stop().await;
    let cold_daemon = Daemon::start(skiff, &["--exec-prewarm", "0"]).await;
    let cold = stats(through_skiff(&cold_daemon, samples, Duration::from_millis(100)).await);
    cold_daemon.stop().await;

    let ratio = |s: &Stats| s.median.as_secs_f64() / baseline.median.as_secs_f64();
    println!("exec cold call, {samples} samples each, image {IMAGE}\n");
    println!("| path | median | p99 | min | median vs baseline |");
    println!("| --- | --- | --- | --- | --- |");
    println!(
        "| raw Docker API create+start+wait (baseline) | {} | {} | {} | 1.00x |",
        ms(baseline.median),
        ms(baseline.p99),
        ms(baseline.min)
    );
    println!(
        "| skiff, container prepared ahead (default) | {} | {} | {} | {:.2}x |",
        ms(warm.median),
        ms(warm.p99),
        ms(warm.min),
        ratio(&warm)
    );
    println!(
        "| skiff, no prepared container (--exec-prewarm 0) | {} | {} | {} | {:.2}x |",
        ms(cold.median),
        ms(cold.p99),
        ms(cold.min),
        ratio(&cold)
    );
}
