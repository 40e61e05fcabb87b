//! End-to-end tests of the `http` contract and instance pools on the real Docker engine.

use reqwest::StatusCode;
use serde_json::{json, Value};
use skiff_testing::{merged, skiff_bin, wait_until, Daemon};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// An `echo-http` function's spec, with the fields of `extra`.
fn web(extra: Value) -> Value {
    merged(
        json!({"image": "skiff/echo-http:latest", "contract": "http",
               "readiness_path": "/ready", "memory": "64Mi", "timeout": "20s"}),
        extra,
    )
}

#[tokio::test]
async fn requests_are_proxied_with_method_path_query_headers_and_streaming_bodies() {
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &[]).await else {
        return;
    };
    d.deploy("web", web(json!({}))).await;
    let client = d.client();
    let response = client
        .patch(format!("{}/fn/web/some/path?x=1&y=two", d.url))
        .header("X-Trace", "abc")
        .body("12345")
        .send()
        .await
        .expect("call");
    assert_eq!(response.status(), StatusCode::OK);
    let call_id = response.headers()["x-skiff-call-id"]
        .to_str()
        .expect("id")
        .to_string();
    assert!(
        response.headers().contains_key("x-echo-instance"),
        "the function's headers pass"
    );
    let echo: Value = response.json().await.expect("json");
    assert_eq!(echo["method"], "PATCH");
    assert_eq!(echo["path"], "/some/path");
    assert_eq!(echo["query"], "x=1&y=two");
    assert_eq!(echo["headers"]["x-trace"], "abc");
    assert_eq!(echo["headers"]["x-skiff-call-id"], call_id.as_str());
    assert!(echo["headers"]["x-skiff-deadline"]
        .as_str()
        .is_some_and(|d| d.ends_with('Z')));
    assert_eq!(echo["body_bytes"], 5);

    // 1 MiB in, the same 1 MiB out.
    let body: Vec<u8> = (0..(1u32 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let echoed = client
        .post(format!("{}/fn/web/echo", d.url))
        .body(body.clone())
        .send()
        .await
        .expect("echo")
        .bytes()
        .await
        .expect("echo body");
    assert!(echoed == body, "the streamed body came back changed");

    // A streamed response arrives as it is written, not all at once at the end.
    let mut response = client
        .get(format!("{}/fn/web/stream?chunks=3&interval_ms=400", d.url))
        .send()
        .await
        .expect("stream");
    let started = Instant::now();
    let first = response
        .chunk()
        .await
        .expect("chunk")
        .expect("a first chunk");
    assert!(
        started.elapsed() < Duration::from_millis(350),
        "first chunk took {:?}",
        started.elapsed()
    );
    assert_eq!(&first[..], b"chunk 0\n");
    let mut rest = Vec::new();
    while let Some(chunk) = response.chunk().await.expect("chunk") {
        rest.extend_from_slice(&chunk);
    }
    assert_eq!(rest, b"chunk 1\nchunk 2\n");

    // The function's own status passes through; a 5xx is recorded as a failed call.
    let response = d.get("/fn/web/status/418").await;
    assert_eq!(response.status, StatusCode::IM_A_TEAPOT);
    let response = d.get("/fn/web/status/503").await;
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    let id = response.headers["x-skiff-call-id"]
        .to_str()
        .expect("id")
        .to_string();
    let record = d.call_record(&id).await;
    assert_eq!(record["status"], "failed");
    assert_eq!(record["error_type"], "function_error");
    let record = d.call_record(&call_id).await;
    assert_eq!(record["status"], "succeeded");
    assert_eq!(record["trigger"], "http");
    d.stop().await;
}

#[tokio::test]
async fn the_second_call_reuses_the_warm_instance() {
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &[]).await else {
        return;
    };
    d.deploy("web", web(json!({}))).await;
    let first = d.get("/fn/web/").await;
    assert_eq!(first.headers["x-skiff-cold"], "true");
    let first_id = first.headers["x-skiff-call-id"]
        .to_str()
        .expect("id")
        .to_string();
    let first = first.json();
    let record = d.call_record(&first_id).await;
    assert!(
        record["start_ms"].as_u64().unwrap_or(0) > 0,
        "the cold start is recorded apart from the wait for a slot: {record}"
    );
    assert_eq!(record["cold"], true);
    let second = d.get("/fn/web/").await;
    assert_eq!(second.headers["x-skiff-cold"], "false");
    let second_id = second.headers["x-skiff-call-id"]
        .to_str()
        .expect("id")
        .to_string();
    let record = d.call_record(&second_id).await;
    assert!(record.get("start_ms").is_none(), "a warm call: {record}");
    // The cold start is its own histogram in /metrics.
    let metrics = d.get_text("/metrics").await;
    assert!(
        metrics.contains(r#"skiff_cold_start_seconds_count{function="web"} 1"#),
        "{metrics}"
    );
    // So are the daemon's allocator figures: a leak grows the bytes allocated, fragmentation
    // only the bytes resident.
    let gauge = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    let (allocated, resident) = (
        gauge("skiff_heap_allocated_bytes"),
        gauge("skiff_heap_resident_bytes"),
    );
    assert!(
        allocated > 0 && resident >= allocated,
        "allocated {allocated}, resident {resident}"
    );
    let second = second.json();
    assert_eq!(first["instance"], second["instance"]);
    assert_eq!(first["pid"], second["pid"]);
    let list = d.instances("web").await;
    assert_eq!(list.len(), 1, "{list:?}");
    d.stop().await;
}

#[tokio::test]
async fn per_instance_concurrency_holds_and_instances_stay_within_max() {
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &[]).await else {
        return;
    };
    d.deploy("web", web(json!({"concurrency": 2, "max_instances": 3})))
        .await;
    let calls = (0..12).map(|_| {
        let url = format!("{}/fn/web/?sleep_ms=700", d.url);
        let client = d.client();
        async move {
            let response = client.get(url).send().await.expect("call");
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<Value>().await.expect("json")
        }
    });
    let answers = futures::future::join_all(calls).await;
    let mut seen = HashSet::new();
    for answer in &answers {
        let in_flight = answer["in_flight"].as_u64().expect("in_flight");
        assert!(
            in_flight <= 2,
            "an instance served {in_flight} calls at once: {answer}"
        );
        seen.insert(answer["instance"].as_str().unwrap_or_default().to_string());
    }
    assert!(seen.len() <= 3, "more than max_instances served: {seen:?}");
    assert!(seen.len() >= 2, "the pool scaled up: {seen:?}");
    d.stop().await;
}

#[tokio::test]
async fn a_hundred_concurrent_calls_scale_up_within_max_and_none_is_lost() {
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &["--max-concurrent-calls", "200"]).await
    else {
        return;
    };
    d.deploy("web", web(json!({"concurrency": 5, "max_instances": 4})))
        .await;
    let url = d.url.clone();
    let client = d.client();
    let watcher = tokio::spawn(async move {
        let mut most = 0;
        for _ in 0..40 {
            let body: Value = client
                .get(format!("{url}/v1/functions/web/instances"))
                .send()
                .await
                .expect("instances")
                .json()
                .await
                .expect("json");
            most = most.max(body["instances"].as_array().map_or(0, Vec::len));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        most
    });
    let calls = (0..100).map(|i| {
        let url = format!("{}/fn/web/call/{i}?sleep_ms=200", d.url);
        let client = d.client();
        async move {
            let response = client.get(url).send().await.expect("call");
            (
                response.status(),
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    });
    let answers = futures::future::join_all(calls).await;
    let mut paths = HashSet::new();
    let mut seen = HashSet::new();
    for (status, answer) in &answers {
        assert_eq!(*status, StatusCode::OK, "{answer}");
        assert!(answer["in_flight"].as_u64().unwrap_or(99) <= 5, "{answer}");
        paths.insert(answer["path"].as_str().unwrap_or_default().to_string());
        seen.insert(answer["instance"].as_str().unwrap_or_default().to_string());
    }
    assert_eq!(paths.len(), 100, "each call answered once, to itself");
    assert!(seen.len() > 1 && seen.len() <= 4, "{seen:?}");
    let most = watcher.await.expect("watcher");
    assert!(most <= 4, "at most max_instances at any time, saw {most}");
    d.stop().await;
}

#[tokio::test]
async fn min_instances_are_warm_from_deploy_and_idle_ones_scale_to_zero() {
    let Some(d) = Daemon::start_if_ready(
        skiff_bin!(),
        &["--autoscale-window", "2s", "--keep-paused", "false"],
    )
    .await
    else {
        return;
    };
    d.deploy(
        "web",
        web(json!({"min_instances": 2, "idle_timeout": "1s"})),
    )
    .await;
    wait_until("two ready instances", Duration::from_secs(20), async || {
        let list = d.instances("web").await;
        list.len() == 2 && list.iter().all(|i| i["state"] == "ready")
    })
    .await;
    // Scaling to zero min: the idle instances go.
    let response = d
        .client()
        .post(format!("{}/v1/functions/web/scale", d.url))
        .json(&json!({"min_instances": 0}))
        .send()
        .await
        .expect("scale");
    assert_eq!(response.status(), StatusCode::OK);
    wait_until("no instance", Duration::from_secs(20), async || {
        d.instances("web").await.is_empty()
    })
    .await;
    wait_until("no container", Duration::from_secs(20), async || {
        skiff_testing::containers_with_label("skiff.function=web")
            .iter()
            .all(|c| !d.containers().contains(c))
    })
    .await;
    // And a call brings one back.
    let response = d.get("/fn/web/").await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.headers["x-skiff-cold"], "true");
    d.stop().await;
}

#[tokio::test]
async fn the_last_idle_instance_is_paused_and_resumes_fast() {
    // The function's own autoscaler window (the daemon's default is 60s).
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &[]).await else {
        return;
    };
    d.deploy(
        "web",
        web(json!({"idle_timeout": "1s", "autoscale_window": "2s"})),
    )
    .await;
    let first = d.get("/fn/web/").await.json();
    wait_until("a paused instance", Duration::from_secs(20), async || {
        let list = d.instances("web").await;
        list.len() == 1 && list[0]["state"] == "paused"
    })
    .await;
    let started = Instant::now();
    let response = d.get("/fn/web/").await;
    let took = started.elapsed();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.headers["x-skiff-cold"], "true");
    let again = response.json();
    assert_eq!(first["pid"], again["pid"], "the same process, resumed");
    assert_eq!(first["instance"], again["instance"]);
    eprintln!("resumed in {took:?}");
    d.stop().await;
}

#[tokio::test]
async fn a_crashed_instance_fails_its_call_and_is_replaced() {
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &[]).await else {
        return;
    };
    d.deploy("web", web(json!({}))).await;
    let before = d.get("/fn/web/").await.json();
    let response = d.get("/fn/web/crash").await;
    assert_eq!(response.status, StatusCode::BAD_GATEWAY);
    let error = response.json();
    assert_eq!(error["error"]["code"], "crashed", "{error}");
    let response = d.get("/fn/web/").await;
    assert_eq!(response.status, StatusCode::OK);
    let after = response.json();
    assert_ne!(
        before["instance"], after["instance"],
        "a new instance serves"
    );
    wait_until("one instance left", Duration::from_secs(10), async || {
        d.instances("web").await.len() == 1
    })
    .await;
    d.stop().await;
}

#[tokio::test]
async fn an_image_that_never_listens_fails_clearly_and_leaves_no_container() {
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &[]).await else {
        return;
    };
    d.deploy(
        "deaf",
        web(json!({"env": {"NEVER_LISTEN": "1"}, "startup_timeout": "1s", "max_instances": 1})),
    )
    .await;
    let response = d.get("/fn/deaf/").await;
    assert_eq!(response.status, StatusCode::BAD_GATEWAY);
    let error = response.json();
    assert_eq!(error["error"]["code"], "start_failed", "{error}");
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("did not become ready"), "{message}");
    wait_until(
        "no container of deaf",
        Duration::from_secs(15),
        async || {
            let mine: HashSet<String> = d.containers().into_iter().collect();
            skiff_testing::containers_with_label("skiff.function=deaf")
                .iter()
                .all(|c| !mine.contains(c))
        },
    )
    .await;
    d.stop().await;
}

#[tokio::test]
async fn a_redeploy_finishes_calls_in_flight_then_drains_the_old_instances() {
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &[]).await else {
        return;
    };
    d.deploy("web", web(json!({"env": {"GEN": "1"}}))).await;
    let old = d.get("/fn/web/").await.json();
    let url = format!("{}/fn/web/?sleep_ms=1500", d.url);
    let client = d.client();
    let slow = tokio::spawn(async move {
        let response = client.get(url).send().await.expect("slow call");
        (
            response.status(),
            response.json::<Value>().await.unwrap_or(Value::Null),
        )
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    d.deploy("web", web(json!({"env": {"GEN": "2"}}))).await;
    let new = d.get("/fn/web/").await.json();
    assert_ne!(
        old["instance"], new["instance"],
        "the new version runs in a new instance"
    );
    let (status, answer) = slow.await.expect("join");
    assert_eq!(
        status,
        StatusCode::OK,
        "the call in flight on the old version finished"
    );
    assert_eq!(answer["instance"], old["instance"]);
    wait_until(
        "the old instance gone",
        Duration::from_secs(20),
        async || {
            let list = d.instances("web").await;
            list.len() == 1 && list[0]["version"] == 2
        },
    )
    .await;
    d.stop().await;
}

#[tokio::test]
async fn an_instance_that_fails_its_health_checks_is_replaced() {
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &["--health-interval", "300ms"]).await
    else {
        return;
    };
    d.deploy("web", web(json!({}))).await;
    let before = d.get("/fn/web/").await.json();
    let response = d.get("/fn/web/sick").await;
    assert_eq!(response.status, StatusCode::OK);
    let old = before["instance"].as_str().unwrap_or_default().to_string();
    wait_until(
        "the sick instance replaced",
        Duration::from_secs(20),
        async || {
            let Some(answer) = d.get("/fn/web/").await.try_json() else {
                return false;
            };
            answer["instance"].as_str().is_some_and(|i| i != old)
        },
    )
    .await;
    d.stop().await;
}

#[tokio::test]
async fn calls_beyond_the_queue_get_429_and_no_record_is_left_running() {
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &["--max-queued-calls", "1"]).await else {
        return;
    };
    d.deploy(
        "web",
        web(json!({"concurrency": 1, "max_instances": 1, "min_instances": 1})),
    )
    .await;
    wait_until("a ready instance", Duration::from_secs(20), async || {
        d.instances("web")
            .await
            .iter()
            .any(|i| i["state"] == "ready")
    })
    .await;
    let slow = |delay: u64| {
        let url = format!("{}/fn/web/?sleep_ms=1500", d.url);
        let client = d.client();
        async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            client.get(url).send().await.expect("call").status()
        }
    };
    let (a, b, c) = tokio::join!(slow(0), slow(200), slow(400));
    let mut statuses = vec![a, b, c];
    statuses.sort();
    assert_eq!(
        statuses,
        vec![
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ],
        "one runs, one waits, the third is refused"
    );
    let page = d.get_json("/v1/calls?function=web").await;
    let calls = page["calls"].as_array().cloned().unwrap_or_default();
    assert_eq!(calls.len(), 3, "{page}");
    assert!(calls.iter().all(|c| c["status"] != "running"), "{page}");
    assert!(
        calls.iter().any(|c| c["error_type"] == "rejected"),
        "{page}"
    );
    assert!(
        calls
            .iter()
            .any(|c| c["wait_ms"].as_u64().unwrap_or(0) >= 1000),
        "the queued call's wait is recorded: {page}"
    );
    d.stop().await;
}

#[tokio::test]
async fn a_streamed_response_is_cut_at_the_deadline_and_at_the_size_limit() {
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &["--max-response-size", "4Ki"]).await
    else {
        return;
    };
    d.deploy(
        "web",
        json!({"image": "skiff/echo-http:latest", "contract": "http", "timeout": "1s"}),
    )
    .await;
    let client = d.client();
    // Fifty chunks 100 ms apart take five seconds: the stream is cut at the one-second
    // timeout, the caller sees it break, and the record says why.
    let response = client
        .get(format!("{}/fn/web/stream?chunks=50&interval_ms=100", d.url))
        .send()
        .await
        .expect("stream");
    assert_eq!(response.status(), StatusCode::OK);
    let id = response.headers()["x-skiff-call-id"]
        .to_str()
        .expect("id")
        .to_string();
    let started = Instant::now();
    assert!(response.bytes().await.is_err(), "the stream is cut");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "cut at the deadline"
    );
    let record = d.wait_call(&id, "timed_out", Duration::from_secs(10)).await;
    assert_eq!(record["error_type"], "timeout", "{record}");

    // An echoed body of 64 KiB goes past the 4 KiB limit: cut (the caller may see it while
    // it still sends the body, or while it reads the answer), recorded as too large.
    let echoed = client
        .post(format!("{}/fn/web/echo", d.url))
        .body(vec![b'x'; 64 << 10])
        .send()
        .await;
    if let Ok(response) = echoed {
        let body = response.bytes().await;
        assert!(
            body.as_ref().map_or(true, |b| b.len() <= 8 << 10),
            "no more than the limit (and a frame) reaches the caller"
        );
    }
    wait_until(
        "the cut call is recorded",
        Duration::from_secs(10),
        async || {
            d.calls("function=web&status=failed")
                .await
                .iter()
                .any(|r| r["error_type"] == "output_too_large")
        },
    )
    .await;
    d.stop().await;
}
