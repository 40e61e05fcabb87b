//! The `lambda` contract, measured in one run: warm invoke latency through skiff's public
//! route and through the Lambda Invoke API, and the first call to an idle function (its
//! paused instance resumed) against a raw Docker API create+start of the same image.
//!
//! Run: `cargo bench -p skiff --bench lambda_warm` (SAMPLES=n for the warm sample count).

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::RemoveContainerOptionsBuilder;
use serde_json::{json, Value};
use skiff_runtime::docker::DockerEngine;
use skiff_testing::Daemon;
use std::path::Path;
use std::time::{Duration, Instant};

const IMAGE: &str = "skiff/lambda-hello:latest";

fn pct(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

async fn timed(client: &reqwest::Client, url: &str, n: usize) -> Vec<Duration> {
    let mut times = Vec::with_capacity(n);
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
        times.push(started.elapsed());
    }
    times.sort();
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
        .unwrap_or(1000);
    let d = Daemon::start(Path::new(env!("CARGO_BIN_EXE_skiff")), &[]).await;
    let client = reqwest::Client::new();
    for (name, extra) in [
        ("warm", json!({"min_instances": 1, "max_instances": 1})),
        (
            "idle",
            json!({"idle_timeout": "1s", "autoscale_window": "2s"}),
        ),
    ] {
        let mut spec = json!({"image": IMAGE, "contract": "lambda", "memory": "64Mi"});
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        let response = client
            .put(format!("{}/v1/functions/{name}", d.url))
            .json(&spec)
            .send()
            .await
            .expect("deploy");
        assert!(response.status().is_success());
    }
    let public = format!("{}/fn/warm", d.url);
    let lambda_api = format!("{}/2015-03-31/functions/warm/invocations", d.url);
    timed(&client, &public, 100).await;
    let through_route = timed(&client, &public, samples).await;
    let through_api = timed(&client, &lambda_api, samples).await;

    let idle_url = format!("{}/fn/idle", d.url);
    let mut resumes = Vec::new();
    for _ in 0..10 {
        timed(&client, &idle_url, 1).await;
        for _ in 0..100 {
            let list: Value = client
                .get(format!("{}/v1/functions/idle/instances", d.url))
                .send()
                .await
                .expect("instances")
                .json()
                .await
                .expect("json");
            if list["instances"][0]["state"] == "paused" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        resumes.extend(timed(&client, &idle_url, 1).await);
    }
    resumes.sort();
    d.stop().await;

    let engine = DockerEngine::connect().await.expect("docker");
    let docker = engine.client();
    let mut raw = Vec::new();
    for _ in 0..10 {
        let body = ContainerCreateBody {
            image: Some(IMAGE.to_string()),
            host_config: Some(HostConfig {
                memory: Some(64 << 20),
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
        raw.push(started.elapsed());
        let rm = RemoveContainerOptionsBuilder::default().force(true).build();
        docker
            .remove_container(&id, Some(rm))
            .await
            .expect("remove");
    }
    raw.sort();

    println!("lambda contract, image {IMAGE}, {samples} warm samples per path\n");
    println!("| measure | p50 | p99 |");
    println!("| --- | --- | --- |");
    println!(
        "| warm invoke, public route `/fn/warm` | {} | {} |",
        ms(pct(&through_route, 0.5)),
        ms(pct(&through_route, 0.99))
    );
    println!(
        "| warm invoke, Lambda Invoke API | {} | {} |",
        ms(pct(&through_api, 0.5)),
        ms(pct(&through_api, 0.99))
    );
    println!(
        "| first call to an idle function (paused instance resumed) | {} | {} |",
        ms(pct(&resumes, 0.5)),
        ms(pct(&resumes, 0.99))
    );
    println!(
        "| raw Docker API create+start of the same image (baseline) | {} | {} |",
        ms(pct(&raw, 0.5)),
        ms(pct(&raw, 0.99))
    );
    println!(
        "\nfirst call vs raw create+start (p50): {:.2}x (target <= 0.1x)",
        pct(&resumes, 0.5).as_secs_f64() / pct(&raw, 0.5).as_secs_f64()
    );
}
