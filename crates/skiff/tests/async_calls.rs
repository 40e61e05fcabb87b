//! Async calls on the real engine: accepted durably (202), run, retried, dead, redriven, and
//! never lost when the daemon is killed with SIGKILL.

use reqwest::StatusCode;
use serde_json::{json, Value};
use skiff_testing::Daemon;
use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

fn skiff() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_skiff"))
}

async fn daemon(args: &[&str]) -> Option<Daemon> {
    if !skiff_testing::ready() {
        return None;
    }
    Some(Daemon::start(skiff(), args).await)
}

async fn deploy(d: &Daemon, name: &str, spec: Value) {
    let response = reqwest::Client::new()
        .put(format!("{}/v1/functions/{name}", d.url))
        .json(&spec)
        .send()
        .await
        .expect("deploy");
    assert!(
        response.status().is_success(),
        "{:?}",
        response.text().await
    );
}

async fn call_record(d: &Daemon, id: &str) -> Value {
    reqwest::get(format!("{}/v1/calls/{id}", d.url))
        .await
        .expect("get call")
        .json()
        .await
        .expect("json")
}

async fn wait_status(d: &Daemon, id: &str, status: &str, limit: Duration) -> Value {
    let started = Instant::now();
    loop {
        let record = call_record(d, id).await;
        if record["status"] == status {
            return record;
        }
        assert!(
            started.elapsed() < limit,
            "call {id} never reached {status}: {record}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

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
    let Some(d) = daemon(&[]).await else { return };
    deploy(&d, "hello", json!({"image": "skiff/hello:latest"})).await;
    let client = reqwest::Client::new();
    let id = enqueue(
        &client,
        &format!("{}/v1/functions/hello/invoke", d.url),
        r#"{"name":"Ann"}"#,
    )
    .await;
    let record = wait_status(&d, &id, "succeeded", Duration::from_secs(30)).await;
    assert_eq!(record["trigger"], "async");
    assert_eq!(record["attempt"], 1);
    let logs = reqwest::get(format!("{}/v1/calls/{id}/logs", d.url))
        .await
        .expect("logs")
        .text()
        .await
        .expect("text");
    assert!(logs.contains("greeting Ann"), "{logs}");
    // The public route takes Prefer too, and bodies over the async limit are refused.
    let id = enqueue(&client, &format!("{}/fn/hello", d.url), "{}").await;
    wait_status(&d, &id, "succeeded", Duration::from_secs(30)).await;
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
    let Some(d) = daemon(&["--async-retry-delay", "100ms"]).await else {
        return;
    };
    deploy(
        &d,
        "fail",
        json!({"image": "skiff/testfn:latest", "env": {"MODE": "exit"}}),
    )
    .await;
    let client = reqwest::Client::new();
    let id = enqueue(&client, &format!("{}/v1/functions/fail/invoke", d.url), "").await;
    let dead = wait_status(&d, &id, "dead", Duration::from_secs(60)).await;
    assert_eq!(
        dead["attempt"], 3,
        "1 attempt + 2 retries by default: {dead}"
    );
    assert_eq!(dead["error_type"], "function_error");
    let redriven = client
        .post(format!("{}/v1/calls/{id}/redrive", d.url))
        .send()
        .await
        .expect("redrive");
    assert_eq!(redriven.status(), StatusCode::OK);
    let dead = wait_status(&d, &id, "dead", Duration::from_secs(60)).await;
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

#[tokio::test]
async fn ten_thousand_accepted_async_calls_survive_sigkill() {
    let Some(mut d) = daemon(&["--max-concurrent-calls", "64"]).await else {
        return;
    };
    deploy(
        &d,
        "web",
        json!({"image": "skiff/echo-http:latest", "contract": "http", "readiness_path": "/ready",
               "memory": "64Mi", "concurrency": 64, "max_instances": 2, "min_instances": 1}),
    )
    .await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
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
    let waiting: Value = reqwest::get(format!(
        "{}/v1/calls?function=web&status=queued&limit=1",
        d.url
    ))
    .await
    .expect("queued")
    .json()
    .await
    .expect("json");
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
            let mut page_url = format!("{}/v1/calls?function=web&limit=1000", d.url);
            if let Some(b) = &before {
                page_url.push_str(&format!("&before={b}"));
            }
            let page: Value = reqwest::get(page_url)
                .await
                .expect("page")
                .json()
                .await
                .expect("json");
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
