//! Who may do what, without a socket, on the fake engine: every route of the OpenAPI
//! document refuses a request without a token (401), with the wrong scope (403) and from
//! another namespace (403 or 404), and serves the right token; revocation holds at once;
//! private and public functions, invoke keys, namespaces, quotas and the audit log.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use common::{respond, script, Harness};
use serde_json::{json, Value};
use skiff_core::access::Scope;
use skiff_core::api::TokenRequest;
use skiff_gateway::auth::{rule_of, Need};
use skiff_gateway::GatewayConfig;
use tower::ServiceExt;
use utoipa::OpenApi;

async fn harness() -> Harness {
    Harness::start_with(
        &[("hello:1", script("Hello World!\n", "a line\n", 0))],
        |_| {},
        GatewayConfig::default(),
    )
    .await
}

/// `method uri` with `token` (if any), `namespace` (if any) and a JSON `body` (none for
/// `null`); the status and the answer as JSON (`null` when it is not JSON).
async fn send(
    app: &Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    namespace: Option<&str>,
    body: &Value,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if let Some(ns) = namespace {
        request = request.header("x-skiff-namespace", ns);
    }
    let body = if body.is_null() {
        Body::empty()
    } else {
        request = request.header("content-type", "application/json");
        Body::from(body.to_string())
    };
    let request = request.body(body).expect("request");
    if uri.ends_with("/logs/follow") {
        // A followed log never ends: its status is the answer, or its error.
        let response = app.clone().oneshot(request).await.expect("response");
        let status = response.status();
        if status.is_success() {
            return (status, Value::Null);
        }
        let bytes = http_body_util::BodyExt::collect(response.into_body())
            .await
            .expect("body")
            .to_bytes();
        return (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        );
    }
    let (status, _, bytes) = respond(app, request).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A token with `scopes` in `namespaces`; its secret and id.
async fn token(h: &Harness, scopes: &[Scope], namespaces: &[&str]) -> (String, String) {
    let created = h
        .platform
        .create_token(&TokenRequest {
            name: format!("{scopes:?} in {namespaces:?}"),
            scopes: scopes.to_vec(),
            namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
            expires_in: None,
        })
        .await
        .expect("token");
    (created.secret, created.token.id)
}

/// The tokens of a walk.
struct Tokens {
    admin: String,
    read: String,
    deploy: String,
    invoke: String,
    /// An admin of team-a alone.
    team_admin: String,
    /// An admin of team-b alone.
    other: String,
}

#[tokio::test]
async fn every_route_checks_its_token_its_scope_and_its_namespace() {
    let h = harness().await;
    let admin = h
        .platform
        .bootstrap_admin(None)
        .await
        .expect("bootstrap")
        .expect("a first token")
        .secret;
    assert!(h
        .platform
        .bootstrap_admin(None)
        .await
        .expect("again")
        .is_none());
    let t = Tokens {
        read: token(&h, &[Scope::Read], &["team-a"]).await.0,
        deploy: token(&h, &[Scope::Deploy], &["team-a"]).await.0,
        invoke: token(&h, &[Scope::Invoke], &["team-a"]).await.0,
        team_admin: token(&h, &[Scope::Admin], &["team-a"]).await.0,
        other: token(&h, &[Scope::Admin], &["team-b"]).await.0,
        admin,
    };
    let a = Some("team-a");
    // What the routes act on, in team-a.
    let (status, body) = send(
        &h.api,
        "PUT",
        "/v1/functions/hello",
        Some(&t.deploy),
        a,
        &json!({"image": "hello:1"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["namespace"], "team-a");
    assert_eq!(body["name"], "hello");
    assert_eq!(body["public"], false);
    let (status, _) = send(
        &h.api,
        "PUT",
        "/v1/triggers/tick",
        Some(&t.deploy),
        a,
        &json!({"function": "hello", "cron": {"schedule": "@hourly"}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let request = Request::post("/v1/functions/hello/invoke")
        .header("authorization", format!("Bearer {}", t.invoke))
        .header("x-skiff-namespace", "team-a")
        .body(Body::empty())
        .expect("request");
    let (status, headers, _) = respond(&h.api, request).await;
    assert_eq!(status, StatusCode::OK);
    let call = headers["x-skiff-call-id"].to_str().expect("id").to_string();
    let (status, key) = send(
        &h.api,
        "POST",
        "/v1/functions/hello/keys",
        Some(&t.deploy),
        a,
        &json!({"name": "ci"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let key_id = key["token"]["id"].as_str().expect("key id").to_string();
    let doomed = token(&h, &[Scope::Read], &["team-a"]).await.1;
    let (status, access_key) = send(
        &h.api,
        "POST",
        "/v1/access-keys",
        Some(&t.admin),
        None,
        &json!({"description": "walk"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{access_key}");
    let access_key = access_key["id"].as_str().expect("key id").to_string();

    let doc = skiff_gateway::ApiDoc::openapi();
    let mut routes = Vec::new();
    for (path, item) in &doc.paths.paths {
        for (method, op) in [
            ("GET", &item.get),
            ("PUT", &item.put),
            ("POST", &item.post),
            ("DELETE", &item.delete),
        ] {
            if op.is_some() {
                routes.push((method, path.clone()));
            }
        }
    }
    assert!(routes.len() >= 30, "{routes:?}");
    // Deletions last, the function's own at the very end.
    routes.sort_by_key(|(m, p)| (*m == "DELETE", p == "/v1/functions/{name}"));
    for (method, template) in routes {
        let uri = template
            .replace(
                "{name}",
                if template.starts_with("/v1/namespaces") {
                    "team-a"
                } else if template.starts_with("/v1/triggers") {
                    "tick"
                } else {
                    "hello"
                },
            )
            .replace(
                "{id}",
                if template.starts_with("/v1/calls") {
                    &call
                } else if template.starts_with("/v1/tokens") {
                    &doomed
                } else if template.starts_with("/v1/access-keys") {
                    &access_key
                } else if template.contains("/keys/") {
                    &key_id
                } else {
                    "0a1b2c3d"
                },
            );
        let body = match (method, template.as_str()) {
            ("PUT", "/v1/functions/{name}") => json!({"image": "hello:1"}),
            ("PUT", "/v1/triggers/{name}") => {
                json!({"function": "hello", "cron": {"schedule": "@hourly"}})
            }
            ("POST", "/v1/functions/{name}/scale") => json!({"max_instances": 2}),
            ("POST", "/v1/tokens") => json!({"name": "walk", "scopes": ["read"]}),
            ("PUT", "/v1/namespaces/{name}") => json!({}),
            ("POST", "/v1/functions/{name}/keys") => json!({}),
            ("POST", "/v1/images/pull" | "/v1/images/push") => json!({"image": "hello:1"}),
            _ => Value::Null,
        };
        let what = format!("{method} {uri}");
        let rule = rule_of(&method.parse().expect("method"), &template);
        if rule.need == Need::Open {
            let (status, _) = send(&h.api, method, &uri, None, None, &body).await;
            assert!(status.is_success(), "{what}: {status}");
            continue;
        }
        // No token.
        let (status, answer) = send(&h.api, method, &uri, None, a, &body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {answer}");
        assert_eq!(answer["error"]["code"], "unauthorized", "{what}");
        // A token that is not one.
        let (status, _) = send(&h.api, method, &uri, Some("skt_forged"), a, &body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
        // The wrong scope.
        let (right, wrong) = match rule.need {
            Need::In(Scope::Read) => (&t.read, &t.invoke),
            Need::In(Scope::Deploy) => (&t.deploy, &t.read),
            Need::In(Scope::Invoke) | Need::Invoke => (&t.invoke, &t.read),
            Need::In(Scope::Admin) => (&t.team_admin, &t.deploy),
            Need::All(_) | Need::Metrics => (&t.admin, &t.team_admin),
            Need::Open => unreachable!(),
        };
        let (status, answer) = send(&h.api, method, &uri, Some(wrong), a, &body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{what}: {answer}");
        assert_eq!(answer["error"]["code"], "forbidden", "{what}");
        // Another namespace's token: asking for team-a, or in its own namespace.
        let (status, _) = send(&h.api, method, &uri, Some(&t.other), a, &body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{what} as team-b for team-a");
        let (status, answer) = send(&h.api, method, &uri, Some(&t.other), None, &body).await;
        let unseen = [StatusCode::NOT_FOUND, StatusCode::FORBIDDEN];
        let global = matches!(rule.need, Need::All(_) | Need::Metrics);
        let lists = method == "GET"
            && (uri == "/v1/functions" || uri == "/v1/calls" || uri == "/v1/triggers");
        if global {
            assert_eq!(status, StatusCode::FORBIDDEN, "{what} as team-b");
        } else if lists {
            // Its own namespace's list: team-a's records are not in it.
            assert_eq!(status, StatusCode::OK, "{what} as team-b");
            assert!(
                !answer.to_string().contains("hello"),
                "{what} as team-b: {answer}"
            );
        } else if method == "DELETE" {
            // What team-b made of the same name in its own namespace is its own to delete.
            assert!(
                status.is_success() || unseen.contains(&status),
                "{what} as team-b: {status} {answer}"
            );
        } else if uri == "/v1/images/pull" {
            // Images are the engine's: a deployer of any namespace may pull one.
            assert_eq!(status, StatusCode::OK, "{what} as team-b: {answer}");
        } else if method == "PUT" {
            // Creating the same name in its own namespace is its right (a trigger needs a
            // function of its own namespace, though).
            assert!(
                status.is_success() || status == StatusCode::NOT_FOUND,
                "{what} as team-b: {status} {answer}"
            );
        } else {
            assert!(
                unseen.contains(&status),
                "{what} as team-b: {status} {answer}"
            );
        }
        // The right token.
        let (status, answer) = send(&h.api, method, &uri, Some(right), a, &body).await;
        assert!(
            status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
            "{what}: {status} {answer}"
        );
        assert!(
            status.is_success() || status == StatusCode::BAD_REQUEST,
            "{what}: {status} {answer}"
        );
    }
}

#[tokio::test]
async fn a_revoked_or_expired_token_stops_working_at_once() {
    let h = harness().await;
    let (admin, admin_id) = token(&h, &[Scope::Admin], &["*"]).await;
    let (secret, id) = token(&h, &[Scope::Read], &["default"]).await;
    let (status, _) = send(
        &h.api,
        "GET",
        "/v1/functions",
        Some(&secret),
        None,
        &Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, revoked) = send(
        &h.api,
        "DELETE",
        &format!("/v1/tokens/{id}"),
        Some(&admin),
        None,
        &Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert!(revoked["revoked_at"].is_string());
    let (status, body) = send(
        &h.api,
        "GET",
        "/v1/functions",
        Some(&secret),
        None,
        &Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["message"], "the token was revoked");
    // The list shows it revoked, and never a secret.
    let (_, list) = send(
        &h.api,
        "GET",
        "/v1/tokens",
        Some(&admin),
        None,
        &Value::Null,
    )
    .await;
    assert!(!list.to_string().contains(&secret[4..]));
    assert!(list["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .any(|t| t["id"] == id.as_str() && t["revoked_at"].is_string()));
    // Unknown ids are 404.
    let (status, _) = send(
        &h.api,
        "DELETE",
        "/v1/tokens/tok_none",
        Some(&admin),
        None,
        &Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A token made to expire.
    let (status, created) = send(
        &h.api,
        "POST",
        "/v1/tokens",
        Some(&admin),
        None,
        &json!({"name": "brief", "scopes": ["read"], "expires_in": "1s"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let brief = created["secret"].as_str().expect("secret").to_string();
    let (status, _) = send(
        &h.api,
        "GET",
        "/v1/functions",
        Some(&brief),
        None,
        &Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, body) = send(
        &h.api,
        "GET",
        "/v1/functions",
        Some(&brief),
        None,
        &Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["message"], "the token has expired");
    // Bad requests say which field.
    for (bad, field) in [
        (json!({"name": "", "scopes": ["read"]}), "name"),
        (json!({"name": "x", "scopes": []}), "scopes"),
        (
            json!({"name": "x", "scopes": ["read"], "namespaces": ["Bad"]}),
            "namespaces[0]",
        ),
        (
            json!({"name": "x", "scopes": ["read"], "expires_in": "soon"}),
            "expires_in",
        ),
    ] {
        let (status, body) = send(&h.api, "POST", "/v1/tokens", Some(&admin), None, &bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"]["field"], field, "{bad}: {body}");
    }
    // The admin can revoke itself; then nothing works with it.
    let (status, _) = send(
        &h.api,
        "DELETE",
        &format!("/v1/tokens/{admin_id}"),
        Some(&admin),
        None,
        &Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(
        &h.api,
        "GET",
        "/v1/tokens",
        Some(&admin),
        None,
        &Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// `POST /fn/{name}` with `auth` headers; the status.
async fn call(h: &Harness, name: &str, auth: &[(&str, &str)]) -> StatusCode {
    let mut request = Request::post(format!("/fn/{name}"));
    for (k, v) in auth {
        request = request.header(*k, *v);
    }
    respond(&h.api, request.body(Body::empty()).expect("request"))
        .await
        .0
}

#[tokio::test]
async fn private_functions_need_an_invoke_token_or_their_key() {
    let h = harness().await;
    let (admin, _) = token(&h, &[Scope::Admin], &["*"]).await;
    let (reader, _) = token(&h, &[Scope::Read], &["default"]).await;
    let (invoker, _) = token(&h, &[Scope::Invoke], &["default"]).await;
    let (elsewhere, _) = token(&h, &[Scope::Invoke], &["team-b"]).await;
    for (name, public) in [("private", false), ("open", true), ("other", false)] {
        let (status, _) = send(
            &h.api,
            "PUT",
            &format!("/v1/functions/{name}"),
            Some(&admin),
            None,
            &json!({"image": "hello:1", "public": public}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let bearer = |t: &str| format!("Bearer {t}");
    assert_eq!(call(&h, "open", &[]).await, StatusCode::OK);
    assert_eq!(call(&h, "private", &[]).await, StatusCode::UNAUTHORIZED);
    // Whether a function exists is not told without a credential.
    assert_eq!(call(&h, "ghost", &[]).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        call(&h, "private", &[("authorization", &bearer(&invoker))]).await,
        StatusCode::OK
    );
    assert_eq!(
        call(&h, "private", &[("authorization", &bearer(&reader))]).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(&h, "private", &[("authorization", &bearer(&elsewhere))]).await,
        StatusCode::NOT_FOUND
    );
    // A key calls its function, as a bearer token or as X-Skiff-Key, and nothing else.
    let (status, key) = send(
        &h.api,
        "POST",
        "/v1/functions/private/keys",
        Some(&admin),
        None,
        &Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let secret = key["secret"].as_str().expect("secret").to_string();
    assert!(secret.starts_with("skk_"));
    assert_eq!(
        call(&h, "private", &[("x-skiff-key", &secret)]).await,
        StatusCode::OK
    );
    assert_eq!(
        call(&h, "private", &[("authorization", &bearer(&secret))]).await,
        StatusCode::OK
    );
    assert_eq!(
        call(&h, "other", &[("x-skiff-key", &secret)]).await,
        StatusCode::FORBIDDEN
    );
    let (status, _) = send(
        &h.api,
        "GET",
        "/v1/functions",
        Some(&secret),
        None,
        &Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = send(
        &h.api,
        "POST",
        "/v1/functions/private/invoke",
        Some(&secret),
        None,
        &Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // The function never sees the credential it was called with.
    let exec = h.engine.created_specs();
    assert!(!format!("{exec:?}").contains(&secret));
    // Revoked, the key stops; deleting the function revokes the rest.
    let key_id = key["token"]["id"].as_str().expect("id");
    let (status, _) = send(
        &h.api,
        "DELETE",
        &format!("/v1/functions/private/keys/{key_id}"),
        Some(&admin),
        None,
        &Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        call(&h, "private", &[("x-skiff-key", &secret)]).await,
        StatusCode::UNAUTHORIZED
    );
    let (_, key) = send(
        &h.api,
        "POST",
        "/v1/functions/other/keys",
        Some(&admin),
        None,
        &Value::Null,
    )
    .await;
    let other_key = key["secret"].as_str().expect("secret").to_string();
    let (status, _) = send(
        &h.api,
        "DELETE",
        "/v1/functions/other",
        Some(&admin),
        None,
        &Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = send(
        &h.api,
        "PUT",
        "/v1/functions/other",
        Some(&admin),
        None,
        &json!({"image": "hello:1"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        call(&h, "other", &[("x-skiff-key", &other_key)]).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn namespaces_keep_their_functions_calls_and_quotas_apart() {
    let h = harness().await;
    let (admin, admin_id) = token(&h, &[Scope::Admin], &["*"]).await;
    let (a, _) = token(
        &h,
        &[Scope::Deploy, Scope::Read, Scope::Invoke],
        &["team-a"],
    )
    .await;
    let (b, _) = token(
        &h,
        &[Scope::Deploy, Scope::Read, Scope::Invoke],
        &["team-b"],
    )
    .await;
    // The same name in two namespaces: two functions. A token of one namespace needs no
    // header: its namespace is the default.
    for t in [&a, &b] {
        let (status, body) = send(
            &h.api,
            "PUT",
            "/v1/functions/f",
            Some(t),
            None,
            &json!({"image": "hello:1", "public": true}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (_, list) = send(&h.api, "GET", "/v1/functions", Some(&a), None, &Value::Null).await;
    assert_eq!(list["functions"].as_array().expect("list").len(), 1);
    assert_eq!(list["functions"][0]["namespace"], "team-a");
    // The public routes: /fn/NS.NAME.
    assert_eq!(call(&h, "team-a.f", &[]).await, StatusCode::OK);
    assert_eq!(call(&h, "team-b.f", &[]).await, StatusCode::OK);
    assert_eq!(call(&h, "f", &[]).await, StatusCode::UNAUTHORIZED);
    // Calls are read in their namespace only.
    let (_, calls) = send(&h.api, "GET", "/v1/calls", Some(&b), None, &Value::Null).await;
    let calls = calls["calls"].as_array().expect("calls").clone();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["function"], "team-b.f");
    let id = calls[0]["id"].as_str().expect("id");
    for path in [format!("/v1/calls/{id}"), format!("/v1/calls/{id}/logs")] {
        let (status, _) = send(&h.api, "GET", &path, Some(&a), None, &Value::Null).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        let (status, _) = send(&h.api, "GET", &path, Some(&b), None, &Value::Null).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    // Reaching another namespace by its full name is not found.
    let (status, _) = send(
        &h.api,
        "GET",
        "/v1/functions/team-b.f",
        Some(&a),
        None,
        &Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send(
        &h.api,
        "GET",
        "/v1/functions/team-b.f",
        Some(&admin),
        None,
        &Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Quotas: functions, then concurrent calls.
    let (status, ns) = send(
        &h.api,
        "PUT",
        "/v1/namespaces/team-a",
        Some(&admin),
        None,
        &json!({"max_functions": 1, "max_memory": "1Gi"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{ns}");
    assert_eq!(ns["functions"], 1);
    let (status, body) = send(
        &h.api,
        "PUT",
        "/v1/functions/g",
        Some(&a),
        None,
        &json!({"image": "hello:1"}),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "quota_exceeded");
    let (status, _) = send(
        &h.api,
        "PUT",
        "/v1/functions/g",
        Some(&b),
        None,
        &json!({"image": "hello:1"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    // Updating the one it has is no new function.
    let (status, _) = send(
        &h.api,
        "PUT",
        "/v1/functions/f",
        Some(&a),
        None,
        &json!({"image": "hello:1", "public": true, "memory": "512Mi"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(
        &h.api,
        "PUT",
        "/v1/namespaces/team-a",
        Some(&admin),
        None,
        &json!({"max_memory": "256Mi"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let request = Request::post("/fn/team-a.f")
        .body(Body::empty())
        .expect("request");
    let (status, headers, body) = respond(&h.api, request).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(headers.contains_key("retry-after"));
    let body: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(body["error"]["code"], "quota_exceeded");
    let (_, list) = send(
        &h.api,
        "GET",
        "/v1/namespaces",
        Some(&admin),
        None,
        &Value::Null,
    )
    .await;
    let names: Vec<&str> = list["namespaces"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|n| n["name"].as_str())
        .collect();
    assert_eq!(names, ["team-a", "team-b"]);
    // Every action is in the audit log: who, with which token, what, the result.
    let (status, audit) = send(&h.api, "GET", "/v1/audit", Some(&admin), None, &Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    let entries = audit["entries"].as_array().expect("entries");
    let quota = entries
        .iter()
        .find(|e| e["action"] == "set quota")
        .expect("set quota");
    assert_eq!(quota["token_id"], admin_id.as_str());
    assert_eq!(quota["target"], "team-a");
    assert_eq!(quota["status"], 200);
    let refused = entries
        .iter()
        .find(|e| e["action"] == "deploy function" && e["status"] == 429)
        .expect("the refused deploy");
    assert_eq!(refused["namespace"], "team-a");
    assert_eq!(refused["target"], "g");
    let (_, of_b) = send(
        &h.api,
        "GET",
        "/v1/audit?namespace=team-b",
        Some(&admin),
        None,
        &Value::Null,
    )
    .await;
    assert!(of_b["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .all(|e| e["namespace"] == "team-b"));
}

#[tokio::test]
async fn a_functions_token_calls_its_namespace_and_its_callees_only() {
    let h = harness().await;
    let (admin, _) = token(&h, &[Scope::Admin], &["*"]).await;
    let deploy = |name: &'static str, spec: Value| {
        let (api, admin) = (h.api.clone(), admin.clone());
        async move {
            let (status, body) = send(
                &api,
                "PUT",
                &format!("/v1/functions/{name}"),
                Some(&admin),
                None,
                &spec,
            )
            .await;
            assert!(status.is_success(), "{name}: {body}");
        }
    };
    deploy(
        "team-a.caller",
        json!({"image": "hello:1", "public": true, "callees": ["allowed"]}),
    )
    .await;
    deploy("team-a.allowed", json!({"image": "hello:1"})).await;
    deploy("team-a.refused", json!({"image": "hello:1"})).await;
    deploy("team-b.allowed", json!({"image": "hello:1"})).await;
    deploy("allowed", json!({"image": "hello:1"})).await;
    assert_eq!(call(&h, "team-a.caller", &[]).await, StatusCode::OK);
    let spec = h
        .engine
        .created_specs()
        .into_iter()
        .rev()
        .find(|s| s.labels.get("skiff.function").map(String::as_str) == Some("team-a.caller"))
        .expect("the caller's container");
    let token = spec
        .env
        .iter()
        .find_map(|e| e.strip_prefix("SKIFF_TOKEN="))
        .expect("its token")
        .to_string();
    let from_caller = |name: &'static str| {
        let (api, token) = (h.functions.clone(), token.clone());
        async move {
            let request = Request::post(format!("/fn/{name}"))
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .expect("request");
            respond(&api, request).await.0
        }
    };
    // Names are of the caller's namespace; private functions are open to it.
    assert_eq!(from_caller("allowed").await, StatusCode::OK);
    assert_eq!(from_caller("team-a.allowed").await, StatusCode::OK);
    assert_eq!(from_caller("refused").await, StatusCode::FORBIDDEN);
    assert_eq!(from_caller("team-b.allowed").await, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn management_bodies_must_be_json_objects_and_namespaces_valid() {
    let h = harness().await;
    let admin = h
        .platform
        .bootstrap_admin(None)
        .await
        .expect("bootstrap")
        .expect("a first token")
        .secret;
    let admin = Some(admin.as_str());
    // An array is not a request, even one serde could read as the struct's fields.
    for (method, uri) in [
        ("POST", "/v1/access-keys"),
        ("POST", "/v1/tokens"),
        ("PUT", "/v1/functions/hello"),
        ("PUT", "/v1/namespaces/team-a"),
    ] {
        let (status, body) = send(&h.api, method, uri, admin, None, &json!([null, null])).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {uri}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("must be a JSON object"),
            "{method} {uri}: {body}"
        );
    }
    let (_, listed) = send(&h.api, "GET", "/v1/access-keys", admin, None, &Value::Null).await;
    assert_eq!(
        listed["access_keys"],
        json!([]),
        "no key was made: {listed}"
    );
    // An access key's namespace is checked as a namespace.
    for bad in ["", "Team", "a.b", &"x".repeat(33)] {
        let (status, body) = send(
            &h.api,
            "POST",
            "/v1/access-keys",
            admin,
            None,
            &json!({"namespace": bad}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("not a valid namespace"), "{bad:?}: {body}");
    }
    let (status, body) = send(
        &h.api,
        "POST",
        "/v1/access-keys",
        admin,
        None,
        &json!({"namespace": "team-a"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["namespace"], "team-a");
}

#[tokio::test]
async fn only_a_token_of_every_namespace_pulls_with_the_daemon_s_credentials() {
    let h = Harness::start_with(
        &[
            ("hello:1", script("Hello World!\n", "", 0)),
            ("registry.example.com/team/app:1", script("", "", 0)),
            ("127.0.0.1:5000/app:1", script("", "", 0)),
        ],
        |config| {
            config.registries = skiff_invoker::registries::Registries::parse(
                r#"{"auths": {"registry.example.com": {"username": "ops", "password": "pw"},
                              "127.0.0.1:5000": {"username": "ops", "password": "pw"}}}"#,
            )
            .expect("credentials");
        },
        GatewayConfig::default(),
    )
    .await;
    let admin = token(&h, &[Scope::Admin], &["*"]).await.0;
    let team = token(&h, &[Scope::Deploy], &["team-a"]).await.0;
    let pull = |image: &str| json!({"image": image});

    // A team's deployer pulls, anonymously.
    let (status, answer) = send(
        &h.api,
        "POST",
        "/v1/images/pull",
        Some(&team),
        None,
        &pull("registry.example.com/team/app:1"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // Not from this host or a private network.
    let (status, answer) = send(
        &h.api,
        "POST",
        "/v1/images/pull",
        Some(&team),
        None,
        &pull("127.0.0.1:5000/app:1"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert_eq!(answer["error"]["code"], "forbidden");
    // A token of every namespace pulls with the daemon's credentials, from anywhere.
    for image in ["registry.example.com/team/app:1", "127.0.0.1:5000/app:1"] {
        let (status, answer) = send(
            &h.api,
            "POST",
            "/v1/images/pull",
            Some(&admin),
            None,
            &pull(image),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let pulls: Vec<String> = h
        .engine
        .operations()
        .into_iter()
        .filter(|op| op.starts_with("pull "))
        .collect();
    assert_eq!(
        pulls,
        [
            "pull registry.example.com/team/app:1",
            "pull registry.example.com/team/app:1 as ops",
            "pull 127.0.0.1:5000/app:1 as ops",
        ]
    );
    // A team's deployer may not push.
    let (status, _) = send(
        &h.api,
        "POST",
        "/v1/images/push",
        Some(&team),
        None,
        &json!({"image": "hello:1", "to": "registry.example.com/team/hello:1"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The audit log names the image of each pull, refused ones too.
    let (status, audit) = send(&h.api, "GET", "/v1/audit", Some(&admin), None, &Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    let pulls: Vec<(String, u64)> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["action"] == "pull image")
        .map(|e| {
            (
                e["target"].as_str().unwrap_or_default().to_string(),
                e["status"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    for expected in [
        ("registry.example.com/team/app:1".to_string(), 200),
        ("127.0.0.1:5000/app:1".to_string(), 403),
        ("127.0.0.1:5000/app:1".to_string(), 200),
    ] {
        assert!(pulls.contains(&expected), "{expected:?} in {pulls:?}");
    }
}

#[tokio::test]
async fn a_first_admin_token_given_by_the_operator_is_the_one_that_works() {
    let h = harness().await;
    for bad in [
        "not-a-token",
        "skt_short",
        "skt_ has a space in it and is long enough",
    ] {
        let err = h.platform.bootstrap_admin(Some(bad)).await.err();
        assert!(
            err.is_some_and(|e| e.to_string().contains("first admin token")),
            "{bad} refused"
        );
    }
    let chosen = "skt_operator-chosen-secret-0123456789abcdefghij";
    let created = h
        .platform
        .bootstrap_admin(Some(chosen))
        .await
        .expect("bootstrap")
        .expect("a first token");
    assert_eq!(created.secret, chosen);
    let app = h.api.clone();
    let (status, body) = send(&app, "GET", "/v1/tokens", Some(chosen), None, &Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Given again at a later start, it changes nothing: the store has its token.
    assert!(h
        .platform
        .bootstrap_admin(Some("skt_another-secret-0123456789abcdefghijklmn"))
        .await
        .expect("again")
        .is_none());
    let (status, _) = send(
        &app,
        "GET",
        "/v1/tokens",
        Some("skt_another-secret-0123456789abcdefghijklmn"),
        None,
        &Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
