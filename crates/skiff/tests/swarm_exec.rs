//! `exec` functions on a real multi-node Docker Swarm: still a fresh container per call. skiff
//! runs as a service on the manager (its image found from its own container), a global
//! service puts `skiff-init` on every node, and each prepared exec container is a task whose
//! `skiff-init` takes its one call over the overlay network.
//!
//! Runs on the swarm and registry `SKIFF_TEST_SWARM` and `SKIFF_TEST_SWARM_REGISTRY` name
//! (`.ci/run` brings them up; see `skiff_testing::swarm`).

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::json;
use skiff_testing::swarm::TestSwarm;
use skiff_testing::{env_lines, poll};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[tokio::test]
async fn exec_calls_run_each_in_a_fresh_task_on_any_node() {
    let Some(swarm) = TestSwarm::from_env() else {
        return;
    };
    if !skiff_testing::ready() {
        return;
    }
    let skiff_image = swarm.skiff_image(skiff_testing::skiff_bin!());
    let testfn = swarm.push("skiff/testfn:latest", "testfn");
    let skiff = swarm
        .start_skiff("skiff-exec", &skiff_image, &["--exec-prewarm", "2"])
        .await;
    let d = &skiff.daemon;
    d.pull(&testfn).await;
    d.deploy(
        "env",
        json!({"image": testfn, "env": {"MODE": "env"}, "memory": "32Mi", "cpus": 0.1,
               "timeout": "20s"}),
    )
    .await;

    // Calls in a row and at once, while the nodes of the prepared tasks are watched.
    let label = "skiff.function=env";
    let nodes = Arc::new(Mutex::new(HashSet::new()));
    let watching = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = {
        let (nodes, watching) = (nodes.clone(), watching.clone());
        let swarm = swarm.clone();
        std::thread::spawn(move || {
            while watching.load(std::sync::atomic::Ordering::Relaxed) {
                // A task not yet given to a node has no node's name.
                for node in swarm.nodes_of(label).into_iter().filter(|n| !n.is_empty()) {
                    nodes.lock().expect("nodes").insert(node);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let client = d.client();
    let call = |i: usize| {
        let client = client.clone();
        let url = format!("{}/v1/functions/env/invoke", d.url);
        async move {
            let answer = client
                .post(url)
                .body(format!("call {i}"))
                .send()
                .await
                .expect("call");
            let status = answer.status();
            let text = answer.text().await.expect("body");
            assert_eq!(status, StatusCode::OK, "call {i}: {text}");
            let env = env_lines(&text);
            assert!(!env.contains_key("SKIFF_INIT_LISTEN"), "{text}");
            env.get("HOSTNAME").cloned().expect("a HOSTNAME")
        }
    };
    let mut hosts = Vec::new();
    for i in 0..4 {
        hosts.push(call(i).await);
    }
    hosts.extend(join_all((4..12).map(call)).await);
    watching.store(false, std::sync::atomic::Ordering::Relaxed);
    watcher.join().expect("the watcher");
    let distinct: HashSet<&String> = hosts.iter().collect();
    assert_eq!(
        distinct.len(),
        hosts.len(),
        "a fresh container per call: {hosts:?}"
    );
    let nodes = nodes.lock().expect("nodes").clone();
    assert_eq!(nodes.len(), 2, "prepared tasks on both nodes: {nodes:?}");

    // A failing call keeps its exit status.
    d.deploy(
        "fail",
        json!({"image": testfn, "env": {"MODE": "exit"}, "memory": "32Mi", "timeout": "20s"}),
    )
    .await;
    let answer = client
        .post(format!("{}/v1/functions/fail/invoke", d.url))
        .send()
        .await
        .expect("call");
    let status = answer.status();
    let body: serde_json::Value = answer.json().await.expect("a JSON error");
    assert!(!status.is_success(), "{body}");
    assert_eq!(body["error"]["code"], "function_error", "{body}");

    // Deleted, the functions leave no task; stopped, skiff leaves no service of its own.
    for name in ["env", "fail"] {
        let deleted = d
            .request(reqwest::Method::DELETE, &format!("/v1/functions/{name}"))
            .send()
            .await
            .expect("delete");
        assert!(deleted.status().is_success());
    }
    let gone = poll(
        Duration::from_secs(60),
        Duration::from_millis(500),
        async || {
            swarm
                .services("skiff.managed=true")
                .is_empty()
                .then_some(())
        },
    )
    .await;
    assert!(
        gone.is_some(),
        "the functions' services are gone:\n{}",
        skiff.logs()
    );
    skiff.stop().await;
}
