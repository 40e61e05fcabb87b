//! End-to-end tests, on the real Docker engine, of how skiff holds up when things go wrong:
//! instances that keep failing are restarted ever more slowly and their calls fail at once;
//! an idle instance stops at its idle timeout; a restart listens at once whatever the last
//! run left; a shutdown with many containers alive is bounded and leaves none.

use reqwest::StatusCode;
use serde_json::{json, Value};
use skiff_testing::{merged, skiff_bin, wait_until, CreateWatch, Daemon};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// An `http` function of the test image in `mode`, with the fields of `extra`.
fn testfn_http(mode: &str, extra: Value) -> Value {
    merged(
        json!({"image": "skiff/testfn:latest", "contract": "http", "port": 8080,
               "env": {"MODE": mode, "LISTEN_PORT": "8080"},
               "memory": "32Mi", "timeout": "30s", "startup_timeout": "5s"}),
        extra,
    )
}

/// Watches the engine create containers of `function` for daemon `d`.
fn watch_creates(d: &Daemon, function: &str) -> CreateWatch {
    CreateWatch::start(&[
        &format!("skiff.daemon={}", d.id),
        &format!("skiff.function={function}"),
    ])
}

#[tokio::test]
async fn an_image_that_never_starts_is_retried_ever_more_slowly_and_its_calls_fail_at_once() {
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &[]).await else {
        return;
    };
    let watch = watch_creates(&d, "doomed");
    // Exits at once with "failing on purpose": it never becomes ready.
    d.deploy("doomed", testfn_http("exit", json!({"max_instances": 1})))
        .await;

    // The first call waits for a start, which fails: it gets the start's error.
    let (status, body) = d.invoke("doomed", "one").await.status_json();
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"]["code"], "start_failed", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("failing on purpose"), "{message}");
    // After one failure, the next start may come at once; it fails too.
    let (status, body) = d.invoke("doomed", "two").await.status_json();
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"]["code"], "start_failed", "{body}");
    assert_eq!(watch.created().len(), 2);

    // Two in a row: the function backs off. A call now fails at once, with the last start
    // error, instead of starting another container or waiting for its timeout (30 s).
    let view = d.get_json("/v1/functions/doomed").await;
    assert_eq!(view["state"]["status"], "backing_off", "{view}");
    assert_eq!(view["state"]["failures"], 2, "{view}");
    assert!(view["state"]["retry_at"].is_string(), "{view}");
    assert!(
        view["state"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("failing on purpose")),
        "{view}"
    );
    let started = Instant::now();
    let (status, body) = d.invoke("doomed", "three").await.status_json();
    let took = started.elapsed();
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"]["code"], "start_failed", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("keep failing (2 times in a row)")
            && message.contains("failing on purpose"),
        "{message}"
    );
    // Generous: the point is that it does not wait for the call's 30 s timeout.
    assert!(took < Duration::from_secs(5), "answered in {took:?}");
    let call = d.calls("function=doomed&limit=1").await;
    assert_eq!(call[0]["error_type"], "start_failed", "{call:?}");
    assert_eq!(watch.created().len(), 2, "no container while backing off");
    // The dashboard says so too (the state stays until the next start): on the overview and on the function's page, with the error.
    let overview = d.get_text("/").await;
    assert!(
        overview.contains("badge backing_off"),
        "the overview shows the state:\n{overview}"
    );
    let page = d.get_text("/functions/doomed").await;
    assert!(
        page.contains("badge backing_off") && page.contains("failing on purpose"),
        "the function's page shows the state and the last error:\n{page}"
    );

    // The wait (1 s) over, a call starts one again; its failure doubles the wait.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (status, body) = d.invoke("doomed", "four").await.status_json();
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(watch.created().len(), 3);
    let view = d.get_json("/v1/functions/doomed").await;
    assert_eq!(view["state"]["failures"], 3, "{view}");

    // `skiff ls` says so.
    let ls = std::process::Command::new(skiff_bin!())
        .args(["ls", "--url", &d.url])
        .env("SKIFF_CLI_CONFIG", d.cli_config())
        .output()
        .expect("skiff ls");
    let text = String::from_utf8_lossy(&ls.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("doomed"))
        .unwrap_or_default();
    assert!(line.contains("backing off (next start in"), "{text}");

    // A new version starts afresh.
    d.deploy("doomed", testfn_http("listen", json!({"max_instances": 1})))
        .await;
    let view = d.get_json("/v1/functions/doomed").await;
    assert!(view["state"]["failures"].is_null(), "no failure: {view}");
    d.stop().await;
}

#[tokio::test]
async fn an_instance_that_keeps_crashing_gets_a_bounded_number_of_starts() {
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &[]).await else {
        return;
    };
    let watch = watch_creates(&d, "crashy");
    // One instance is always wanted; each one dies as soon as it is ready (killed from
    // outside, which skiff cannot tell from a crash).
    d.deploy(
        "crashy",
        testfn_http("listen", json!({"min_instances": 1, "max_instances": 1})),
    )
    .await;
    // Replaced without a wait, it would start one every 2 s or so (the autoscaler's tick):
    // some 15 in 30 s. Backing off (at once, then 1, 2, 4, 8, 16 s), it starts 6 or so.
    let observed = Duration::from_secs(30);
    let until = Instant::now() + observed;
    let mut refused = None;
    while Instant::now() < until {
        for instance in d.instances("crashy").await {
            if let Some(container) = instance["container"].as_str() {
                let _ = std::process::Command::new("docker")
                    .args(["kill", container])
                    .output();
            }
        }
        let view = d.get_json("/v1/functions/crashy").await;
        if refused.is_none() && view["state"]["status"] == "backing_off" {
            // While it backs off, a call fails at once with the crash's account.
            let started = Instant::now();
            let (status, body) = d.invoke("crashy", "x").await.status_json();
            assert!(started.elapsed() < Duration::from_secs(5), "{body}");
            assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
            assert_eq!(body["error"]["code"], "start_failed", "{body}");
            refused = Some(body["error"]["message"].as_str().unwrap_or("").to_string());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = watch.created().len();
    assert!(
        (3..=8).contains(&started),
        "{started} starts in {observed:?}\n{}",
        d.log()
    );
    let message = refused.expect("the function was seen backing off");
    assert!(
        message.contains("keep failing")
            && message.contains("after it became ready; its output ended with: listening on 8080"),
        "{message}"
    );
    let view = d.get_json("/v1/functions/crashy").await;
    assert!(view["state"]["failures"].as_u64() >= Some(3), "{view}");
    d.stop().await;
}

#[tokio::test]
async fn an_idle_instance_stops_at_its_idle_timeout_not_at_the_end_of_the_window() {
    // Paused instances would stay (as containers): stop them instead.
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &["--keep-paused", "false"]).await else {
        return;
    };
    d.deploy(
        "brief",
        json!({"image": "skiff/echo-http:latest", "contract": "http",
               "readiness_path": "/ready", "memory": "64Mi", "idle_timeout": "2s"}),
    )
    .await;
    assert_eq!(d.invoke("brief", "x").await.status_text().0, StatusCode::OK);
    assert_eq!(d.function_containers("brief").len(), 1);
    let idle_since = Instant::now();
    // The autoscaler's window (60 s) still remembers the call; the idle timeout decides.
    wait_until(
        "the idle instance is gone",
        Duration::from_secs(20),
        async || d.function_containers("brief").is_empty(),
    )
    .await;
    let after = idle_since.elapsed();
    assert!(after >= Duration::from_secs(2), "stopped after {after:?}");
    d.stop().await;
}

/// The labels of a container daemon `d` made for function `function`.
fn labels_of(d: &Daemon, function: &str) -> Vec<String> {
    vec![
        "skiff.managed=true".to_string(),
        format!("skiff.daemon={}", d.id),
        format!("skiff.function={function}"),
    ]
}

#[tokio::test]
async fn a_restart_listens_at_once_and_removes_what_the_last_run_left_in_the_background() {
    let Some(mut d) = Daemon::start_if_ready(skiff_bin!(), &[]).await else {
        return;
    };
    d.deploy(
        "web",
        json!({"image": "skiff/echo-http:latest", "contract": "http",
               "readiness_path": "/ready", "memory": "64Mi", "min_instances": 2}),
    )
    .await;
    wait_until("two instances", Duration::from_secs(30), async || {
        d.function_containers("web").len() == 2
    })
    .await;
    // Killed, the daemon leaves its instances; 98 more containers as its own make 100.
    d.kill();
    let labels = labels_of(&d, "left");
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    skiff_testing::run_sleepers(98, "left", &labels);
    let leftovers: HashSet<String> = d.containers().into_iter().collect();
    assert_eq!(leftovers.len(), 100);

    let started = Instant::now();
    d.restart_unready();
    let client = d.client();
    let health = format!("{}/healthz", d.url);
    let listening = skiff_testing::poll(
        Duration::from_secs(30),
        Duration::from_millis(20),
        async || {
            let answer = client.get(&health).send().await.ok()?;
            (answer.status() == StatusCode::OK).then(|| started.elapsed())
        },
    )
    .await
    .unwrap_or_else(|| panic!("no /healthz within 30s:\n{}", d.log()));
    // The target is under a second; generous for a shared machine, far below the time
    // removing 100 containers takes before listening.
    assert!(
        listening < Duration::from_secs(3),
        "listening after {listening:?}\n{}",
        d.log()
    );

    // Not ready while leftovers remain; ready once they are all gone.
    let readyz = format!("{}/readyz", d.url);
    let mut seen_starting = false;
    let ready_after = skiff_testing::poll(
        Duration::from_secs(60),
        Duration::from_millis(50),
        async || {
            let answer = client.get(&readyz).send().await.ok()?;
            let status = answer.status();
            let body: Value = answer.json().await.ok()?;
            if status == StatusCode::SERVICE_UNAVAILABLE && body["status"] == "starting" {
                seen_starting = true;
                return None;
            }
            assert_eq!(status, StatusCode::OK, "{body}");
            // Ready: no leftover is there any more.
            let left: Vec<String> = d
                .containers()
                .into_iter()
                .filter(|c| leftovers.contains(c))
                .collect();
            assert!(left.is_empty(), "ready with {} leftovers", left.len());
            Some(started.elapsed())
        },
    )
    .await
    .unwrap_or_else(|| panic!("not ready within 60s:\n{}", d.log()));
    assert!(
        seen_starting,
        "/readyz said starting while leftovers remained"
    );
    eprintln!("listening after {listening:?}, leftovers gone after {ready_after:?}");

    // This run's own instances were not taken for leftovers.
    assert_eq!(d.invoke("web", "x").await.status_text().0, StatusCode::OK);
    let instances = d.instances("web").await;
    assert_eq!(instances.len(), 2, "{instances:?}");
    assert!(
        d.function_containers("web")
            .iter()
            .all(|c| !leftovers.contains(c)),
        "new instances"
    );
    d.stop().await;
}

#[tokio::test]
async fn shutdown_with_two_hundred_containers_alive_is_bounded_and_leaves_none() {
    let Some(mut d) = Daemon::start_if_ready(skiff_bin!(), &["--shutdown-grace", "5s"]).await
    else {
        return;
    };
    d.deploy(
        "web",
        json!({"image": "skiff/echo-http:latest", "contract": "http",
               "readiness_path": "/ready", "memory": "64Mi", "min_instances": 4}),
    )
    .await;
    wait_until("four instances", Duration::from_secs(30), async || {
        d.instances("web").await.len() == 4
    })
    .await;
    // 196 more of its containers, as a burst of calls leaves them.
    let labels = labels_of(&d, "burst");
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    skiff_testing::run_sleepers(196, "burst", &labels);
    assert_eq!(d.containers().len(), 200);

    let started = Instant::now();
    let clean = d.terminate().await;
    let took = started.elapsed();
    assert!(clean, "clean exit:\n{}", d.log());
    eprintln!("shutdown with 200 containers took {took:?}");
    // No call was in flight, so the grace period is not used: the bound is the one on
    // removing containers (30 s) plus the one on background tasks (10 s). How many removals
    // fit in it depends on the engine's load; what the daemon could not remove in time, the
    // next start removes.
    assert!(took < Duration::from_secs(45), "took {took:?}\n{}", d.log());
    let log = d.plain_log();
    if log.contains("removed every function container") {
        let left = d.containers();
        assert!(left.is_empty(), "{} containers left:\n{log}", left.len());
    } else {
        assert!(
            log.contains("the next start removes what is left"),
            "neither every container removed nor the bound reported:\n{log}"
        );
        eprintln!("{} containers outlived the bound", d.containers().len());
        d.restart_unready();
        wait_until(
            "the next start removed the rest",
            Duration::from_secs(120),
            async || d.containers().is_empty(),
        )
        .await;
        d.stop().await;
    }
}
