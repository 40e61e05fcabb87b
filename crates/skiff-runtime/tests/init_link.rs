//! `skiff-init` in listen mode, driven through `init_link::connect`, and in stdin mode: the
//! embedded binary run as a local process (no container engine needed).

use futures::StreamExt;
use skiff_runtime::init::{encode_frame, install};
use skiff_runtime::init_link::{connect, InitLink};
use skiff_runtime::{Attachment, EngineError, Output};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// Every test is bounded: a deadlock fails it instead of hanging the suite.
const LIMIT: Duration = Duration::from_secs(60);

/// A `skiff-init` process listening for one call.
struct Init {
    child: Child,
    port: u16,
    dir: TempDir,
}

fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a probe");
    probe.local_addr().expect("probe address").port()
}

/// `skiff-init`, installed once for all tests: writing an executable while another test
/// forks would let the fork inherit the open file and make its `exec` fail (ETXTBSY).
fn init_binary() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        install(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("init-link-test"))
            .expect("install skiff-init")
    })
}

/// Starts `skiff-init` in listen mode with `argv` as the function.
fn start(argv: &[&str]) -> Init {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let child = Command::new(init_binary())
        .args(argv)
        .env("SKIFF_INIT_LISTEN", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start skiff-init");
    Init { child, port, dir }
}

fn sh(script: &str) -> Init {
    start(&["/bin/sh", "-c", script])
}

impl Init {
    async fn connect(&self) -> InitLink {
        let addr = ([127, 0, 0, 1], self.port).into();
        connect(addr, Duration::from_secs(10))
            .await
            .expect("connect to skiff-init")
    }

    /// Waits for `skiff-init` to exit; its status and what it printed on its own stderr.
    async fn exit(mut self) -> (ExitStatus, String) {
        let status = tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("skiff-init exits")
            .expect("wait for skiff-init");
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            pipe.read_to_string(&mut stderr).await.expect("read stderr");
        }
        (status, stderr)
    }
}

/// What a call gave back.
#[derive(Debug)]
struct Reply {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    exit: Result<i64, EngineError>,
}

/// Sends the frame and the body (then half-closes) while reading the output, as
/// `exec/drive.rs` does.
async fn call(link: InitLink, env: &[(&str, &str)], body: &[u8]) -> Reply {
    let InitLink {
        attachment: Attachment {
            mut stdin,
            mut output,
        },
        exit,
    } = link;
    let frame = encode_frame(env.iter().copied());
    let write = async {
        stdin.write_all(&frame).await.expect("send the frame");
        // A function may exit without reading its input.
        let _ = stdin.write_all(body).await;
        let _ = stdin.shutdown().await;
    };
    let read = async {
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        while let Some(chunk) = output.next().await {
            match chunk {
                Ok(Output::Stdout(bytes)) => stdout.extend_from_slice(&bytes),
                Ok(Output::Stderr(bytes)) => stderr.extend_from_slice(&bytes),
                Err(_) => break,
            }
        }
        (stdout, stderr)
    };
    let ((), (stdout, stderr)) = tokio::join!(write, read);
    let exit = exit.await.expect("the exit status is sent");
    Reply {
        stdout,
        stderr,
        exit,
    }
}

async fn bounded<F: std::future::Future>(test: F) -> F::Output {
    tokio::time::timeout(LIMIT, test)
        .await
        .expect("the test finishes in time")
}

#[tokio::test]
async fn a_call_gets_its_body_env_stdout_stderr_and_exit_code() {
    bounded(async {
        let init = sh(r#"cat; echo "var=$FN_VAR listen=${SKIFF_INIT_LISTEN-unset}" >&2; exit 3"#);
        let link = init.connect().await;
        let reply = call(link, &[("FN_VAR", "from the frame")], b"hello body").await;
        assert_eq!(reply.stdout, b"hello body");
        assert_eq!(reply.stderr, b"var=from the frame listen=unset\n");
        assert_eq!(reply.exit.expect("exit code"), 3);
        let (status, stderr) = init.exit().await;
        assert_eq!(status.code(), Some(0), "{stderr}");
    })
    .await;
}

#[tokio::test]
async fn a_function_killed_by_a_signal_exits_128_plus_the_signal() {
    bounded(async {
        let init = sh("kill -9 $$");
        let reply = call(init.connect().await, &[], b"").await;
        assert_eq!(reply.exit.expect("exit code"), 128 + 9);
    })
    .await;
}

#[tokio::test]
async fn a_function_may_ignore_its_input() {
    bounded(async {
        let init = sh("echo done");
        let body = vec![b'x'; 4 << 20];
        let reply = call(init.connect().await, &[], &body).await;
        assert_eq!(reply.stdout, b"done\n");
        assert_eq!(reply.exit.expect("exit code"), 0);
        assert_eq!(init.exit().await.0.code(), Some(0));
    })
    .await;
}

#[tokio::test]
async fn a_large_body_goes_through_both_ways() {
    bounded(async {
        let init = sh("cat; cat /dev/null >&2");
        let body: Vec<u8> = (0..8u32 << 20)
            .map(|i| (i.wrapping_mul(31) % 251) as u8)
            .collect();
        let reply = call(init.connect().await, &[], &body).await;
        assert_eq!(reply.exit.expect("exit code"), 0);
        assert_eq!(reply.stdout.len(), body.len());
        assert!(reply.stdout == body, "the body comes back unchanged");
        assert!(reply.stderr.is_empty());
    })
    .await;
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test]
async fn dropping_the_connection_mid_call_kills_the_function() {
    bounded(async {
        let init = sh(r#"echo $$ > "$PIDFILE"; echo started; exec sleep 60"#);
        let pidfile = init.dir.path().join("pid");
        let pidfile_str = pidfile.to_str().expect("utf-8 path");
        let InitLink {
            attachment:
                Attachment {
                    mut stdin,
                    mut output,
                },
            exit,
        } = init.connect().await;
        let frame = encode_frame([("PIDFILE", pidfile_str)]);
        stdin.write_all(&frame).await.expect("send the frame");
        let first = output.next().await.expect("output").expect("no error");
        assert_eq!(first, Output::Stdout("started\n".into()));
        let pid: u32 = std::fs::read_to_string(&pidfile)
            .expect("pid file")
            .trim()
            .parse()
            .expect("a pid");
        assert!(alive(pid));
        drop((stdin, output, exit));
        let (status, stderr) = init.exit().await;
        assert_eq!(status.code(), Some(126), "{stderr}");
        assert!(
            stderr.contains("skiff-init: the connection to skiff was lost"),
            "{stderr}"
        );
        assert!(!alive(pid), "the function was killed and reaped");
    })
    .await;
}

/// Whether `pid` has a handler for SIGTERM (bit 14 of `SigCgt`).
fn catches_sigterm(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << 14) != 0)
}

fn send_sigterm(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

#[tokio::test]
async fn sigterm_is_forwarded_to_the_function() {
    bounded(async {
        let init = sh("trap 'echo term; exit 7' TERM; echo ready; while :; do sleep 0.05; done");
        let init_pid = init.child.id().expect("running");
        let InitLink {
            attachment:
                Attachment {
                    mut stdin,
                    mut output,
                },
            exit,
        } = init.connect().await;
        stdin
            .write_all(&encode_frame([]))
            .await
            .expect("send the frame");
        stdin.shutdown().await.expect("half-close");
        let first = output.next().await.expect("output").expect("no error");
        assert_eq!(first, Output::Stdout("ready\n".into()));
        send_sigterm(init_pid);
        let rest: Vec<_> = output.collect().await;
        assert!(
            matches!(&rest[..], [Ok(Output::Stdout(b))] if b == "term\n"),
            "{rest:?}"
        );
        assert_eq!(exit.await.expect("sent").expect("exit code"), 7);
        assert_eq!(init.exit().await.0.code(), Some(0));
    })
    .await;
}

#[tokio::test]
async fn sigterm_before_a_call_ends_skiff_init() {
    bounded(async {
        let init = sh("echo never");
        let pid = init.child.id().expect("running");
        while !catches_sigterm(pid) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        send_sigterm(pid);
        assert_eq!(init.exit().await.0.code(), Some(0));
    })
    .await;
}

#[tokio::test]
async fn a_function_that_cannot_run_is_reported_to_the_caller() {
    bounded(async {
        let init = start(&["/nonexistent/function"]);
        let reply = call(init.connect().await, &[], b"body").await;
        let stderr = String::from_utf8_lossy(&reply.stderr);
        assert!(
            stderr.starts_with("skiff-init: cannot run /nonexistent/function"),
            "{stderr}"
        );
        assert_eq!(reply.exit.expect("exit code"), 127);
        assert_eq!(init.exit().await.0.code(), Some(127));
    })
    .await;
}

#[tokio::test]
async fn without_skiff_init_listen_the_call_comes_on_stdin_and_the_function_replaces_init() {
    bounded(async {
        let mut child = Command::new(init_binary())
            .args([
                "/bin/sh",
                "-c",
                r#"echo "pid=$$"; cat; echo "$FN_VAR" >&2; exit 5"#,
            ])
            .env_remove("SKIFF_INIT_LISTEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start skiff-init");
        let pid = child.id().expect("running");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(&encode_frame([("FN_VAR", "on stdin")]))
            .await
            .expect("frame");
        stdin.write_all(b"the body").await.expect("body");
        drop(stdin);
        let out = child.wait_with_output().await.expect("skiff-init ends");
        assert_eq!(out.status.code(), Some(5));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("pid={pid}\nthe body")
        );
        assert_eq!(out.stderr, b"on stdin\n");
    })
    .await;
}
