//! skiff on a Docker Swarm, each figure against a raw baseline measured in the same run, on
//! the swarm of node containers `scripts/swarm.sh` makes on this machine:
//!
//! 1. First call to an idle `http` function: skiff creating the instance's service, waiting
//!    until it is ready and proxying the call, against a raw `service create` of the same
//!    image (published on its node's port) until it answers HTTP.
//! 2. Warm calls, back to back and keep-alive: through skiff (this host, skiff on the
//!    manager, the instance's task over the overlay) against the same image's task called
//!    directly on its node's published port.
//! 3. `exec` calls, back to back: on Swarm (a fresh task per call, its call over the
//!    network) against the same calls to a skiff on this machine's own engine.
//!
//! Run: `scripts/swarm.sh up 2; scripts/swarm.sh registry`, then
//! `SKIFF_TEST_SWARM=tcp://10.231.0.2:2375 SKIFF_TEST_SWARM_REGISTRY=10.231.0.1:5099
//! cargo bench -p skiff --bench swarm` (SAMPLES=n warm samples per path, ROUNDS=n cold ones).

use bollard::models::{
    EndpointPortConfig, EndpointPortConfigPublishModeEnum, EndpointSpec, ServiceSpec, TaskSpec,
    TaskSpecContainerSpec,
};
use serde_json::json;
use skiff_testing::bench::{count, engine_ready};
use skiff_testing::stats::{ms, ratio, Latencies};
use skiff_testing::swarm::{run, TestSwarm};
use skiff_testing::{poll, skiff_bin, Daemon};
use std::process::Command;
use std::time::{Duration, Instant};

/// The host port a raw service publishes on its node.
const RAW_PORT: u16 = 9090;

async fn sequential(client: &reqwest::Client, url: &str, n: usize) -> Vec<Duration> {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let response = client
            .post(url)
            .body("{\"name\":\"bench\"}")
            .send()
            .await
            .expect("request");
        let status = response.status();
        let _ = response.bytes().await.expect("body");
        times.push(started.elapsed());
        assert!(status.is_success(), "{url}: {status}");
    }
    times
}

/// The bridge address of a node container.
fn node_ip(node: &str) -> String {
    run(Command::new("docker").args([
        "inspect",
        "-f",
        "{{(index .NetworkSettings.Networks \"skiff-swarm\").IPAddress}}",
        node,
    ]))
}

/// A raw service of `image` (a registry reference), its port 8080 published on its node's
/// port [`RAW_PORT`]; returns the time from `service create` until it answers HTTP at
/// `/ready`, and its URL there. The caller removes it.
async fn raw_service(
    docker: &bollard::Docker,
    swarm: &TestSwarm,
    name: &str,
    image: &str,
) -> (Duration, String) {
    let spec = ServiceSpec {
        name: Some(name.to_string()),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(image.to_string()),
                env: Some(vec!["PORT=8080".to_string()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        endpoint_spec: Some(EndpointSpec {
            ports: Some(vec![EndpointPortConfig {
                target_port: Some(8080),
                published_port: Some(i64::from(RAW_PORT)),
                publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let client = reqwest::Client::new();
    let started = Instant::now();
    docker
        .create_service(spec, None)
        .await
        .expect("service create");
    let url = poll(
        Duration::from_secs(120),
        Duration::from_millis(5),
        async || {
            let node = swarm
                .nodes_of_service(name)
                .into_iter()
                .find(|n| !n.is_empty())?;
            let url = format!("http://{}:{RAW_PORT}", node_ip(&node));
            let answer = client.get(format!("{url}/ready")).send().await.ok()?;
            answer.status().is_success().then_some(url)
        },
    )
    .await
    .expect("the raw service answers");
    (started.elapsed(), url)
}

/// Removes service `name` and waits until its port is free again.
async fn remove_raw(docker: &bollard::Docker, name: &str, url: &str) {
    docker.delete_service(name).await.expect("service rm");
    let client = reqwest::Client::new();
    let freed = poll(
        Duration::from_secs(60),
        Duration::from_millis(100),
        async || {
            client
                .get(format!("{url}/ready"))
                .send()
                .await
                .is_err()
                .then_some(())
        },
    )
    .await;
    assert!(freed.is_some(), "the raw service's port is freed");
}

#[tokio::main]
async fn main() {
    engine_ready();
    let swarm = TestSwarm::from_env().expect("SKIFF_TEST_SWARM and SKIFF_TEST_SWARM_REGISTRY");
    let samples = count("SAMPLES", 1000);
    let rounds = count("ROUNDS", 5);
    let skiff_image = swarm.skiff_image(skiff_testing::skiff_bin!());
    let echo = swarm.push("skiff/echo-http:latest", "echo-http");
    let hello = swarm.push("skiff/hello:latest", "hello");
    let docker = bollard::Docker::connect_with_http(
        &swarm.manager.replace("tcp://", "http://"),
        120,
        bollard::API_DEFAULT_VERSION,
    )
    .expect("the manager");
    let skiff = swarm
        .start_skiff(
            "skiff-bench",
            &skiff_image,
            &["--max-concurrent-calls", "256"],
        )
        .await;
    let d = &skiff.daemon;
    d.pull(&echo).await;
    d.pull(&hello).await;
    let client = d.client();

    // 1. First call to an idle function: its last instance stopped (Swarm cannot pause).
    d.deploy(
        "cold",
        json!({"image": echo, "contract": "http", "readiness_path": "/ready",
               "memory": "32Mi", "idle_timeout": "1s"}),
    )
    .await;
    let cold_url = format!("{}/fn/cold/", d.url);
    let mut cold = Latencies::new();
    for _ in 0..rounds {
        let idle = poll(
            Duration::from_secs(60),
            Duration::from_millis(200),
            async || d.instances("cold").await.is_empty().then_some(()),
        )
        .await;
        assert!(idle.is_some(), "the idle instance stopped");
        let started = Instant::now();
        let response = client.get(&cold_url).send().await.expect("call");
        assert!(response.status().is_success());
        response.bytes().await.expect("body");
        cold.record(started.elapsed());
    }
    let mut raw_cold = Latencies::new();
    for round in 0..rounds {
        let name = format!("raw-cold-{round}");
        let (took, url) = raw_service(&docker, &swarm, &name, &echo).await;
        raw_cold.record(took);
        remove_raw(&docker, &name, &url).await;
    }

    // 2. Warm calls: one instance through skiff, one raw task directly.
    d.deploy(
        "web",
        json!({"image": echo, "contract": "http", "readiness_path": "/ready",
               "memory": "32Mi", "concurrency": 64, "min_instances": 1, "max_instances": 1}),
    )
    .await;
    let through = format!("{}/fn/web/", d.url);
    let (_, raw_url) = raw_service(&docker, &swarm, "raw-warm", &echo).await;
    let direct = format!("{raw_url}/");
    sequential(&client, &through, 100).await;
    sequential(&client, &direct, 100).await;
    let (mut direct_lat, mut skiff_lat) = (Latencies::new(), Latencies::new());
    for _ in 0..10 {
        direct_lat.extend(sequential(&client, &direct, samples / 10).await);
        skiff_lat.extend(sequential(&client, &through, samples / 10).await);
    }
    remove_raw(&docker, "raw-warm", &raw_url).await;

    // 3. exec calls, back to back, on Swarm and on this machine's engine.
    let exec_calls = count("EXEC_CALLS", 40);
    d.deploy(
        "hello",
        json!({"image": hello, "memory": "32Mi", "timeout": "20s"}),
    )
    .await;
    let on_swarm: Latencies = sequential(&client, &format!("{}/fn/hello", d.url), exec_calls)
        .await
        .into_iter()
        .collect();
    let local = Daemon::start(skiff_bin!(), &[]).await;
    local
        .deploy(
            "hello",
            json!({"image": "skiff/hello:latest", "memory": "32Mi", "timeout": "20s"}),
        )
        .await;
    let local_client = local.client();
    let on_engine: Latencies = sequential(
        &local_client,
        &format!("{}/fn/hello", local.url),
        exec_calls,
    )
    .await
    .into_iter()
    .collect();
    local.stop().await;
    for name in ["cold", "web", "hello"] {
        let _ = d
            .request(reqwest::Method::DELETE, &format!("/v1/functions/{name}"))
            .send()
            .await;
    }
    skiff.stop().await;

    println!("skiff on a 2-node Swarm of node containers on this machine");
    println!("({rounds} cold rounds, {samples} warm samples per path, {exec_calls} exec calls)\n");
    println!("| measure | baseline (same run) | skiff | ratio / added |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| first call to an idle http function, p50 | {} raw service create to answering | {} | {} |",
        ms(raw_cold.median(), 0),
        ms(cold.median(), 0),
        ratio(cold.median(), raw_cold.median())
    );
    println!(
        "| first call to an idle http function, p99 | {} | {} | {} |",
        ms(raw_cold.p99(), 0),
        ms(cold.p99(), 0),
        ratio(cold.p99(), raw_cold.p99())
    );
    println!(
        "| warm call p50 (keep-alive, back to back) | {} direct to a task | {} | +{} |",
        ms(direct_lat.median(), 3),
        ms(skiff_lat.median(), 3),
        ms(skiff_lat.median().saturating_sub(direct_lat.median()), 3)
    );
    println!(
        "| warm call p99 | {} | {} | +{} |",
        ms(direct_lat.p99(), 3),
        ms(skiff_lat.p99(), 3),
        ms(skiff_lat.p99().saturating_sub(direct_lat.p99()), 3)
    );
    println!(
        "| exec call p50 (back to back) | {} on one engine | {} on Swarm | {} |",
        ms(on_engine.median(), 1),
        ms(on_swarm.median(), 1),
        ratio(on_swarm.median(), on_engine.median())
    );
    println!(
        "| exec call p99 | {} | {} | {} |",
        ms(on_engine.p99(), 1),
        ms(on_swarm.p99(), 1),
        ratio(on_swarm.p99(), on_engine.p99())
    );
}
