//! Warm proxying at the machine's limit, anchored on nginx: the same warm `http` instance
//! called directly, through nginx, and through skiff, in one run.
//!
//! - direct: requests to the instance's address on the functions' network;
//! - nginx: Debian's `nginx`, started here as a reverse proxy to that address (one worker,
//!   a keep-alive upstream pool, no access log), as a well-configured proxy would run;
//! - skiff: the function's public route (`/fn/web/`), every call recorded as always, and a
//!   private route with the caller's token (`/fn/web-private/`: the per-request token lookup).
//!
//! For each path: latency of sequential keep-alive requests (p50, p99), and calls/s under
//! `wrk -t2 -c64` (keep-alive), 3 rounds of 5 s each, paths interleaved; medians.
//! Without nginx or wrk installed the rows say so.
//!
//! Run: `cargo bench -p skiff --bench warm_proxy` (`SAMPLES=n` sequential samples per
//! path and round, default 1000; `ROUNDS=n`, default 3; `WRK_SECONDS=n`, default 5).
//!
//! With `PROFILE=DIR`, one more `wrk` run on skiff's public route is profiled: `perf record`
//! (cpu-clock, DWARF call graphs) on the daemon writes `DIR/perf.data`, and the daemon's CPU
//! time and the calls answered in that run go to `DIR/run.txt`;
//! `scripts/perf-stages.py DIR` turns them into CPU per call by stage.

use serde_json::json;
use skiff_testing::bench::{count, engine_ready, instance_addr, wrk_requests};
use skiff_testing::stats::{ms, Latencies};
use skiff_testing::{free_port, skiff_bin, Daemon};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const IMAGE: &str = "skiff/echo-http:latest";

/// nginx as a keep-alive reverse proxy to `upstream`, on 127.0.0.1:`port`; stopped when
/// dropped.
struct Nginx {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(upstream: &str, port: u16) -> Option<Nginx> {
        let binary = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())?;
        let dir = tempfile::tempdir().expect("a directory for nginx");
        let conf = format!(
            "worker_processes 1;\n\
             daemon off;\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n\
               access_log off;\n\
               client_body_temp_path {d}/body;\n\
               proxy_temp_path {d}/proxy;\n\
               upstream fn {{ server {upstream}; keepalive 128; }}\n\
               server {{\n\
                 listen 127.0.0.1:{port};\n\
                 location / {{\n\
                   proxy_pass http://fn;\n\
                   proxy_http_version 1.1;\n\
                   proxy_set_header Connection \"\";\n\
                 }}\n\
               }}\n\
             }}\n",
            d = dir.path().display()
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf).expect("write nginx.conf");
        let child = Command::new(binary)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .ok()?;
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "nginx did not listen on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Nginx { child, _dir: dir })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGQUIT: nginx's graceful stop.
        let _ = Command::new("kill")
            .args(["-QUIT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// `wrk -t2 -c64` on `url` for `seconds`; calls/s, with non-2xx answers or socket errors
/// reported (and failing the run: a fast error is not a call).
fn wrk(url: &str, seconds: u64, token: Option<&str>) -> Option<f64> {
    let mut command = Command::new("wrk");
    command.args(["-t2", "-c64", &format!("-d{seconds}s"), url]);
    if let Some(token) = token {
        command.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let out = command.output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if let Some(line) = text
        .lines()
        .find(|l| l.contains("Non-2xx") || l.contains("Socket errors"))
    {
        panic!("wrk {url}: {line}\n{text}");
    }
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
}

async fn sequential(client: &reqwest::Client, url: &str, n: usize, into: &mut Latencies) {
    for _ in 0..n {
        let started = Instant::now();
        let response = client.get(url).send().await.expect("request");
        let status = response.status();
        let _ = response.bytes().await.expect("body");
        into.record(started.elapsed());
        assert!(status.is_success(), "{url}: {status}");
    }
}

/// The CPU time (user + system) process `pid` has used so far, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the daemon's stat");
    // Fields after the command name (which is in parentheses): utime and stime are the
    // 12th and 13th of them.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0)
}

/// One `wrk` run on `url` with `perf record` on the daemon meanwhile (see the header).
fn profile(d: &Daemon, url: &str, seconds: u64, dir: &std::path::Path) {
    std::fs::create_dir_all(dir).expect("the profile directory");
    let pid = d.pid();
    let data = dir.join("perf.data");
    let mut perf = Command::new("perf")
        .args(["record", "--quiet", "-e", "cpu-clock", "-F", "499"])
        .args(["--call-graph", "dwarf,16384", "-p", &pid.to_string(), "-o"])
        .arg(&data)
        .args(["--", "sleep", &(seconds + 1).to_string()])
        .stdout(Stdio::null())
        .spawn()
        .expect("perf (Debian's linux-perf)");
    std::thread::sleep(Duration::from_millis(500));
    let before = cpu_ticks(pid);
    let out = Command::new("wrk")
        .args(["-t2", "-c64", &format!("-d{seconds}s"), url])
        .output()
        .expect("wrk");
    let after = cpu_ticks(pid);
    let _ = perf.wait();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("Non-2xx") && !text.contains("Socket errors"),
        "wrk saw errors while profiled: {text}"
    );
    let calls = wrk_requests(&text).unwrap_or(0) as u64;
    // Clock ticks are 1/100 s on Linux.
    let cpu_seconds = (after - before) as f64 / 100.0;
    std::fs::write(
        dir.join("run.txt"),
        format!("calls {calls}\ncpu_seconds {cpu_seconds}\nwall_seconds {seconds}\n"),
    )
    .expect("write run.txt");
    eprintln!(
        "profiled: {calls} calls, daemon CPU {cpu_seconds:.2} s ({:.1} us per call); {}",
        cpu_seconds * 1e6 / calls.max(1) as f64,
        data.display()
    );
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    Some(values[values.len() / 2])
}

/// One path of the table.
struct Path {
    name: &'static str,
    url: String,
    token: Option<String>,
    latency: Latencies,
    rates: Vec<f64>,
}

#[tokio::main]
async fn main() {
    engine_ready();
    let samples = count("SAMPLES", 1000);
    let rounds = count("ROUNDS", 3);
    let seconds = count("WRK_SECONDS", 5) as u64;
    let d = Daemon::start(
        skiff_bin!(),
        &[
            "--max-concurrent-calls",
            "1024",
            "--max-queued-calls",
            "4096",
        ],
    )
    .await;
    // Two functions of the same image, one instance each: a public one, and a private one
    // whose calls carry a token.
    d.deploy(
        "web",
        json!({"image": IMAGE, "contract": "http", "readiness_path": "/ready", "public": true,
        "concurrency": 256, "min_instances": 1, "max_instances": 1}),
    )
    .await;
    d.deploy(
        "web-private",
        json!({"image": IMAGE, "contract": "http", "readiness_path": "/ready",
        "concurrency": 256, "min_instances": 1, "max_instances": 1}),
    )
    .await;
    let upstream = instance_addr(&d, "web").await;
    instance_addr(&d, "web-private").await;
    let nginx_port = free_port();
    let nginx = Nginx::start(&upstream, nginx_port);
    if nginx.is_none() {
        eprintln!("nginx is not installed (Debian's nginx package): its row is not measured");
    }

    let mut paths = vec![Path {
        name: "direct to the instance",
        url: format!("http://{upstream}/"),
        token: None,
        latency: Latencies::new(),
        rates: Vec::new(),
    }];
    if nginx.is_some() {
        paths.push(Path {
            name: "nginx (1 worker, keep-alive upstream)",
            url: format!("http://127.0.0.1:{nginx_port}/"),
            token: None,
            latency: Latencies::new(),
            rates: Vec::new(),
        });
    }
    paths.push(Path {
        name: "skiff, public function",
        url: format!("{}/fn/web/", d.url),
        token: None,
        latency: Latencies::new(),
        rates: Vec::new(),
    });
    paths.push(Path {
        name: "skiff, private function (token checked per call)",
        url: format!("{}/fn/web-private/", d.url),
        token: Some(d.token.clone()),
        latency: Latencies::new(),
        rates: Vec::new(),
    });

    let plain = reqwest::Client::new();
    let with_token = d.client();
    // Warm every path's connections first.
    for path in &mut paths {
        let client = if path.token.is_some() {
            &with_token
        } else {
            &plain
        };
        let mut discard = Latencies::new();
        sequential(client, &path.url, 200, &mut discard).await;
    }
    let has_wrk = Command::new("wrk").arg("--version").output().is_ok();
    if !has_wrk {
        eprintln!("wrk is not installed (Debian's wrk package): calls/s are not measured");
    }
    for round in 0..rounds {
        for path in &mut paths {
            let client = if path.token.is_some() {
                &with_token
            } else {
                &plain
            };
            sequential(client, &path.url, samples, &mut path.latency).await;
        }
        if has_wrk {
            for path in &mut paths {
                if let Some(rate) = wrk(&path.url, seconds, path.token.as_deref()) {
                    eprintln!("round {round}: {}: {rate:.0} calls/s", path.name);
                    path.rates.push(rate);
                }
            }
        }
    }
    if let Ok(dir) = std::env::var("PROFILE") {
        profile(
            &d,
            &format!("{}/fn/web/", d.url),
            seconds,
            std::path::Path::new(&dir),
        );
    }
    drop(nginx);
    d.stop().await;

    let nginx_rate = paths
        .iter()
        .find(|p| p.name.starts_with("nginx"))
        .and_then(|p| median(p.rates.clone()));
    let direct_p50 = paths[0].latency.median();
    println!(
        "warm proxying, image {IMAGE}: {samples} sequential samples x {rounds} rounds per path; \
         wrk -t2 -c64, {rounds} rounds of {seconds} s, medians\n"
    );
    println!("| path | p50 | p99 | p50 over direct | calls/s | vs nginx |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for path in &paths {
        let rate = median(path.rates.clone());
        println!(
            "| {} | {} | {} | +{} | {} | {} |",
            path.name,
            ms(path.latency.median(), 3),
            ms(path.latency.p99(), 3),
            ms(path.latency.median().saturating_sub(direct_p50), 3),
            rate.map_or("not measured".to_string(), |r| format!("{r:.0}")),
            match (rate, nginx_rate) {
                (Some(r), Some(n)) => format!("{:.2}x", r / n),
                _ => "-".to_string(),
            }
        );
    }
}
