//! End-to-end test of the `lambda` contract with a Python function on the official AWS
//! runtime interface client (`awslambdaric`): `examples/python-lambda`, built into
//! `skiff/python-lambda:latest` by `scripts/build-python-lambda.sh` (a Debian root file system
//! made with debootstrap; nothing is pulled from a registry).

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use skiff_testing::{skiff_bin, Daemon};

const IMAGE: &str = "skiff/python-lambda:latest";

async fn python_daemon() -> Option<Daemon> {
    if !skiff_testing::ready() {
        return None;
    }
    skiff_testing::ensure_python_lambda_image();
    Some(Daemon::start(skiff_bin!(), &[]).await)
}

/// The function's spec.
fn python_lambda() -> Value {
    json!({"image": IMAGE, "contract": "lambda", "memory": "128Mi", "timeout": "10s"})
}

/// `POST /2015-03-31/functions/{name}/invocations` (the Lambda API's Invoke) with a raw client.
async fn lambda_invoke(
    d: &Daemon,
    name: &str,
    event: Value,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let answer = d
        .lambda(
            Method::POST,
            &format!("/2015-03-31/functions/{name}/invocations"),
            Some(event.to_string().into_bytes()),
        )
        .await;
    let body = answer
        .try_json()
        .unwrap_or_else(|| Value::String(answer.text()));
    (answer.status, answer.headers, body)
}

#[tokio::test]
async fn an_awslambdaric_python_function_answers_fails_and_is_reused_warm() {
    let Some(d) = python_daemon().await else {
        return;
    };
    d.deploy("py", python_lambda()).await;

    let (status, headers, answer) = d.call_json("py", &json!({"name": "Ann"})).await.parts();
    assert_eq!(status, StatusCode::OK, "{answer}\n{}", d.log());
    assert_eq!(answer["message"], "Hello Ann!", "{answer}");
    assert_eq!(answer["function"], "py", "{answer}");
    assert_eq!(
        answer["request_id"].as_str(),
        headers["x-skiff-call-id"].to_str().ok(),
        "{answer}"
    );
    assert_eq!(headers["x-skiff-cold"], "true");

    let (status, headers, answer) = d.call_json("py", &json!({})).await.parts();
    assert_eq!(status, StatusCode::OK, "{answer}\n{}", d.log());
    assert_eq!(answer["message"], "Hello World!", "{answer}");
    assert_eq!(headers["x-skiff-cold"], "false", "the instance is reused");
    // The handler's print() lands in the call's logs (they may trail the answer a little).
    let call_id = headers["x-skiff-call-id"]
        .to_str()
        .expect("call id")
        .to_string();
    let mut logs = String::new();
    for _ in 0..50 {
        logs = d.logs(&call_id).await;
        if logs.contains(&format!("python-lambda: event {call_id}")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        logs.contains(&format!("python-lambda: event {call_id}")),
        "{logs}"
    );

    let (status, _, error) = d.call_json("py", &json!({"fail": "boom"})).await.parts();
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{error}\n{}", d.log());
    assert_eq!(error["error"]["code"], "function_error", "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("boom"),
        "{error}"
    );

    // After a handler error the same instance goes on answering.
    let (status, headers, answer) = d.call_json("py", &json!({"name": "again"})).await.parts();
    assert_eq!(status, StatusCode::OK, "{answer}\n{}", d.log());
    assert_eq!(answer["message"], "Hello again!", "{answer}");
    assert_eq!(headers["x-skiff-cold"], "false", "{answer}");
    d.stop().await;
}

#[tokio::test]
async fn the_lambda_api_invokes_an_awslambdaric_python_function() {
    let Some(d) = python_daemon().await else {
        return;
    };
    d.deploy("py", python_lambda()).await;

    let (status, headers, answer) = lambda_invoke(&d, "py", json!({"name": "Bo"})).await;
    assert_eq!(status, StatusCode::OK, "{answer}\n{}", d.log());
    assert_eq!(answer["message"], "Hello Bo!", "{answer}");
    assert!(headers.get("x-amz-function-error").is_none(), "{headers:?}");

    let (status, headers, error) = lambda_invoke(&d, "py", json!({"fail": "x"})).await;
    assert_eq!(status, StatusCode::OK, "{error}\n{}", d.log());
    assert_eq!(
        headers
            .get("x-amz-function-error")
            .and_then(|v| v.to_str().ok()),
        Some("Unhandled"),
        "{headers:?}"
    );
    assert_eq!(error["errorType"], "ValueError", "{error}");
    assert_eq!(error["errorMessage"], "x", "{error}");
    d.stop().await;
}
