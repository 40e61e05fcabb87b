//! The Docker engine restarted in the middle of load, on the test's own machine: skiff
//! stays up, the calls in flight end with a typed error rather than hang, instances are
//! created again once the engine is back, and nothing is left behind.
//!
//! Restarting the engine stops every container on the machine, so this test runs only where
//! `SKIFF_TEST_ENGINE_RESTART=1` says that is fine (`.ci/run` sets it); elsewhere it says
//! so and passes without running.

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};
use skiff_testing::{eventually, skiff_bin, Daemon};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Whether the engine answers.
fn engine_answers() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Restarts the engine: through its service when there is one, else by stopping the
/// `dockerd` process and starting it again with the same command line. Returns once the
/// engine answers again.
fn restart_engine() {
    let by_service = Command::new("service")
        .args(["docker", "restart"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !by_service {
        let pid = String::from_utf8(
            Command::new("pidof")
                .arg("dockerd")
                .output()
                .expect("pidof")
                .stdout,
        )
        .expect("pid");
        let pid = pid.split_whitespace().next().expect("a running dockerd");
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("dockerd cmdline");
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        assert!(Command::new("kill")
            .args(["-TERM", pid])
            .status()
            .expect("kill")
            .success());
        let gone = Instant::now();
        while std::path::Path::new(&format!("/proc/{pid}")).exists() {
            assert!(
                gone.elapsed() < Duration::from_secs(60),
                "dockerd did not stop"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = std::fs::File::create("/tmp/dockerd-restarted.log").expect("log");
        // `setsid -f` forks the engine into its own session and returns.
        let started = Command::new("setsid")
            .arg("-f")
            .args(&args)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .status()
            .expect("start dockerd again");
        assert!(started.success(), "dockerd did not start again");
    }
    let back = Instant::now();
    while !engine_answers() {
        assert!(
            back.elapsed() < Duration::from_secs(120),
            "the engine did not come back"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// One answer of the load: its status and its body, or the client's error.
type Outcome = Result<(StatusCode, String), String>;

/// Calls a function through its public route.
async fn send(client: &reqwest::Client, url: &str) -> Outcome {
    let response = client
        .post(url)
        .body(r#"{"name":"restart"}"#)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.text().await.map_err(|e| e.to_string())?;
    Ok((status, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_restart_under_load_fails_calls_with_a_typed_error_and_skiff_recovers() {
    if std::env::var("SKIFF_TEST_ENGINE_RESTART").as_deref() != Ok("1") {
        eprintln!(
            "engine restart test not run: it restarts this machine's Docker engine; \
             SKIFF_TEST_ENGINE_RESTART=1 runs it (CI does)"
        );
        return;
    }
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &["--exec-idle-timeout", "3s"]).await else {
        return;
    };
    d.deploy(
        "web",
        json!({"image": "skiff/echo-http:latest", "contract": "http", "readiness_path": "/ready",
               "memory": "64Mi", "min_instances": 1, "timeout": "20s"}),
    )
    .await;
    d.deploy(
        "work",
        json!({"image": "skiff/testfn:latest", "timeout": "20s",
               "env": {"MODE": "sleep", "SLEEP_MS": "300"}}),
    )
    .await;
    d.deploy(
        "greet",
        json!({"image": "skiff/lambda-hello:latest", "contract": "lambda", "memory": "64Mi",
               "min_instances": 1, "timeout": "20s"}),
    )
    .await;
    let client = d.client_with(reqwest::Client::builder().timeout(Duration::from_secs(90)));
    let url = |name: &str| format!("{}/fn/{name}", d.url);
    for name in ["web", "work", "greet"] {
        let answer = send(&client, &url(name)).await;
        assert!(
            matches!(answer, Ok((StatusCode::OK, _))),
            "{name}: {answer:?}"
        );
    }

    // Load on all three contracts while the engine restarts.
    let stop = Arc::new(AtomicBool::new(false));
    let loads = ["web", "web", "work", "work", "greet"].map(|name| {
        let (stop, client, url) = (stop.clone(), client.clone(), url(name));
        tokio::spawn(async move {
            let mut outcomes: Vec<(&str, Outcome)> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let answer = send(&client, &url).await;
                let failed = !matches!(answer, Ok((StatusCode::OK, _)));
                outcomes.push((name, answer));
                if failed {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            outcomes
        })
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    let restarted = Instant::now();
    tokio::task::spawn_blocking(restart_engine)
        .await
        .expect("restart");
    eprintln!(
        "the engine restarted in {:.1} s",
        restarted.elapsed().as_secs_f64()
    );
    // The daemon rode it out.
    assert_eq!(
        d.get("/healthz").await.status,
        StatusCode::OK,
        "{}",
        d.log()
    );
    // Once the engine is back, every contract answers again: instances are created anew.
    for name in ["web", "work", "greet"] {
        eventually(
            &format!("{name} to answer after the restart"),
            Duration::from_secs(120),
            || async {
                matches!(send(&client, &url(name)).await, Ok((StatusCode::OK, _))).then_some(())
            },
        )
        .await;
    }
    eprintln!(
        "every function answered again {:.1} s after the restart began",
        restarted.elapsed().as_secs_f64()
    );
    stop.store(true, Ordering::Relaxed);
    let outcomes: Vec<(&str, Outcome)> = join_all(loads)
        .await
        .into_iter()
        .flat_map(|r| r.expect("load task"))
        .collect();

    // Every call got an answer from skiff: a success, or a typed error in the documented
    // body with a server-side status; none hung past the client's timeout or lost its
    // connection.
    let mut failures = std::collections::BTreeMap::new();
    for (name, outcome) in &outcomes {
        let (status, body) = outcome
            .as_ref()
            .unwrap_or_else(|e| panic!("{name}: no answer: {e}\n{}", d.log()));
        if *status == StatusCode::OK {
            continue;
        }
        assert!(
            status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS,
            "{name}: {status} {body}"
        );
        let error: Value = serde_json::from_str(body)
            .unwrap_or_else(|_| panic!("{name}: {status}: not a JSON error: {body}"));
        assert!(
            error["error"]["code"].is_string() && error["error"]["message"].is_string(),
            "{name}: {status} {body}"
        );
        let code = error["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        *failures.entry((*name, status.as_u16(), code)).or_insert(0) += 1;
    }
    eprintln!(
        "{} calls during the restart; typed errors: {failures:?}",
        outcomes.len()
    );
    // Every call has its record, and none is left running.
    eventually(
        "no call record still running",
        Duration::from_secs(60),
        || async {
            let page = d.get_json("/v1/calls?status=running&limit=10").await;
            page["calls"]
                .as_array()
                .is_some_and(|c| c.is_empty())
                .then_some(())
        },
    )
    .await;
    // The containers that died with the engine are removed, and nothing is left behind.
    d.stop().await;
}
