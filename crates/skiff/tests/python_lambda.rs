//! End-to-end test of the `lambda` contract with a Python function on the official AWS
//! runtime interface client (`awslambdaric`): `examples/python-lambda`, built into
//! `skiff/python-lambda:latest` by `scripts/build-python-lambda.sh` (a Debian root file system
//! made with debootstrap; nothing is pulled from a registry).

use reqwest::StatusCode;
use serde_json::{json, Value};
use skiff_testing::Daemon;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const IMAGE: &str = "skiff/python-lambda:latest";

fn skiff() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_skiff"))
}

/// Builds `skiff/python-lambda:latest` once per process; panics with the script's output if
/// the build fails.
fn ensure_python_image() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let result = BUILT.get_or_init(|| {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../scripts")
            .join("build-python-lambda.sh");
        let output = Command::new("bash")
            .arg(&script)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} failed ({}):\n{}{}",
                script.display(),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    });
    if let Err(message) = result {
        panic!("{message}");
    }
}

async fn daemon() -> Option<Daemon> {
    if !skiff_testing::ready() {
        return None;
    }
    ensure_python_image();
    Some(Daemon::start(skiff(), &[]).await)
}

async fn deploy(d: &Daemon, name: &str) {
    let spec = json!({"image": IMAGE, "contract": "lambda", "memory": "128Mi", "timeout": "10s"});
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

/// `POST /2015-03-31/functions/{name}/invocations` (the Lambda API's Invoke) with a raw client.
async fn invoke(
    d: &Daemon,
    name: &str,
    event: Value,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/2015-03-31/functions/{name}/invocations", d.url))
        .body(event.to_string())
        .send()
        .await
        .expect("invoke");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.text().await.unwrap_or_default();
    (
        status,
        headers,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

#[tokio::test]
async fn an_awslambdaric_python_function_answers_fails_and_is_reused_warm() {
    let Some(d) = daemon().await else { return };
    deploy(&d, "py").await;

    let (status, headers, answer) = call(&d, "py", json!({"name": "Ann"})).await;
    assert_eq!(status, StatusCode::OK, "{answer}\n{}", d.log());
    assert_eq!(answer["message"], "Hello Ann!", "{answer}");
    assert_eq!(answer["function"], "py", "{answer}");
    assert_eq!(
        answer["request_id"].as_str(),
        headers["x-skiff-call-id"].to_str().ok(),
        "{answer}"
    );
    assert_eq!(headers["x-skiff-cold"], "true");

    let (status, headers, answer) = call(&d, "py", json!({})).await;
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
        logs = reqwest::get(format!("{}/v1/calls/{call_id}/logs", d.url))
            .await
            .expect("logs")
            .text()
            .await
            .expect("logs body");
        if logs.contains(&format!("python-lambda: event {call_id}")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        logs.contains(&format!("python-lambda: event {call_id}")),
        "{logs}"
    );

    let (status, _, error) = call(&d, "py", json!({"fail": "boom"})).await;
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
    let (status, headers, answer) = call(&d, "py", json!({"name": "again"})).await;
    assert_eq!(status, StatusCode::OK, "{answer}\n{}", d.log());
    assert_eq!(answer["message"], "Hello again!", "{answer}");
    assert_eq!(headers["x-skiff-cold"], "false", "{answer}");
    d.stop().await;
}

#[tokio::test]
async fn the_lambda_api_invokes_an_awslambdaric_python_function() {
    let Some(d) = daemon().await else { return };
    deploy(&d, "py").await;

    let (status, headers, answer) = invoke(&d, "py", json!({"name": "Bo"})).await;
    assert_eq!(status, StatusCode::OK, "{answer}\n{}", d.log());
    assert_eq!(answer["message"], "Hello Bo!", "{answer}");
    assert!(headers.get("x-amz-function-error").is_none(), "{headers:?}");

    let (status, headers, error) = invoke(&d, "py", json!({"fail": "x"})).await;
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
