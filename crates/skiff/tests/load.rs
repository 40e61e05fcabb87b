//! Under load, on the real engine: a burst of async calls to an `exec` function and a
//! stream of concurrent sync calls all succeed (a call that waits for a container is not a
//! call that failed), the containers alive stay bounded while they run, and none is left
//! once the function has been idle past its idle timeout.
//!
//! By default the burst is 300 async calls (the size that once left 286 of them dead) and
//! 150 sync calls, 50 at a time: each call is a container created, started and removed, and
//! this is what CI runs. `SKIFF_TEST_LOAD=full` runs 1000 and 500, about ten minutes on a
//! 2-core machine.

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use skiff_testing::{skiff_bin, wait_until, Daemon};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Calls running at once (the daemon's default `--max-concurrent-calls`).
const MAX_RUNNING: usize = 64;
/// Containers prepared ahead of calls at most (the default `--exec-prewarm-max`).
const PREWARM_MAX: usize = 8;
/// Removals pending beyond which preparations wait (`skiff_invoker::exec::REMOVAL_BACKLOG`).
const REMOVAL_BACKLOG: usize = 32;

/// `full` calls with `SKIFF_TEST_LOAD=full`, else `default`.
fn burst_size(full: usize, default: usize) -> usize {
    if std::env::var("SKIFF_TEST_LOAD").is_ok_and(|v| v == "full") {
        full
    } else {
        default
    }
}

/// How many calls of `function` have `status`, from the newest 1000 records.
async fn count(d: &Daemon, function: &str, status: &str) -> usize {
    d.calls(&format!("function={function}&status={status}&limit=1000"))
        .await
        .len()
}

/// Samples the containers of a function every 200 ms until finished (or dropped: a test
/// that fails does not wait for it).
struct Sampler {
    stop: Arc<AtomicBool>,
    task: Option<tokio::task::JoinHandle<usize>>,
}

impl Sampler {
    fn start(d: &Daemon, function: &str) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let daemon = d.id.clone();
        let function = function.to_string();
        let stopped = stop.clone();
        let task = tokio::task::spawn_blocking(move || {
            let mut most = 0;
            while !stopped.load(Ordering::Acquire) {
                let of_daemon =
                    skiff_testing::containers_with_label(&format!("skiff.daemon={daemon}"));
                let alive =
                    skiff_testing::containers_with_label(&format!("skiff.function={function}"))
                        .into_iter()
                        .filter(|c| of_daemon.contains(c))
                        .count();
                most = most.max(alive);
                std::thread::sleep(Duration::from_millis(200));
            }
            most
        });
        Sampler {
            stop,
            task: Some(task),
        }
    }

    /// The most containers seen at once.
    async fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::Release);
        match self.task.take() {
            Some(task) => task.await.expect("sampler"),
            None => 0,
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_async_calls_to_an_exec_function_all_succeed_and_leave_nothing_behind() {
    let n = burst_size(1000, 300);
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &["--exec-idle-timeout", "3s"]).await else {
        return;
    };
    d.deploy(
        "work",
        json!({"image": "skiff/testfn:latest", "timeout": "10s",
               "env": {"MODE": "sleep", "SLEEP_MS": "200"}}),
    )
    .await;
    let sampler = Sampler::start(&d, "work");
    let client = d.client();
    let url = format!("{}/v1/functions/work/invoke", d.url);
    let enqueues = (0..n).map(|i| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let response = client
                .post(url)
                .header("Prefer", "respond-async")
                .body(format!("call {i}"))
                .send()
                .await
                .expect("enqueue");
            assert_eq!(response.status(), StatusCode::ACCEPTED);
        }
    });
    futures::stream::iter(enqueues)
        .buffer_unordered(50)
        .collect::<Vec<()>>()
        .await;
    wait_until(
        &format!("all {n} calls succeeded"),
        Duration::from_secs(900),
        async || {
            let done = count(&d, "work", "succeeded").await;
            let dead = count(&d, "work", "failed").await;
            assert_eq!(dead, 0, "no call may fail:\n{}", d.log());
            done == n
        },
    )
    .await;
    let most = sampler.finish().await;
    assert!(
        most <= MAX_RUNNING + PREWARM_MAX + REMOVAL_BACKLOG,
        "{most} containers of the function were alive at once"
    );
    // Every call ran once and succeeded at its first attempt: waiting is not failing.
    let records = d.calls("function=work&limit=1000").await;
    assert_eq!(records.len(), n);
    for record in &records {
        assert_eq!(record["status"], "succeeded", "{record}");
        assert_eq!(record["attempt"], 1, "{record}");
    }
    // Idle past its idle timeout, the function keeps no container.
    wait_until(
        "no container of the function is left",
        Duration::from_secs(60),
        async || d.function_containers("work").is_empty(),
    )
    .await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_exec_calls_fifty_at_a_time_all_succeed() {
    let n = burst_size(500, 150);
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &["--exec-idle-timeout", "3s"]).await else {
        return;
    };
    d.deploy(
        "echo",
        json!({"image": "skiff/testfn:latest", "timeout": "30s"}),
    )
    .await;
    let client = d.client();
    let url = format!("{}/v1/functions/echo/invoke", d.url);
    let calls = (0..n).map(|i| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let response = client
                .post(url)
                .body(format!("call {i}"))
                .send()
                .await
                .expect("call");
            let status = response.status();
            let body = response.text().await.expect("body");
            (i, status, body)
        }
    });
    let answers: Vec<(usize, StatusCode, String)> = futures::stream::iter(calls)
        .buffer_unordered(50)
        .collect()
        .await;
    let failed: Vec<_> = answers
        .iter()
        .filter(|(i, status, body)| *status != StatusCode::OK || *body != format!("call {i}"))
        .collect();
    assert!(
        failed.is_empty(),
        "{} calls failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    let records: Vec<Value> = d.calls("function=echo&limit=1000").await;
    assert_eq!(records.len(), n);
    assert!(records.iter().all(|r| r["status"] == "succeeded"));
    wait_until(
        "no container of the function is left",
        Duration::from_secs(60),
        async || d.function_containers("echo").is_empty(),
    )
    .await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_calls_are_claimed_within_their_functions_concurrency() {
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &[]).await else {
        return;
    };
    // One instance serving one call at a time, and a start budget shorter than the queue
    // of twelve calls of 300 ms would take to drain through it.
    d.deploy(
        "one",
        json!({"image": "skiff/echo-http:latest", "contract": "http", "concurrency": 1,
               "max_instances": 1, "max_wait": "3s", "timeout": "10s"}),
    )
    .await;
    for i in 0..12 {
        let answer = d
            .call_async("/fn/one?sleep_ms=300", format!("call {i}"), None)
            .await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text());
    }
    wait_until(
        "all 12 calls succeeded",
        Duration::from_secs(120),
        async || count(&d, "one", "succeeded").await == 12,
    )
    .await;
    for record in d.calls("function=one&limit=100").await {
        assert_eq!(record["attempt"], 1, "{record}");
    }
    // The dispatcher took one call at a time: none waited past its start budget to be
    // refused and put back.
    let metrics = d.get_text("/metrics").await;
    assert!(
        !metrics.contains(r#"skiff_calls_total{function="one",status="failed"}"#),
        "{metrics}"
    );
    d.stop().await;
}
