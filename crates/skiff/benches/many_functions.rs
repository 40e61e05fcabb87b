//! Daemon memory with many functions deployed (design target: <= 60 MiB RSS with 1,000).
//!
//! Deploys N exec functions (no prepared containers, so that only the daemon is measured),
//! calls one of them, and reads the daemon's resident set size from /proc.
//!
//! Run: `cargo bench -p skiff --bench many_functions` (FUNCTIONS=n to change N).

use serde_json::json;
use skiff_testing::bench::{count, engine_ready};
use skiff_testing::{skiff_bin, Daemon};
use std::time::Instant;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    engine_ready();
    let n = count("FUNCTIONS", 1000);
    let d = Daemon::start(skiff_bin!(), &["--exec-prewarm", "0"]).await;
    let idle = rss_kib(d.pid());
    let client = d.client();
    let started = Instant::now();
    for i in 0..n {
        let response = client
            .put(format!("{}/v1/functions/f{i:04}", d.url))
            .json(&json!({"image": "skiff/hello:latest", "memory": "64Mi", "env": {"INDEX": i.to_string()}}))
            .send()
            .await
            .expect("deploy");
        assert!(response.status().is_success());
    }
    let deploy_time = started.elapsed();
    let listed: serde_json::Value = client
        .get(format!("{}/v1/functions", d.url))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["functions"].as_array().map(Vec::len), Some(n));
    let answer = client
        .post(format!("{}/fn/f0000", d.url))
        .body(r#"{"name":"bench"}"#)
        .send()
        .await
        .expect("call")
        .text()
        .await
        .expect("body");
    assert_eq!(answer, "Hello bench!\n");
    let loaded = rss_kib(d.pid());
    d.stop().await;
    println!("| measure | value | target |");
    println!("| --- | --- | --- |");
    println!(
        "| daemon RSS, no function | {:.1} MiB | - |",
        idle as f64 / 1024.0
    );
    println!(
        "| daemon RSS, {n} functions deployed, one called | {:.1} MiB | <= 60 MiB |",
        loaded as f64 / 1024.0
    );
    println!(
        "| deploying {n} functions one after another | {:.1} s ({:.1} ms each) | - |",
        deploy_time.as_secs_f64(),
        deploy_time.as_secs_f64() * 1000.0 / n as f64
    );
}
