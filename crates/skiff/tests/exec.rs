//! End-to-end tests of the `exec` contract on the real Docker engine: a real `skiff serve`
//! process, real containers, real store.

use reqwest::StatusCode;
use serde_json::{json, Value};
use skiff_testing::{skiff_bin, Daemon};

/// Creates function `name`: the API answers 201.
async fn deploy_ok(d: &Daemon, name: &str, spec: Value) {
    let (status, body) = d.put_function(name, spec).await.status_json();
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn hello_answers_by_api_and_public_route_and_records_the_call() {
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &[]).await else {
        return;
    };
    deploy_ok(
        &d,
        "hello",
        json!({"image": "skiff/hello:latest", "memory": "64Mi", "timeout": "10s"}),
    )
    .await;

    let answer = d.invoke("hello", r#"{"name":"Ann"}"#).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.text(), "Hello Ann!\n");
    let call_id = answer.call_id().expect("call id header");

    let answer = d.invoke("hello", "").await;
    assert_eq!(answer.text(), "Hello World!\n");

    let answer = d.call("hello", r#"{"name":"Bob"}"#).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text(), "Hello Bob!\n");

    let (status, record) = d.get(&format!("/v1/calls/{call_id}")).await.status_json();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(record["status"], "succeeded");
    assert_eq!(record["function"], "hello");
    assert_eq!(record["trigger"], "api");
    assert_eq!(record["exit_code"], 0);
    assert_eq!(record["response_size"], 11);
    let logs = d.logs(&call_id).await;
    assert!(logs.contains("hello: greeting Ann"), "{logs}");

    let (_, page) = d
        .get("/v1/calls?function=hello&trigger=http")
        .await
        .status_json();
    let calls = page["calls"].as_array().expect("calls");
    assert_eq!(calls.len(), 1, "{page}");
    assert_eq!(calls[0]["trigger"], "http");
    d.stop().await;
}

#[tokio::test]
async fn stdin_and_stdout_are_binary_safe_for_a_1mib_body() {
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &[]).await else {
        return;
    };
    deploy_ok(&d, "echo", json!({"image": "skiff/testfn:latest"})).await;
    let body: Vec<u8> = (0..(1u32 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let answer = d.invoke("echo", body.clone()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.body.len(), body.len());
    assert!(answer.body == body, "the echoed bytes differ");
    d.stop().await;
}

#[tokio::test]
async fn call_metadata_env_and_secrets_reach_the_function() {
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &[]).await else {
        return;
    };
    deploy_ok(
        &d,
        "env",
        json!({"image": "skiff/testfn:latest", "timeout": "7s",
               "env": {"MODE": "env", "GREETING": "hi"}, "secrets": {"API_TOKEN": "s3cret"}}),
    )
    .await;
    let response = d
        .client()
        .put(format!("{}/fn/env/some/path?x=1&y=two", d.url))
        .header("X-Trace-Id", "abc-123")
        .body("ignored")
        .send()
        .await
        .expect("public route");
    assert_eq!(response.status(), StatusCode::OK);
    let call_id = response.headers()["x-skiff-call-id"]
        .to_str()
        .expect("id")
        .to_string();
    let env = response.text().await.expect("body");
    for expected in [
        format!("SKIFF_CALL_ID={call_id}"),
        "SKIFF_FUNCTION=env".to_string(),
        "SKIFF_METHOD=PUT".to_string(),
        "SKIFF_PATH=/some/path".to_string(),
        "SKIFF_QUERY=x=1&y=two".to_string(),
        "SKIFF_HEADER_X_TRACE_ID=abc-123".to_string(),
        "GREETING=hi".to_string(),
        "API_TOKEN=s3cret".to_string(),
    ] {
        assert!(
            env.lines().any(|l| l == expected),
            "missing {expected} in:\n{env}"
        );
    }
    let deadline = env
        .lines()
        .find_map(|l| l.strip_prefix("SKIFF_DEADLINE="))
        .expect("SKIFF_DEADLINE");
    let deadline = chrono::DateTime::parse_from_rfc3339(deadline).expect("RFC 3339 deadline");
    let left = deadline.with_timezone(&chrono::Utc) - chrono::Utc::now();
    assert!(
        left > chrono::Duration::seconds(3) && left <= chrono::Duration::seconds(7),
        "{left}"
    );

    // Secret values are never returned by the API.
    let (_, function) = d.get("/v1/functions/env").await.status_json();
    assert_eq!(function["secrets"], json!(["API_TOKEN"]));
    assert!(!function.to_string().contains("s3cret"), "{function}");
    d.stop().await;
}

#[tokio::test]
async fn the_sandbox_is_read_only_unprivileged_and_limited() {
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &[]).await else {
        return;
    };
    deploy_ok(
        &d,
        "probe",
        json!({"image": "skiff/testfn:latest", "memory": "96Mi", "pids": 64, "cpus": 0.5,
               "env": {"MODE": "isolation"}}),
    )
    .await;
    let answer = d.invoke("probe", "").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let report = answer.text();
    for expected in [
        "root_writable=false",
        "tmp_writable=true",
        "CapEff=0000000000000000",
        "NoNewPrivs=1",
        "docker_socket=false",
    ] {
        assert!(
            report.lines().any(|l| l == expected),
            "missing {expected} in:\n{report}"
        );
    }
    let has = |key: &str, value: &str| report.lines().any(|l| l == format!("{key}={value}"));
    assert!(has("pids_max", "64"), "{report}");
    assert!(has("memory_max", &(96u64 << 20).to_string()), "{report}");
    assert!(has("cpu_max", "50000 100000"), "{report}");
    d.stop().await;
}

#[tokio::test]
async fn a_call_past_its_timeout_is_stopped_with_504() {
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &[]).await else {
        return;
    };
    deploy_ok(
        &d,
        "slow",
        json!({"image": "skiff/testfn:latest", "timeout": "1s", "env": {"MODE": "sleep"}}),
    )
    .await;
    let started = std::time::Instant::now();
    let answer = d.invoke("slow", "").await;
    assert_eq!(
        answer.status,
        StatusCode::GATEWAY_TIMEOUT,
        "{}",
        answer.text()
    );
    assert_eq!(answer.json()["error"]["code"], "timeout");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let call_id = answer.call_id().expect("call id");
    let (_, record) = d.get(&format!("/v1/calls/{call_id}")).await.status_json();
    assert_eq!(record["status"], "timed_out");
    assert_eq!(record["error_type"], "timeout");
    d.stop().await;
}

#[tokio::test]
async fn out_of_memory_crash_and_non_zero_exit_are_told_apart() {
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &[]).await else {
        return;
    };
    deploy_ok(&d, "oom", json!({"image": "skiff/testfn:latest", "memory": "32Mi", "tmp_size": "8Mi", "env": {"MODE": "oom"}})).await;
    deploy_ok(
        &d,
        "fail",
        json!({"image": "skiff/testfn:latest", "env": {"MODE": "exit", "EXIT_CODE": "3"}}),
    )
    .await;
    deploy_ok(
        &d,
        "abort",
        json!({"image": "skiff/testfn:latest", "env": {"MODE": "abort"}}),
    )
    .await;

    let oom = d.invoke("oom", "").await;
    assert_eq!(oom.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        oom.json()["error"]["code"],
        "out_of_memory",
        "{}",
        oom.text()
    );

    let fail = d.invoke("fail", "").await;
    assert_eq!(fail.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        fail.json()["error"]["code"],
        "function_error",
        "{}",
        fail.text()
    );
    let call_id = fail.call_id().expect("call id");
    let (_, record) = d.get(&format!("/v1/calls/{call_id}")).await.status_json();
    assert_eq!(record["status"], "failed");
    assert_eq!(record["exit_code"], 3);
    assert!(
        record["error_message"]
            .as_str()
            .unwrap_or_default()
            .contains("failing on purpose"),
        "the stderr excerpt is in the record: {record}"
    );

    let abort = d.invoke("abort", "").await;
    assert_eq!(abort.status, StatusCode::BAD_GATEWAY);
    assert_eq!(abort.json()["error"]["code"], "crashed", "{}", abort.text());
    d.stop().await;
}

#[tokio::test]
async fn output_over_the_limit_fails_the_call_and_kills_the_container() {
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &["--max-response-size", "1Mi"]).await
    else {
        return;
    };
    deploy_ok(
        &d,
        "flood",
        json!({"image": "skiff/testfn:latest", "timeout": "20s", "env": {"MODE": "flood"}}),
    )
    .await;
    let started = std::time::Instant::now();
    let answer = d.invoke("flood", "").await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        answer.json()["error"]["code"],
        "output_too_large",
        "{}",
        answer.text()
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "stopped well before the timeout"
    );
    d.stop().await;
}

#[tokio::test]
async fn fifty_concurrent_calls_each_get_their_own_answer() {
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &[]).await else {
        return;
    };
    deploy_ok(
        &d,
        "upper",
        json!({"image": "skiff/uppercase:latest", "memory": "32Mi", "timeout": "60s"}),
    )
    .await;
    let calls = (0..50).map(|i| {
        let url = format!("{}/fn/upper", d.url);
        let client = d.client();
        async move {
            let body = format!("call number {i}\n");
            let response = client.post(url).body(body).send().await.expect("invoke");
            (i, response.status(), response.text().await.expect("body"))
        }
    });
    let results = futures::future::join_all(calls).await;
    for (i, status, text) in results {
        assert_eq!(status, StatusCode::OK, "call {i}: {text}");
        assert_eq!(text, format!("CALL NUMBER {i}\n"));
    }
    let (_, page) = d
        .get("/v1/calls?function=upper&status=succeeded&limit=100")
        .await
        .status_json();
    assert_eq!(page["calls"].as_array().map(Vec::len), Some(50));
    d.stop().await;
}

#[tokio::test]
async fn calls_beyond_the_limit_and_queue_get_429() {
    let Some(d) = Daemon::start_if_ready(
        skiff_bin!(),
        &["--max-concurrent-calls", "1", "--max-queued-calls", "0"],
    )
    .await
    else {
        return;
    };
    deploy_ok(
        &d,
        "slow",
        json!({"image": "skiff/testfn:latest", "timeout": "10s",
                                 "env": {"MODE": "sleep", "SLEEP_MS": "2000"}}),
    )
    .await;
    let url = d.url.clone();
    let client = d.client();
    let first = tokio::spawn(async move {
        client
            .post(format!("{url}/fn/slow"))
            .send()
            .await
            .expect("first")
            .status()
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let second = d.invoke("slow", "").await;
    assert_eq!(
        second.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        second.text()
    );
    assert_eq!(second.json()["error"]["code"], "overloaded");
    assert_eq!(first.await.expect("join"), StatusCode::OK);
    d.stop().await;
}

#[tokio::test]
async fn bad_input_gets_typed_errors() {
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &["--max-request-size", "1Ki"]).await else {
        return;
    };
    let answer = d.invoke("nope", "").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.json()["error"]["code"], "function_not_found");

    let (status, body) = d
        .put_function(
            "bad",
            json!({"image": "skiff/hello:latest", "memory": "1Ki"}),
        )
        .await
        .status_json();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_spec");
    assert_eq!(body["error"]["field"], "memory");

    let (status, body) = d
        .put_function(
            "bad",
            json!({"image": "skiff/hello:latest", "memroy": "64Mi"}),
        )
        .await
        .status_json();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("memroy"),
        "{body}"
    );

    let (status, body) = d
        .put_function("bad name!", json!({"image": "skiff/hello:latest"}))
        .await
        .status_json();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "name");

    let (status, body) = d
        .put_function("ghost", json!({"image": "skiff/no-such-image:1"}))
        .await
        .status_json();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "image_not_found");

    deploy_ok(&d, "echo", json!({"image": "skiff/testfn:latest"})).await;
    let answer = d.invoke("echo", vec![b'x'; 1024]).await;
    assert_eq!(answer.status, StatusCode::OK, "at the limit is fine");
    let answer = d.invoke("echo", vec![b'x'; 1025]).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.json()["error"]["code"], "payload_too_large");

    let (status, body) = d.get("/v1/calls/not-a-uuid").await.status_json();
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "call_not_found");
    let (status, body) = d.get("/v1/calls?status=bogus").await.status_json();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_request");
    let (status, body) = d.get("/no/such/route").await.status_json();
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    d.stop().await;
}

#[tokio::test]
async fn a_restarted_daemon_keeps_its_store_and_reaps_what_it_left() {
    let Some(mut d) = Daemon::start_if_ready(skiff_bin!(), &[]).await else {
        return;
    };
    deploy_ok(&d, "hello", json!({"image": "skiff/hello:latest"})).await;
    let answer = d.invoke("hello", r#"{"name":"Ann"}"#).await;
    let call_id = answer.call_id().expect("call id");
    // A prepared container is made ready for the next call; SIGKILL leaves it behind.
    for _ in 0..200 {
        if !d.containers().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    d.kill();
    assert!(
        !d.containers().is_empty(),
        "the killed daemon left its prepared container"
    );
    // And one more that looks like a leftover of this daemon.
    let id = d.id.clone();
    let created = std::process::Command::new("docker")
        .args([
            "create",
            "--label",
            "skiff.managed=true",
            "--label",
            &format!("skiff.daemon={id}"),
            "skiff/testfn:latest",
        ])
        .output()
        .expect("docker create");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let orphan = String::from_utf8_lossy(&created.stdout).trim().to_string();

    d.restart().await;
    assert_eq!(d.id, id, "the daemon id is kept in the store");
    let left: Vec<String> = d.containers();
    assert!(
        !left.contains(&orphan),
        "the orphan was removed at start-up"
    );

    let (status, function) = d.get("/v1/functions/hello").await.status_json();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(function["version"], 1);
    let (status, record) = d.get(&format!("/v1/calls/{call_id}")).await.status_json();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(record["status"], "succeeded");
    let answer = d.invoke("hello", r#"{"name":"again"}"#).await;
    assert_eq!(answer.text(), "Hello again!\n");
    d.stop().await;
}

#[tokio::test]
async fn sigterm_lets_calls_in_flight_finish_then_removes_every_container() {
    let Some(mut d) = Daemon::start_if_ready(skiff_bin!(), &[]).await else {
        return;
    };
    deploy_ok(
        &d,
        "slow",
        json!({"image": "skiff/testfn:latest", "timeout": "20s",
                                 "env": {"MODE": "sleep", "SLEEP_MS": "1500"}}),
    )
    .await;
    let url = d.url.clone();
    let client = d.client();
    let call = tokio::spawn(async move {
        let response = client
            .post(format!("{url}/fn/slow"))
            .body("still here")
            .send()
            .await
            .expect("in-flight call");
        (response.status(), response.text().await.unwrap_or_default())
    });
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert!(d.terminate().await, "clean exit:\n{}", d.log());
    let (status, body) = call.await.expect("join");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, "still here");
    assert!(
        d.containers().is_empty(),
        "containers left: {:?}",
        d.containers()
    );
}

#[tokio::test]
async fn update_and_delete_functions() {
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &[]).await else {
        return;
    };
    deploy_ok(&d, "f", json!({"image": "skiff/hello:latest"})).await;
    let (status, view) = d
        .put_function(
            "f",
            json!({"image": "skiff/uppercase:latest", "timeout": "5s"}),
        )
        .await
        .status_json();
    assert_eq!(status, StatusCode::OK, "an update answers 200");
    assert_eq!(view["version"], 2);
    assert_eq!(view["timeout"], "5s");
    assert_eq!(
        d.invoke("f", "abc").await.text(),
        "ABC",
        "the new image serves calls"
    );
    let (_, list) = d.get("/v1/functions").await.status_json();
    assert_eq!(list["functions"].as_array().map(Vec::len), Some(1));
    assert_eq!(d.delete_function("f").await, StatusCode::NO_CONTENT);
    assert_eq!(d.invoke("f", "").await.status, StatusCode::NOT_FOUND);
    d.stop().await;
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &[]).await else {
        return;
    };
    let (status, doc) = d.get("/v1/openapi.json").await.status_json();
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"]
        .as_str()
        .unwrap_or_default()
        .starts_with("3."));
    for path in [
        "/v1/functions",
        "/v1/functions/{name}",
        "/v1/functions/{name}/invoke",
        "/v1/calls",
        "/v1/calls/{id}",
        "/v1/calls/{id}/logs",
        "/healthz",
        "/readyz",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["schemas"].get("FunctionSpec").is_some());
    d.stop().await;
}

#[tokio::test]
async fn a_daemon_whose_log_pipe_is_gone_still_cleans_up_on_sigint() {
    if !skiff_testing::ready() {
        return;
    }
    // Output to a pipe whose reader went away (`skiff serve | tee` after Ctrl-C).
    let dir = tempfile::tempdir().expect("tempdir");
    let port = skiff_testing::free_port();
    let mut child = std::process::Command::new(skiff_bin!())
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path())
        .env("SKIFF_CLI_CONFIG", dir.path().join("cli-config.toml"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("skiff serve");
    drop(child.stdout.take());
    drop(child.stderr.take());
    let url = format!("http://127.0.0.1:{port}");
    let mut daemon_id = String::new();
    for _ in 0..200 {
        if let Ok(response) = reqwest::get(format!("{url}/healthz")).await {
            let body: Value = response.json().await.expect("health");
            daemon_id = body["daemon"].as_str().unwrap_or_default().to_string();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!daemon_id.is_empty(), "the daemon started");
    let token = std::fs::read_to_string(dir.path().join("admin.token")).expect("admin token");
    let status = reqwest::Client::new()
        .put(format!("{url}/v1/functions/hello"))
        .bearer_auth(token.trim())
        .json(&json!({"image": "skiff/hello:latest"}))
        .send()
        .await
        .expect("deploy")
        .status();
    assert_eq!(status, StatusCode::CREATED);
    let label = format!("skiff.daemon={daemon_id}");
    for _ in 0..100 {
        if !skiff_testing::containers_with_label(&label).is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        !skiff_testing::containers_with_label(&label).is_empty(),
        "a prepared container"
    );
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let exited = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join");
    assert!(
        exited.expect("wait").success(),
        "a clean exit despite the closed pipe"
    );
    assert!(
        skiff_testing::containers_with_label(&label).is_empty(),
        "no container left"
    );
}
