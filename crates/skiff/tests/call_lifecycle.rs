//! A call's life does not depend on its caller, on the real engine: a caller that hangs up,
//! a function deleted under its calls, a graceful stop with calls in flight, and chains of
//! functions calling functions (deadlines carried over, depth limited, nothing left behind).

use reqwest::StatusCode;
use serde_json::{json, Value};
use skiff_testing::{containers_with_label, eventually, skiff_bin, Daemon};
use std::time::Duration;

/// The calls of `function`, oldest first.
async fn calls_of(d: &Daemon, function: &str) -> Vec<Value> {
    d.calls(&format!("function={function}")).await
}

/// The one call of `function`, once there is one.
async fn the_call(d: &Daemon, function: &str) -> Value {
    eventually("the call's record", Duration::from_secs(30), || async {
        calls_of(d, function).await.into_iter().next()
    })
    .await
}

/// Waits until call `id` is final; returns its record.
async fn final_record(d: &Daemon, id: &str) -> Value {
    eventually(
        &format!("call {id} reaching a final status"),
        Duration::from_secs(60),
        || async {
            let record = d.call_record(id).await;
            let status = record["status"].as_str().unwrap_or_default();
            (status != "running" && status != "queued").then_some(record)
        },
    )
    .await
}

/// `skiff_calls_running` from `/metrics`: the call slots in use.
async fn slots_in_use(d: &Daemon) -> u64 {
    d.get_text("/metrics")
        .await
        .lines()
        .find_map(|l| l.strip_prefix("skiff_calls_running "))
        .and_then(|v| v.trim().parse().ok())
        .expect("skiff_calls_running")
}

/// Waits until no call holds a slot, checking all along that a call's container is gone
/// by the time its slot is free.
async fn slots_free_after_containers(d: &Daemon, instance: &str) {
    eventually("every call slot free", Duration::from_secs(60), || async {
        let in_use = slots_in_use(d).await;
        let alive = containers_with_label(&format!("skiff.instance={instance}"));
        if in_use == 0 {
            assert!(
                alive.is_empty(),
                "the call's slot was free while its container {alive:?} was alive"
            );
            return Some(());
        }
        None
    })
    .await;
}

/// Calls `name` in a task of its own (the answer may take long).
fn call_in_background(
    d: &Daemon,
    name: &str,
) -> tokio::task::JoinHandle<reqwest::Result<reqwest::Response>> {
    let url = format!("{}/fn/{name}", d.url);
    let client = d.client();
    tokio::spawn(async move {
        client
            .post(url)
            .timeout(Duration::from_secs(100))
            .send()
            .await
    })
}

/// Deletes `name` and waits until no container of it is left.
async fn delete_leaves_no_container(d: &Daemon, name: &str) {
    assert_eq!(d.delete_function(name).await, StatusCode::NO_CONTENT);
    eventually(
        "no container of the deleted function",
        Duration::from_secs(30),
        || async { d.function_containers(name).is_empty().then_some(()) },
    )
    .await;
}

fn sleeper(timeout: &str) -> Value {
    json!({"image": "skiff/testfn:latest", "timeout": timeout,
           "env": {"MODE": "sleep", "SLEEP_MS": "600000"}})
}

#[tokio::test]
async fn an_exec_call_whose_caller_hangs_up_is_stopped_recorded_and_cleaned_up() {
    if !skiff_testing::ready() {
        return;
    }
    let d = Daemon::start(skiff_bin!(), &[]).await;
    d.deploy("sleeper", sleeper("60s")).await;
    // The caller gives up after 3 s, as `curl -m 3` does.
    let hung_up = d
        .client_with(reqwest::Client::builder().timeout(Duration::from_secs(3)))
        .post(format!("{}/fn/sleeper", d.url))
        .body("x")
        .send()
        .await;
    assert!(hung_up.is_err(), "the function sleeps for 10 minutes");
    let call = the_call(&d, "sleeper").await;
    let id = call["id"].as_str().expect("id");
    let record = final_record(&d, id).await;
    assert_eq!(record["status"], "failed", "{record}");
    assert_eq!(record["error_type"], "client_disconnected", "{record}");
    let instance = record["instance"].as_str().expect("the call's container");
    slots_free_after_containers(&d, instance).await;
    d.stop().await;
}

#[tokio::test]
async fn an_http_call_whose_caller_hangs_up_is_recorded_as_such() {
    if !skiff_testing::ready() {
        return;
    }
    let d = Daemon::start(skiff_bin!(), &[]).await;
    d.deploy(
        "web",
        json!({"image": "skiff/echo-http:latest", "contract": "http", "timeout": "60s"}),
    )
    .await;
    let client = d.client();
    // Warm: an instance is up.
    let warm = client
        .get(format!("{}/fn/web/warm", d.url))
        .send()
        .await
        .expect("warm call");
    assert_eq!(warm.status(), StatusCode::OK);
    let hung_up = client
        .get(format!("{}/fn/web/slow?sleep_ms=30000", d.url))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(hung_up.is_err(), "the instance answers after 30 s");
    let slow = eventually(
        "the slow call's record",
        Duration::from_secs(30),
        || async { calls_of(&d, "web").await.into_iter().nth(1) },
    )
    .await;
    let record = final_record(&d, slow["id"].as_str().expect("id")).await;
    assert_eq!(record["error_type"], "client_disconnected", "{record}");
    assert_eq!(slots_in_use(&d).await, 0, "its slot is free");
    // The instance still serves.
    let after = client
        .get(format!("{}/fn/web/after", d.url))
        .send()
        .await
        .expect("call");
    assert_eq!(after.status(), StatusCode::OK);
    d.stop().await;
}

#[tokio::test]
async fn deleting_a_function_stops_its_calls_and_leaves_none_of_its_containers() {
    if !skiff_testing::ready() {
        return;
    }
    let d = Daemon::start(skiff_bin!(), &[]).await;
    d.deploy("doomed", sleeper("120s")).await;
    let running = call_in_background(&d, "doomed");
    let call = the_call(&d, "doomed").await;
    let id = call["id"].as_str().expect("id").to_string();
    delete_leaves_no_container(&d, "doomed").await;
    let answer = running
        .await
        .expect("task")
        .expect("the caller gets an answer");
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = answer.json().await.expect("json");
    assert_eq!(body["error"]["code"], "interrupted", "{body}");
    let record = final_record(&d, &id).await;
    assert_eq!(record["error_type"], "interrupted", "{record}");
    assert!(
        record["error_message"]
            .as_str()
            .unwrap_or_default()
            .contains("deleted"),
        "{record}"
    );
    d.stop().await;
}

#[tokio::test]
async fn a_graceful_stop_finalises_the_records_of_calls_in_flight() {
    if !skiff_testing::ready() {
        return;
    }
    let mut d = Daemon::start(skiff_bin!(), &["--shutdown-grace", "1s"]).await;
    d.deploy("sleeper", sleeper("120s")).await;
    let running = call_in_background(&d, "sleeper");
    let call = the_call(&d, "sleeper").await;
    let id = call["id"].as_str().expect("id").to_string();
    eventually("the call running", Duration::from_secs(30), || async {
        (d.call_record(&id).await["status"] == "running").then_some(())
    })
    .await;
    assert!(d.terminate().await, "a clean exit:\n{}", d.log());
    assert!(d.containers().is_empty(), "no container left");
    if let Ok(Ok(answer)) = running.await {
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    // The record was finished by the stop itself, not by the next start's sweep.
    d.restart().await;
    let record = d.call_record(&id).await;
    assert_eq!(record["status"], "failed", "{record}");
    assert_eq!(record["error_type"], "interrupted", "{record}");
    assert_eq!(
        record["error_message"], "skiff stopped while the call ran",
        "{record}"
    );
    d.stop().await;
}

#[tokio::test]
async fn a_function_calling_itself_is_stopped_at_the_depth_limit() {
    if !skiff_testing::ready() {
        return;
    }
    let d = Daemon::start(skiff_bin!(), &["--max-call-depth", "3"]).await;
    d.deploy(
        "ouroboros",
        json!({"image": "skiff/testfn:latest", "timeout": "60s",
               "env": {"MODE": "call", "TARGET": "ouroboros"}}),
    )
    .await;
    let answer = d
        .client()
        .post(format!("{}/fn/ouroboros", d.url))
        .body("round and round")
        .send()
        .await
        .expect("call");
    assert_eq!(answer.status(), StatusCode::BAD_GATEWAY);
    // Depths 0 to 3 ran, each the child of the one before; the fifth was refused (508).
    let calls = eventually("four final calls", Duration::from_secs(60), || async {
        let calls = calls_of(&d, "ouroboros").await;
        let done = calls.len() == 4
            && calls
                .iter()
                .all(|c| c["status"] != "running" && c["status"] != "queued");
        done.then_some(calls)
    })
    .await;
    let mut by_depth = calls.clone();
    by_depth.sort_by_key(|c| c["depth"].as_u64());
    for (depth, call) in by_depth.iter().enumerate() {
        assert_eq!(call["depth"], depth as u64, "{calls:?}");
        if depth == 0 {
            assert!(call.get("caller").is_none(), "{call}");
            assert!(call.get("parent").is_none(), "{call}");
        } else {
            assert_eq!(call["caller"], "ouroboros", "{call}");
            assert_eq!(call["parent"], by_depth[depth - 1]["id"], "{calls:?}");
        }
    }
    let deepest = &by_depth[3];
    let message = deepest["error_message"].as_str().unwrap_or_default();
    assert!(
        message.contains("508") && message.contains("loop_detected"),
        "{deepest}"
    );
    assert_eq!(
        calls_of(&d, "ouroboros").await.len(),
        4,
        "no call ran past the limit"
    );
    delete_leaves_no_container(&d, "ouroboros").await;
    d.stop().await;
}

#[tokio::test]
async fn a_callee_never_gets_more_time_than_its_caller_has_left() {
    if !skiff_testing::ready() {
        return;
    }
    let d = Daemon::start(skiff_bin!(), &[]).await;
    d.deploy("slow", sleeper("120s")).await;
    d.deploy(
        "impatient",
        json!({"image": "skiff/testfn:latest", "timeout": "4s",
               "env": {"MODE": "call", "TARGET": "slow"}}),
    )
    .await;
    let answer = d
        .client()
        .post(format!("{}/fn/impatient", d.url))
        .send()
        .await
        .expect("call");
    assert_eq!(answer.status(), StatusCode::GATEWAY_TIMEOUT);
    let parent = answer.headers()["x-skiff-call-id"]
        .to_str()
        .expect("id")
        .to_string();
    let slow = the_call(&d, "slow").await;
    let record = final_record(&d, slow["id"].as_str().expect("id")).await;
    assert_eq!(record["parent"], parent.as_str(), "{record}");
    assert_eq!(record["status"], "timed_out", "{record}");
    // It ended at its caller's deadline, not after its own 120 s (nor its 10 min sleep).
    let ran = record["duration_ms"].as_u64().expect("duration");
    assert!(ran < 60_000, "the callee ran {ran} ms: {record}");
    eventually(
        "the callee's container removed",
        Duration::from_secs(30),
        || async {
            let instance = record["instance"].as_str().unwrap_or_default();
            containers_with_label(&format!("skiff.instance={instance}"))
                .is_empty()
                .then_some(())
        },
    )
    .await;
    d.stop().await;
}
