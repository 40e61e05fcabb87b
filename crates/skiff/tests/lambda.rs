//! End-to-end tests of the `lambda` contract (the AWS Lambda Runtime API served to instances)
//! with an unmodified function built on the official `lambda_runtime` crate.

use reqwest::StatusCode;
use serde_json::{json, Value};
use skiff_testing::Daemon;
use std::collections::HashSet;
use std::path::Path;

fn skiff() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_skiff"))
}

async fn daemon() -> Option<Daemon> {
    if !skiff_testing::ready() {
        return None;
    }
    Some(Daemon::start(skiff(), &[]).await)
}

async fn deploy(d: &Daemon, name: &str, extra: Value) {
    let mut spec = json!({"image": "skiff/lambda-hello:latest", "contract": "lambda",
                          "memory": "64Mi", "timeout": "10s"});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    let response = reqwest::Client::new()
        .put(format!("{}/v1/functions/{name}", d.url))
        .json(&spec)
        .send()
        .await
        .expect("deploy");
    let status = response.status();
    assert!(status.is_success(), "{status}: {:?}", response.text().await);
}

async fn call(
    d: &Daemon,
    name: &str,
    event: Value,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/fn/{name}", d.url))
        .json(&event)
        .send()
        .await
        .expect("call");
    let status = response.status();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn an_unmodified_lambda_runtime_function_answers_and_is_reused_warm() {
    let Some(d) = daemon().await else { return };
    deploy(&d, "greeter", json!({})).await;
    let (status, headers, answer) = call(&d, "greeter", json!({"name": "Ann"})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["message"], "Hello Ann!");
    assert_eq!(answer["function"], "greeter");
    assert_eq!(
        answer["request_id"].as_str(),
        headers["x-skiff-call-id"].to_str().ok()
    );
    assert_eq!(headers["x-skiff-cold"], "true");
    let (status, headers, answer) = call(&d, "greeter", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["message"], "Hello World!");
    assert_eq!(headers["x-skiff-cold"], "false", "the instance is reused");
    let list: Value = reqwest::get(format!("{}/v1/functions/greeter/instances", d.url))
        .await
        .expect("instances")
        .json()
        .await
        .expect("json");
    assert_eq!(
        list["instances"].as_array().map(Vec::len),
        Some(1),
        "{list}"
    );
    d.stop().await;
}

#[tokio::test]
async fn errors_timeouts_and_init_errors_are_reported() {
    let Some(d) = daemon().await else { return };
    deploy(&d, "greeter", json!({"timeout": "1s"})).await;
    deploy(&d, "broken", json!({"env": {"FAIL_INIT": "1"}})).await;

    let (status, _, error) = call(&d, "greeter", json!({"fail": "boom"})).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{error}");
    assert_eq!(error["error"]["code"], "function_error");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("boom"),
        "{error}"
    );

    let (status, _, error) = call(&d, "greeter", json!({"sleep_ms": 3000})).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{error}");
    assert_eq!(error["error"]["code"], "timeout");
    // The instance busy past the deadline was replaced; the function still answers.
    let (status, _, answer) = call(&d, "greeter", json!({"name": "again"})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["message"], "Hello again!");

    // An instance that dies in the middle of an event fails that call, and is replaced.
    let (status, _, error) = call(&d, "greeter", json!({"exit": true})).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{error}");
    assert_eq!(error["error"]["code"], "crashed", "{error}");
    let (status, _, answer) = call(&d, "greeter", json!({"name": "after"})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    let (status, _, error) = call(&d, "broken", json!({})).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{error}");
    assert_eq!(error["error"]["code"], "start_failed");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("init failed on purpose"),
        "{error}"
    );
    d.stop().await;
}

#[tokio::test]
async fn twenty_concurrent_invocations_get_twenty_distinct_correct_answers() {
    let Some(d) = daemon().await else { return };
    deploy(&d, "greeter", json!({"max_instances": 5})).await;
    let calls = (0..20).map(|i| {
        let url = format!("{}/fn/greeter", d.url);
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .json(&json!({"name": format!("caller-{i}"), "sleep_ms": 100}))
                .send()
                .await
                .expect("call");
            let id = response.headers()["x-skiff-call-id"]
                .to_str()
                .expect("id")
                .to_string();
            let status = response.status();
            (
                i,
                id,
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    });
    let answers = futures::future::join_all(calls).await;
    let mut ids = HashSet::new();
    for (i, id, status, answer) in answers {
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["message"], format!("Hello caller-{i}!"));
        assert_eq!(
            answer["request_id"],
            id.as_str(),
            "each event answered by its own call"
        );
        ids.insert(id);
    }
    assert_eq!(ids.len(), 20);
    d.stop().await;
}
