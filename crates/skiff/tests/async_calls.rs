//! Async calls on the real engine: accepted durably (202), run, retried, dead, redriven, and
//! never lost when the daemon is killed with SIGKILL; a payload is kept while its call can
//! still run, and deleted once it succeeded.

use reqwest::StatusCode;
use serde_json::{json, Value};
use skiff_testing::{skiff_bin, Daemon};
use std::collections::HashSet;
use std::time::{Duration, Instant};

async fn enqueue(client: &reqwest::Client, url: &str, body: &'static str) -> String {
    let response = client
        .post(url)
        .header("Prefer", "respond-async")
        .body(body)
        .send()
        .await
        .expect("enqueue");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let id = response.headers()["x-skiff-call-id"]
        .to_str()
        .expect("id")
        .to_string();
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["call_id"], id.as_str());
    id
}

#[tokio::test]
async fn an_async_call_is_accepted_then_runs() {
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &[]).await else {
        return;
    };
    d.deploy("hello", json!({"image": "skiff/hello:latest"}))
        .await;
    let client = d.client();
    let id = enqueue(
        &client,
        &format!("{}/v1/functions/hello/invoke", d.url),
        r#"{"name":"Ann"}"#,
    )
    .await;
    let record = d.wait_call(&id, "succeeded", Duration::from_secs(30)).await;
    assert_eq!(record["trigger"], "async");
    assert_eq!(record["attempt"], 1);
    let logs = d.logs(&id).await;
    assert!(logs.contains("greeting Ann"), "{logs}");
    // The public route takes Prefer too, and bodies over the async limit are refused.
    let id = enqueue(&client, &format!("{}/fn/hello", d.url), "{}").await;
    d.wait_call(&id, "succeeded", Duration::from_secs(30)).await;
    let big = client
        .post(format!("{}/fn/hello", d.url))
        .header("Prefer", "respond-async")
        .body(vec![b' '; 300 * 1024])
        .send()
        .await
        .expect("big");
    assert_eq!(big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    d.stop().await;
}

#[tokio::test]
async fn a_failing_async_call_is_retried_then_dead_then_redriven() {
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &["--async-retry-delay", "100ms"]).await
    else {
        return;
    };
    d.deploy(
        "fail",
        json!({"image": "skiff/testfn:latest", "env": {"MODE": "exit"}}),
    )
    .await;
    let client = d.client();
    let id = enqueue(&client, &format!("{}/v1/functions/fail/invoke", d.url), "").await;
    let dead = d.wait_call(&id, "dead", Duration::from_secs(60)).await;
    assert_eq!(
        dead["attempt"], 3,
        "1 attempt + 2 retries by default: {dead}"
    );
    assert_eq!(
        dead["error_type"],
        "function_error",
        "the last attempt ran and failed: {dead}\n{}",
        d.log()
    );
    let redriven = client
        .post(format!("{}/v1/calls/{id}/redrive", d.url))
        .send()
        .await
        .expect("redrive");
    assert_eq!(redriven.status(), StatusCode::OK);
    let dead = d.wait_call(&id, "dead", Duration::from_secs(60)).await;
    assert_eq!(dead["attempt"], 3);
    let not_dead = client
        .post(format!(
            "{}/v1/calls/{}/redrive",
            d.url,
            enqueue(&client, &format!("{}/v1/functions/fail/invoke", d.url), "").await
        ))
        .send()
        .await
        .expect("redrive");
    assert!(not_dead.status().is_client_error() || not_dead.status().is_success());
    d.stop().await;
}

/// The payload the store keeps for call `id`, read with the daemon stopped.
async fn stored_payload(d: &Daemon, id: &str) -> Option<Vec<u8>> {
    let store = skiff_store::Store::open(&d.data_dir.path().join("skiff.db"))
        .await
        .expect("the daemon's store");
    let payload = store
        .payload(id.parse().expect("a call id"))
        .await
        .expect("read a payload");
    store.close().await;
    payload.map(|p| p.body)
}

#[tokio::test]
async fn a_succeeded_calls_payload_is_deleted_and_a_dead_ones_kept_for_redrive() {
    let Some(mut d) = Daemon::start_if_ready(skiff_bin!(), &["--async-retry-delay", "100ms"]).await
    else {
        return;
    };
    let echo = json!({"image": "skiff/testfn:latest", "env": {"MODE": "echo"}, "retries": 0});
    let failing = json!({"image": "skiff/testfn:latest", "env": {"MODE": "exit"}, "retries": 0});
    d.deploy("ok", echo.clone()).await;
    d.deploy("flaky", failing).await;
    let client = d.client();
    let ok = enqueue(
        &client,
        &format!("{}/v1/functions/ok/invoke", d.url),
        "done with",
    )
    .await;
    let dead = enqueue(
        &client,
        &format!("{}/v1/functions/flaky/invoke", d.url),
        "kept for a redrive",
    )
    .await;
    d.wait_call(&ok, "succeeded", Duration::from_secs(60)).await;
    d.wait_call(&dead, "dead", Duration::from_secs(60)).await;
    assert!(d.terminate().await, "clean exit:\n{}", d.log());
    assert_eq!(
        stored_payload(&d, &ok).await,
        None,
        "a succeeded call's payload goes"
    );
    assert_eq!(
        stored_payload(&d, &dead).await.as_deref(),
        Some(&b"kept for a redrive"[..]),
        "a dead call's payload stays"
    );

    // The function fixed, the dead call redriven through the API runs with its payload;
    // once it succeeded, that payload goes too.
    d.restart().await;
    d.deploy("flaky", echo).await;
    let redriven = client
        .post(format!("{}/v1/calls/{dead}/redrive", d.url))
        .send()
        .await
        .expect("redrive");
    assert_eq!(redriven.status(), StatusCode::OK);
    let record = d
        .wait_call(&dead, "succeeded", Duration::from_secs(60))
        .await;
    assert_eq!(record["result"]["body"], "kept for a redrive", "{record}");
    assert!(d.terminate().await, "clean exit:\n{}", d.log());
    assert_eq!(stored_payload(&d, &dead).await, None);
    assert!(d.containers().is_empty(), "{:?}", d.containers());
}

#[tokio::test]
async fn ten_thousand_accepted_async_calls_survive_sigkill() {
    let Some(mut d) = Daemon::start_if_ready(skiff_bin!(), &["--max-concurrent-calls", "64"]).await
    else {
        return;
    };
    d.deploy(
        "web",
        json!({"image": "skiff/echo-http:latest", "contract": "http", "readiness_path": "/ready",
               "memory": "64Mi", "concurrency": 64, "max_instances": 2, "min_instances": 1}),
    )
    .await;
    let client = d.client_with(reqwest::Client::builder().pool_max_idle_per_host(64));
    // Each call takes 100 ms and at most 64 run at once (about 16 s for all), so that the
    // queue still holds work when the daemon is killed, however fast the enqueueing.
    let url = format!("{}/fn/web/?sleep_ms=100", d.url);
    let total = 10_000;
    let mut ids = HashSet::with_capacity(total);
    let mut pending = futures::stream::FuturesUnordered::new();
    use futures::StreamExt;
    for _ in 0..total {
        pending.push(enqueue(&client, &url, "x"));
        if pending.len() >= 32 {
            if let Some(id) = pending.next().await {
                ids.insert(id);
            }
        }
    }
    while let Some(id) = pending.next().await {
        ids.insert(id);
    }
    assert_eq!(ids.len(), total, "every call was accepted with its own id");
    // Kill the daemon while the queue drains.
    let waiting = d
        .get_json("/v1/calls?function=web&status=queued&limit=1")
        .await;
    assert!(
        !waiting["calls"]
            .as_array()
            .map(Vec::is_empty)
            .unwrap_or(true),
        "calls are still queued when the daemon is killed"
    );
    d.kill();
    d.restart().await;
    let started = Instant::now();
    let mut finished: HashSet<String> = HashSet::new();
    loop {
        finished.clear();
        let mut before: Option<String> = None;
        loop {
            let mut page_path = "/v1/calls?function=web&limit=1000".to_string();
            if let Some(b) = &before {
                page_path.push_str(&format!("&before={b}"));
            }
            let page = d.get_json(&page_path).await;
            for call in page["calls"].as_array().cloned().unwrap_or_default() {
                let status = call["status"].as_str().unwrap_or_default();
                if !matches!(status, "queued" | "running") {
                    finished.insert(call["id"].as_str().unwrap_or_default().to_string());
                }
            }
            match page["next"].as_str() {
                Some(next) => before = Some(next.to_string()),
                None => break,
            }
        }
        if ids.iter().all(|id| finished.contains(id)) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "{} of {total} calls reached a final status",
            ids.iter().filter(|id| finished.contains(*id)).count()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    d.stop().await;
}

/// One callback as the receiver got it.
#[derive(Debug)]
struct Hook {
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

/// A callback receiver on a free local port: answers 503 to its first `refuse` requests,
/// then 204; hands every request it accepted to the returned channel.
async fn receiver(refuse: usize) -> (String, tokio::sync::mpsc::UnboundedReceiver<Hook>) {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, StatusCode as AxumStatus};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let seen = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let (tx, seen) = (tx.clone(), seen.clone());
            async move {
                if seen.fetch_add(1, Ordering::SeqCst) < refuse {
                    return AxumStatus::SERVICE_UNAVAILABLE;
                }
                let mut copy = reqwest::header::HeaderMap::new();
                for (name, value) in &headers {
                    if let (Ok(name), Ok(value)) = (
                        reqwest::header::HeaderName::from_bytes(name.as_str().as_bytes()),
                        reqwest::header::HeaderValue::from_bytes(value.as_bytes()),
                    ) {
                        copy.insert(name, value);
                    }
                }
                let _ = tx.send(Hook {
                    headers: copy,
                    body: body.to_vec(),
                });
                AxumStatus::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, rx)
}

async fn next_hook(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Hook>) -> Hook {
    tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .expect("a callback within 60 s")
        .expect("receiver open")
}

fn header<'a>(hook: &'a Hook, name: &str) -> &'a str {
    hook.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[tokio::test]
async fn an_async_call_keeps_its_result_and_sends_it_to_its_callback() {
    // The receiver listens on loopback, where callbacks go only when allowed.
    let Some(d) = Daemon::start_if_ready(
        skiff_bin!(),
        &[
            "--async-retry-delay",
            "100ms",
            "--async-result-bytes",
            "16",
            "--callback-allow",
            "127.0.0.1/32",
        ],
    )
    .await
    else {
        return;
    };
    d.deploy("echo", json!({"image": "skiff/testfn:latest"}))
        .await;
    d.deploy(
        "fail",
        json!({"image": "skiff/testfn:latest", "env": {"MODE": "exit"}, "retries": 1}),
    )
    .await;
    // The receiver refuses the first try: the callback is tried again.
    let (hook_url, mut hooks) = receiver(1).await;
    let client = d.client();
    let accepted = d
        .call_async(
            "/v1/functions/echo/invoke",
            "hello, callback",
            Some(&hook_url),
        )
        .await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED);
    let id = accepted.call_id().expect("id");
    let hook = next_hook(&mut hooks).await;
    assert_eq!(header(&hook, "x-skiff-call-id"), id);
    assert_eq!(header(&hook, "x-skiff-function"), "echo");
    assert_eq!(header(&hook, "x-skiff-status"), "succeeded");
    assert_eq!(header(&hook, "x-skiff-status-code"), "200");
    assert_eq!(
        hook.body, b"hello, callback",
        "the function's output, whole: the cap is 16 bytes"
    );
    // The callback header is skiff's, not the function's: the echo shows no trace of it.
    let record = d.wait_call(&id, "succeeded", Duration::from_secs(30)).await;
    assert_eq!(record["result"]["status_code"], 200);
    assert_eq!(record["result"]["encoding"], "utf8");
    assert_eq!(record["result"]["body"], "hello, callback");
    assert_eq!(record["result"]["truncated"], false);

    // Over the cap, the result keeps the first bytes and says so.
    let id = enqueue(
        &client,
        &format!("{}/v1/functions/echo/invoke", d.url),
        "0123456789abcdefXYZ",
    )
    .await;
    let record = d.wait_call(&id, "succeeded", Duration::from_secs(30)).await;
    assert_eq!(record["result"]["body"], "0123456789abcdef");
    assert_eq!(record["result"]["size"], 19);
    assert_eq!(record["result"]["truncated"], true);

    // A call that dies sends its last error.
    let accepted = d
        .call_async("/v1/functions/fail/invoke", "", Some(&hook_url))
        .await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED);
    let hook = next_hook(&mut hooks).await;
    assert_eq!(header(&hook, "x-skiff-status"), "dead");
    assert_eq!(header(&hook, "x-skiff-attempt"), "2", "1 attempt + 1 retry");
    let error: Value = serde_json::from_slice(&hook.body).expect("json");
    assert_eq!(error["error"]["code"], "function_error");

    // Bad callback URLs are refused before anything is stored.
    for bad in ["ftp://example.com/hook", "not a url", "/relative"] {
        let (status, body) = d
            .call_async("/v1/functions/echo/invoke", "", Some(bad))
            .await
            .status_json();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["error"]["code"], "invalid_request", "{body}");
    }
    d.stop().await;
}

#[tokio::test]
async fn async_calls_older_than_their_max_event_age_are_given_up() {
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &["--async-retry-delay", "300ms"]).await
    else {
        return;
    };
    // Retries stop once the next one would come after the call's max event age.
    d.deploy(
        "fail",
        json!({"image": "skiff/testfn:latest", "env": {"MODE": "exit"},
               "retries": 10, "max_event_age": "5s"}),
    )
    .await;
    d.deploy(
        "echo",
        json!({"image": "skiff/testfn:latest", "max_event_age": "1s"}),
    )
    .await;
    let client = d.client();
    let failing = enqueue(&client, &format!("{}/v1/functions/fail/invoke", d.url), "").await;
    let dead = d.wait_call(&failing, "dead", Duration::from_secs(60)).await;
    let attempts = dead["attempt"].as_u64().expect("attempt");
    assert!(
        (2..=10).contains(&attempts),
        "retried, but not 10 times within 5s: {dead}"
    );
    // Its last retry was due before its age ran out; if it could only start after (a busy
    // machine), the call ends `expired` instead, naming the function's last error.
    let error_type = dead["error_type"].as_str().unwrap_or_default();
    assert!(
        error_type == "function_error"
            || (error_type == "expired"
                && dead["error_message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("failing on purpose")),
        "{dead}"
    );

    d.stop().await;

    // A call still queued when its age runs out never runs: with one call at a time, a
    // slow call holds the only slot for 3 s while a call with a 1 s age waits.
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &["--max-concurrent-calls", "1"]).await
    else {
        return;
    };
    d.deploy(
        "slow",
        json!({"image": "skiff/testfn:latest", "env": {"MODE": "sleep", "SLEEP_MS": "3000"}}),
    )
    .await;
    d.deploy(
        "echo",
        json!({"image": "skiff/testfn:latest", "max_event_age": "1s"}),
    )
    .await;
    let client = d.client();
    let slow = enqueue(&client, &format!("{}/v1/functions/slow/invoke", d.url), "").await;
    d.wait_call(&slow, "running", Duration::from_secs(30)).await;
    let late = enqueue(
        &client,
        &format!("{}/v1/functions/echo/invoke", d.url),
        "late",
    )
    .await;
    let dead = d.wait_call(&late, "dead", Duration::from_secs(60)).await;
    assert_eq!(dead["error_type"], "expired", "{dead}");
    assert!(dead.get("result").is_none(), "it never ran: {dead}");
    d.wait_call(&slow, "succeeded", Duration::from_secs(30))
        .await;
    d.stop().await;
}

#[tokio::test]
async fn an_http_function_answering_5xx_is_retried_and_its_answers_kept() {
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &["--async-retry-delay", "100ms"]).await
    else {
        return;
    };
    d.deploy(
        "web",
        json!({"image": "skiff/echo-http:latest", "contract": "http", "readiness_path": "/ready",
               "memory": "64Mi", "retries": 1}),
    )
    .await;
    let client = d.client();
    let failing = enqueue(&client, &format!("{}/fn/web/status/503", d.url), "").await;
    let dead = d.wait_call(&failing, "dead", Duration::from_secs(60)).await;
    assert_eq!(dead["attempt"], 2, "1 attempt + 1 retry: {dead}");
    assert_eq!(dead["error_type"], "function_error");
    assert_eq!(dead["result"]["status_code"], 503, "{dead}");
    assert_eq!(dead["result"]["body"], "status 503");
    // 4xx is the function's answer, not a failure to retry.
    let refused = enqueue(&client, &format!("{}/fn/web/status/404", d.url), "").await;
    let done = d
        .wait_call(&refused, "succeeded", Duration::from_secs(60))
        .await;
    assert_eq!(done["attempt"], 1);
    assert_eq!(done["result"]["status_code"], 404);
    d.stop().await;
}

/// A daemon started with `--dispatch false` takes async calls and queues them, durably, but
/// runs none: they wait in the queue for a daemon that dispatches (here the same store,
/// restarted with dispatch on), which runs them.
#[tokio::test]
async fn a_daemon_that_does_not_dispatch_queues_calls_for_one_that_does() {
    let Some(mut d) = Daemon::start_if_ready(skiff_bin!(), &["--dispatch", "false"]).await else {
        return;
    };
    d.deploy(
        "echo",
        json!({"image": "skiff/testfn:latest", "env": {"MODE": "echo"}}),
    )
    .await;
    let client = d.client();
    let url = format!("{}/v1/functions/echo/invoke", d.url);
    let ids = [
        enqueue(&client, &url, "one").await,
        enqueue(&client, &url, "two").await,
    ];
    tokio::time::sleep(Duration::from_secs(3)).await;
    for id in &ids {
        let record = d.call_record(id).await;
        assert_eq!(record["status"], "queued", "not run: {record}");
    }
    assert!(d.terminate().await, "a clean stop:\n{}", d.log());
    d.restart_with(&[]).await;
    for id in &ids {
        let done = d.wait_call(id, "succeeded", Duration::from_secs(60)).await;
        assert_eq!(done["attempt"], 1, "{done}");
    }
    d.stop().await;
}
