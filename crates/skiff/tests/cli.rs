//! The `skiff` command line against a real daemon on the real engine.

use serde_json::Value;
use skiff_testing::cli::assert_one_error_line;
use skiff_testing::{skiff_bin, Daemon};
use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Runs `skiff args...` against `d` with `stdin` as input.
fn skiff(d: &Daemon, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(skiff_bin!())
        .args(args)
        .env("SKIFF_URL", &d.url)
        .env("SKIFF_CLI_CONFIG", d.cli_config())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run skiff");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin).expect("write stdin");
    drop(input);
    child.wait_with_output().expect("skiff output")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

#[tokio::test]
async fn deploy_invoke_list_calls_logs_and_remove() {
    if !skiff_testing::ready() {
        return;
    }
    let d = Daemon::start(skiff_bin!(), &[]).await;
    let out = skiff(
        &d,
        &[
            "deploy",
            "hello",
            "--image",
            "skiff/hello:latest",
            "--memory",
            "64Mi",
            "--timeout",
            "10s",
        ],
        b"",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("deployed hello (version 1"),
        "{}",
        text(&out.stdout)
    );

    let out = skiff(&d, &["invoke", "hello"], br#"{"name":"Ann"}"#);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Hello Ann!\n");

    let out = skiff(
        &d,
        &["invoke", "hello", "--json", "--data", r#"{"name":"Bo"}"#],
        b"",
    );
    assert!(out.status.success());
    let answer: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(answer["output"], "Hello Bo!\n");
    let call_id = answer["call_id"].as_str().expect("call id").to_string();

    let out = skiff(&d, &["ls"], b"");
    assert!(
        text(&out.stdout).lines().any(|l| l.starts_with("hello ")),
        "{}",
        text(&out.stdout)
    );
    let out = skiff(&d, &["ls", "--json"], b"");
    let list: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(list[0]["name"], "hello");

    let out = skiff(&d, &["calls", "--function", "hello", "--json"], b"");
    let page: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(page["calls"].as_array().map(Vec::len), Some(2), "{page}");
    let out = skiff(&d, &["calls"], b"");
    assert!(
        text(&out.stdout).contains(&call_id[..8]),
        "{}",
        text(&out.stdout)
    );
    let out = skiff(&d, &["calls", "get", &call_id, "--json"], b"");
    let record: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(record["status"], "succeeded");

    let out = skiff(&d, &["logs", &call_id], b"");
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("hello: greeting Bo"),
        "{}",
        text(&out.stdout)
    );

    // An async call: the id at once, the result later.
    let out = skiff(
        &d,
        &[
            "invoke",
            "hello",
            "--async",
            "--data",
            r#"{"name":"Later"}"#,
        ],
        b"",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let queued = text(&out.stdout).trim().to_string();
    assert_eq!(queued.len(), 36, "a call id: {queued}");
    let mut status = String::new();
    for _ in 0..100 {
        let out = skiff(&d, &["calls", "get", &queued, "--json"], b"");
        let record: Value = serde_json::from_slice(&out.stdout).expect("json");
        status = record["status"].as_str().unwrap_or_default().to_string();
        if status == "succeeded" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, "succeeded");
    let out = skiff(&d, &["calls", "redrive", &queued], b"");
    assert_one_error_line(&out);

    let out = skiff(&d, &["rm", "hello"], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = skiff(&d, &["invoke", "hello"], b"");
    assert_one_error_line(&out);
    assert!(
        text(&out.stderr).contains("function_not_found"),
        "{}",
        text(&out.stderr)
    );
    d.stop().await;
}

#[tokio::test]
async fn deploy_from_a_folder_and_report_failures_in_one_line() {
    if !skiff_testing::ready() {
        return;
    }
    let d = Daemon::start(skiff_bin!(), &[]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("skiff.toml"),
        "name = \"failing\"\nimage = \"skiff/testfn:latest\"\ntimeout = \"5s\"\n[env]\nMODE = \"exit\"\nEXIT_CODE = \"4\"\n",
    )
    .expect("skiff.toml");
    let folder = dir.path().to_str().expect("path");
    let out = skiff(&d, &["deploy", "--dir", folder], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = skiff(&d, &["invoke", "failing"], b"");
    assert_one_error_line(&out);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("function_error") && stderr.contains("status 4"),
        "{stderr}"
    );

    // Flags override the file.
    let out = skiff(&d, &["deploy", "--dir", folder, "--env", "MODE=echo"], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = skiff(&d, &["invoke", "failing", "--data", "echoed"], b"");
    assert_eq!(text(&out.stdout), "echoed");

    // Bad input: one line, non-zero, before or after reaching the daemon.
    assert_one_error_line(&skiff(
        &d,
        &[
            "deploy",
            "x",
            "--image",
            "skiff/hello:latest",
            "--memory",
            "lots",
        ],
        b"",
    ));
    assert_one_error_line(&skiff(
        &d,
        &["deploy", "x", "--image", "skiff/no-such:1"],
        b"",
    ));
    assert_one_error_line(&skiff(
        &d,
        &[
            "deploy",
            "x",
            "--image",
            "skiff/hello:latest",
            "--memory",
            "1Ki",
        ],
        b"",
    ));
    d.stop().await;

    // No daemon at all.
    let out = Command::new(skiff_bin!())
        .args(["ls"])
        .env("SKIFF_URL", "http://127.0.0.1:9")
        .output()
        .expect("run skiff");
    assert_one_error_line(&out);
    assert!(
        text(&out.stderr).contains("cannot reach skiff"),
        "{}",
        text(&out.stderr)
    );
}
