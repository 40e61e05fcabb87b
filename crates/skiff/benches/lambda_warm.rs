//! The `lambda` contract, measured in one run: warm invoke latency through skiff's public
//! route and through the Lambda Invoke API, and the first call to an idle function (its
//! paused instance resumed) against a raw Docker API create+start of the same image.
//!
//! Run: `cargo bench -p skiff --bench lambda_warm` (SAMPLES=n for the warm sample count).

use bollard::models::{ContainerCreateBody, HostConfig};
use serde_json::json;
use skiff_runtime::docker::DockerEngine;
use skiff_testing::bench::{count, engine_ready, raw_start, until_paused};
use skiff_testing::stats::{ms, ratio, Latencies};
use skiff_testing::{merged, skiff_bin, Daemon};
use std::time::Instant;

const IMAGE: &str = "skiff/lambda-hello:latest";

async fn timed(client: &reqwest::Client, url: &str, n: usize) -> Latencies {
    let mut times = Latencies::new();
    for _ in 0..n {
        let started = Instant::now();
        let response = client
            .post(url)
            .body(r#"{"name":"bench"}"#)
            .send()
            .await
            .expect("call");
        assert!(response.status().is_success());
        response.bytes().await.expect("body");
        times.record(started.elapsed());
    }
    times
}

#[tokio::main]
async fn main() {
    engine_ready();
    let samples = count("SAMPLES", 1000);
    let d = Daemon::start(skiff_bin!(), &[]).await;
    let client = d.client();
    for (name, extra) in [
        ("warm", json!({"min_instances": 1, "max_instances": 1})),
        (
            "idle",
            json!({"idle_timeout": "1s", "autoscale_window": "2s"}),
        ),
    ] {
        let spec = json!({"image": IMAGE, "contract": "lambda", "memory": "64Mi"});
        d.deploy(name, merged(spec, extra)).await;
    }
    let public = format!("{}/fn/warm", d.url);
    let lambda_api = format!("{}/2015-03-31/functions/warm/invocations", d.url);
    timed(&client, &public, 100).await;
    let through_route = timed(&client, &public, samples).await;
    let through_api = timed(&client, &lambda_api, samples).await;

    let idle_url = format!("{}/fn/idle", d.url);
    let mut resumes = Latencies::new();
    for _ in 0..10 {
        timed(&client, &idle_url, 1).await;
        until_paused(&d, "idle").await;
        resumes.add(&timed(&client, &idle_url, 1).await);
    }
    d.stop().await;

    let engine = DockerEngine::connect().await.expect("docker");
    let mut raw = Latencies::new();
    for _ in 0..10 {
        let body = ContainerCreateBody {
            image: Some(IMAGE.to_string()),
            host_config: Some(HostConfig {
                memory: Some(64 << 20),
                ..Default::default()
            }),
            ..Default::default()
        };
        raw.record(raw_start(engine.client(), body, false).await);
    }

    println!("lambda contract, image {IMAGE}, {samples} warm samples per path\n");
    println!("| measure | p50 | p99 |");
    println!("| --- | --- | --- |");
    println!(
        "| warm invoke, public route `/fn/warm` | {} | {} |",
        ms(through_route.median(), 3),
        ms(through_route.p99(), 3)
    );
    println!(
        "| warm invoke, Lambda Invoke API | {} | {} |",
        ms(through_api.median(), 3),
        ms(through_api.p99(), 3)
    );
    println!(
        "| first call to an idle function (paused instance resumed) | {} | {} |",
        ms(resumes.median(), 3),
        ms(resumes.p99(), 3)
    );
    println!(
        "| raw Docker API create+start of the same image (baseline) | {} | {} |",
        ms(raw.median(), 3),
        ms(raw.p99(), 3)
    );
    println!(
        "\nfirst call vs raw create+start (p50): {} (target <= 0.1x)",
        ratio(resumes.median(), raw.median())
    );
}
