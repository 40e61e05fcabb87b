//! Live logs on the real engine: `skiff logs -f NAME` prints each line an exec call writes,
//! tagged with its call, and each line an http instance writes, tagged with the instance;
//! an instance's lines are kept and read back by instance and time; a call on an instance
//! of concurrency 1 keeps the instance's output as its log; `skiff logs ID` is unchanged.

use serde_json::json;
use skiff_testing::{poll, Daemon};
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `skiff logs -f NAME` as a child process, its stdout collected line by line.
struct Follower {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Follower {
    fn start(daemon: &Daemon, name: &str) -> Follower {
        let mut child = daemon
            .cli()
            .args(["logs", "-f", name])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start skiff logs -f");
        let stdout = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let collected = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(mut lines) = collected.lock() {
                    lines.push(line);
                }
            }
        });
        Follower { child, lines }
    }

    /// Waits until a printed line holds `text`; returns it.
    async fn line_with(&self, text: &str) -> String {
        let found = poll(
            Duration::from_secs(30),
            Duration::from_millis(100),
            async || {
                let lines = self.lines.lock().ok()?;
                lines.iter().find(|l| l.contains(text)).cloned()
            },
        )
        .await;
        let seen = self.lines.lock().map(|l| l.join("\n")).unwrap_or_default();
        found.unwrap_or_else(|| panic!("no line with `{text}`; printed:\n{seen}"))
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_function_s_output_is_followed_kept_and_tied_to_its_calls() {
    let Some(daemon) = Daemon::start_if_ready(skiff_testing::skiff_bin!(), &[]).await else {
        return;
    };
    daemon
        .deploy(
            "hello",
            json!({"image": "skiff/hello:latest", "memory": "64Mi"}),
        )
        .await;
    daemon
        .deploy(
            "web",
            json!({"image": "skiff/echo-http:latest", "contract": "http",
            "readiness_path": "/ready", "memory": "64Mi", "concurrency": 1}),
        )
        .await;

    // An exec function: each call's stderr, tagged with the call.
    let hello = Follower::start(&daemon, "hello");
    // The follower subscribes once its request is answered; give it a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answer = daemon.call_json("hello", &json!({"name": "Ann"})).await;
    assert_eq!(answer.text(), "Hello Ann!\n");
    let call = answer.call_id().expect("a call id");
    let line = hello.line_with("hello: greeting Ann").await;
    assert!(
        line.contains(&format!("call {call}: hello: greeting Ann")),
        "{line}"
    );

    // An http function: its instance's output, tagged with the instance.
    let web = Follower::start(&daemon, "web");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answer = daemon.get("/fn/web/log?line=first-call-line").await;
    assert_eq!(answer.text(), "logged");
    let line = web.line_with("first-call-line").await;
    assert!(line.contains(" stdout: first-call-line"), "{line}");
    let started = web.line_with("echo-http: listening on").await;
    assert!(started.contains(" stderr: "), "{started}");
    let instances = daemon.get_json("/v1/functions/web/instances").await;
    let instance = instances["instances"][0]["id"]
        .as_str()
        .expect("an instance")
        .to_string();
    assert!(
        line.contains(&format!("instance {instance} stdout")),
        "{line}"
    );

    // Its lines are kept, and read by instance and time.
    let kept = poll(
        Duration::from_secs(10),
        Duration::from_millis(100),
        async || {
            let logs = daemon
                .get_json(&format!("/v1/functions/web/instances/{instance}/logs"))
                .await;
            let lines = logs["lines"].as_array()?.clone();
            lines
                .iter()
                .any(|l| l["line"] == "first-call-line")
                .then_some(lines)
        },
    )
    .await
    .expect("the instance's lines are kept");
    let listening = kept
        .iter()
        .find(|l| {
            l["line"]
                .as_str()
                .is_some_and(|t| t.starts_with("echo-http: listening"))
        })
        .expect("its start line");
    assert_eq!(listening["stream"], "stderr");
    assert_eq!(listening["instance"], instance.as_str());
    let after = kept
        .last()
        .and_then(|l| l["at"].as_str())
        .expect("a time")
        .to_string();
    let later = daemon
        .get_json(&format!(
            "/v1/functions/web/instances/{instance}/logs?since={}",
            after.replace('+', "%2B")
        ))
        .await;
    assert!(
        later["lines"]
            .as_array()
            .is_some_and(|l| l.len() <= kept.len()),
        "{later}"
    );

    // One call at a time on the instance: what it wrote during the call is the call's log.
    let answer = daemon.get("/fn/web/log?line=second-call-line").await;
    let call = answer.call_id().expect("a call id");
    let log = poll(
        Duration::from_secs(10),
        Duration::from_millis(100),
        async || {
            let log = daemon.get_text(&format!("/v1/calls/{call}/logs")).await;
            log.contains("second-call-line").then_some(log)
        },
    )
    .await
    .expect("the call's log holds what the instance wrote during it");
    assert!(!log.contains("first-call-line"), "{log}");

    // Back to back, the output that trails one call's answer is read while the next call
    // runs: a call's log never holds a line of a call after it (a line that trails past
    // the next call's start is that call's).
    let mut calls = Vec::new();
    for n in 0..8 {
        let answer = daemon.get(&format!("/fn/web/log?line=back-{n}-line")).await;
        assert_eq!(answer.text(), "logged");
        calls.push(answer.call_id().expect("a call id"));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut logs = Vec::new();
    for call in &calls {
        logs.push(daemon.get_text(&format!("/v1/calls/{call}/logs")).await);
    }
    for (n, log) in logs.iter().enumerate() {
        for later in n + 1..calls.len() {
            assert!(
                !log.contains(&format!("back-{later}-line")),
                "call {n}'s log holds call {later}'s line: {log}"
            );
        }
        let own = format!("back-{n}-line");
        assert!(
            log.contains(&own) || logs.get(n + 1).is_some_and(|next| next.contains(&own)),
            "call {n}'s line is in neither its log nor the next one's: {logs:?}"
        );
    }

    // `skiff logs ID` prints one call's log, as before.
    let exec_call = daemon
        .call_json("hello", &json!({"name": "Bob"}))
        .await
        .call_id()
        .expect("a call id");
    let output = daemon
        .cli()
        .args(["logs", &exec_call])
        .output()
        .expect("skiff logs ID");
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "hello: greeting Bob\n"
    );
    // A name without -f is not a call id: one readable line, non-zero.
    let output = daemon
        .cli()
        .args(["logs", "hello"])
        .output()
        .expect("skiff logs NAME");
    let stderr = skiff_testing::cli::assert_one_error_line(&output);
    assert!(stderr.contains("logs -f"), "{stderr}");
    let output = daemon
        .cli()
        .args(["logs", "-f", "nope"])
        .output()
        .expect("skiff logs -f nope");
    skiff_testing::cli::assert_one_error_line(&output);

    drop(hello);
    drop(web);
    daemon.stop().await;
}
