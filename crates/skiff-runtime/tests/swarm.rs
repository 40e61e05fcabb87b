//! The Swarm engine against a real multi-node Docker Swarm.
//!
//! These tests run when `SKIFF_TEST_SWARM` names a swarm manager's Docker API and
//! `SKIFF_TEST_SWARM_REGISTRY` the registry its nodes pull from (`HOST:PORT`; the host engine
//! pushes to the same port on 127.0.0.1). With `CI=true` and either unset they fail; elsewhere
//! they are skipped with a note. On this machine:
//!
//! ```text
//! scripts/swarm.sh image            # once: builds skiff/swarm-node:latest
//! scripts/build-examples.sh         # skiff/echo-http, skiff/testfn, ... on the host engine
//! scripts/swarm.sh up 2             # prints tcp://10.231.0.2:2375
//! scripts/swarm.sh registry         # prints 10.231.0.1:5099
//! SKIFF_TEST_SWARM=tcp://10.231.0.2:2375 SKIFF_TEST_SWARM_REGISTRY=10.231.0.1:5099 \
//!   cargo test -p skiff-runtime --test swarm
//! scripts/swarm.sh down             # the nodes, the network and the registry
//! ```
//!
//! The tests take turns (one drains a node); task addresses on the overlay are not reachable
//! from the host, so they check the engine's view, not HTTP to the tasks.

use bollard::models::{MountType, NodeSpecAvailabilityEnum, TaskState};
use bollard::query_parameters::{
    ListNodesOptions, ListTasksOptionsBuilder, UpdateNodeOptionsBuilder,
};
use skiff_runtime::endpoint::{Endpoint, EndpointEnv};
use skiff_runtime::swarm::SwarmEngine;
use skiff_runtime::{ContainerEngine, ContainerSpec, EngineError, Limits};
use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// The overlay network `scripts/swarm.sh up` makes.
const NETWORK: &str = "skiff-fn";

/// One test at a time: draining a node would disturb the others.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Swarm {
    endpoint: Endpoint,
    /// Where the nodes pull from (`10.231.0.1:5099`).
    registry: String,
}

/// The swarm and registry of the environment, or `None` (skipped; a failure in CI).
fn swarm() -> Option<Swarm> {
    let test_swarm = skiff_testing::swarm::TestSwarm::from_env()?;
    if !skiff_testing::ready() {
        return None;
    }
    let env = EndpointEnv {
        docker_host: Some(test_swarm.manager.clone()),
        ..Default::default()
    };
    let endpoint = Endpoint::from_env(&env).expect("SKIFF_TEST_SWARM is a Docker endpoint");
    Some(Swarm {
        endpoint,
        registry: test_swarm.registry(),
    })
}

fn docker(args: &[&str]) -> String {
    let output = Command::new("docker").args(args).output().expect("docker");
    assert!(
        output.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Pushes the host's `skiff/NAME:latest` to the test registry (once per process) and pulls it
/// on the manager; returns its id there, which has a registry digest.
async fn pushed(swarm: &Swarm, engine: &SwarmEngine, name: &str) -> String {
    static PUSHED: OnceLock<std::sync::Mutex<HashSet<String>>> = OnceLock::new();
    let port = swarm
        .registry
        .rsplit(':')
        .next()
        .expect("the registry's port");
    let repository = format!("skiff-test/{name}");
    let first = PUSHED
        .get_or_init(Default::default)
        .lock()
        .expect("lock")
        .insert(name.to_string());
    if first {
        // The host engine pushes to the registry on its loopback address (plain HTTP is
        // allowed there); the nodes reach the same registry on the bridge.
        let local = format!("127.0.0.1:{port}/{repository}:latest");
        docker(&["tag", &format!("skiff/{name}:latest"), &local]);
        docker(&["push", "-q", &local]);
    }
    let reference = format!("{}/{repository}:latest", swarm.registry);
    let mut pull = engine.pull_image(&reference, None);
    while let Some(step) = futures::StreamExt::next(&mut pull).await {
        step.expect("pull on the manager");
    }
    let image = engine.inspect_image(&reference).await.expect("inspect");
    assert!(
        image
            .digests
            .iter()
            .any(|d| d.starts_with(&format!("{}/{repository}@sha256:", swarm.registry))),
        "{:?}",
        image.digests
    );
    image.id
}

fn spec(name: &str, image: &str, run: &str, env: Vec<String>) -> ContainerSpec {
    ContainerSpec {
        name: name.to_string(),
        image: image.to_string(),
        image_reference: None,
        entrypoint: None,
        cmd: None,
        env,
        labels: HashMap::from([
            ("skiff.managed".to_string(), "true".to_string()),
            ("skiff.test-run".to_string(), run.to_string()),
        ]),
        limits: Limits {
            memory_bytes: 32 << 20,
            cpus: 0.05,
            pids: 64,
            tmp_bytes: 8 << 20,
            nofile: 1024,
        },
        stdin: false,
        network: Some(NETWORK.to_string()),
        mounts: Vec::new(),
        volumes: Vec::new(),
    }
}

fn run_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()[..12].to_string()
}

/// Removes every service of `run`, even when the test failed.
struct Cleanup<'a> {
    engine: &'a SwarmEngine,
    run: String,
}

impl Cleanup<'_> {
    async fn run(&self) {
        if let Ok(left) = self
            .engine
            .list(&[("skiff.test-run", self.run.as_str())])
            .await
        {
            for service in left {
                let _ = self.engine.remove(&service.id).await;
            }
        }
    }
}

#[tokio::test]
async fn an_engine_outside_a_swarm_or_a_worker_is_refused() {
    let Some(swarm) = swarm() else { return };
    // The host's own engine is in no swarm.
    let err = SwarmEngine::connect_to(&Endpoint::from_process().expect("endpoint"))
        .await
        .expect_err("the host engine is not a swarm manager");
    assert!(
        matches!(err, EngineError::NotSwarmManager { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("not an active member of a swarm"),
        "{err}"
    );

    // A worker node of the swarm (its engine listens on the same port as the manager's).
    let engine = SwarmEngine::connect_to(&swarm.endpoint)
        .await
        .expect("connect");
    let nodes = engine
        .manager()
        .client()
        .list_nodes(None::<ListNodesOptions>)
        .await
        .expect("nodes");
    let worker = nodes
        .iter()
        .find(|n| n.manager_status.is_none())
        .and_then(|n| n.status.as_ref()?.addr.clone())
        .expect("a worker node");
    let Endpoint::Tcp { address } = &swarm.endpoint else {
        panic!("SKIFF_TEST_SWARM is a tcp:// endpoint")
    };
    let port = address.rsplit(':').next().expect("a port");
    let worker = Endpoint::Tcp {
        address: format!("{worker}:{port}"),
    };
    let err = SwarmEngine::connect_to(&worker)
        .await
        .expect_err("a worker is not a manager");
    assert!(
        matches!(err, EngineError::NotSwarmManager { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("worker"), "{err}");
}

#[tokio::test]
async fn an_image_without_a_registry_digest_is_refused_and_a_pushed_one_runs() {
    let Some(swarm) = swarm() else { return };
    let _turn = TURN.lock().await;
    let engine = SwarmEngine::connect_to(&swarm.endpoint)
        .await
        .expect("connect");
    let run = run_id();
    let cleanup = Cleanup {
        engine: &engine,
        run: run.clone(),
    };

    // An image loaded into the manager straight from the host has no registry digest.
    let loaded = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "docker save skiff/hello:latest | docker -H {} load -q",
            swarm.endpoint
        ))
        .output()
        .expect("sh");
    assert!(
        loaded.status.success(),
        "{}",
        String::from_utf8_lossy(&loaded.stderr)
    );
    let local = engine
        .inspect_image("skiff/hello:latest")
        .await
        .expect("loaded on the manager");
    assert!(local.digests.is_empty(), "{:?}", local.digests);
    let err = engine
        .create(&spec(
            &format!("skiff-t-{run}-local"),
            &local.id,
            &run,
            vec![],
        ))
        .await
        .expect_err("no registry digest");
    assert!(
        matches!(err, EngineError::ImageNotInRegistry { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("skiff push"), "{err}");
    assert!(
        engine
            .list(&[("skiff.test-run", &run)])
            .await
            .expect("list")
            .is_empty(),
        "nothing was created"
    );

    // Pushed to the registry, the image is pinned by its digest and runs.
    let image = pushed(&swarm, &engine, "echo-http").await;
    let id = engine
        .create(&spec(
            &format!("skiff-t-{run}-pushed"),
            &image,
            &run,
            vec!["PORT=8080".to_string()],
        ))
        .await
        .expect("create");
    engine.start(&id).await.expect("start");
    let service = engine
        .manager()
        .client()
        .inspect_service(&id, None)
        .await
        .expect("service");
    let pinned = service
        .spec
        .and_then(|s| s.task_template)
        .and_then(|t| t.container_spec)
        .and_then(|c| c.image)
        .expect("image");
    // One of the image's digests in the registry (another test may have pushed the same
    // bytes under another repository: any of them pins them).
    let digests = engine.inspect_image(&image).await.expect("inspect").digests;
    assert!(
        pinned.starts_with(&format!("{}/", swarm.registry))
            && pinned.contains("@sha256:")
            && digests.contains(&pinned),
        "{pinned} among {digests:?}"
    );
    skiff_testing::wait_until(
        "the pushed image runs",
        Duration::from_secs(60),
        async || engine.inspect(&id).await.is_ok_and(|s| s.running),
    )
    .await;
    cleanup.run().await;
}

#[tokio::test]
async fn instances_spread_over_the_nodes_sandboxed_and_are_found_and_removed() {
    let Some(swarm) = swarm() else { return };
    let _turn = TURN.lock().await;
    let engine = SwarmEngine::connect_to(&swarm.endpoint)
        .await
        .expect("connect");
    let image = pushed(&swarm, &engine, "echo-http").await;
    let run = run_id();
    let cleanup = Cleanup {
        engine: &engine,
        run: run.clone(),
    };
    let network = engine
        .ensure_network(NETWORK, &HashMap::new())
        .await
        .expect("network");
    assert!(!network.subnets.is_empty(), "{network:?}");
    assert!(network.containers_connect);

    let mut ids = Vec::new();
    for i in 0..4 {
        let spec = spec(
            &format!("skiff-t-{run}-{i}"),
            &image,
            &run,
            vec!["PORT=8080".to_string()],
        );
        let id = engine.create(&spec).await.expect("create");
        engine.start(&id).await.expect("start");
        ids.push(id);
    }
    for id in &ids {
        let state =
            skiff_testing::eventually("a running task", Duration::from_secs(90), async || {
                engine.inspect(id).await.ok().filter(|s| s.running)
            })
            .await;
        let ip = state.ip.expect("an address on the overlay");
        eprintln!("instance {id}: running at {ip}");
        assert!(
            network.subnets.iter().any(|net| net.contains(&ip)),
            "{ip} in {:?}",
            network.subnets
        );
        assert_eq!(state.exit_code, None);
    }

    // Swarm spread the tasks over both nodes.
    let client = engine.manager().client();
    let filters = HashMap::from([("service".to_string(), ids.clone())]);
    let tasks = client
        .list_tasks(Some(
            ListTasksOptionsBuilder::default().filters(&filters).build(),
        ))
        .await
        .expect("tasks");
    let nodes: HashSet<String> = tasks
        .iter()
        .filter(|t| t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING))
        .filter_map(|t| t.node_id.clone())
        .collect();
    eprintln!("tasks on nodes {nodes:?}");
    assert_eq!(nodes.len(), 2, "tasks on {nodes:?}");

    // The service's task spec carries the sandbox and the labels.
    for id in &ids {
        let service = client.inspect_service(id, None).await.expect("service");
        let spec = service.spec.expect("spec");
        let labels = spec.labels.expect("labels");
        assert_eq!(labels.get("skiff.test-run"), Some(&run));
        let task = spec.task_template.expect("task template");
        let container = task.container_spec.expect("container spec");
        assert_eq!(
            container
                .labels
                .as_ref()
                .and_then(|l| l.get("skiff.test-run")),
            Some(&run)
        );
        assert_eq!(container.read_only, Some(true));
        assert_eq!(container.capability_drop, Some(vec!["ALL".to_string()]));
        let tmp = container
            .mounts
            .as_ref()
            .and_then(|mounts| mounts.iter().find(|m| m.target.as_deref() == Some("/tmp")))
            .expect("a /tmp mount");
        assert_eq!(tmp.typ, Some(MountType::TMPFS));
        assert_eq!(
            tmp.tmpfs_options.as_ref().and_then(|t| t.size_bytes),
            Some(8 << 20)
        );
        let resources = task.resources.expect("resources");
        let limits = resources.limits.expect("limits");
        assert_eq!(limits.memory_bytes, Some(32 << 20));
        assert_eq!(limits.pids, Some(64));
        let reserved = resources.reservations.expect("reservations");
        assert_eq!(reserved.memory_bytes, Some(32 << 20));
        assert_eq!(reserved.nano_cpus, Some(50_000_000));
    }

    // list() finds them by label, running.
    let listed = engine
        .list(&[("skiff.test-run", &run)])
        .await
        .expect("list");
    let listed_ids: HashSet<&str> = listed.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(listed_ids, ids.iter().map(String::as_str).collect());
    assert!(listed.iter().all(|s| s.running), "{listed:?}");
    assert!(listed
        .iter()
        .all(|s| s.labels.get("skiff.managed").map(String::as_str) == Some("true")));

    // remove() makes them gone.
    for id in &ids {
        engine.remove(id).await.expect("remove");
        engine.remove(id).await.expect("removing again is fine");
        let err = engine.inspect(id).await.expect_err("gone");
        assert!(matches!(err, EngineError::NotFound { .. }), "{err:?}");
    }
    assert!(engine
        .list(&[("skiff.test-run", &run)])
        .await
        .expect("list")
        .is_empty());
    // What Swarm cannot do is refused clearly.
    assert!(matches!(
        engine.pause(&ids[0]).await,
        Err(EngineError::Unsupported {
            engine: "swarm",
            ..
        })
    ));
    cleanup.run().await;
}

#[tokio::test]
async fn wait_returns_when_the_instance_exits_or_its_node_is_drained() {
    let Some(swarm) = swarm() else { return };
    let _turn = TURN.lock().await;
    let engine = SwarmEngine::connect_to(&swarm.endpoint)
        .await
        .expect("connect");
    let run = run_id();
    let cleanup = Cleanup {
        engine: &engine,
        run: run.clone(),
    };

    // A process that exits by itself: its exit code.
    let testfn = pushed(&swarm, &engine, "testfn").await;
    let id = engine
        .create(&spec(
            &format!("skiff-t-{run}-exit"),
            &testfn,
            &run,
            vec!["MODE=exit".to_string()],
        ))
        .await
        .expect("create");
    engine.start(&id).await.expect("start");
    let code = tokio::time::timeout(Duration::from_secs(90), engine.wait(&id))
        .await
        .expect("wait returns")
        .expect("wait");
    eprintln!("wait returned {code} for an instance that exited by itself");
    assert_eq!(code, 3);
    assert_eq!(
        engine.inspect(&id).await.expect("inspect").exit_code,
        Some(3)
    );

    // A running instance whose node is drained is over.
    let echo = pushed(&swarm, &engine, "echo-http").await;
    let id = engine
        .create(&spec(
            &format!("skiff-t-{run}-drained"),
            &echo,
            &run,
            vec!["PORT=8080".to_string()],
        ))
        .await
        .expect("create");
    engine.start(&id).await.expect("start");
    skiff_testing::wait_until("the instance runs", Duration::from_secs(90), async || {
        engine.inspect(&id).await.is_ok_and(|s| s.running)
    })
    .await;
    let client = engine.manager().client();
    let filters = HashMap::from([("service".to_string(), vec![id.clone()])]);
    let task = client
        .list_tasks(Some(
            ListTasksOptionsBuilder::default().filters(&filters).build(),
        ))
        .await
        .expect("tasks")
        .into_iter()
        .find(|t| t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING))
        .expect("a running task");
    let node_id = task.node_id.expect("its node");
    let waiting = tokio::spawn({
        let engine = engine.clone();
        let id = id.clone();
        async move { engine.wait(&id).await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !waiting.is_finished(),
        "wait returned while the instance runs"
    );

    set_availability(&engine, &node_id, NodeSpecAvailabilityEnum::DRAIN).await;
    let waited = tokio::time::timeout(Duration::from_secs(60), waiting).await;
    set_availability(&engine, &node_id, NodeSpecAvailabilityEnum::ACTIVE).await;
    let code = waited
        .expect("wait returns once the node is drained")
        .expect("the wait task")
        .expect("wait");
    eprintln!("wait returned {code} after node {node_id} was drained");
    assert!(
        code != 0,
        "a drained instance did not exit by itself: {code}"
    );
    cleanup.run().await;
}

#[tokio::test]
async fn an_instance_s_output_is_followed_through_its_logs_until_it_is_over() {
    let Some(swarm) = swarm() else { return };
    let _turn = TURN.lock().await;
    let engine = SwarmEngine::connect_to(&swarm.endpoint)
        .await
        .expect("connect");
    let run = run_id();
    let cleanup = Cleanup {
        engine: &engine,
        run: run.clone(),
    };
    let echo = pushed(&swarm, &engine, "echo-http").await;
    let id = engine
        .create(&spec(
            &format!("skiff-t-{run}-logs"),
            &echo,
            &run,
            vec!["PORT=8080".to_string()],
        ))
        .await
        .expect("create");
    // Attached before the start, as the pool does: nothing is missed.
    let mut output = engine.attach(&id).await.expect("attach").output;
    engine.start(&id).await.expect("start");
    // echo-http says on stderr that it listens, from whichever node runs it.
    let mut stderr = String::new();
    let listening = tokio::time::timeout(Duration::from_secs(90), async {
        while let Some(chunk) = futures::StreamExt::next(&mut output).await {
            if let Ok(skiff_runtime::Output::Stderr(bytes)) = chunk {
                stderr.push_str(&String::from_utf8_lossy(&bytes));
                if stderr.contains("listening on") {
                    return true;
                }
            }
        }
        false
    })
    .await;
    assert_eq!(listening, Ok(true), "stderr so far: {stderr:?}");
    // Removed, it is over: its output ends.
    engine.remove(&id).await.expect("remove");
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        while futures::StreamExt::next(&mut output).await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the output ends once the instance is over");
    cleanup.run().await;
}

/// Sets a node's availability through the manager's API.
async fn set_availability(
    engine: &SwarmEngine,
    node: &str,
    availability: NodeSpecAvailabilityEnum,
) {
    let client = engine.manager().client();
    let current = client.inspect_node(node).await.expect("node");
    let version = current
        .version
        .and_then(|v| v.index)
        .and_then(|i| i64::try_from(i).ok())
        .expect("node version");
    let mut spec = current.spec.expect("node spec");
    spec.availability = Some(availability);
    client
        .update_node(
            node,
            spec,
            UpdateNodeOptionsBuilder::default().version(version).build(),
        )
        .await
        .expect("update node");
    // Both nodes take tasks again before the next test.
    if availability == NodeSpecAvailabilityEnum::ACTIVE {
        let nodes = client
            .list_nodes(None::<ListNodesOptions>)
            .await
            .expect("nodes");
        assert!(nodes.len() >= 2, "{nodes:?}");
    }
}
