//! The `lambda` contract, measured in one run: warm invoke latency through skiff's public
//! route and through the Lambda Invoke API, against a warm call of the `http` contract
//! (baseline: the same daemon, the same kind of request), and the first call to an idle
//! function (its paused instance resumed) against a raw Docker API create+start of the same
//! image. The warm paths take turns, 100 calls at a time, so that a busy moment of the
//! machine falls on all of them alike.
//!
//! Run: `cargo bench -p skiff --bench lambda_warm` (SAMPLES=n for the warm sample count).

use bollard::models::{ContainerCreateBody, HostConfig};
use serde_json::json;
use skiff_runtime::docker::DockerEngine;
use skiff_testing::aws::{sign_request, AwsKey};
use skiff_testing::bench::{count, engine_ready, raw_start, until_paused};
use skiff_testing::stats::{ms, ratio, Latencies};
use skiff_testing::{merged, skiff_bin, Daemon};
use std::time::{Instant, SystemTime};

const IMAGE: &str = "skiff/lambda-hello:latest";

/// `n` calls to `url`, one at a time; signed with `key` (SigV4, as AWS clients sign the
/// Invoke API's requests) when one is given.
async fn timed(client: &reqwest::Client, url: &str, n: usize, key: Option<&AwsKey>) -> Latencies {
    let mut times = Latencies::new();
    for _ in 0..n {
        let started = Instant::now();
        let mut request = client
            .post(url)
            .body(r#"{"name":"bench"}"#)
            .build()
            .expect("request");
        if let Some(key) = key {
            sign_request(&mut request, key, SystemTime::now());
        }
        let response = client.execute(request).await.expect("call");
        assert!(
            response.status().is_success(),
            "{url}: {}",
            response.status()
        );
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
    d.deploy(
        "web",
        json!({"image": "skiff/echo-http:latest", "contract": "http", "readiness_path": "/ready",
               "memory": "64Mi", "min_instances": 1, "max_instances": 1}),
    )
    .await;
    let public = format!("{}/fn/warm", d.url);
    let lambda_api = format!("{}/2015-03-31/functions/warm/invocations", d.url);
    let http = format!("{}/fn/web/", d.url);
    let key = d.aws_key();
    for url in [&public, &http] {
        timed(&client, url, 100, None).await;
    }
    timed(&client, &lambda_api, 100, Some(&key)).await;
    let (mut through_route, mut through_api, mut through_http) =
        (Latencies::new(), Latencies::new(), Latencies::new());
    for _ in 0..samples.div_ceil(100) {
        through_http.add(&timed(&client, &http, 100, None).await);
        through_route.add(&timed(&client, &public, 100, None).await);
        through_api.add(&timed(&client, &lambda_api, 100, Some(&key)).await);
    }

    let idle_url = format!("{}/fn/idle", d.url);
    let mut resumes = Latencies::new();
    for _ in 0..10 {
        timed(&client, &idle_url, 1, None).await;
        until_paused(&d, "idle").await;
        resumes.add(&timed(&client, &idle_url, 1, None).await);
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
        "| warm call, `http` contract (`skiff/echo-http`, baseline) | {} | {} |",
        ms(through_http.median(), 3),
        ms(through_http.p99(), 3)
    );
    println!(
        "| warm invoke, public route `/fn/warm` | {} | {} |",
        ms(through_route.median(), 3),
        ms(through_route.p99(), 3)
    );
    println!(
        "| warm invoke, Lambda Invoke API (SigV4-signed by the client) | {} | {} |",
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
    let over =
        |l: &Latencies| (l.median().as_secs_f64() - through_http.median().as_secs_f64()) * 1000.0;
    println!(
        "\nwarm lambda over warm http (p50): route {:+.3} ms, Invoke API {:+.3} ms (target <= +0.5 ms)",
        over(&through_route),
        over(&through_api)
    );
    println!(
        "first call vs raw create+start (p50): {} (target <= 0.1x)",
        ratio(resumes.median(), raw.median())
    );
}
