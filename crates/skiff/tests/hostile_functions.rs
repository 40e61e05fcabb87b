//! Functions acting against the platform or each other, on the real engine: a callback
//! aimed at the daemon's own API, and functions reaching each other's containers.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use skiff_testing::{container_ip, eventually, skiff_bin, Answer, Daemon};
use std::time::Duration;

/// Calls `name` with `body`, waiting at most a minute; the status and the answer as text.
async fn call_within_a_minute(d: &Daemon, name: &str, body: &str) -> (StatusCode, String) {
    let request = d
        .request(Method::POST, &format!("/fn/{name}"))
        .body(body.to_string())
        .timeout(Duration::from_secs(60));
    Answer::of(request).await.status_text()
}

/// What testfn `MODE=request` printed: the status code and the body.
fn answer(text: &str) -> (String, String) {
    let (status, body) = text.split_once('\n').unwrap_or((text, ""));
    (status.trim().to_string(), body.to_string())
}

#[tokio::test]
async fn a_function_cannot_aim_a_callback_at_the_daemon() {
    if !skiff_testing::ready() {
        return;
    }
    let d = Daemon::start(skiff_bin!(), &[]).await;
    d.deploy("victim", json!({"image": "skiff/testfn:latest"}))
        .await;
    let port = d.url.rsplit(':').next().expect("port").to_string();
    // The function API's address, as functions see it.
    let api = d
        .exec_env("envfn")
        .await
        .remove("SKIFF_API_URL")
        .expect("SKIFF_API_URL");
    for (target, why) in [
        (
            format!("http://127.0.0.1:{port}/2015-03-31/functions"),
            "loopback",
        ),
        (
            format!("http://localhost:{port}/v1/functions/evil"),
            "loopback",
        ),
        (format!("http://[::ffff:127.0.0.1]:{port}/x"), "loopback"),
        (
            "http://169.254.169.254/latest/meta-data".to_string(),
            "link-local",
        ),
        (
            format!("{api}/v1/functions/victim/invoke"),
            "functions' network",
        ),
    ] {
        let name = "attacker";
        d.deploy(
            name,
            json!({"image": "skiff/testfn:latest",
                   "env": {"MODE": "request", "METHOD": "POST",
                           "REQUEST_PATH": "/v1/functions/victim/invoke",
                           "HEADERS": format!("Prefer: respond-async;;X-Skiff-Callback-Url: {target}")}}),
        )
        .await;
        let (status, text) = call_within_a_minute(&d, name, "{}").await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let (code, body) = answer(&text);
        assert_eq!(code, "400", "{target}: {text}");
        let body: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(body["error"]["code"], "invalid_request", "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(why), "{target}: {message}");
    }
    // Nothing was queued for the victim.
    let page = d.get_json("/v1/calls?function=victim").await;
    assert_eq!(page["calls"].as_array().map(Vec::len), Some(0), "{page}");
    d.stop().await;
}

#[tokio::test]
async fn callbacks_are_checked_again_when_they_are_sent() {
    if !skiff_testing::ready() {
        return;
    }
    // A receiver on loopback that counts what reaches it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hook = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let (tx, mut reached) = tokio::sync::mpsc::unbounded_channel::<()>();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let tx = tx.clone();
            async move {
                let _ = tx.send(());
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    // Accepted while loopback was allowed; the daemon is killed before the call ends.
    let mut d = Daemon::start(skiff_bin!(), &["--callback-allow", "127.0.0.1/32"]).await;
    d.deploy(
        "slow",
        json!({"image": "skiff/testfn:latest",
               "env": {"MODE": "sleep", "SLEEP_MS": "3000"}}),
    )
    .await;
    let accepted = d
        .call_async("/v1/functions/slow/invoke", "later", Some(&hook))
        .await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED);
    let id = accepted.call_id().expect("id");
    d.kill();
    // Restarted without the allowance: the call runs again and succeeds, and its callback,
    // stored with the call, is refused at the moment it would be sent.
    d.restart_with(&[]).await;
    eventually("the call to succeed", Duration::from_secs(60), || async {
        (d.get_json(&format!("/v1/calls/{id}")).await["status"] == "succeeded").then_some(())
    })
    .await;
    eventually(
        "the refusal in the log",
        Duration::from_secs(30),
        || async {
            let log = d.plain_log();
            (log.contains("callback not delivered") && log.contains("loopback")).then_some(())
        },
    )
    .await;
    assert!(
        tokio::time::timeout(Duration::from_secs(3), reached.recv())
            .await
            .is_err(),
        "the callback reached loopback"
    );
    d.stop().await;
}

#[tokio::test]
async fn functions_cannot_reach_each_others_containers() {
    if !skiff_testing::ready() {
        return;
    }
    let d = Daemon::start(skiff_bin!(), &[]).await;
    // An http instance, up from deploy on.
    d.deploy(
        "web",
        json!({"image": "skiff/echo-http:latest", "contract": "http", "min_instances": 1}),
    )
    .await;
    // Its address, once it has one (a container being started has none yet).
    let web_ip = eventually("web's instance", Duration::from_secs(60), || async {
        d.function_containers("web")
            .iter()
            .map(|id| container_ip(id))
            .find(|ip| !ip.is_empty())
    })
    .await;
    d.deploy(
        "probe",
        json!({"image": "skiff/testfn:latest", "env": {"MODE": "connect"}}),
    )
    .await;
    // An exec function cannot reach the http instance...
    let (status, text) = call_within_a_minute(&d, "probe", &format!("{web_ip}:8080")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.starts_with("failed"), "exec -> instance: {text}");
    // ...but reaches skiff's function API, on the network's gateway.
    let env = d.exec_env("envfn").await;
    let api = env
        .get("SKIFF_API_URL")
        .and_then(|url| url.strip_prefix("http://"))
        .expect("SKIFF_API_URL")
        .to_string();
    let (_, text) = call_within_a_minute(&d, "probe", &api).await;
    assert_eq!(text.trim(), "connected", "exec -> function API");

    // The other way: an exec container listening while its call runs...
    d.deploy(
        "listener",
        json!({"image": "skiff/testfn:latest", "timeout": "60s",
               "env": {"MODE": "listen", "LISTEN_PORT": "9000"}}),
    )
    .await;
    let accepted = d
        .call_async("/v1/functions/listener/invoke", "", None)
        .await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED);
    // ...which the host (skiff) reaches...
    let listening = eventually("the listener", Duration::from_secs(60), || async {
        for id in d.function_containers("listener") {
            let ip = container_ip(&id);
            let addr = format!("{ip}:9000");
            if let Ok(Ok(_)) = tokio::time::timeout(
                Duration::from_secs(1),
                tokio::net::TcpStream::connect(&addr),
            )
            .await
            {
                return Some(addr);
            }
        }
        None
    })
    .await;
    // ...and the http instance does not.
    let (status, text) = d
        .get(&format!("/fn/web/connect?addr={listening}"))
        .await
        .status_text();
    assert_eq!(status, StatusCode::BAD_GATEWAY, "instance -> exec: {text}");
    assert!(text.starts_with("failed"), "{text}");
    // The instance reaches the function API too.
    let answer = d.get(&format!("/fn/web/connect?addr={api}")).await;
    assert_eq!(answer.status, StatusCode::OK, "instance -> function API");
    assert_eq!(d.delete_function("listener").await, StatusCode::NO_CONTENT);
    d.stop().await;
}
