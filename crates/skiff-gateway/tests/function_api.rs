//! The function API without a socket, on an in-memory store and the fake engine: tokens,
//! the routes it has and those it does not, and the variables function containers get. The
//! end-to-end tests of the `skiff` crate prove it from inside real containers.

mod common;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use common::{respond, Harness};
use serde_json::{json, Value};

/// `method uri` with `body`, sent with the bearer `token` and `headers`; the status, the
/// answer as JSON (or else as a JSON string) and the headers.
async fn send_as(
    app: &Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, Value, HeaderMap) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Body::from(body.to_string())).expect("request");
    let (status, headers, bytes) = respond(app, request).await;
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value, headers)
}

/// Deploys `name` on `hello:1` and returns the variables its containers get (and, as
/// `INSTANCE`, the instance id of the container they were read from).
async fn deploy(h: &Harness, name: &str) -> std::collections::HashMap<String, String> {
    let spec = json!({"image": "hello:1"}).to_string();
    let (status, _, _) = send_as(
        &h.api,
        "PUT",
        &format!("/v1/functions/{name}"),
        None,
        &[("content-type", "application/json")],
        &spec,
    )
    .await;
    assert!(status.is_success(), "{status}");
    let (status, _, _) = send_as(&h.api, "POST", &format!("/fn/{name}"), None, &[], "").await;
    assert_eq!(status, StatusCode::OK);
    let spec = h
        .engine
        .created_specs()
        .into_iter()
        .rev()
        .find(|s| s.labels.get("skiff.function").map(String::as_str) == Some(name))
        .expect("a container of the function");
    let mut env: std::collections::HashMap<String, String> = spec
        .env
        .iter()
        .filter_map(|e| e.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.insert("INSTANCE".into(), spec.labels["skiff.instance"].clone());
    env
}

#[tokio::test]
async fn containers_get_the_function_api_url_and_their_own_token() {
    let h = Harness::hello().await;
    let env = deploy(&h, "vote").await;
    let url = &env["SKIFF_API_URL"];
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    // Each container's token names its function and the container itself.
    let prefix = format!("skf2.vote.{}.", env["INSTANCE"]);
    assert!(env["SKIFF_TOKEN"].starts_with(&prefix), "{env:?}");
    let other = deploy(&h, "worker").await;
    assert!(other["SKIFF_TOKEN"].starts_with("skf2.worker."));
    assert_ne!(env["SKIFF_TOKEN"], other["SKIFF_TOKEN"]);
    let again = deploy(&h, "vote").await;
    assert_ne!(env["INSTANCE"], again["INSTANCE"]);
    assert_ne!(env["SKIFF_TOKEN"], again["SKIFF_TOKEN"]);
}

#[tokio::test]
async fn a_valid_token_invokes_sync_async_and_follows_the_call() {
    let h = Harness::hello().await;
    let token = deploy(&h, "vote").await["SKIFF_TOKEN"].clone();
    deploy(&h, "worker").await;
    let (status, body, headers) = send_as(
        &h.functions,
        "POST",
        "/v1/functions/worker/invoke",
        Some(&token),
        &[],
        "{}",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "Hello World!\n");
    assert!(headers.contains_key("x-skiff-call-id"));
    let (status, body, _) = send_as(
        &h.functions,
        "GET",
        "/fn/worker/a/b?c=1",
        Some(&token),
        &[],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body, _) = send_as(
        &h.functions,
        "POST",
        "/v1/functions/worker/invoke",
        Some(&token),
        &[("prefer", "respond-async")],
        "{}",
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let id = body["call_id"].as_str().expect("call id");
    let (status, record, _) = send_as(
        &h.functions,
        "GET",
        &format!("/v1/calls/{id}"),
        Some(&token),
        &[],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(record["function"], "worker");
    assert_eq!(record["caller"], "vote");
    // Another function's token does not read vote's call, nor vote's token a call made
    // from outside: both are "not found".
    let worker = deploy(&h, "worker").await["SKIFF_TOKEN"].clone();
    let (status, body, _) = send_as(
        &h.functions,
        "GET",
        &format!("/v1/calls/{id}"),
        Some(&worker),
        &[],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "call_not_found");
    let (_, _, headers) = send_as(&h.api, "POST", "/fn/worker", None, &[], "").await;
    let outside = headers["x-skiff-call-id"].to_str().expect("id").to_string();
    let (status, _, _) = send_as(
        &h.functions,
        "GET",
        &format!("/v1/calls/{outside}"),
        Some(&token),
        &[],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = send_as(
        &h.api,
        "GET",
        &format!("/v1/calls/{outside}"),
        None,
        &[],
        "",
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the management API reads every call"
    );
    let (status, body, _) = send_as(
        &h.functions,
        "POST",
        "/v1/functions/nope/invoke",
        Some(&token),
        &[],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "function_not_found");
}

#[tokio::test]
async fn missing_forged_and_tampered_tokens_are_refused() {
    let h = Harness::hello().await;
    let vote = deploy(&h, "vote").await;
    let token = vote["SKIFF_TOKEN"].clone();
    deploy(&h, "worker").await;
    let mac = token.rsplit('.').next().expect("mac");
    let mut tampered = token.clone();
    let last = tampered.pop().expect("a char");
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let forged = format!("skf2.worker.{}.{mac}", vote["INSTANCE"]);
    let cases: [(Option<&str>, &str); 5] = [
        (None, "no token"),
        (Some(""), "empty"),
        (Some("not-a-token"), "malformed"),
        (Some(&forged), "another function's name with vote's MAC"),
        (Some(&tampered), "tampered MAC"),
    ];
    for (token, what) in cases {
        for (method, uri) in [
            ("POST", "/v1/functions/worker/invoke"),
            ("POST", "/fn/worker"),
            ("GET", "/v1/calls/0190a5b2-0000-7000-8000-000000000000"),
        ] {
            let (status, body, _) = send_as(&h.functions, method, uri, token, &[], "{}").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {uri}");
            assert_eq!(body["error"]["code"], "unauthorized", "{what}");
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(!message.contains(mac), "the message quotes no token");
        }
    }
    // A basic credential is not a bearer token.
    let (status, _, _) = send_as(
        &h.functions,
        "POST",
        "/fn/worker",
        None,
        &[("authorization", "Basic dm90ZTp4")],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The token of another daemon (another key) is refused too.
    let other = Harness::hello().await;
    let foreign = deploy(&other, "vote").await["SKIFF_TOKEN"].clone();
    let (status, _, _) = send_as(&h.functions, "POST", "/fn/worker", Some(&foreign), &[], "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn management_routes_are_absent() {
    let h = Harness::hello().await;
    let token = deploy(&h, "vote").await["SKIFF_TOKEN"].clone();
    let spec = json!({"image": "hello:1"}).to_string();
    for (method, uri) in [
        ("PUT", "/v1/functions/evil"),
        ("GET", "/v1/functions"),
        ("GET", "/v1/functions/vote"),
        ("DELETE", "/v1/functions/vote"),
        ("POST", "/v1/functions/vote/scale"),
        ("GET", "/v1/functions/vote/instances"),
        ("GET", "/v1/calls"),
        (
            "POST",
            "/v1/calls/0190a5b2-0000-7000-8000-000000000000/redrive",
        ),
        ("GET", "/v1/calls/0190a5b2-0000-7000-8000-000000000000/logs"),
        ("GET", "/metrics"),
        ("GET", "/v1/openapi.json"),
        ("GET", "/2015-03-31/functions/"),
    ] {
        let (status, body, _) = send_as(&h.functions, method, uri, Some(&token), &[], &spec).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {uri}");
        assert_eq!(body["error"]["code"], "not_found", "{method} {uri}");
    }
    let (status, body, _) = send_as(
        &h.functions,
        "GET",
        "/v1/functions/vote/invoke",
        Some(&token),
        &[],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"]["code"], "method_not_allowed");
    // Nothing was deployed nor deleted.
    let (status, _, _) = send_as(&h.api, "GET", "/v1/functions/evil", None, &[], "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = send_as(&h.api, "GET", "/v1/functions/vote", None, &[], "").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn volumes_are_created_with_labels_mounted_and_shown() {
    let h = Harness::hello().await;
    let spec =
        json!({"image": "hello:1", "volumes": ["tally:/data", "tally:/view:ro"]}).to_string();
    let (status, view, _) = send_as(
        &h.api,
        "PUT",
        "/v1/functions/worker",
        None,
        &[("content-type", "application/json")],
        &spec,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    assert_eq!(view["volumes"], json!(["tally:/data", "tally:/view:ro"]));
    let labels = &h.engine.volumes()["tally"];
    assert_eq!(labels["skiff.managed"], "true");
    assert_eq!(labels["skiff.volume"], "tally");
    let (status, _, _) = send_as(&h.api, "POST", "/fn/worker", None, &[], "").await;
    assert_eq!(status, StatusCode::OK);
    let spec = h.engine.created_specs().pop().expect("a container");
    assert_eq!(spec.volumes.len(), 2);
    assert!(spec
        .volumes
        .iter()
        .any(|v| v.target == "/view" && v.read_only));
    assert!(spec
        .volumes
        .iter()
        .any(|v| v.target == "/data" && !v.read_only));
    // A host path is refused, naming the entry.
    let spec = json!({"image": "hello:1", "volumes": ["/etc:/data"]}).to_string();
    let (status, body, _) = send_as(
        &h.api,
        "PUT",
        "/v1/functions/evil",
        None,
        &[("content-type", "application/json")],
        &spec,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_spec");
    assert_eq!(body["error"]["field"], "volumes[0]");
    // Deleting the function leaves the volume.
    let (status, _, _) = send_as(&h.api, "DELETE", "/v1/functions/worker", None, &[], "").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(h.engine.volumes().contains_key("tally"));
}

#[tokio::test]
async fn the_openapi_document_describes_volumes_and_the_function_api() {
    let h = Harness::hello().await;
    let (status, doc, _) = send_as(&h.api, "GET", "/v1/openapi.json", None, &[], "").await;
    assert_eq!(status, StatusCode::OK);
    let spec = &doc["components"]["schemas"]["FunctionSpec"]["properties"];
    assert_eq!(spec["volumes"]["type"], "array", "{spec}");
    let view = &doc["components"]["schemas"]["FunctionView"]["properties"];
    assert!(view.get("volumes").is_some(), "{view}");
    let description = doc["info"]["description"].as_str().unwrap_or_default();
    assert!(description.contains("SKIFF_API_URL"), "{description}");
}
