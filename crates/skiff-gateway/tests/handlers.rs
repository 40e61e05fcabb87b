//! HTTP handlers without a socket (`app().oneshot(request)`), on an in-memory store and the
//! fake engine: status codes, error bodies, routing. Behaviour on real containers is proven
//! by the end-to-end tests of the `skiff` crate.

mod common;

use axum::body::Body;
use axum::http::StatusCode;
use common::{script, send, send_json, Harness};
use serde_json::{json, Value};

/// `hello:1` says hello and logs a line; `broken:1` fails with exit code 2. Request bodies
/// are limited to 16 bytes.
async fn harness() -> Harness {
    Harness::start(
        &[
            ("hello:1", script("Hello World!\n", "a log line\n", 0)),
            ("broken:1", script("", "it broke\n", 2)),
        ],
        |config| config.max_request_bytes = 16,
    )
    .await
}

#[tokio::test]
async fn put_creates_then_updates_and_delete_removes() {
    let h = harness().await;
    let (status, view) = send_json(
        &h.api,
        "PUT",
        "/v1/functions/hello",
        json!({"image": "hello:1", "memory": "128Mi"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(view["version"], 1);
    assert_eq!(view["memory"], "128Mi");
    assert!(view["image_digest"]
        .as_str()
        .unwrap_or_default()
        .starts_with("sha256:"));
    let (status, view) = send_json(
        &h.api,
        "PUT",
        "/v1/functions/hello",
        json!({"image": "hello:1"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["version"], 2);
    let (status, list) = send_json(&h.api, "GET", "/v1/functions", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["functions"][0]["name"], "hello");
    let (status, _, _) = send(&h.api, "DELETE", "/v1/functions/hello", Body::empty()).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = send_json(&h.api, "GET", "/v1/functions/hello", Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "function_not_found");
}

#[tokio::test]
async fn an_engine_that_cannot_attach_refuses_exec_functions_only() {
    let h = harness().await;
    h.engine.set_capabilities(skiff_runtime::Capabilities {
        pause: false,
        isolated_networks: false,
        attach: false,
    });
    let (status, body) = send_json(
        &h.api,
        "PUT",
        "/v1/functions/f",
        json!({"image": "hello:1"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_spec");
    assert_eq!(body["error"]["field"], "contract", "{body}");
    let (status, body) = send_json(
        &h.api,
        "PUT",
        "/v1/functions/web",
        json!({"image": "hello:1", "contract": "http", "port": 8080}),
    )
    .await;
    assert!(status.is_success(), "{body}");
}

#[tokio::test]
async fn invalid_specs_name_their_field() {
    let h = harness().await;
    for (spec, field) in [
        (json!({"image": "hello:1", "timeout": "3h"}), "timeout"),
        (json!({"image": "hello:1", "cpus": 1000}), "cpus"),
        (
            json!({"image": "hello:1", "env": {"bad name": "x"}}),
            "env.bad name",
        ),
    ] {
        let (status, body) = send_json(&h.api, "PUT", "/v1/functions/f", spec).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["code"], "invalid_spec");
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    let (status, body, _) = send(&h.api, "PUT", "/v1/functions/f", "{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let body: Value = serde_json::from_slice(&body).expect("json error body");
    assert_eq!(body["error"]["code"], "invalid_spec");
    let (status, body) = send_json(
        &h.api,
        "PUT",
        "/v1/functions/f",
        json!({"image": "missing:1"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "image_not_found");
}

#[tokio::test]
async fn invoke_answers_with_output_and_call_id_and_failures_are_typed() {
    let h = harness().await;
    send_json(
        &h.api,
        "PUT",
        "/v1/functions/hello",
        json!({"image": "hello:1"}),
    )
    .await;
    send_json(
        &h.api,
        "PUT",
        "/v1/functions/broken",
        json!({"image": "broken:1"}),
    )
    .await;

    let (status, body, headers) = send(&h.api, "POST", "/v1/functions/hello/invoke", "{}").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, b"Hello World!\n");
    assert_eq!(headers["x-skiff-cold"], "true");
    let call_id = headers["x-skiff-call-id"].to_str().expect("id").to_string();
    let (status, record) =
        send_json(&h.api, "GET", &format!("/v1/calls/{call_id}"), Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(record["status"], "succeeded");
    let (_, logs, _) = send(
        &h.api,
        "GET",
        &format!("/v1/calls/{call_id}/logs"),
        Body::empty(),
    )
    .await;
    assert_eq!(logs, b"a log line\n");

    let (status, body, headers) = send(&h.api, "GET", "/fn/broken/x?y=1", Body::empty()).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let body: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(body["error"]["code"], "function_error");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("it broke"));
    assert_eq!(
        body["error"]["call_id"].as_str(),
        headers["x-skiff-call-id"].to_str().ok()
    );

    let (status, body) = send_json(&h.api, "POST", "/v1/functions/nope/invoke", Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "function_not_found");

    let (status, page) = send_json(&h.api, "GET", "/v1/calls?function=broken", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["calls"][0]["trigger"], "http");
    assert_eq!(page["calls"][0]["status"], "failed");
    // Used containers are removed (in the background).
    for _ in 0..100 {
        if h.engine.container_count() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(h.engine.container_count(), 0);
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_in_json() {
    let h = harness().await;
    send_json(
        &h.api,
        "PUT",
        "/v1/functions/hello",
        json!({"image": "hello:1"}),
    )
    .await;
    let (status, body, _) =
        send(&h.api, "POST", "/v1/functions/hello/invoke", vec![b'x'; 17]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(body["error"]["code"], "payload_too_large");
    let (status, _, _) = send(&h.api, "POST", "/fn/hello", vec![b'x'; 16]).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_routes_methods_and_queries_are_json_errors() {
    let h = harness().await;
    let (status, body) = send_json(&h.api, "GET", "/nope", Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    let (status, body) = send_json(&h.api, "PATCH", "/v1/functions/x", Value::Null).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"]["code"], "method_not_allowed");
    let (status, body) = send_json(&h.api, "GET", "/v1/calls?limit=many", Value::Null).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_request");
    let (status, body) = send_json(&h.api, "GET", "/healthz", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn the_cluster_of_a_sqlite_daemon_is_itself() {
    let h = Harness::hello().await;
    let (status, health) = send_json(&h.api, "GET", "/healthz", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    let (status, cluster) = send_json(&h.api, "GET", "/v1/cluster", Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{cluster}");
    assert_eq!(cluster["store"], "sqlite");
    assert_eq!(cluster["daemon"], health["daemon"]);
    assert_eq!(cluster["lease_ms"], 15_000);
    let daemons = cluster["daemons"].as_array().cloned().unwrap_or_default();
    assert_eq!(daemons.len(), 1, "{cluster}");
    assert_eq!(daemons[0]["id"], health["daemon"]);
    assert_eq!(daemons[0]["state"], "alive");
    assert_eq!(daemons[0]["this"], true);
    assert_eq!(daemons[0]["running_calls"], 0);
    let (_, doc) = send_json(&h.api, "GET", "/v1/openapi.json", Value::Null).await;
    assert!(doc["paths"]["/v1/cluster"]["get"].is_object(), "documented");
}
