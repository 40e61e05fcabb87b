//! Triggers on the real engine: cron schedules that fire async calls with their payload,
//! never twice across a SIGKILL, with the missed-tick policy applied after a restart; NATS
//! JetStream subscriptions (a real `nats-server -js`) that acknowledge after success and
//! get failed messages delivered again; typed errors for bad triggers.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use skiff_testing::cli::assert_one_error_line;
use skiff_testing::{poll, skiff_bin, Answer, Daemon, Nats};
use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

/// How often the calls and triggers are looked at while waiting.
const WAIT_EVERY: Duration = Duration::from_millis(200);

/// The daemon's arguments: failed async calls are retried soon.
const ARGS: &[&str] = &["--async-retry-delay", "200ms"];

/// Deploys `skiff/testfn` in `report` mode and checks that it reports: the image is pinned
/// at deploy, so a tag rebuilt meanwhile by another checkout sharing the engine (with an
/// older testfn) cannot change what the function runs; such a tag is rebuilt and the
/// function deployed again.
async fn deploy_report(d: &Daemon, name: &str) {
    for _ in 0..5 {
        d.deploy(
            name,
            json!({"image": "skiff/testfn:latest", "env": {"MODE": "report"}, "timeout": "10s"}),
        )
        .await;
        if d.invoke(name, "probe").await.status.is_success() {
            return;
        }
        let _ = Command::new("bash")
            .arg(skiff_testing::repo_root().join("scripts/build-examples.sh"))
            .output();
    }
    panic!("skiff/testfn has no report mode:\n{}", d.log());
}

async fn put_trigger(d: &Daemon, name: &str, spec: Value) -> (StatusCode, Value) {
    Answer::of(
        d.request(Method::PUT, &format!("/v1/triggers/{name}"))
            .json(&spec),
    )
    .await
    .status_json()
}

/// Every call of `function` started by `trigger` (`cron`, `queue`), oldest first.
async fn calls(d: &Daemon, function: &str, trigger: &str) -> Vec<Value> {
    d.calls(&format!("function={function}&trigger={trigger}&limit=1000"))
        .await
}

/// Waits until `check` holds on the calls of `function` from `trigger`, or panics.
async fn wait_calls(
    d: &Daemon,
    function: &str,
    trigger: &str,
    limit: Duration,
    what: &str,
    check: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let mut found = Vec::new();
    let done = poll(limit, WAIT_EVERY, async || {
        found = calls(d, function, trigger).await;
        check(&found).then(|| found.clone())
    })
    .await;
    done.unwrap_or_else(|| {
        panic!(
            "{what}: not within {limit:?}; calls: {found:#?}\n{}",
            d.log()
        )
    })
}

fn finished(calls: &[Value]) -> usize {
    calls
        .iter()
        .filter(|c| c["status"] == "succeeded" || c["status"] == "failed" || c["status"] == "dead")
        .count()
}

/// Cron calls that reached a final status (an async call's `failed` is retried).
fn settled(calls: &[Value]) -> usize {
    calls
        .iter()
        .filter(|c| c["status"] == "succeeded" || c["status"] == "dead")
        .count()
}

fn tick_of(call: &Value) -> chrono::DateTime<chrono::Utc> {
    let id: uuid::Uuid = call["id"].as_str().expect("id").parse().expect("uuid");
    skiff_core::trigger::tick_of_call_id(id).expect("a cron call id carries its tick")
}

#[tokio::test]
async fn a_cron_trigger_fires_async_calls_with_its_payload() {
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), ARGS).await else {
        return;
    };
    deploy_report(&d, "ticker").await;
    let (status, body) = put_trigger(
        &d,
        "every-second",
        json!({"function": "ticker", "cron": {"schedule": "* * * * * *"}, "payload": {"n": 1}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["kind"], "cron");
    assert_eq!(body["state"], "scheduled");
    assert_eq!(body["cron"]["timezone"], "UTC");
    assert_eq!(body["cron"]["missed"], "run_once");
    assert!(body["next_tick"].is_string(), "{body}");

    let fired = wait_calls(
        &d,
        "ticker",
        "cron",
        Duration::from_secs(30),
        "3 ticks run",
        |c| c.iter().filter(|c| c["status"] == "succeeded").count() >= 3,
    )
    .await;
    for call in fired.iter().filter(|c| c["status"] == "succeeded") {
        assert_eq!(call["trigger"], "cron");
        assert_eq!(call["request_size"], 7);
        let id = call["id"].as_str().expect("id");
        let log = d.logs(id).await;
        assert!(log.contains("body={\"n\":1}"), "{log}");
        assert!(
            log.contains("SKIFF_HEADER_X_SKIFF_TRIGGER=every-second"),
            "{log}"
        );
        assert!(
            log.contains("SKIFF_HEADER_CONTENT_TYPE=application/json"),
            "{log}"
        );
        let tick = tick_of(call);
        assert_eq!(
            tick.timestamp_subsec_millis(),
            0,
            "ticks fall on whole seconds"
        );
        assert!(
            log.contains(&format!(
                "SKIFF_HEADER_X_SKIFF_SCHEDULED_AT={}",
                tick.to_rfc3339()
            )),
            "{log}"
        );
    }
    let ticks: Vec<_> = fired.iter().map(tick_of).collect();
    let unique: HashSet<_> = ticks.iter().collect();
    assert_eq!(unique.len(), ticks.len(), "{ticks:?}");

    let metrics = d.get_text("/metrics").await;
    assert!(
        metrics.contains("skiff_trigger_firings_total{trigger=\"every-second\",result=\"fired\"}"),
        "{metrics}"
    );

    // The CLI lists and shows it.
    let out = Command::new(skiff_bin!())
        .env("SKIFF_CLI_CONFIG", d.cli_config())
        .args(["--url", &d.url, "triggers"])
        .output()
        .expect("skiff triggers");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.starts_with("NAME"), "{text}");
    assert!(
        text.contains("every-second") && text.contains("* * * * * * (UTC)"),
        "{text}"
    );
    let out = Command::new(skiff_bin!())
        .env("SKIFF_CLI_CONFIG", d.cli_config())
        .args(["--url", &d.url, "--json", "triggers", "get", "every-second"])
        .output()
        .expect("skiff triggers get");
    let shown: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(shown["function"], "ticker");

    // Deleted: no tick after that.
    let out = Command::new(skiff_bin!())
        .env("SKIFF_CLI_CONFIG", d.cli_config())
        .args(["--url", &d.url, "triggers", "rm", "every-second"])
        .output()
        .expect("skiff triggers rm");
    assert!(out.status.success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = calls(&d, "ticker", "cron").await.len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(calls(&d, "ticker", "cron").await.len(), before);
    let (status, body) = d.get("/v1/triggers/every-second").await.status_json();
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "trigger_not_found");
    d.stop().await;
}

#[tokio::test]
async fn no_tick_fires_twice_across_sigkill() {
    let Some(mut d) = Daemon::start_if_ready(skiff_bin!(), ARGS).await else {
        return;
    };
    deploy_report(&d, "ticker").await;
    let (status, body) = put_trigger(
        &d,
        "steady",
        json!({"function": "ticker", "cron": {"schedule": "* * * * * *"}, "body": "tick"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    wait_calls(
        &d,
        "ticker",
        "cron",
        Duration::from_secs(30),
        "ticks before the kill",
        |c| c.len() >= 3,
    )
    .await;
    d.kill();
    d.restart().await;
    let after_restart = calls(&d, "ticker", "cron").await.len();
    let all = wait_calls(
        &d,
        "ticker",
        "cron",
        Duration::from_secs(60),
        "ticks after the restart",
        |c| c.len() >= after_restart + 3 && settled(c) == c.len(),
    )
    .await;
    let ticks: Vec<_> = all.iter().map(tick_of).collect();
    let unique: HashSet<_> = ticks.iter().collect();
    assert_eq!(unique.len(), ticks.len(), "one call per tick: {ticks:?}");
    // A tick's call running at the kill is resumed by the queue after the restart (the
    // same call id): every call succeeded, and no tick got a second call.
    for call in &all {
        assert_eq!(call["status"], "succeeded", "{call}");
        assert_eq!(call["attempt"], 1, "no tick was retried: {call}");
    }
    d.stop().await;
}

#[tokio::test]
async fn ticks_missed_while_down_run_once_or_are_skipped() {
    let Some(mut d) = Daemon::start_if_ready(skiff_bin!(), ARGS).await else {
        return;
    };
    deploy_report(&d, "once").await;
    deploy_report(&d, "never").await;
    // One tick a minute, a few seconds from now: the daemon is down when it passes.
    let second = (chrono::Utc::now() + chrono::Duration::seconds(4))
        .format("%S")
        .to_string();
    let schedule = format!(
        "{} * * * * *",
        second.trim_start_matches('0').parse::<u32>().unwrap_or(0)
    );
    for (name, missed) in [("once", "run_once"), ("never", "skip")] {
        let (status, body) = put_trigger(
            &d,
            name,
            json!({"function": name, "cron": {"schedule": schedule, "missed": missed}}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    d.kill();
    tokio::time::sleep(Duration::from_secs(7)).await;
    d.restart().await;
    let once = wait_calls(
        &d,
        "once",
        "cron",
        Duration::from_secs(20),
        "the missed tick runs once",
        |c| settled(c) == 1,
    )
    .await;
    assert_eq!(once.len(), 1);
    assert_eq!(once[0]["status"], "succeeded", "{once:#?}\n{}", d.log());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        calls(&d, "once", "cron").await.len(),
        1,
        "only one call for the window"
    );
    assert!(
        calls(&d, "never", "cron").await.is_empty(),
        "skip fires nothing for it"
    );
    let (_, never) = d.get("/v1/triggers/never").await.status_json();
    assert!(
        never["last_tick"].is_string(),
        "the skipped tick is recorded: {never}"
    );
    d.stop().await;
}

#[tokio::test]
async fn bad_triggers_get_typed_errors() {
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), ARGS).await else {
        return;
    };
    deploy_report(&d, "target").await;
    for (spec, status, code, field) in [
        (
            json!({"function": "target", "cron": {"schedule": "61 * * * *"}}),
            400,
            "invalid_trigger",
            Some("cron.schedule"),
        ),
        (
            // February 30th never comes.
            json!({"function": "target", "cron": {"schedule": "0 0 30 2 *"}}),
            400,
            "invalid_trigger",
            Some("cron.schedule"),
        ),
        (
            json!({"function": "target", "cron": {"schedule": "* * * * *", "timezone": "Mars/Olympus"}}),
            400,
            "invalid_trigger",
            Some("cron.timezone"),
        ),
        (
            json!({"function": "target"}),
            400,
            "invalid_trigger",
            Some("cron"),
        ),
        (
            json!({"function": "target", "cron": {"schedule": "* * * * *"}, "extra": true}),
            400,
            "invalid_trigger",
            None,
        ),
        (
            json!({"function": "target", "nats": {"url": "http://x:1", "stream": "S", "subjects": ["a"]}}),
            400,
            "invalid_trigger",
            Some("nats.url"),
        ),
        (
            json!({"function": "nope", "cron": {"schedule": "* * * * *"}}),
            404,
            "function_not_found",
            None,
        ),
    ] {
        let (got, body) = put_trigger(&d, "t", spec.clone()).await;
        assert_eq!(got.as_u16(), status, "{spec}: {body}");
        assert_eq!(body["error"]["code"], code, "{spec}: {body}");
        if let Some(field) = field {
            assert_eq!(body["error"]["field"], field, "{spec}: {body}");
        }
    }
    let (got, body) = put_trigger(
        &d,
        "bad name",
        json!({"function": "target", "cron": {"schedule": "@hourly"}}),
    )
    .await;
    assert_eq!(got, StatusCode::BAD_REQUEST, "{body}");
    let out = Command::new(skiff_bin!())
        .env("SKIFF_CLI_CONFIG", d.cli_config())
        .args([
            "--url",
            &d.url,
            "triggers",
            "create",
            "t",
            "--function",
            "nope",
            "--cron",
            "* * * * *",
        ])
        .output()
        .expect("skiff triggers create");
    assert_eq!(out.status.code(), Some(1));
    let err = assert_one_error_line(&out);
    assert!(err.contains("function_not_found"), "{err}");

    // The OpenAPI document describes the trigger routes and shapes.
    let (_, doc) = d.get("/v1/openapi.json").await.status_json();
    for path in ["/v1/triggers", "/v1/triggers/{name}"] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    for method in ["get", "put", "delete"] {
        assert!(
            doc["paths"]["/v1/triggers/{name}"].get(method).is_some(),
            "{method}"
        );
    }
    for schema in [
        "TriggerSpec",
        "TriggerView",
        "CronSpec",
        "NatsSpec",
        "MissedTicks",
    ] {
        assert!(
            doc["components"]["schemas"].get(schema).is_some(),
            "{schema} missing"
        );
    }

    // Deleting a function deletes its triggers.
    let (status, _) = put_trigger(
        &d,
        "hourly",
        json!({"function": "target", "cron": {"schedule": "@hourly"}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, replaced) = put_trigger(
        &d,
        "hourly",
        json!({"function": "target", "cron": {"schedule": "@daily"}}),
    )
    .await;
    assert_eq!(replaced["cron"]["schedule"], "@daily");
    assert_eq!(d.delete_function("target").await, StatusCode::NO_CONTENT);
    let (_, list) = d.get("/v1/triggers").await.status_json();
    assert_eq!(list["triggers"], json!([]), "{list}");
    d.stop().await;
}

async fn wait_state(d: &Daemon, trigger: &str, state: &str, limit: Duration) -> Value {
    let mut body = Value::Null;
    let reached = poll(limit, Duration::from_millis(100), async || {
        body = d.get_json(&format!("/v1/triggers/{trigger}")).await;
        (body["state"] == state).then(|| body.clone())
    })
    .await;
    reached.unwrap_or_else(|| panic!("trigger {trigger} never {state}: {body}\n{}", d.log()))
}

/// The attempt and the status of each of `calls`, in the order of their attempts.
fn attempts(calls: &mut [(Value, String)]) -> Vec<(u64, &str)> {
    calls.sort_by_key(|(c, _)| c["attempt"].as_u64());
    calls
        .iter()
        .map(|(c, _)| {
            (
                c["attempt"].as_u64().unwrap_or(0),
                c["status"].as_str().unwrap_or(""),
            )
        })
        .collect()
}

/// The calls whose log shows `body`, with their logs.
async fn calls_with_body(d: &Daemon, function: &str, body: &str) -> Vec<(Value, String)> {
    let mut found = Vec::new();
    for call in calls(d, function, "queue").await {
        let log = d.logs(call["id"].as_str().expect("id")).await;
        if log.contains(&format!("body={body}\n")) {
            found.push((call, log));
        }
    }
    found
}

#[tokio::test]
async fn nats_messages_are_acked_after_success_and_redelivered_after_failure() {
    if !Nats::available() {
        return;
    }
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), ARGS).await else {
        return;
    };
    let nats = Nats::start(skiff_testing::free_port()).await;
    deploy_report(&d, "worker").await;
    let (status, body) = put_trigger(
        &d,
        "jobs",
        json!({"function": "worker", "nats": {"url": nats.url(), "stream": "JOBS", "subjects": ["jobs.>"], "max_deliver": 2}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["kind"], "nats");
    wait_state(&d, "jobs", "connected", Duration::from_secs(20)).await;

    nats.publish("jobs.ok", "ok-1", &[("X-Order", "42")]).await;
    nats.publish("jobs.flaky", "fail-once", &[]).await;
    nats.publish("jobs.bad", "fail-always", &[]).await;

    wait_calls(
        &d,
        "worker",
        "queue",
        Duration::from_secs(30),
        "5 deliveries",
        |c| finished(c) >= 5,
    )
    .await;
    // Nothing more comes: the successes were acked, the last failure given up.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(calls(&d, "worker", "queue").await.len(), 5);

    let ok = calls_with_body(&d, "worker", "ok-1").await;
    assert_eq!(ok.len(), 1, "acked after its success: {ok:?}");
    assert_eq!(ok[0].0["status"], "succeeded");
    assert!(ok[0].1.contains("SKIFF_HEADER_X_ORDER=42"), "{}", ok[0].1);
    assert!(
        ok[0].1.contains("SKIFF_HEADER_X_NATS_SUBJECT=jobs.ok"),
        "{}",
        ok[0].1
    );
    assert!(
        ok[0].1.contains("SKIFF_HEADER_X_SKIFF_TRIGGER=jobs"),
        "{}",
        ok[0].1
    );

    let mut flaky = calls_with_body(&d, "worker", "fail-once").await;
    let outcomes = attempts(&mut flaky);
    assert_eq!(
        outcomes,
        vec![(1, "failed"), (2, "succeeded")],
        "redelivered after its failure"
    );

    let mut bad = calls_with_body(&d, "worker", "fail-always").await;
    let outcomes = attempts(&mut bad);
    assert_eq!(
        outcomes,
        vec![(1, "failed"), (2, "failed")],
        "given up after max_deliver"
    );
    assert_eq!(bad[1].0["error_type"], "function_error");

    let metrics = d.get_text("/metrics").await;
    for (result, count) in [("acked", 2), ("retried", 2), ("given_up", 1)] {
        let line =
            format!("skiff_trigger_firings_total{{trigger=\"jobs\",result=\"{result}\"}} {count}");
        assert!(metrics.contains(&line), "{line} missing:\n{metrics}");
    }
    d.stop().await;
}

#[tokio::test]
async fn a_nats_trigger_connects_once_the_broker_is_up() {
    if !Nats::available() {
        return;
    }
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), ARGS).await else {
        return;
    };
    deploy_report(&d, "late").await;
    let port = skiff_testing::free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let (status, body) = put_trigger(
        &d,
        "waiting",
        json!({"function": "late", "nats": {"url": url, "stream": "LATE", "subjects": ["late"]}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, shown) = d.get("/v1/triggers/waiting").await.status_json();
    assert_eq!(shown["state"], "connecting", "{shown}");
    let mut shown = Value::Null;
    let failed = poll(
        Duration::from_secs(20),
        Duration::from_millis(100),
        async || {
            shown = d.get_json("/v1/triggers/waiting").await;
            shown["last_error"].is_string().then_some(())
        },
    )
    .await;
    assert!(failed.is_some(), "{shown}");
    assert_eq!(shown["state"], "connecting", "{shown}");
    let nats = Nats::start(port).await;
    wait_state(&d, "waiting", "connected", Duration::from_secs(40)).await;
    nats.publish("late", "hello", &[]).await;
    let done = wait_calls(
        &d,
        "late",
        "queue",
        Duration::from_secs(30),
        "the message is handled",
        |c| finished(c) == 1,
    )
    .await;
    assert_eq!(done[0]["status"], "succeeded");
    d.stop().await;
}
