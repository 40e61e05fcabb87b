//! Daemons on a PostgreSQL store (`skiff serve --store postgres://...`), on the real
//! engine and a real PostgreSQL server (`SKIFF_TEST_POSTGRES`; see `scripts/postgres.sh`).

use reqwest::StatusCode;
use serde_json::json;
use skiff_testing::{skiff_bin, Daemon, Nats, TestDatabase};
use std::time::Duration;

#[tokio::test]
async fn a_daemon_on_postgres_runs_calls_and_finds_its_functions_after_a_restart() {
    if !skiff_testing::ready() {
        return;
    }
    let Some(db) = TestDatabase::create("skiff_restart").await else {
        return;
    };
    let mut d = Daemon::start(skiff_bin!(), &["--store", &db.url]).await;
    assert!(
        d.plain_log().contains("store=\"postgres\"") || d.plain_log().contains("store=postgres"),
        "the daemon says which store it uses:\n{}",
        d.plain_log()
    );
    d.deploy(
        "hello",
        json!({"image": "skiff/hello:latest", "timeout": "10s"}),
    )
    .await;
    let answer = d.invoke("hello", r#"{"name":"Ann"}"#).await;
    assert_eq!(
        answer.status_text(),
        (StatusCode::OK, "Hello Ann!\n".into())
    );
    let sync_id = answer.call_id().expect("a call id");

    let accepted = d
        .call_async("/v1/functions/hello/invoke", r#"{"name":"Bob"}"#, None)
        .await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.text());
    let async_id = accepted.call_id().expect("a call id");
    let record = d
        .wait_call(&async_id, "succeeded", Duration::from_secs(30))
        .await;
    assert_eq!(record["trigger"], "async");
    assert!(d.logs(&async_id).await.contains("greeting Bob"));

    // Restarted on the same database (and data directory): the same daemon id, its
    // function and its call records are there, and it runs calls again.
    let id = d.id.clone();
    assert!(d.terminate().await, "a clean stop:\n{}", d.log());
    d.restart().await;
    assert_eq!(d.id, id, "the data directory keeps its daemon id");
    let listed = d.get_json("/v1/functions").await;
    assert_eq!(listed["functions"][0]["name"], "hello", "{listed}");
    assert_eq!(d.call_record(&sync_id).await["status"], "succeeded");
    assert_eq!(d.call_record(&async_id).await["status"], "succeeded");
    let answer = d.invoke("hello", r#"{"name":"Cy"}"#).await;
    assert_eq!(answer.status_text(), (StatusCode::OK, "Hello Cy!\n".into()));
    d.stop().await;
}

/// Two daemons on `db`, with a short lease.
async fn two_daemons(db: &TestDatabase, lease: &str) -> (Daemon, Daemon) {
    let args = ["--store", db.url.as_str(), "--lease", lease];
    // Daemons sharing a store share the key of its secrets.
    let (key, _) = skiff_store::SecretKeys::new_key().expect("key");
    let start = || {
        Daemon::builder(skiff_bin!())
            .args(&args)
            .env("SKIFF_SECRET_KEY", &key)
            .start()
    };
    let first = start().await;
    let mut second = start().await;
    // The store had a token already: the second daemon made none.
    assert!(second.token.is_empty());
    second.token = first.token.clone();
    assert_ne!(
        first.id, second.id,
        "each data directory has an id of its own"
    );
    (first, second)
}

/// How many times each attempt of each async call ran (keyed `CALL/ATTEMPT`), from the
/// daemons' logs. A retry after a failure is another attempt; a call run again because
/// its daemon died is the same attempt again.
fn runs(daemons: &[&Daemon]) -> std::collections::HashMap<String, usize> {
    let mut runs = std::collections::HashMap::new();
    for d in daemons {
        for line in d.plain_log().lines() {
            if !line.contains("running a queued call") {
                continue;
            }
            let field = |name: &str| {
                line.split_whitespace()
                    .find_map(|word| word.strip_prefix(name))
                    .map(str::to_string)
            };
            if let (Some(id), Some(attempt)) = (field("call="), field("attempt=")) {
                *runs.entry(format!("{id}/{attempt}")).or_default() += 1;
            }
        }
    }
    runs
}

/// Whether call `id` ran (any attempt) according to `runs`.
fn ran(runs: &std::collections::HashMap<String, usize>, id: &str) -> bool {
    runs.keys().any(|key| key.starts_with(&format!("{id}/")))
}

#[tokio::test]
async fn a_function_deployed_through_one_daemon_is_served_by_the_other() {
    if !skiff_testing::ready() {
        return;
    }
    let Some(db) = TestDatabase::create("skiff_two").await else {
        return;
    };
    let (a, b) = two_daemons(&db, "15s").await;
    let cluster = b.get_json("/v1/cluster").await;
    assert_eq!(cluster["store"], "postgres", "{cluster}");
    let daemons = cluster["daemons"].as_array().cloned().unwrap_or_default();
    assert_eq!(daemons.len(), 2, "{cluster}");
    for d in &daemons {
        assert_eq!(d["state"], "alive", "{cluster}");
        assert_eq!(d["this"], d["id"] == b.id.as_str(), "{cluster}");
    }

    // `skiff cluster` lists both, marking the one that answered.
    let out = std::process::Command::new(skiff_bin!())
        .args(["cluster", "--url", &a.url])
        .env("SKIFF_CLI_CONFIG", a.cli_config())
        .output()
        .expect("skiff cluster");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("{} *", a.id)), "{text}");
    assert!(text.contains(&b.id), "{text}");

    a.deploy("hello", json!({"image": "skiff/hello:latest"}))
        .await;
    // Seen by the other daemon within a second (bound generous for a loaded machine).
    let seen = skiff_testing::poll(
        Duration::from_secs(5),
        Duration::from_millis(20),
        async || {
            b.get("/v1/functions/hello")
                .await
                .status
                .is_success()
                .then_some(())
        },
    )
    .await;
    assert!(seen.is_some(), "b never saw the deploy:\n{}", b.log());
    let answer = b.invoke("hello", r#"{"name":"Ann"}"#).await;
    assert_eq!(
        answer.status_text(),
        (StatusCode::OK, "Hello Ann!\n".into())
    );
    // An async call accepted by one runs on either, and both see its record.
    let accepted = a
        .call_async("/v1/functions/hello/invoke", r#"{"name":"Bo"}"#, None)
        .await;
    let id = accepted.call_id().expect("a call id");
    b.wait_call(&id, "succeeded", Duration::from_secs(30)).await;

    // Deleted through b: gone from a.
    assert_eq!(b.delete_function("hello").await, StatusCode::NO_CONTENT);
    let gone = skiff_testing::poll(
        Duration::from_secs(5),
        Duration::from_millis(20),
        async || (a.get("/v1/functions/hello").await.status == StatusCode::NOT_FOUND).then_some(()),
    )
    .await;
    assert!(gone.is_some(), "a still has the function:\n{}", a.log());
    a.stop().await;
    let cluster = b.get_json("/v1/cluster").await;
    assert_eq!(
        cluster["daemons"].as_array().map(Vec::len),
        Some(1),
        "a stopped daemon leaves the list: {cluster}"
    );
    b.stop().await;
}

#[tokio::test]
async fn a_daemon_killed_under_load_loses_no_call_and_its_containers_go_within_the_lease() {
    if !skiff_testing::ready() {
        return;
    }
    let Some(db) = TestDatabase::create("skiff_kill").await else {
        return;
    };
    let (mut a, b) = two_daemons(&db, "5s").await;
    a.deploy(
        "slow",
        json!({"image": "skiff/testfn:latest", "env": {"MODE": "sleep", "SLEEP_MS": "1500"}}),
    )
    .await;
    let seen = skiff_testing::poll(
        Duration::from_secs(5),
        Duration::from_millis(20),
        async || {
            b.get("/v1/functions/slow")
                .await
                .status
                .is_success()
                .then_some(())
        },
    )
    .await;
    assert!(seen.is_some(), "b never saw the deploy");
    // Calls enqueued through both daemons.
    let mut ids = Vec::new();
    for n in 0..40 {
        let d = if n % 2 == 0 { &a } else { &b };
        let accepted = d
            .call_async("/v1/functions/slow/invoke", format!("call {n}"), None)
            .await;
        assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.text());
        ids.push(accepted.call_id().expect("a call id"));
    }
    // Once a runs calls, it is killed in the middle of them.
    let busy = skiff_testing::poll(
        Duration::from_secs(30),
        Duration::from_millis(20),
        async || (!a.containers().is_empty() && runs(&[&a]).len() >= 2).then_some(()),
    )
    .await;
    assert!(busy.is_some(), "a never ran a call:\n{}", a.log());
    let a_id = a.id.clone();
    let killed_at = std::time::Instant::now();
    a.kill();

    // Its containers are removed by b once the lease has run out (5s, beats every 1s;
    // the bound is generous for a loaded machine).
    let reaped = skiff_testing::poll(
        Duration::from_secs(30),
        Duration::from_millis(50),
        async || {
            skiff_testing::containers_with_label(&format!("skiff.daemon={a_id}"))
                .is_empty()
                .then_some(())
        },
    )
    .await;
    assert!(
        reaped.is_some(),
        "a's containers were never removed:\n{}",
        b.log()
    );
    assert!(
        killed_at.elapsed() < Duration::from_secs(20),
        "a's containers outlived the lease by far: {:?}\n{}",
        killed_at.elapsed(),
        b.plain_log()
            .lines()
            .filter(|l| l.contains(&a_id) || l.contains("lease"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // Every call reaches a final state, through b.
    for id in &ids {
        let record = b.wait_call(id, "succeeded", Duration::from_secs(120)).await;
        assert_eq!(record["function"], "slow");
    }
    // No attempt ran twice, but those in flight on a when it was killed (at least once).
    let on_a = runs(&[&a]);
    let all = runs(&[&a, &b]);
    for id in &ids {
        assert!(ran(&all, id), "call {id} never ran");
    }
    for (attempt, count) in &all {
        if *count > 1 {
            assert_eq!(*count, 2, "{attempt} ran {count} times");
            assert!(
                on_a.contains_key(attempt),
                "{attempt} ran twice without a being killed in it:\n{}",
                b.plain_log()
            );
        }
    }
    let cluster = b.get_json("/v1/cluster").await;
    let listed: Vec<&str> = cluster["daemons"]
        .as_array()
        .map(|ds| ds.iter().filter_map(|d| d["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        listed,
        vec![b.id.as_str()],
        "a left the list once taken over: {cluster}"
    );
    b.stop().await;
}

/// Sends `signal` (`STOP`, `CONT`) to daemon `d`.
fn signal(d: &Daemon, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(d.pid().to_string())
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{signal}");
}

#[tokio::test]
async fn a_daemon_paused_past_its_lease_is_fenced_when_it_comes_back() {
    if !skiff_testing::ready() {
        return;
    }
    let Some(db) = TestDatabase::create("skiff_fence").await else {
        return;
    };
    let (a, b) = two_daemons(&db, "5s").await;
    a.deploy(
        "slow",
        json!({"image": "skiff/testfn:latest", "env": {"MODE": "sleep", "SLEEP_MS": "1500"}}),
    )
    .await;
    let seen = skiff_testing::poll(
        Duration::from_secs(5),
        Duration::from_millis(20),
        async || {
            b.get("/v1/functions/slow")
                .await
                .status
                .is_success()
                .then_some(())
        },
    )
    .await;
    assert!(seen.is_some(), "b never saw the deploy");
    let mut ids = Vec::new();
    for n in 0..20 {
        let d = if n % 2 == 0 { &a } else { &b };
        let accepted = d
            .call_async("/v1/functions/slow/invoke", format!("call {n}"), None)
            .await;
        assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.text());
        ids.push(accepted.call_id().expect("a call id"));
    }
    let busy = skiff_testing::poll(
        Duration::from_secs(30),
        Duration::from_millis(20),
        async || (runs(&[&a]).len() >= 2).then_some(()),
    )
    .await;
    assert!(busy.is_some(), "a never ran a call:\n{}", a.log());

    // a stops answering (a long pause, a partitioned host) while it runs calls; b takes it
    // over once the lease has run out.
    signal(&a, "STOP");
    let taken = skiff_testing::poll(
        Duration::from_secs(30),
        Duration::from_millis(50),
        async || {
            let cluster = b.get_json("/v1/cluster").await;
            cluster["daemons"]
                .as_array()
                .is_some_and(|ds| {
                    // Recovering, or gone once its containers are: not merely `expired`.
                    ds.iter()
                        .all(|d| d["id"] != a.id.as_str() || d["state"] == "recovering")
                })
                .then_some(())
        },
    )
    .await;
    if taken.is_none() {
        signal(&a, "CONT");
    }
    assert!(taken.is_some(), "b never took a over:\n{}", b.log());
    // Back, a finds itself fenced: what it writes of the calls taken from it is dropped,
    // and it claims nothing until the store counts it alive again.
    signal(&a, "CONT");
    let fenced = skiff_testing::poll(
        Duration::from_secs(10),
        Duration::from_millis(50),
        async || {
            a.plain_log()
                .contains("silent past its lease")
                .then_some(())
        },
    )
    .await;
    assert!(
        fenced.is_some(),
        "a never found it was taken over:\n{}",
        a.log()
    );

    // Every call ends succeeded, whoever ran it; none ran more than twice, and only those
    // a was running when it stopped ran twice.
    for id in &ids {
        let record = b.wait_call(id, "succeeded", Duration::from_secs(120)).await;
        assert_eq!(record["function"], "slow");
    }
    // The records stay final: nothing a wrote late turned one back.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for id in &ids {
        let record = b.get_json(&format!("/v1/calls/{id}")).await;
        assert_eq!(record["status"], "succeeded", "{record}");
    }
    let on_a = runs(&[&a]);
    let all = runs(&[&a, &b]);
    for (attempt, count) in &all {
        if *count > 1 {
            assert_eq!(*count, 2, "{attempt} ran {count} times");
            assert!(on_a.contains_key(attempt), "{attempt} ran twice, not on a");
        }
    }

    // a serves again once counted alive: ready, and a call through it runs.
    let ready = skiff_testing::poll(
        Duration::from_secs(30),
        Duration::from_millis(100),
        async || a.get("/readyz").await.status.is_success().then_some(()),
    )
    .await;
    assert!(ready.is_some(), "a never became ready again:\n{}", a.log());
    let answer = a.invoke("slow", "after").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn a_cron_tick_fires_once_across_two_daemons_even_when_one_is_killed() {
    if !skiff_testing::ready() {
        return;
    }
    let Some(db) = TestDatabase::create("skiff_cron").await else {
        return;
    };
    let (mut a, b) = two_daemons(&db, "5s").await;
    a.deploy(
        "ticked",
        json!({"image": "skiff/testfn:latest", "env": {"MODE": "report"}}),
    )
    .await;
    let created = a
        .request(reqwest::Method::PUT, "/v1/triggers/every-2s")
        .json(&json!({"function": "ticked", "cron": {"schedule": "*/2 * * * * *"}}))
        .send()
        .await
        .expect("create the trigger");
    assert_eq!(created.status(), StatusCode::CREATED);
    let seen = skiff_testing::poll(
        Duration::from_secs(5),
        Duration::from_millis(20),
        async || {
            b.get("/v1/triggers/every-2s")
                .await
                .status
                .is_success()
                .then_some(())
        },
    )
    .await;
    assert!(seen.is_some(), "b never saw the trigger:\n{}", b.log());
    // Both daemons run the schedule for a while, then a is killed, and b goes on alone.
    tokio::time::sleep(Duration::from_secs(9)).await;
    a.kill();
    tokio::time::sleep(Duration::from_secs(9)).await;
    let deleted = b
        .request(reqwest::Method::DELETE, "/v1/triggers/every-2s")
        .send()
        .await
        .expect("delete the trigger");
    assert!(deleted.status().is_success());

    let calls = b.calls("trigger=cron&limit=1000").await;
    assert!(calls.len() >= 6, "a tick every 2s for 18s: {}", calls.len());
    let mut ticks = Vec::new();
    for call in &calls {
        let id = call["id"].as_str().expect("id");
        let record = b.wait_call(id, "succeeded", Duration::from_secs(60)).await;
        assert_eq!(record["function"], "ticked");
        let logs = b.logs(id).await;
        let tick = logs
            .lines()
            .find_map(|l| l.strip_prefix("SKIFF_HEADER_X_SKIFF_SCHEDULED_AT="))
            .unwrap_or_else(|| panic!("no scheduled time in {logs}"))
            .to_string();
        ticks.push(chrono::DateTime::parse_from_rfc3339(&tick).expect("an RFC 3339 time"));
    }
    ticks.sort();
    for pair in ticks.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap.num_seconds() > 0, "a tick fired twice: {pair:?}");
        // Ticks due together coalesce (the latest fires): one may be left out, no more.
        assert!(gap.num_seconds() <= 4, "ticks were lost: {pair:?}");
    }
    // Each tick's call ran once, but one in flight on a when it was killed.
    let (on_a, on_b) = (runs(&[&a]), runs(&[&b]));
    let all = runs(&[&a, &b]);
    let twice: Vec<String> = all
        .iter()
        .filter(|(_, count)| **count > 1)
        .map(|(attempt, _)| {
            format!(
                "{attempt}: a {:?}, b {:?}",
                on_a.get(attempt),
                on_b.get(attempt)
            )
        })
        .collect();
    assert!(
        twice.len() <= 1,
        "tick calls ran twice: {twice:?}\n--- a:\n{}\n--- b:\n{}",
        a.plain_log(),
        b.plain_log()
    );
    b.stop().await;
}

/// The value of `skiff_trigger_firings_total` for `trigger` and `result` on daemon `d`.
async fn firings(d: &Daemon, trigger: &str, result: &str) -> u64 {
    let metrics = d.get_text("/metrics").await;
    let prefix =
        format!("skiff_trigger_firings_total{{trigger=\"{trigger}\",result=\"{result}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_nats_trigger_on_two_daemons_handles_each_message_once() {
    if !skiff_testing::ready() || !Nats::available() {
        return;
    }
    let Some(db) = TestDatabase::create("skiff_nats").await else {
        return;
    };
    let nats = Nats::start(skiff_testing::free_port()).await;
    let (a, b) = two_daemons(&db, "15s").await;
    a.deploy(
        "worker",
        json!({"image": "skiff/testfn:latest", "env": {"MODE": "report"}, "timeout": "10s"}),
    )
    .await;
    let created = a
        .request(reqwest::Method::PUT, "/v1/triggers/jobs")
        .json(&json!({"function": "worker",
                      "nats": {"url": nats.url(), "stream": "JOBS", "subjects": ["jobs.>"]}}))
        .send()
        .await
        .expect("create the trigger");
    assert_eq!(created.status(), StatusCode::CREATED);
    // Both daemons subscribe, through the one durable consumer of the trigger.
    for d in [&a, &b] {
        let connected = skiff_testing::poll(
            Duration::from_secs(20),
            Duration::from_millis(100),
            async || (d.get_json("/v1/triggers/jobs").await["state"] == "connected").then_some(()),
        )
        .await;
        assert!(connected.is_some(), "never connected:\n{}", d.log());
    }

    const MESSAGES: usize = 40;
    for i in 0..MESSAGES {
        nats.publish(&format!("jobs.{i}"), &format!("message-{i}"), &[])
            .await;
    }
    let done = skiff_testing::poll(
        Duration::from_secs(120),
        Duration::from_millis(250),
        async || {
            let calls = b.calls("function=worker&trigger=queue&limit=1000").await;
            let succeeded = calls.iter().filter(|c| c["status"] == "succeeded").count();
            (succeeded >= MESSAGES).then_some(())
        },
    )
    .await;
    assert!(
        done.is_some(),
        "not every message was handled:\n--- a:\n{}\n--- b:\n{}",
        a.log(),
        b.log()
    );
    // Nothing more comes: every message was handled once, by one daemon or the other.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let calls = b.calls("function=worker&trigger=queue&limit=1000").await;
    let mut bodies = std::collections::HashMap::new();
    for call in &calls {
        let log = b.logs(call["id"].as_str().expect("id")).await;
        let body = log
            .lines()
            .find_map(|l| l.strip_prefix("body="))
            .unwrap_or_else(|| panic!("no body in {log}"))
            .to_string();
        *bodies.entry(body).or_insert(0) += 1;
    }
    assert_eq!(calls.len(), MESSAGES, "{bodies:?}");
    for i in 0..MESSAGES {
        assert_eq!(bodies.get(&format!("message-{i}")), Some(&1), "{bodies:?}");
    }
    let acked = firings(&a, "jobs", "acked").await + firings(&b, "jobs", "acked").await;
    assert_eq!(acked, MESSAGES as u64, "each message acknowledged once");
    a.stop().await;
    b.stop().await;
}
