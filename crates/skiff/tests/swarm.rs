//! skiff on a real multi-node Docker Swarm: skiff itself runs as a service on the manager
//! (its FROM-scratch image, pulled by the node from a registry), with the Swarm engine; a
//! function's image is pushed to that registry and pulled by digest by every node that runs
//! one of its instances; instances spread over the nodes, are reached at their own task
//! addresses on the overlay network, and move off a drained node while calls go on. A
//! `lambda` function's instances, on the worker node too, reach the Runtime API at skiff's
//! own address on the overlay and are reused warm. Two daemons on the manager share one
//! PostgreSQL (on this machine, reached from the nodes): a function deployed through one is
//! served by the other, and when one is killed under a load of async calls, none is lost
//! and the other removes the dead one's instances once its lease has run out.
//!
//! Runs on the swarm and registry `SKIFF_TEST_SWARM` and `SKIFF_TEST_SWARM_REGISTRY` name
//! (`.ci/run` brings them up; see `skiff_testing::swarm`), with skiff's image built from
//! this tree (`scripts/build-skiff-image.sh`) and PostgreSQL from `scripts/postgres.sh`. The
//! tests take the swarm one at a time.

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::json;
use skiff_testing::swarm::{run, TestSwarm};
use skiff_testing::{wait_until, Daemon};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The swarm, for one test at a time (each runs its own skiff on the manager's port).
static SWARM: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The node the task of instance `id` (a service) runs on.
fn node_of(swarm: &TestSwarm, id: &str) -> String {
    swarm.nodes_of_service(id).join("\n")
}

/// Waits until function `name` has `n` warm instances on `d` (ready, or idle after calls);
/// their ids.
async fn warm_instances(d: &Daemon, name: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    wait_until(
        &format!("{n} warm instances of {name}"),
        Duration::from_secs(180),
        async || {
            let list = d.instances(name).await;
            ids = list
                .iter()
                .filter_map(|i| i["id"].as_str().map(str::to_string))
                .collect();
            list.len() == n
                && list
                    .iter()
                    .all(|i| i["state"] == "ready" || i["state"] == "idle")
        },
    )
    .await;
    ids
}

/// Makes a drained node active again, however the test ends.
struct Undrain<'a>(&'a TestSwarm, &'a str);

impl Drop for Undrain<'_> {
    fn drop(&mut self) {
        self.0.set_availability(self.1, "active");
    }
}

#[tokio::test]
async fn http_instances_spread_over_the_nodes_and_leave_a_drained_one_while_calls_go_on() {
    let Some(swarm) = TestSwarm::from_env() else {
        return;
    };
    if !skiff_testing::ready() {
        return;
    }
    let _swarm = SWARM.lock().await;
    let skiff_image = swarm.skiff_image(skiff_testing::skiff_bin!());
    let echo_image = swarm.push("skiff/echo-http:latest", "echo-http");
    let skiff = swarm.start_skiff("skiff", &skiff_image, &[]).await;
    let d = &skiff.daemon;

    // Pulled onto the manager, deployed by reference, pinned by digest.
    d.pull(&echo_image).await;
    let view = d
        .deploy(
            "web",
            json!({"image": echo_image, "contract": "http", "readiness_path": "/ready",
                   "memory": "32Mi", "cpus": 0.1, "timeout": "20s",
                   "min_instances": 4, "max_instances": 4}),
        )
        .await;
    assert!(
        view["image_digest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:")),
        "{view}"
    );
    wait_until(
        "four ready instances",
        Duration::from_secs(180),
        async || {
            let list = d.instances("web").await;
            list.len() == 4 && list.iter().all(|i| i["state"] == "ready")
        },
    )
    .await;
    let label = "skiff.function=web";
    let nodes: HashSet<String> = swarm.nodes_of(label).into_iter().collect();
    assert_eq!(nodes.len(), 2, "instances on both nodes: {nodes:?}");
    // Every node that runs one pulled it by digest from the registry.
    for service in swarm.services(label) {
        let image = run(swarm.docker().args([
            "service",
            "inspect",
            "--format",
            "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
            &service,
        ]));
        assert!(
            image.starts_with(&swarm.registry()) && image.contains("@sha256:"),
            "{image}"
        );
    }

    // Calls reach every instance at its task address (least busy first).
    let client = d.client();
    let served: HashSet<String> = join_all((0..24).map(|i| {
        let client = client.clone();
        let url = format!("{}/fn/web/call/{i}", d.url);
        async move {
            let answer = client.get(url).send().await.expect("call");
            assert_eq!(answer.status(), StatusCode::OK);
            answer.headers()["x-echo-instance"]
                .to_str()
                .expect("instance")
                .to_string()
        }
    }))
    .await
    .into_iter()
    .collect();
    assert!(served.len() >= 2, "calls spread: {served:?}");

    // What an instance writes is kept as its log, followed through its service's logs from
    // whichever node runs it.
    let logged = client
        .get(format!("{}/fn/web/log?line=a-line-from-the-swarm", d.url))
        .send()
        .await
        .expect("call");
    assert_eq!(logged.status(), StatusCode::OK);
    let kept = skiff_testing::poll(
        Duration::from_secs(30),
        Duration::from_millis(250),
        async || {
            for instance in d.instances("web").await {
                let id = instance["id"].as_str()?.to_string();
                let logs = d
                    .get_json(&format!("/v1/functions/web/instances/{id}/logs"))
                    .await;
                let lines = logs["lines"].as_array()?.clone();
                if lines.iter().any(|l| l["line"] == "a-line-from-the-swarm") {
                    return Some(());
                }
            }
            None
        },
    )
    .await;
    assert!(
        kept.is_some(),
        "the instance's line is kept:\n{}",
        skiff.logs()
    );

    // Drain the second node while calls go on: its instances are replaced on the first;
    // a call on an instance that goes fails with a typed error, every other succeeds.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (client, url) = (client.clone(), format!("{}/fn/web/drain", d.url));
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let answer = client.get(&url).send().await.expect("call");
                if answer.status() == StatusCode::OK {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    let body: serde_json::Value = answer.json().await.expect("a JSON error");
                    assert!(body["error"]["code"].is_string(), "typed: {body}");
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let drained = "skiff-swarm-2";
    let _undrain = Undrain(&swarm, drained);
    swarm.set_availability(drained, "drain");
    let mut seen = String::new();
    let moved = skiff_testing::poll(
        Duration::from_secs(180),
        Duration::from_millis(500),
        async || {
            let list = d.instances("web").await;
            let nodes = swarm.nodes_of(label);
            seen = format!("{list:?} on {nodes:?}");
            // Serving: ready, idle between calls of the load, or busy with one.
            let serving = list
                .iter()
                .filter(|i| ["ready", "idle", "busy"].iter().any(|s| i["state"] == *s))
                .count();
            (serving == 4 && nodes.len() == 4 && nodes.iter().all(|n| n.as_str() != drained))
                .then_some(())
        },
    )
    .await;
    assert!(
        moved.is_some(),
        "four serving instances, none on the drained node, within 180s: {seen}\n{}",
        skiff.logs()
    );
    let before = ok.load(Ordering::Relaxed);
    wait_until(
        "calls succeed after the drain",
        Duration::from_secs(30),
        async || ok.load(Ordering::Relaxed) >= before + 20,
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    load.await.expect("the load");
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("during the drain: {ok} calls succeeded, {failed} failed with a typed error");
    assert!(
        failed <= 4,
        "at most the calls on the moved instances failed: {failed}"
    );

    // Deleting the function removes its services; stopping skiff leaves none of its own.
    let deleted = d
        .request(reqwest::Method::DELETE, "/v1/functions/web")
        .send()
        .await
        .expect("delete");
    assert!(deleted.status().is_success());
    wait_until(
        "the function's services gone",
        Duration::from_secs(60),
        async || swarm.services(label).is_empty(),
    )
    .await;
    let logs = skiff.stop().await;
    assert!(
        swarm.services("skiff.managed=true").is_empty(),
        "no service of skiff's is left:\n{logs}"
    );
}

#[tokio::test]
async fn lambda_instances_beyond_skiffs_node_reach_its_runtime_api_and_are_reused_warm() {
    let Some(swarm) = TestSwarm::from_env() else {
        return;
    };
    if !skiff_testing::ready() {
        return;
    }
    let _swarm = SWARM.lock().await;
    let skiff_image = swarm.skiff_image(skiff_testing::skiff_bin!());
    let lambda_image = swarm.push("skiff/lambda-hello:latest", "lambda-hello");
    let skiff = swarm.start_skiff("skiff", &skiff_image, &[]).await;
    let d = &skiff.daemon;
    d.pull(&lambda_image).await;
    d.deploy(
        "greeter",
        json!({"image": lambda_image, "contract": "lambda", "memory": "64Mi", "timeout": "10s",
               "min_instances": 2, "max_instances": 2}),
    )
    .await;
    let warm = warm_instances(d, "greeter", 2).await;
    let containers: HashMap<String, String> = d
        .instances("greeter")
        .await
        .iter()
        .filter_map(|i| Some((i["id"].as_str()?.into(), i["container"].as_str()?.into())))
        .collect();

    // Calls at once, to have both instances serve, then one after the other.
    let on_swarm = &skiff;
    let greet = move |name: String, sleep_ms: u64| async move {
        let answer = d
            .invoke(
                "greeter",
                json!({"name": name, "sleep_ms": sleep_ms}).to_string(),
            )
            .await;
        let id = answer.call_id().expect("a call id");
        let (status, headers, body) = answer.parts();
        assert_eq!(status, StatusCode::OK, "{body}\n{}", on_swarm.logs());
        assert_eq!(body["message"], format!("Hello {name}!"), "{body}");
        assert_eq!(body["function"], "greeter");
        assert_eq!(body["request_id"], id.as_str());
        assert_eq!(headers["x-skiff-cold"], "false", "a warm instance");
        d.call_record(&id).await["instance"]
            .as_str()
            .expect("the instance that served it")
            .to_string()
    };
    let mut served: Vec<String> =
        join_all((0..6).map(|n| greet(format!("at once {n}"), 500))).await;
    for n in 0..6 {
        served.push(greet(format!("in turn {n}"), 0).await);
    }
    // Only the two warm instances served, and both did; one at least on another node than
    // skiff's (Swarm spreads them: skiff's node has one task more).
    let mut used = HashSet::new();
    let mut nodes = HashSet::new();
    for instance in &served {
        let (id, service) = containers
            .iter()
            .find(|(id, container)| *id == instance || *container == instance)
            .unwrap_or_else(|| panic!("{instance} is none of the warm {containers:?}"));
        used.insert(id.clone());
        nodes.insert(node_of(&swarm, service));
    }
    assert_eq!(
        used,
        warm.iter().cloned().collect(),
        "both served: {served:?}"
    );
    let skiff_node = node_of(&swarm, "skiff");
    assert!(
        nodes.iter().any(|n| *n != skiff_node),
        "served on another node than skiff's ({skiff_node}): {nodes:?}"
    );
    let still: HashSet<String> = warm_instances(d, "greeter", 2).await.into_iter().collect();
    assert_eq!(still, warm.into_iter().collect(), "the same instances");

    assert_eq!(d.delete_function("greeter").await, StatusCode::NO_CONTENT);
    wait_until(
        "the function's services gone",
        Duration::from_secs(60),
        async || swarm.services("skiff.function=greeter").is_empty(),
    )
    .await;
    skiff.stop().await;
}

#[tokio::test]
async fn two_daemons_on_one_postgres_lose_no_call_when_one_is_killed_under_load() {
    let Some(swarm) = TestSwarm::from_env() else {
        return;
    };
    if !skiff_testing::ready() {
        return;
    }
    let _swarm = SWARM.lock().await;
    let skiff_image = swarm.skiff_image(skiff_testing::skiff_bin!());
    let echo_image = swarm.push("skiff/echo-http:latest", "echo-http");
    let db = swarm.postgres();
    // Daemons sharing a store share the key of its secrets, and the admin token the first
    // one made.
    let (key, _) = skiff_store::SecretKeys::new_key().expect("key");
    let args = ["--store", db.url.as_str(), "--lease", "3s"];
    let _ = swarm.docker().args(["service", "rm", "skiff-b"]).output();
    let a = swarm
        .skiff("skiff-a", &skiff_image)
        .env("SKIFF_SECRET_KEY", &key)
        // Says when it runs a queued call.
        .env("SKIFF_LOG", "info,skiff_invoker::dispatcher=debug")
        .args(&args)
        .start()
        .await;
    let b = swarm
        .skiff("skiff-b", &skiff_image)
        .port(8081)
        .token(&a.daemon.token)
        .env("SKIFF_SECRET_KEY", &key)
        .args(&args)
        .beside_others()
        .start()
        .await;
    let (da, db_) = (&a.daemon, &b.daemon);
    assert_ne!(da.id, db_.id);
    let cluster = db_.get_json("/v1/cluster").await;
    assert_eq!(cluster["store"], "postgres", "{cluster}");
    assert_eq!(
        cluster["daemons"].as_array().map(Vec::len),
        Some(2),
        "{cluster}"
    );

    // Deployed through a, served by b too.
    da.pull(&echo_image).await;
    da.deploy(
        "web",
        json!({"image": echo_image, "contract": "http", "readiness_path": "/ready",
               "memory": "32Mi", "cpus": 0.1, "timeout": "20s",
               "min_instances": 2, "max_instances": 4}),
    )
    .await;
    wait_until(
        "b serves the function",
        Duration::from_secs(180),
        async || db_.get("/fn/web/hello").await.status == StatusCode::OK,
    )
    .await;
    let a_label = format!("skiff.daemon={}", da.id);
    wait_until("a runs instances", Duration::from_secs(180), async || {
        !swarm.services(&a_label).is_empty()
    })
    .await;

    // Async calls enqueued through both; a is killed while it runs some.
    let mut ids = Vec::new();
    for n in 0..30 {
        let d = if n % 2 == 0 { da } else { db_ };
        let accepted = d
            .call_async("/fn/web/slow?sleep_ms=1000", format!("call {n}"), None)
            .await;
        assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.text());
        ids.push(accepted.call_id().expect("a call id"));
    }
    wait_until("a runs queued calls", Duration::from_secs(60), async || {
        a.logs().matches("running a queued call").count() >= 2
    })
    .await;
    a.kill();
    let killed_at = std::time::Instant::now();

    // b takes over once a's lease has run out (3 s, beats every 0.6 s): a's instances go
    // (the bound is generous for a loaded machine).
    let reaped = skiff_testing::poll(
        Duration::from_secs(30),
        Duration::from_millis(250),
        async || swarm.services(&a_label).is_empty().then_some(()),
    )
    .await;
    assert!(
        reaped.is_some(),
        "a's instances were not removed in 30s: {:?}\n{}",
        swarm.services(&a_label),
        b.logs()
    );
    eprintln!(
        "a's instances gone {:?} after the kill",
        killed_at.elapsed()
    );
    for id in &ids {
        let record = db_
            .wait_call(id, "succeeded", Duration::from_secs(120))
            .await;
        assert_eq!(record["function"], "web");
    }
    let cluster = db_.get_json("/v1/cluster").await;
    let listed: Vec<&str> = cluster["daemons"]
        .as_array()
        .map(|ds| ds.iter().filter_map(|d| d["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(listed, vec![db_.id.as_str()], "a taken over: {cluster}");

    assert_eq!(db_.delete_function("web").await, StatusCode::NO_CONTENT);
    wait_until(
        "the function's services gone",
        Duration::from_secs(60),
        async || swarm.services("skiff.function=web").is_empty(),
    )
    .await;
    a.stop().await;
    let logs = b.stop().await;
    assert!(
        swarm.services("skiff.managed=true").is_empty(),
        "no service of skiff's is left:\n{logs}"
    );
    drop(db);
}
