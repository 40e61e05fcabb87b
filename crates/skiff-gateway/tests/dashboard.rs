//! The logs, stats and dashboard routes without a socket, on the fake engine: a followed
//! log gets a call's lines as they are written, the stats count calls, and the pages show
//! functions and calls (secret values never), with typed errors on bad input.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{respond, script, send, send_json, Harness};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use skiff_core::access::Scope;
use tower::ServiceExt;

async fn harness() -> Harness {
    Harness::start(
        &[
            (
                "hello:1",
                script("Hello World!\n", "a log line\nanother\n", 0),
            ),
            ("broken:1", script("", "it broke\n", 2)),
        ],
        |_| {},
    )
    .await
}

async fn deploy(h: &Harness, name: &str, spec: Value) {
    let (status, body) = send_json(&h.api, "PUT", &format!("/v1/functions/{name}"), spec).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn a_followed_log_gets_each_line_of_a_call_as_ndjson() {
    let h = harness().await;
    deploy(&h, "hello", json!({"image": "hello:1"})).await;
    let response = h
        .api
        .clone()
        .oneshot(
            Request::get("/v1/functions/hello/logs/follow")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let mut body = response.into_body();
    let (status, _, headers) = send(&h.api, "POST", "/v1/functions/hello/invoke", "{}").await;
    assert_eq!(status, StatusCode::OK);
    let call_id = headers["x-skiff-call-id"].to_str().expect("id").to_string();
    let mut text = String::new();
    while text.matches('\n').count() < 2 {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(10), body.frame())
            .await
            .expect("a line within 10 s")
            .expect("a frame")
            .expect("data");
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    let events: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(events[0]["type"], "line");
    assert_eq!(events[0]["line"], "a log line");
    assert_eq!(events[0]["call"], call_id.as_str());
    assert_eq!(events[0]["function"], "hello");
    assert_eq!(events[0]["stream"], "stderr");
    assert_eq!(events[1]["line"], "another");
}

#[tokio::test]
async fn following_an_unknown_function_is_404() {
    let h = harness().await;
    let (status, body) =
        send_json(&h.api, "GET", "/v1/functions/nope/logs/follow", Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "function_not_found");
    let (status, body) = send_json(
        &h.api,
        "GET",
        "/v1/functions/nope/instances/x/logs",
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "function_not_found");
}

#[tokio::test]
async fn stats_count_calls_and_refuse_bad_windows() {
    let h = harness().await;
    deploy(&h, "hello", json!({"image": "hello:1"})).await;
    deploy(&h, "broken", json!({"image": "broken:1"})).await;
    for _ in 0..2 {
        send(&h.api, "POST", "/v1/functions/hello/invoke", "{}").await;
    }
    send(&h.api, "POST", "/v1/functions/broken/invoke", "{}").await;
    let (status, stats) = send_json(
        &h.api,
        "GET",
        "/v1/functions/hello/stats?window=15m",
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(stats["window_seconds"], 900);
    assert_eq!(stats["bucket_seconds"], 30);
    assert_eq!(stats["buckets"].as_array().map(Vec::len), Some(30));
    assert_eq!(stats["totals"]["calls"], 2);
    assert_eq!(stats["totals"]["errors"], 0);
    assert!(stats["totals"]["p50_ms"].is_u64(), "{stats}");
    let (_, broken) = send_json(&h.api, "GET", "/v1/functions/broken/stats", Value::Null).await;
    assert_eq!(broken["window_seconds"], 3600);
    assert_eq!(broken["totals"]["errors"], 1);
    for bad in ["window=5s", "window=soon", "windows=1h"] {
        let (status, body) = send_json(
            &h.api,
            "GET",
            &format!("/v1/functions/hello/stats?{bad}"),
            Value::Null,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["error"]["code"], "invalid_request");
    }
    let (status, _) = send_json(&h.api, "GET", "/v1/functions/nope/stats", Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_openapi_document_describes_the_new_routes() {
    let h = harness().await;
    let (_, doc) = send_json(&h.api, "GET", "/v1/openapi.json", Value::Null).await;
    for path in [
        "/v1/functions/{name}/logs/follow",
        "/v1/functions/{name}/instances/{id}/logs",
        "/v1/functions/{name}/stats",
    ] {
        assert!(doc["paths"][path]["get"].is_object(), "{path} missing");
    }
    assert!(doc["components"]["schemas"]["LogEvent"].is_object());
    assert!(doc["components"]["schemas"]["FunctionStats"].is_object());
}

async fn page(h: &Harness, uri: &str) -> (StatusCode, String) {
    let request = Request::get(uri).body(Body::empty()).expect("request");
    let (status, headers, body) = respond(&h.api, request).await;
    if status.is_success() {
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap_or_default()
                .starts_with("text/html"),
            "{uri}"
        );
        assert!(headers.contains_key("content-security-policy"), "{uri}");
    }
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn pages_show_functions_and_calls_but_never_secret_values() {
    let h = harness().await;
    deploy(
        &h,
        "hello",
        json!({"image": "hello:1", "env": {"GREETING": "hi"}, "secrets": {"API_TOKEN": "hunter2-secret"}}),
    )
    .await;
    deploy(&h, "broken", json!({"image": "broken:1"})).await;
    send(&h.api, "POST", "/v1/functions/hello/invoke", "{}").await;
    let (_, _, headers) = send(&h.api, "POST", "/v1/functions/broken/invoke", "{}").await;
    let failed = headers["x-skiff-call-id"].to_str().expect("id").to_string();

    let (status, overview) = page(&h, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(overview.contains("href=\"/functions/hello\""), "{overview}");
    assert!(overview.contains("href=\"/functions/broken\""));

    let (status, function) = page(&h, "/functions/hello?window=15m").await;
    assert_eq!(status, StatusCode::OK);
    assert!(function.contains("GREETING=hi"), "{function}");
    assert!(function.contains("API_TOKEN"), "the secret's name is shown");
    assert!(!function.contains("hunter2-secret"), "never its value");
    assert!(function.contains("<svg"), "charts are inline SVG");
    assert!(function.contains("/v1/functions/hello/logs/follow"));

    let (status, calls) = page(&h, "/calls?function=broken&status=failed&since=1h").await;
    assert_eq!(status, StatusCode::OK);
    assert!(calls.contains(&format!("/calls/{failed}")), "{calls}");
    let (status, none) = page(&h, "/calls?function=hello&status=failed").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!none.contains(&format!("/calls/{failed}")));

    let (status, call) = page(&h, &format!("/calls/{failed}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(call.contains("function_error"), "{call}");
    assert!(call.contains("it broke"), "the log is shown");
    assert!(!call.contains("Redrive"), "only dead calls are redriven");
}

#[tokio::test]
async fn bad_input_gets_an_error_page_not_a_panic() {
    let h = harness().await;
    let (status, body) = page(&h, "/functions/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("does not exist"), "{body}");
    let (status, _) = page(&h, "/calls/not-a-uuid").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = page(&h, "/calls?status=bogus").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("unknown call status"), "{body}");
    let (status, _) = page(&h, "/functions/nope?window=forever").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A redrive posted from another site is refused.
    let request = Request::post(format!("/calls/{}/redrive", uuid_nil()))
        .header("origin", "http://evil.example")
        .header("host", "127.0.0.1:8080")
        .body(Body::empty())
        .expect("request");
    let (status, _, _) = respond(&h.api, request).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, css) = respond(
        &h.api,
        Request::get(skiff_dashboard_style())
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!css.is_empty());
}

fn uuid_nil() -> &'static str {
    "00000000-0000-0000-0000-000000000000"
}

fn skiff_dashboard_style() -> &'static str {
    "/ui/style.css"
}

#[tokio::test]
async fn a_dead_call_is_redriven_by_its_page_s_form() {
    let h = harness().await;
    deploy(&h, "broken", json!({"image": "broken:1", "retries": 0})).await;
    let request = Request::post("/v1/functions/broken/invoke")
        .header("prefer", "respond-async")
        .body(Body::from("{}"))
        .expect("request");
    let (status, _, body) = respond(&h.api, request).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let accepted: Value = serde_json::from_slice(&body).expect("json");
    let id = accepted["call_id"].as_str().expect("id").to_string();
    let mut dead = false;
    for _ in 0..200 {
        let (_, record) = send_json(&h.api, "GET", &format!("/v1/calls/{id}"), Value::Null).await;
        if record["status"] == "dead" {
            dead = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(dead, "the call never died");
    let (_, before) = page(&h, &format!("/calls/{id}")).await;
    assert!(
        before.contains("action=\"/calls/"),
        "a redrive form: {before}"
    );

    let form = || {
        Request::post(format!("/calls/{id}/redrive"))
            .header("origin", "http://127.0.0.1:8080")
            .header("host", "127.0.0.1:8080")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::empty())
            .expect("request")
    };
    let (status, headers, _) = respond(&h.api, form()).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        headers["location"],
        format!("/calls/{id}?redriven=1").as_str()
    );
    let (status, after) = page(&h, &format!("/calls/{id}?redriven=1")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(after.contains("Queued again"), "{after}");

    // A call that is not dead is refused on its page, with the reason.
    let (_, _, headers) = send(&h.api, "POST", "/v1/functions/broken/invoke", "{}").await;
    let failed = headers["x-skiff-call-id"].to_str().expect("id").to_string();
    let request = Request::post(format!("/calls/{failed}/redrive"))
        .body(Body::empty())
        .expect("request");
    let (status, _, body) = respond(&h.api, request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        String::from_utf8_lossy(&body).contains("only dead calls are redriven"),
        "the page says why"
    );
}

/// A harness that checks credentials, with `hello` in `default`, `f` in team-a and `g` in
/// team-b, each called once (by the admin token, whose secret is returned).
async fn tenants() -> (Harness, String) {
    let h = Harness::start_with(
        &[("hello:1", script("Hello World!\n", "a line\n", 0))],
        |_| {},
        skiff_gateway::GatewayConfig::default(),
    )
    .await;
    let admin = token(&h, &[Scope::Admin], &["*"]).await;
    for (ns, name) in [("default", "hello"), ("team-a", "f"), ("team-b", "g")] {
        let put = Request::put(format!("/v1/functions/{name}"))
            .header("authorization", format!("Bearer {admin}"))
            .header("x-skiff-namespace", ns)
            .header("content-type", "application/json")
            .body(Body::from(json!({"image": "hello:1"}).to_string()))
            .expect("request");
        let (status, _, body) = respond(&h.api, put).await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&body)
        );
        let invoke = Request::post(format!("/v1/functions/{name}/invoke"))
            .header("authorization", format!("Bearer {admin}"))
            .header("x-skiff-namespace", ns)
            .body(Body::from("{}"))
            .expect("request");
        let (status, _, _) = respond(&h.api, invoke).await;
        assert_eq!(status, StatusCode::OK, "{ns}.{name}");
    }
    (h, admin)
}

/// A token with `scopes` in `namespaces`: its secret.
async fn token(h: &Harness, scopes: &[Scope], namespaces: &[&str]) -> String {
    h.platform
        .create_token(&skiff_core::api::TokenRequest {
            name: format!("{scopes:?} in {namespaces:?}"),
            scopes: scopes.to_vec(),
            namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
            expires_in: None,
        })
        .await
        .expect("token")
        .secret
}

/// Signs in with `token` through the login form; the status, and the session cookie
/// (`name=value`) when one was set.
async fn login(h: &Harness, token: &str) -> (StatusCode, Option<String>, String) {
    let request = Request::post("/login")
        .header("origin", "http://127.0.0.1:8080")
        .header("host", "127.0.0.1:8080")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(format!("token={token}")))
        .expect("request");
    let (status, headers, body) = respond(&h.api, request).await;
    let cookie = headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .map(str::to_string);
    (status, cookie, String::from_utf8_lossy(&body).into_owned())
}

/// `uri` with the session `cookie`: the status and the page.
async fn browse(h: &Harness, cookie: &str, uri: &str) -> (StatusCode, String) {
    let request = Request::get(uri)
        .header("cookie", cookie)
        .body(Body::empty())
        .expect("request");
    let (status, _, body) = respond(&h.api, request).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The ids of the calls a page links to.
fn call_links(page: &str) -> Vec<String> {
    page.match_indices("href=\"/calls/")
        .map(|(at, m)| page[at + m.len()..].chars().take(36).collect::<String>())
        .collect()
}

#[tokio::test]
async fn a_tenant_s_session_sees_its_namespaces_only() {
    let (h, admin) = tenants().await;
    let all_calls = |ns: &str| {
        let h = &h;
        let admin = admin.clone();
        let ns = ns.to_string();
        async move {
            let request = Request::get("/v1/calls")
                .header("authorization", format!("Bearer {admin}"))
                .header("x-skiff-namespace", ns)
                .body(Body::empty())
                .expect("request");
            let (_, _, body) = respond(&h.api, request).await;
            let page: Value = serde_json::from_slice(&body).expect("json");
            page["calls"][0]["id"].as_str().expect("a call").to_string()
        }
    };
    let (default_call, a_call, b_call) = (
        all_calls("default").await,
        all_calls("team-a").await,
        all_calls("team-b").await,
    );

    // A read token of team-a signs in and sees team-a alone.
    let reader = token(&h, &[Scope::Read], &["team-a"]).await;
    let (status, cookie, body) = login(&h, &reader).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let cookie = cookie.expect("a session cookie");
    let (status, overview) = browse(&h, &cookie, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        overview.contains("href=\"/functions/team-a.f\""),
        "{overview}"
    );
    assert!(!overview.contains("/functions/hello"), "{overview}");
    assert!(!overview.contains("team-b"), "{overview}");
    assert!(
        !overview.contains("calls running"),
        "the platform's load is not its own"
    );
    // Its function's figures, read from its own calls, are those an admin sees.
    let row = |page: &str| -> String {
        let at = page
            .find("<tr data-function=\"team-a.f\">")
            .expect("team-a.f's row");
        let end = page[at..].find("</tr>").expect("the row's end");
        page[at..at + end].to_string()
    };
    let (_, admin_cookie, _) = login(&h, &admin).await;
    let (_, everything) = browse(&h, &admin_cookie.expect("a session cookie"), "/").await;
    assert!(
        row(&overview).contains(">0.2<"),
        "one call in 5 minutes: {}",
        row(&overview)
    );
    assert_eq!(row(&overview), row(&everything));
    // Nothing in the navigation leads a tenant to a page it may not read.
    assert!(!overview.contains("href=\"/metrics\""), "{overview}");
    assert!(
        !overview.contains("name=\"ns\""),
        "one namespace: nothing to choose"
    );
    let (status, _) = browse(&h, &cookie, "/functions/team-a.f").await;
    assert_eq!(status, StatusCode::OK);
    // Another namespace's function or call is not found, exactly as a missing one.
    let (status, other) = browse(&h, &cookie, "/functions/hello").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, missing) = browse(&h, &cookie, "/functions/nope").await;
    assert_eq!(other.replace("hello", "nope"), missing);
    for uri in [
        "/functions/team-b.g".to_string(),
        "/functions/hello/instances/x".to_string(),
        format!("/calls/{default_call}"),
        format!("/calls/{b_call}"),
        "/calls?ns=team-b".to_string(),
        "/?ns=*".to_string(),
    ] {
        let (status, _) = browse(&h, &cookie, &uri).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
    }
    let (status, call) = browse(&h, &cookie, &format!("/calls/{a_call}")).await;
    assert_eq!(status, StatusCode::OK, "{call}");
    let (status, explorer) = browse(&h, &cookie, "/calls").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(call_links(&explorer), vec![a_call.clone()], "{explorer}");
    let (_, filtered) = browse(&h, &cookie, "/calls?function=hello").await;
    assert!(call_links(&filtered).is_empty(), "{filtered}");
    // A session without `invoke` does not redrive (the guard refuses before the call).
    let redrive = Request::post(format!("/calls/{a_call}/redrive"))
        .header("cookie", &cookie)
        .body(Body::empty())
        .expect("request");
    let (status, _, _) = respond(&h.api, redrive).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // With `invoke` too, another namespace's call is not found for a redrive.
    let invoker = token(&h, &[Scope::Read, Scope::Invoke], &["team-a"]).await;
    let (_, invoker, _) = login(&h, &invoker).await;
    let redrive = Request::post(format!("/calls/{b_call}/redrive"))
        .header("cookie", invoker.expect("cookie"))
        .body(Body::empty())
        .expect("request");
    let (status, _, _) = respond(&h.api, redrive).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Two namespaces: the first by default, a selector to switch.
    let two = token(&h, &[Scope::Read], &["team-a", "team-b"]).await;
    let (_, two, _) = login(&h, &two).await;
    let two = two.expect("cookie");
    let (_, overview) = browse(&h, &two, "/").await;
    assert!(overview.contains("name=\"ns\""), "{overview}");
    assert!(overview.contains("<option value=\"team-b\">team-b</option>"));
    assert!(overview.contains("/functions/team-a.f") && !overview.contains("/functions/team-b.g"));
    let (_, switched) = browse(&h, &two, "/?ns=team-b").await;
    assert!(switched.contains("/functions/team-b.g") && !switched.contains("/functions/team-a.f"));
    let (_, explorer) = browse(&h, &two, "/calls?ns=team-b").await;
    assert!(explorer.contains("name=\"ns\""), "{explorer}");
    assert_eq!(call_links(&explorer), vec![b_call.clone()]);
    let (status, _) = browse(&h, &two, "/calls?ns=default").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The API the pages' script reads (a function's log, followed) takes the cookie for
    // a function of either namespace, named by its full name.
    for f in ["team-a.f", "team-b.g"] {
        let (status, _) = browse(&h, &two, &format!("/v1/functions/{f}/stats")).await;
        assert_eq!(status, StatusCode::OK, "{f}");
    }
    let (status, _) = browse(&h, &two, "/v1/functions/hello/stats").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A `*` token sees everything, and may narrow it.
    let everything = token(&h, &[Scope::Read], &["*"]).await;
    let (_, everything, _) = login(&h, &everything).await;
    let everything = everything.expect("cookie");
    let (_, overview) = browse(&h, &everything, "/").await;
    for f in ["hello", "team-a.f", "team-b.g"] {
        assert!(
            overview.contains(&format!("/functions/{f}\"")),
            "{f}: {overview}"
        );
    }
    assert!(overview.contains("calls running"));
    let (_, explorer) = browse(&h, &everything, "/calls").await;
    let mut seen = call_links(&explorer);
    seen.sort();
    let mut expected = vec![default_call.clone(), a_call.clone(), b_call.clone()];
    expected.sort();
    assert_eq!(seen, expected);
    let (_, narrowed) = browse(&h, &everything, "/calls?ns=default").await;
    assert_eq!(call_links(&narrowed), vec![default_call.clone()]);
    let (status, _) = browse(&h, &everything, &format!("/calls/{b_call}")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn invoke_keys_and_tokens_without_read_are_refused_at_login() {
    let (h, _) = tenants().await;
    let key = h
        .platform
        .create_key("team-a.f", "k")
        .await
        .expect("key")
        .secret;
    let deployer = token(&h, &[Scope::Deploy, Scope::Invoke], &["*"]).await;
    for (secret, why) in [
        (key.as_str(), "an invoke key"),
        (deployer.as_str(), "the `read` scope"),
        ("skt_not-a-token", "not"),
    ] {
        let (status, cookie, body) = login(&h, secret).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{secret}");
        assert!(cookie.is_none());
        assert!(body.contains(why), "{why}: {body}");
        // Its cookie, set by hand, opens no page either.
        let (status, _) = browse(&h, &format!("skiff_session={secret}"), "/").await;
        assert!(
            status == StatusCode::FORBIDDEN || status.is_redirection(),
            "{secret}: {status}"
        );
    }
    // The login page no longer asks for a token over every namespace.
    let (status, _, form) = respond(
        &h.api,
        Request::get("/login").body(Body::empty()).expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let form = String::from_utf8_lossy(&form);
    assert!(!form.contains("every namespace"), "{form}");
}
