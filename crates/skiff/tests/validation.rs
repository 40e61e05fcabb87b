//! Specs the daemon refuses, on the real engine: malformed image references (whether skiff
//! or the engine finds them out) and readiness paths are 400 `invalid_spec` naming their
//! field, and spec bodies over the limit are 413 on the management API and the Lambda API
//! (in AWS's shape there).

use reqwest::StatusCode;
use serde_json::{json, Value};
use skiff_testing::cli::assert_one_error_line;
use skiff_testing::{skiff_bin, Daemon};

#[tokio::test]
async fn malformed_image_references_and_readiness_paths_are_invalid_specs() {
    if !skiff_testing::ready() {
        return;
    }
    let d = Daemon::start(skiff_bin!(), &[]).await;
    // A name over 255 characters with its registry: skiff's grammar lets it through, the
    // engine refuses it (400), and that is the spec's fault too, not the engine's.
    let too_long_for_the_engine = format!("registry.example/{}:1", "a".repeat(250));
    for (spec, field) in [
        (json!({"image": "UPPER:1"}), "image"),
        (json!({"image": "a::b"}), "image"),
        (json!({"image": too_long_for_the_engine}), "image"),
        (
            json!({"image": "skiff/echo-http:latest", "contract": "http", "readiness_path": "//evil.example/x"}),
            "readiness_path",
        ),
        (
            json!({"image": "skiff/echo-http:latest", "contract": "http", "readiness_path": "/ready now"}),
            "readiness_path",
        ),
    ] {
        let (status, body) = d.put_function("bad", spec.clone()).await.status_json();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{spec}: {body}");
        assert_eq!(body["error"]["code"], "invalid_spec", "{spec}: {body}");
        assert_eq!(body["error"]["field"], field, "{spec}: {body}");
    }
    let (status, body) = d
        .put_function("bad", json!({"image": "UPPER:1"}))
        .await
        .status_json();
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("UPPER:1"), "{status}: {message}");
    // None of them was deployed.
    assert_eq!(
        d.get("/v1/functions/bad").await.status,
        StatusCode::NOT_FOUND
    );

    // The CLI says so in one line and fails.
    let out = std::process::Command::new(skiff_bin!())
        .env("SKIFF_CLI_CONFIG", d.cli_config())
        .args(["deploy", "bad", "--image", "UPPER:1", "--url", &d.url])
        .output()
        .expect("skiff deploy");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = assert_one_error_line(&out);
    assert!(stderr.contains("invalid_spec"), "{stderr}");
    d.stop().await;
}

#[tokio::test]
async fn spec_bodies_over_the_limit_are_413() {
    if !skiff_testing::ready() {
        return;
    }
    let d = Daemon::start(skiff_bin!(), &[]).await;
    // Valid JSON, 3 MiB of it.
    let big = "x".repeat(3 << 20);
    let spec = json!({"image": "skiff/hello:latest", "env": {"BIG": big}});
    let (status, body) = d.put_function("big", spec).await.status_json();
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large", "{body}");

    // The same on the Lambda API, in AWS's shape.
    let input = json!({
        "FunctionName": "big",
        "PackageType": "Image",
        "Code": {"ImageUri": "skiff/lambda-hello:latest"},
        "Environment": {"Variables": {"BIG": big}},
    });
    let response = d
        .lambda(
            reqwest::Method::POST,
            "/2015-03-31/functions",
            Some(input.to_string().into_bytes()),
        )
        .await;
    assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        response
            .headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok()),
        Some("RequestTooLargeException")
    );
    let body: Value = response.json();
    assert!(body["Message"].as_str().is_some(), "{body}");

    // A spec under the limit is still read (and deployed).
    let (status, body) = d
        .put_function(
            "small",
            json!({"image": "skiff/hello:latest", "env": {"BIG": "x".repeat(16 << 10)}}),
        )
        .await
        .status_json();
    assert_eq!(status, StatusCode::CREATED, "{body}");
    d.stop().await;
}
