//! Soak: mixed load across the three contracts and async calls for a long time (30 minutes
//! by default), with the daemon's resident memory, open file descriptors, live containers
//! and database size sampled every minute. Not run in CI: it is a benchmark of flatness,
//! not of speed.
//!
//! The load, all at once for the whole run:
//! - `exec`: one client calling `skiff/hello` back to back (a fresh container per call);
//! - `http`: two clients calling a warm `skiff/echo-http` back to back;
//! - `lambda`: one client calling a warm `skiff/lambda-hello` back to back;
//! - `async`: one async call to the exec function every 2 s;
//! - `cycle`: an http function with a 20 s idle timeout called once a minute, so that its
//!   instance is started and removed again and again (scale from and to zero).
//!
//! The daemon runs with `--retention 5m`: call records older than that are pruned, so the
//! database reaches its steady size within the run instead of growing for the default 7 days.
//!
//! Run: `cargo bench -p skiff --bench soak` (`SOAK_MINUTES=n`, `SAMPLE_SECONDS=n` to change).

use serde_json::json;
use skiff_testing::bench::{count, engine_ready};
use skiff_testing::{skiff_bin, Daemon};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MIB: f64 = 1024.0 * 1024.0;

/// Calls answered and refused, per load.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
}

impl Tally {
    fn take(&self) -> (u64, u64) {
        (
            self.ok.swap(0, Ordering::Relaxed),
            self.failed.swap(0, Ordering::Relaxed),
        )
    }
}

/// Sends one request and counts it; a failure is printed once (with its body) and counted.
async fn one(request: reqwest::RequestBuilder, expect: u16, tally: &Tally, what: &str) {
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.bytes().await.unwrap_or_default();
            if status == expect {
                tally.ok.fetch_add(1, Ordering::Relaxed);
            } else {
                if tally.failed.fetch_add(1, Ordering::Relaxed) < 3 {
                    eprintln!("{what}: {status} {}", String::from_utf8_lossy(&body));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Err(e) => {
            tally.failed.fetch_add(1, Ordering::Relaxed);
            eprintln!("{what}: {e}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The daemon's resident set (KiB) and open file descriptors, from /proc.
fn process_figures(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    (rss, fds)
}

/// The daemon's bytes allocated and resident, as its allocator counts them (`/metrics`).
async fn heap_figures(d: &Daemon) -> (u64, u64) {
    let text = d.get_text("/metrics").await;
    let gauge = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0)
    };
    (
        gauge("skiff_heap_allocated_bytes"),
        gauge("skiff_heap_resident_bytes"),
    )
}

/// Bytes of the SQLite database and its write-ahead log.
fn database_bytes(dir: &std::path::Path) -> u64 {
    ["skiff.db", "skiff.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

#[tokio::main]
async fn main() {
    engine_ready();
    let minutes = count("SOAK_MINUTES", 30) as u64;
    let every = Duration::from_secs(count("SAMPLE_SECONDS", 60) as u64);
    let d = Daemon::start(skiff_bin!(), &["--retention", "5m"]).await;
    d.deploy(
        "hello",
        json!({"image": "skiff/hello:latest", "memory": "64Mi"}),
    )
    .await;
    d.deploy(
        "web",
        json!({"image": "skiff/echo-http:latest", "contract": "http", "readiness_path": "/ready",
               "memory": "64Mi", "concurrency": 16, "min_instances": 1}),
    )
    .await;
    d.deploy(
        "greet",
        json!({"image": "skiff/lambda-hello:latest", "contract": "lambda", "memory": "64Mi",
               "min_instances": 1}),
    )
    .await;
    d.deploy(
        "cycle",
        json!({"image": "skiff/echo-http:latest", "contract": "http", "readiness_path": "/ready",
               "memory": "64Mi", "idle_timeout": "20s", "autoscale_window": "10s"}),
    )
    .await;

    // The functions are private, as by default: every call carries the daemon's token.
    let client = d.client_with(reqwest::Client::builder());
    let stop = Arc::new(AtomicBool::new(false));
    let names = ["exec", "http", "lambda", "async", "cycle"];
    let tallies: Vec<Arc<Tally>> = names.iter().map(|_| Arc::default()).collect();
    let mut tasks = Vec::new();
    let mut spawn_loop = |index: usize,
                          url: String,
                          body: &'static str,
                          expect: u16,
                          pause: Duration,
                          is_async: bool| {
        let (client, stop, tally) = (client.clone(), stop.clone(), tallies[index].clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let mut request = client.post(&url).body(body);
                if is_async {
                    request = request.header("Prefer", "respond-async");
                }
                one(request, expect, &tally, names[index]).await;
                tokio::time::sleep(pause).await;
            }
        }));
    };
    let zero = Duration::ZERO;
    spawn_loop(
        0,
        format!("{}/fn/hello", d.url),
        r#"{"name":"soak"}"#,
        200,
        zero,
        false,
    );
    for _ in 0..2 {
        spawn_loop(1, format!("{}/fn/web/", d.url), "soak", 200, zero, false);
    }
    spawn_loop(
        2,
        format!("{}/fn/greet", d.url),
        r#"{"name":"soak"}"#,
        200,
        zero,
        false,
    );
    let invoke = format!("{}/v1/functions/hello/invoke", d.url);
    spawn_loop(
        3,
        invoke,
        r#"{"name":"soak"}"#,
        202,
        Duration::from_secs(2),
        true,
    );
    spawn_loop(
        4,
        format!("{}/fn/cycle/", d.url),
        "soak",
        200,
        Duration::from_secs(60),
        false,
    );

    println!(
        "soak: {minutes} min of mixed load, sampled every {} s\n",
        every.as_secs()
    );
    println!("| minute | RSS MiB | heap allocated MiB | heap resident MiB | open fds | containers | database MiB | exec | http | lambda | async | cycle | failed |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let started = Instant::now();
    let mut rows = Vec::new();
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    while started.elapsed() < Duration::from_secs(minutes * 60) {
        tick.tick().await;
        let (rss, fds) = process_figures(d.pid());
        let (allocated, resident) = heap_figures(&d).await;
        let containers = d.containers().len();
        let db = database_bytes(d.data_dir.path());
        let counts: Vec<(u64, u64)> = tallies.iter().map(|t| t.take()).collect();
        let failed: u64 = counts.iter().map(|c| c.1).sum();
        println!(
            "| {:.0} | {:.1} | {:.1} | {:.1} | {fds} | {containers} | {:.1} | {} | {} | {} | {} | {} | {failed} |",
            started.elapsed().as_secs_f64() / 60.0,
            rss as f64 / 1024.0,
            allocated as f64 / MIB,
            resident as f64 / MIB,
            db as f64 / MIB,
            counts[0].0,
            counts[1].0,
            counts[2].0,
            counts[3].0,
            counts[4].0,
        );
        rows.push([
            rss as f64,
            fds as f64,
            containers as f64,
            db as f64,
            failed as f64,
            allocated as f64 / 1024.0,
        ]);
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }

    // Flat means: the second half of the run peaks no higher than its first half, give or
    // take a margin for the allocator and page cache (reported, not asserted).
    if rows.len() >= 4 {
        let half = rows.len() / 2;
        let peak = |column: usize, r: &[[f64; 6]]| r.iter().map(|r| r[column]).fold(0.0, f64::max);
        println!();
        for (column, name) in [
            (0, "RSS KiB"),
            (5, "heap allocated KiB"),
            (1, "open fds"),
            (2, "containers"),
            (3, "database bytes"),
        ] {
            let last = rows.last().map(|r| r[column]).unwrap_or(0.0);
            println!(
                "{name}: peak of first half {:.0}, peak of second half {:.0}, last {last:.0}",
                peak(column, &rows[..half]),
                peak(column, &rows[half..]),
            );
        }
        let failed: f64 = rows.iter().map(|r| r[4]).sum();
        println!("calls failed in all: {failed:.0}");
    }
    d.stop().await;
}
