//! The cost of PostgreSQL, against SQLite in the same run: durable enqueue throughput (202s
//! per second, 64 clients) and end-to-end latency of a lone async call (accepted -> final
//! status seen by polling), with one daemon on SQLite, one on PostgreSQL, and two on one
//! PostgreSQL database (calls enqueued through both; any daemon runs any call).
//!
//! Run: `SKIFF_TEST_POSTGRES=postgres://... cargo bench -p skiff --bench store_backends`
//! (`scripts/postgres.sh start --durable` makes a server with PostgreSQL's durable
//! defaults: fsync and synchronous commits on). `CALLS=n` sets the enqueued calls per
//! setup (default 3000).

use serde_json::json;
use skiff_testing::bench::{count, engine_ready, enqueue_async, lone_async_calls, until_drained};
use skiff_testing::stats::millis;
use skiff_testing::{skiff_bin, Daemon, TestDatabase};
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    engine_ready();
    let calls = count("CALLS", 3000);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(128)
        .build()
        .expect("client");
    let mut rows = Vec::new();

    let sqlite = Daemon::start(skiff_bin!(), &["--max-concurrent-calls", "256"]).await;
    rows.push((
        "SQLite, 1 daemon",
        measure(&client, &[&sqlite], calls).await,
    ));
    sqlite.stop().await;

    let db = TestDatabase::create("skiff_bench")
        .await
        .expect("the benchmark needs SKIFF_TEST_POSTGRES");
    let args = ["--max-concurrent-calls", "256", "--store", db.url.as_str()];
    let one = Daemon::start(skiff_bin!(), &args).await;
    rows.push((
        "PostgreSQL, 1 daemon",
        measure(&client, &[&one], calls).await,
    ));
    let mut two = Daemon::start(skiff_bin!(), &args).await;
    two.token = one.token.clone();
    rows.push((
        "PostgreSQL, 2 daemons",
        measure(&client, &[&one, &two], calls).await,
    ));
    one.stop().await;
    two.stop().await;

    let base = rows[0].1;
    println!("| setup | durable enqueue | vs SQLite | async e2e p50 / p99 | vs SQLite (p50) |");
    println!("| --- | --- | --- | --- | --- |");
    for (name, m) in &rows {
        println!(
            "| {name} | {:.0} calls/s | {:.2}x | {:.2} / {:.2} ms | {:.2}x |",
            m.enqueue_per_sec,
            m.enqueue_per_sec / base.enqueue_per_sec,
            millis(m.p50),
            millis(m.p99),
            m.p50.as_secs_f64() / base.p50.as_secs_f64()
        );
    }
}

#[derive(Debug, Clone, Copy)]
struct Measure {
    enqueue_per_sec: f64,
    p50: Duration,
    p99: Duration,
}

/// Deploys a warm http function (through the first daemon; the others hear it), enqueues
/// `calls` async calls from 64 clients spread over `daemons`, waits for the queue to
/// drain, then measures 50 lone async calls, each sent to one daemon in turn and followed
/// there.
async fn measure(client: &reqwest::Client, daemons: &[&Daemon], calls: usize) -> Measure {
    let first = daemons[0];
    first
        .deploy(
            "web",
            json!({"image": "skiff/echo-http:latest", "contract": "http", "readiness_path": "/ready",
                   "memory": "64Mi", "concurrency": 128, "min_instances": 1, "max_instances": 2,
               "public": true}),
        )
        .await;
    for d in daemons {
        let url = format!("{}/fn/web/", d.url);
        // Heard by every daemon, then warm.
        for _ in 0..200 {
            if client
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for _ in 0..20 {
            let _ = client.get(&url).send().await;
        }
    }

    let started = Instant::now();
    let accepted = enqueue_async(client, daemons, "web", calls).await;
    assert_eq!(accepted, calls, "every call accepted");
    let enqueue = started.elapsed();

    // Drained: nothing queued or running.
    until_drained(client, first, "web").await;

    let latencies = lone_async_calls(client, daemons, "web", 50).await;
    assert_eq!(
        first.delete_function("web").await,
        reqwest::StatusCode::NO_CONTENT
    );
    Measure {
        enqueue_per_sec: calls as f64 / enqueue.as_secs_f64(),
        p50: latencies.median(),
        p99: latencies.p99(),
    }
}
