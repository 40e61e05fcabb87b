//! The Docker engine implementation against the real engine.

use futures::StreamExt;
use skiff_runtime::docker::DockerEngine;
use skiff_runtime::init::{self, INIT_PATH_IN_CONTAINER};
use skiff_runtime::{BindMount, ContainerEngine, ContainerSpec, EngineError, Limits, Output};
use std::collections::HashMap;
use std::time::Instant;
use tokio::io::AsyncWriteExt;

fn spec(name: &str, image: &str, env: Vec<String>, init_path: &std::path::Path) -> ContainerSpec {
    let image_cmd = vec!["/testfn".to_string()];
    ContainerSpec {
        name: name.to_string(),
        image: image.to_string(),
        image_reference: None,
        entrypoint: Some(vec![INIT_PATH_IN_CONTAINER.to_string()]),
        cmd: Some(image_cmd),
        env,
        labels: HashMap::from([
            ("skiff.managed".to_string(), "true".to_string()),
            ("skiff.daemon".to_string(), "runtime-test".to_string()),
        ]),
        limits: Limits {
            memory_bytes: 64 << 20,
            cpus: 0.5,
            pids: 64,
            tmp_bytes: 16 << 20,
            nofile: 1024,
        },
        stdin: true,
        network: None,
        mounts: vec![BindMount {
            source: init_path.to_path_buf(),
            target: INIT_PATH_IN_CONTAINER.to_string(),
        }],
        volumes: Vec::new(),
    }
}

#[tokio::test]
async fn a_prepared_container_runs_the_function_with_call_env_and_stdin() {
    if !skiff_testing::ready() {
        return;
    }
    let engine = DockerEngine::connect().await.expect("connect");
    let dir = tempfile::tempdir().expect("tempdir");
    let init_path = init::install(dir.path()).expect("install init");
    let image = engine
        .inspect_image("skiff/testfn:latest")
        .await
        .expect("image");
    assert!(image.id.starts_with("sha256:"), "{}", image.id);
    assert_eq!(image.command(), vec!["/testfn".to_string()]);

    let name = format!("skiff-runtime-test-{}", uuid::Uuid::now_v7());
    let id = engine
        .create(&spec(&name, &image.id, vec!["MODE=env".into()], &init_path))
        .await
        .expect("create");
    let mut attachment = engine.attach(&id).await.expect("attach");
    engine.start(&id).await.expect("start");
    let running = engine.inspect(&id).await.expect("inspect");
    assert!(running.running, "the prepared container waits for its call");

    let t0 = Instant::now();
    let frame = init::encode_frame([("SKIFF_CALL_ID", "call-1"), ("SKIFF_METHOD", "POST")]);
    attachment
        .stdin
        .write_all(&frame)
        .await
        .expect("write frame");
    attachment.stdin.shutdown().await.expect("close stdin");
    let mut stdout = Vec::new();
    while let Some(chunk) = attachment.output.next().await {
        match chunk.expect("output") {
            Output::Stdout(b) => stdout.extend_from_slice(&b),
            Output::Stderr(b) => eprintln!("stderr: {}", String::from_utf8_lossy(&b)),
        }
    }
    let code = engine.wait(&id).await.expect("wait");
    eprintln!(
        "call took {:?} once the container was prepared",
        t0.elapsed()
    );
    let stdout = String::from_utf8(stdout).expect("utf8");
    assert_eq!(code, 0);
    assert!(stdout.contains("SKIFF_CALL_ID=call-1\n"), "{stdout}");
    assert!(stdout.contains("SKIFF_METHOD=POST\n"), "{stdout}");
    assert!(stdout.contains("MODE=env\n"), "{stdout}");
    let state = engine.inspect(&id).await.expect("inspect");
    assert!(!state.running);
    assert_eq!(state.exit_code, Some(0));
    engine.remove(&id).await.expect("remove");
    engine.remove(&id).await.expect("removing twice is fine");
    assert!(matches!(
        engine.inspect(&id).await,
        Err(EngineError::NotFound { .. })
    ));
}

#[tokio::test]
async fn exit_codes_and_oom_kills_are_reported() {
    if !skiff_testing::ready() {
        return;
    }
    let engine = DockerEngine::connect().await.expect("connect");
    let dir = tempfile::tempdir().expect("tempdir");
    let init_path = init::install(dir.path()).expect("install init");
    for (mode, expect_code, expect_oom) in [("exit", 3, false), ("oom", 137, true)] {
        let name = format!("skiff-runtime-test-{}", uuid::Uuid::now_v7());
        let id = engine
            .create(&spec(
                &name,
                "skiff/testfn:latest",
                vec![format!("MODE={mode}")],
                &init_path,
            ))
            .await
            .expect("create");
        let mut attachment = engine.attach(&id).await.expect("attach");
        engine.start(&id).await.expect("start");
        attachment
            .stdin
            .write_all(&init::encode_frame([]))
            .await
            .expect("frame");
        attachment.stdin.shutdown().await.expect("close");
        while attachment.output.next().await.is_some() {}
        let code = engine.wait(&id).await.expect("wait");
        let state = engine.inspect(&id).await.expect("inspect");
        engine.remove(&id).await.expect("remove");
        assert_eq!(code, expect_code, "{mode}");
        assert_eq!(state.oom_killed, expect_oom, "{mode}");
    }
}

#[tokio::test]
async fn missing_images_and_containers_are_typed_errors() {
    if !skiff_testing::docker_available() {
        return;
    }
    let engine = DockerEngine::connect().await.expect("connect");
    let err = engine
        .inspect_image("skiff/no-such-image:never")
        .await
        .expect_err("missing");
    assert!(matches!(err, EngineError::ImageNotFound { .. }), "{err}");
    let err = engine
        .start("no-such-container-skiff")
        .await
        .expect_err("missing");
    assert!(matches!(err, EngineError::NotFound { .. }), "{err}");
    engine
        .kill("no-such-container-skiff")
        .await
        .expect("kill of a gone container is fine");
    let listed = engine
        .list(&[("skiff.daemon", "nobody-has-this-id")])
        .await
        .expect("list");
    assert!(listed.is_empty());
}

#[tokio::test]
async fn names_the_engine_refuses_for_a_tag_are_invalid_references() {
    if !skiff_testing::ready() {
        return;
    }
    let engine = DockerEngine::connect().await.expect("connect");
    for target in [
        "0".repeat(300),
        "0".repeat(64),
        "UPPER/case".to_string(),
        "ok/name:bad tag".to_string(),
    ] {
        let err = engine
            .tag_image("skiff/hello:latest", &target)
            .await
            .expect_err("refused");
        assert!(
            matches!(err, EngineError::InvalidReference { .. }),
            "{target}: {err:?}"
        );
    }
}

/// The ids of the networks named exactly `name`.
async fn networks_named(engine: &DockerEngine, name: &str) -> Vec<String> {
    engine
        .client()
        .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
        .await
        .expect("list networks")
        .into_iter()
        .filter(|n| n.name.as_deref() == Some(name))
        .filter_map(|n| n.id)
        .collect()
}

/// Whether an echo container named `name` starts on network `network`; it is removed after.
async fn starts_on(
    engine: &DockerEngine,
    name: &str,
    network: &str,
    init: &std::path::Path,
) -> Result<(), EngineError> {
    let mut spec = spec(
        name,
        "skiff/testfn:latest",
        vec!["MODE=echo".to_string()],
        init,
    );
    spec.network = Some(network.to_string());
    let container = engine.create(&spec).await.expect("create");
    let started = engine.start(&container).await;
    let _ = engine.remove(&container).await;
    started
}

/// Daemons starting at the same moment on a fresh engine each ensure the functions' network.
/// Docker may make several of that name, and while two share it no container on either
/// starts ("ambiguous"): every daemon settles on the same one, the others are gone, and a
/// container of each daemon starts on it.
#[tokio::test]
async fn networks_ensured_at_once_all_stay_usable() {
    if !skiff_testing::ready() {
        return;
    }
    let name = format!("skiff-race-{}", uuid::Uuid::new_v4().simple());
    let labels = HashMap::from([("skiff.managed".to_string(), "true".to_string())]);
    let mut engines = Vec::new();
    for _ in 0..8 {
        engines.push(DockerEngine::connect().await.expect("connect"));
    }
    let chosen: Vec<String> = futures::future::join_all(
        engines
            .iter()
            .map(|engine| engine.ensure_network(&name, &labels)),
    )
    .await
    .into_iter()
    .map(|n| n.expect("ensure the network").id)
    .collect();
    let engine = &engines[0];
    let dir = tempfile::tempdir().expect("tmp");
    let init = init::install(dir.path()).expect("init");
    let mut failures = Vec::new();
    for (i, id) in chosen.iter().enumerate() {
        if let Err(err) = engine.network_info(id).await {
            failures.push(format!("daemon {i}'s network {id} is gone: {err}"));
            continue;
        }
        if let Err(err) = starts_on(engine, &format!("{name}-{i}"), id, &init).await {
            failures.push(format!(
                "daemon {i}'s container on {id} does not start: {err}"
            ));
        }
    }
    let left = networks_named(engine, &name).await;
    for id in chosen
        .iter()
        .chain(&left)
        .collect::<std::collections::HashSet<_>>()
    {
        let _ = engine.remove_network(id).await;
    }
    assert!(
        chosen.iter().all(|id| *id == chosen[0]),
        "daemons settled on different networks: {chosen:?}"
    );
    assert_eq!(left, vec![chosen[0].clone()], "networks of the name left");
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The aftermath of an earlier race: two networks share the name, and while they do no
/// container on either starts. Ensuring the network leaves one, and a container starts on it.
#[tokio::test]
async fn a_second_network_of_the_name_is_removed() {
    if !skiff_testing::ready() {
        return;
    }
    let name = format!("skiff-twin-{}", uuid::Uuid::new_v4().simple());
    let engine = DockerEngine::connect().await.expect("connect");
    let mut made = Vec::new();
    for _ in 0..2 {
        let request = bollard::models::NetworkCreateRequest {
            name: name.clone(),
            ..Default::default()
        };
        let created = engine.client().create_network(request).await;
        made.push(created.expect("create a network").id);
    }
    let labels = HashMap::from([("skiff.managed".to_string(), "true".to_string())]);
    let ensured = engine.ensure_network(&name, &labels).await;
    let left = networks_named(&engine, &name).await;
    let dir = tempfile::tempdir().expect("tmp");
    let init = init::install(dir.path()).expect("init");
    let started = match &ensured {
        Ok(network) => starts_on(&engine, &name, &network.id, &init).await,
        Err(_) => Ok(()),
    };
    for id in made.iter().chain(&left) {
        let _ = engine.remove_network(id).await;
    }
    let network = ensured.expect("ensure the network");
    assert_eq!(left, vec![network.id.clone()], "networks of the name left");
    assert!(
        made.contains(&network.id),
        "{} is not one of {made:?}",
        network.id
    );
    started.expect("a container starts on it");
}
