//! End-to-end tests of the `lambda` contract (the AWS Lambda Runtime API served to instances)
//! with an unmodified function built on the official `lambda_runtime` crate.

use reqwest::StatusCode;
use serde_json::{json, Value};
use skiff_testing::{merged, skiff_bin, Daemon};
use std::collections::HashSet;

/// A `skiff/lambda-hello` function's spec, with the fields of `extra`.
fn lambda_hello(extra: Value) -> Value {
    let spec = json!({"image": "skiff/lambda-hello:latest", "contract": "lambda",
                      "memory": "64Mi", "timeout": "10s"});
    merged(spec, extra)
}

#[tokio::test]
async fn an_unmodified_lambda_runtime_function_answers_and_is_reused_warm() {
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &[]).await else {
        return;
    };
    d.deploy("greeter", lambda_hello(json!({}))).await;
    let (status, headers, answer) = d
        .call_json("greeter", &json!({"name": "Ann"}))
        .await
        .parts();
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["message"], "Hello Ann!");
    assert_eq!(answer["function"], "greeter");
    assert_eq!(
        answer["request_id"].as_str(),
        headers["x-skiff-call-id"].to_str().ok()
    );
    assert_eq!(headers["x-skiff-cold"], "true");
    let (status, headers, answer) = d.call_json("greeter", &json!({})).await.parts();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["message"], "Hello World!");
    assert_eq!(headers["x-skiff-cold"], "false", "the instance is reused");
    let list = d.instances("greeter").await;
    assert_eq!(list.len(), 1, "{list:?}");
    d.stop().await;
}

#[tokio::test]
async fn errors_timeouts_and_init_errors_are_reported() {
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &[]).await else {
        return;
    };
    d.deploy("greeter", lambda_hello(json!({"timeout": "1s"})))
        .await;
    d.deploy("broken", lambda_hello(json!({"env": {"FAIL_INIT": "1"}})))
        .await;

    // The first call starts the instance: its 1 s timeout counts from the moment the
    // runtime receives the event, the start has a budget of its own.
    let first = d.call_json("greeter", &json!({"fail": "boom"})).await;
    let first_id = first.call_id().expect("call id");
    let (status, _, error) = first.parts();
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{error}");
    let record = d.call_record(&first_id).await;
    assert_eq!(record["cold"], true, "{record}");
    assert!(record["start_ms"].as_u64().is_some(), "{record}");
    assert_eq!(error["error"]["code"], "function_error");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("boom"),
        "{error}"
    );

    let (status, _, error) = d
        .call_json("greeter", &json!({"sleep_ms": 3000}))
        .await
        .parts();
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{error}");
    assert_eq!(error["error"]["code"], "timeout");
    // The instance busy past the deadline was replaced; the function still answers.
    let (status, _, answer) = d
        .call_json("greeter", &json!({"name": "again"}))
        .await
        .parts();
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["message"], "Hello again!");

    // An instance that dies in the middle of an event fails that call, and is replaced.
    let (status, _, error) = d.call_json("greeter", &json!({"exit": true})).await.parts();
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{error}");
    assert_eq!(error["error"]["code"], "crashed", "{error}");
    let (status, _, answer) = d
        .call_json("greeter", &json!({"name": "after"}))
        .await
        .parts();
    assert_eq!(status, StatusCode::OK, "{answer}");

    let (status, _, error) = d.call_json("broken", &json!({})).await.parts();
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
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &[]).await else {
        return;
    };
    d.deploy("greeter", lambda_hello(json!({"max_instances": 5})))
        .await;
    let calls = (0..20).map(|i| {
        let url = format!("{}/fn/greeter", d.url);
        let client = d.client();
        async move {
            let response = client
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
