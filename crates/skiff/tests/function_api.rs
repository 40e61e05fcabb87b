//! Functions calling functions on the real engine: the variables every function container
//! gets, a synchronous call from one function to another through the function API, and
//! that API refusing calls without a valid token and having no management routes.

use reqwest::StatusCode;
use serde_json::{json, Value};
use skiff_testing::{env_lines, skiff_bin, Daemon};
use std::collections::HashMap;

#[tokio::test]
async fn exec_and_http_containers_get_the_api_url_and_their_own_token() {
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &[]).await else {
        return;
    };
    let env = d.exec_env("envfn").await;
    let url = env.get("SKIFF_API_URL").expect("SKIFF_API_URL in exec");
    assert!(url.starts_with("http://"), "{url}");
    assert!(
        !url.contains("127.0.0.1"),
        "containers cannot reach the host's loopback: {url}"
    );
    assert!(env["SKIFF_TOKEN"].starts_with("skf2.envfn."), "{env:?}");

    d.deploy(
        "web",
        json!({"image": "skiff/echo-http:latest", "contract": "http"}),
    )
    .await;
    let http: HashMap<String, String> = d
        .client()
        .get(format!("{}/fn/web/env", d.url))
        .send()
        .await
        .expect("env")
        .json()
        .await
        .expect("json");
    assert_eq!(http.get("SKIFF_API_URL"), Some(url));
    assert!(http["SKIFF_TOKEN"].starts_with("skf2.web."), "{http:?}");
    // The daemon never logs a token.
    assert!(!d.log().contains(&env["SKIFF_TOKEN"]));
    assert!(!d.log().contains(&http["SKIFF_TOKEN"]));
    d.stop().await;
}

#[tokio::test]
async fn a_function_calls_another_synchronously() {
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &[]).await else {
        return;
    };
    d.deploy("target", json!({"image": "skiff/testfn:latest"}))
        .await;
    d.deploy(
        "caller",
        json!({"image": "skiff/testfn:latest", "env": {"MODE": "call", "TARGET": "target"}}),
    )
    .await;
    let client = d.client();
    let answer = d.call("caller", "ping through two functions").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text(), "ping through two functions");
    let page = d.get_json("/v1/calls?function=target").await;
    assert_eq!(page["calls"][0]["status"], "succeeded", "{page}");
    assert_eq!(page["calls"][0]["trigger"], "api");
    assert!(
        d.plain_log()
            .contains("function_api{caller=caller instance="),
        "the caller is logged"
    );

    // A call to a function that does not exist fails the caller, with the answer in its log.
    d.deploy(
        "lost",
        json!({"image": "skiff/testfn:latest", "env": {"MODE": "call", "TARGET": "nobody"}}),
    )
    .await;
    let response = client
        .post(format!("{}/fn/lost", d.url))
        .send()
        .await
        .expect("invoke");
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let id = response.headers()["x-skiff-call-id"]
        .to_str()
        .expect("id")
        .to_string();
    let logs = d.logs(&id).await;
    assert!(
        logs.contains("404") && logs.contains("function_not_found"),
        "{logs}"
    );
    d.stop().await;
}

#[tokio::test]
async fn the_function_api_needs_a_valid_token_and_only_invokes() {
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &[]).await else {
        return;
    };
    let env = d.exec_env("envfn").await;
    d.deploy("target", json!({"image": "skiff/testfn:latest"}))
        .await;
    let api = &env["SKIFF_API_URL"];
    let token = &env["SKIFF_TOKEN"];
    let client = d.client();
    let invoke = format!("{api}/v1/functions/target/invoke");

    let mac = token.rsplit('.').next().expect("mac");
    // envfn's container, named as target's, with envfn's MAC.
    let instance = token.split('.').nth(2).expect("instance");
    let forged = format!("skf2.target.{instance}.{mac}");
    let mut tampered = token.clone();
    let last = tampered.pop().expect("a char");
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    for (token, what) in [
        (None, "no token"),
        (Some("skf2.target.0a1b2c3d4e5f.AAAA"), "a made-up MAC"),
        (
            Some(forged.as_str()),
            "another function's name with envfn's MAC",
        ),
        (Some(tampered.as_str()), "a tampered MAC"),
    ] {
        let mut request = client.post(&invoke).body("x");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("call");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"]["code"], "unauthorized", "{what}");
    }

    // With the function's token: sync, async, and following the async call.
    let response = client
        .post(&invoke)
        .bearer_auth(token)
        .body("hello")
        .send()
        .await
        .expect("call");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.expect("text"), "hello");
    let response = client
        .post(&invoke)
        .bearer_auth(token)
        .header("Prefer", "respond-async")
        .body("later")
        .send()
        .await
        .expect("call");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let accepted: Value = response.json().await.expect("json");
    let id = accepted["call_id"].as_str().expect("id");
    let record = client
        .get(format!("{api}/v1/calls/{id}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("call record");
    assert_eq!(record.status(), StatusCode::OK);
    let record: Value = record.json().await.expect("json");
    assert_eq!(record["caller"], "envfn", "{record}");

    // A function reads only the calls it made: a call made from outside, or by another
    // function, is "not found" to it.
    let outside = client
        .post(format!("{}/fn/target", d.url))
        .body("x")
        .send()
        .await
        .expect("call");
    assert_eq!(outside.status(), StatusCode::OK);
    let outside = outside.headers()["x-skiff-call-id"]
        .to_str()
        .expect("id")
        .to_string();
    let other = d.exec_env("other").await;
    let by_other = client
        .post(&invoke)
        .bearer_auth(&other["SKIFF_TOKEN"])
        .body("theirs")
        .send()
        .await
        .expect("call");
    assert_eq!(by_other.status(), StatusCode::OK);
    let by_other = by_other.headers()["x-skiff-call-id"]
        .to_str()
        .expect("id")
        .to_string();
    for id in [&outside, &by_other] {
        let response = client
            .get(format!("{api}/v1/calls/{id}"))
            .bearer_auth(token)
            .send()
            .await
            .expect("call record");
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{id}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"]["code"], "call_not_found");
    }
    let theirs = client
        .get(format!("{api}/v1/calls/{by_other}"))
        .bearer_auth(&other["SKIFF_TOKEN"])
        .send()
        .await
        .expect("call record");
    assert_eq!(theirs.status(), StatusCode::OK, "its own call");

    // The token is not passed on to the function called.
    let response = client
        .post(format!("{api}/fn/envfn"))
        .bearer_auth(token)
        .send()
        .await
        .expect("call");
    assert_eq!(response.status(), StatusCode::OK);
    let called = env_lines(&response.text().await.expect("text"));
    assert!(called.contains_key("SKIFF_METHOD"), "{called:?}");
    assert!(
        !called.contains_key("SKIFF_HEADER_AUTHORIZATION"),
        "{called:?}"
    );

    // Management routes do not exist there, token or not.
    for (method, path) in [
        ("PUT", "/v1/functions/evil"),
        ("DELETE", "/v1/functions/target"),
        ("GET", "/v1/functions"),
        ("POST", "/v1/functions/target/scale"),
        ("GET", "/v1/calls"),
        ("GET", "/metrics"),
    ] {
        let response = client
            .request(method.parse().expect("method"), format!("{api}{path}"))
            .bearer_auth(token)
            .json(&json!({"image": "skiff/testfn:latest"}))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{method} {path}");
    }
    assert_eq!(
        d.get("/v1/functions/target").await.status,
        StatusCode::OK,
        "still deployed"
    );
    d.stop().await;
}
