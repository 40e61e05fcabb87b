//! Exec cold calls through skiff against the raw Docker API, measured in one run.
//!
//! Baseline: create + start + wait of the same image through the Engine API (bollard), with
//! the container removed after each sample, outside the timing (as skiff removes its
//! containers off the call's path). skiff: an HTTP call to `/fn/hello` answered once the
//! function's output has ended and its exit status is known.
//! - `back to back` (the default daemon): each call sent as soon as the previous one has
//!   answered, after 5 unmeasured calls; the prepared pool has to keep up with the calls;
//! - `spaced` (the default daemon): 600 ms between calls, so that the one container prepared
//!   ahead always has time to refill (the figure this benchmark reported first; kept, labelled);
//! - `no prepared container`: `--exec-prewarm 0`, back to back: every call creates and starts
//!   its own container.
//!
//! Run: `cargo bench -p skiff --bench exec_cold` (SAMPLES=n to change the sample count).

use bollard::models::{ContainerCreateBody, HostConfig};
use skiff_runtime::docker::DockerEngine;
use skiff_testing::bench::{count, engine_ready, raw_start};
use skiff_testing::stats::{ms, ratio, Latencies};
use skiff_testing::{skiff_bin, Daemon};
use std::time::{Duration, Instant};

const IMAGE: &str = "skiff/hello:latest";
/// Calls made before the measured ones on each path (not measured).
const WARM_UP: usize = 5;

/// The baseline: create, start and wait for exit through the Engine API, `samples` times.
async fn raw_docker(engine: &DockerEngine, samples: usize) -> Latencies {
    let mut times = Latencies::new();
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
            ..Default::default()
        };
        times.record(raw_start(engine.client(), body, true).await);
    }
    times
}

async fn through_skiff(daemon: &Daemon, samples: usize, settle: Duration) -> Latencies {
    daemon
        .deploy(
            "hello",
            serde_json::json!({"image": IMAGE, "memory": "128Mi"}),
        )
        .await;
    let client = daemon.client();
    let url = format!("{}/fn/hello", daemon.url);
    let mut times = Latencies::new();
    for i in 0..samples + WARM_UP {
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
        if i >= WARM_UP {
            times.record(started.elapsed());
        }
        assert!(status.is_success(), "{status}: {body:?}");
        assert_eq!(&body[..], b"Hello bench!\n");
    }
    times
}

#[tokio::main]
async fn main() {
    engine_ready();
    let samples = count("SAMPLES", 40);
    let skiff = skiff_bin!();
    let engine = DockerEngine::connect().await.expect("docker");

    // A daemon first, so that the functions' network exists for the baseline too.
    let prepared = Daemon::start(skiff, &[]).await;
    raw_docker(&engine, 3).await; // warm-up
    let baseline = raw_docker(&engine, samples).await;
    let back_to_back = through_skiff(&prepared, samples, Duration::ZERO).await;
    prepared.stop().await;
    let spaced_daemon = Daemon::start(skiff, &[]).await;
    let spaced = through_skiff(&spaced_daemon, samples, Duration::from_millis(600)).await;
    spaced_daemon.stop().await;
    let cold_daemon = Daemon::start(skiff, &["--exec-prewarm", "0"]).await;
    let cold = through_skiff(&cold_daemon, samples, Duration::ZERO).await;
    cold_daemon.stop().await;

    let row = |path: &str, s: &Latencies, vs: &str| {
        println!(
            "| {path} | {} | {} | {} | {vs} |",
            ms(s.median(), 1),
            ms(s.p99(), 1),
            ms(s.min(), 1)
        );
    };
    println!("exec cold call, {samples} samples each, image {IMAGE}\n");
    println!("| path | median | p99 | min | median vs baseline |");
    println!("| --- | --- | --- | --- | --- |");
    row(
        "raw Docker API create+start+wait (baseline)",
        &baseline,
        "1.00x",
    );
    row(
        "skiff, back to back (default)",
        &back_to_back,
        &ratio(back_to_back.median(), baseline.median()),
    );
    row(
        "skiff, spaced 600 ms apart (default; not the steady case)",
        &spaced,
        &ratio(spaced.median(), baseline.median()),
    );
    row(
        "skiff, no prepared container (--exec-prewarm 0), back to back",
        &cold,
        &ratio(cold.median(), baseline.median()),
    );
}
