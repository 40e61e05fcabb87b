//! End-to-end tests of what a hostile look at skiff found, on the real Docker engine: the
//! store's files are private, `DOCKER_HOST` is honoured or refused, a data directory is used
//! by one daemon at a time and a copy of it gets its own daemon id, and running short of
//! file descriptors refuses calls (429) instead of failing them.

use reqwest::StatusCode;
use serde_json::{json, Value};
use skiff_testing::{skiff_bin, wait_until, Daemon};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The permission bits of `path`, in octal (`"700"`).
fn mode(path: &Path) -> String {
    let mode = std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode();
    format!("{:o}", mode & 0o777)
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Runs `skiff serve` on `data_dir` with `env` added, expecting it to give up at start;
/// returns its stderr. Fails if it is still running a minute later (it is then killed).
async fn serve_must_fail(data_dir: &Path, env: &[(&str, &str)]) -> String {
    let child = tokio::process::Command::new(skiff_bin!())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("SKIFF_CLI_CONFIG", data_dir.join("cli-config.toml"))
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start skiff serve");
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("skiff serve with {env:?} was still running after 60s"))
        .expect("wait for skiff serve");
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(
        !output.status.success(),
        "skiff serve with {env:?} exited with success:\n{stderr}"
    );
    stderr
}

/// The one `error: ...` line of a failed start.
fn error_line(stderr: &str) -> String {
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "one error line expected:\n{stderr}");
    errors[0].to_string()
}

// ---------------------------------------------------------------------------------------
// The store's files are private to the daemon's user.

/// `skiff/testfn` run as `nobody`, as images with a `USER` line are.
fn non_root_image() -> &'static str {
    let tag = "skiff/testfn-nobody:latest";
    let mut child = Command::new("docker")
        .args([
            "build",
            "--quiet",
            "--label",
            "skiff.example=true",
            "-t",
            tag,
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("docker build");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(b"FROM skiff/testfn:latest\nUSER 65534:65534\n")
            .expect("Dockerfile");
    }
    let output = child.wait_with_output().expect("docker build");
    assert!(
        output.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    tag
}

/// Whether user `nobody` (uid 65534) can read `path`.
fn nobody_can_read(path: &Path) -> bool {
    Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            "cat",
        ])
        .arg(path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("setpriv")
        .success()
}

#[tokio::test]
async fn the_store_is_private_and_exec_functions_still_run_after_tightening() {
    if !skiff_testing::ready() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // As an older skiff (or a umask of 022) would have left it.
    set_mode(dir.path(), 0o755);
    let mut d = Daemon::builder(skiff_bin!()).data_dir(dir).start().await;
    let data = d.data_dir.path().to_path_buf();
    d.deploy(
        "echo",
        json!({"image": "skiff/testfn:latest", "secrets": {"API_TOKEN": "s3cret-in-the-wal"}}),
    )
    .await;
    d.deploy("nobody", json!({"image": non_root_image()})).await;
    for name in ["echo", "nobody"] {
        let (status, body) = d.invoke(name, "private").await.status_text();
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
        assert_eq!(body, "private", "{name}");
    }

    let check = |data: &Path| {
        assert_eq!(mode(data), "700", "the data directory");
        for file in ["skiff.db", "skiff.db-wal", "skiff.db-shm", "skiff.lock"] {
            let path = data.join(file);
            assert_eq!(mode(&path), "600", "{file}");
            assert!(!nobody_can_read(&path), "nobody read {file}");
        }
        // skiff-init stays readable and executable: it runs in containers as any user.
        let init: Vec<PathBuf> = std::fs::read_dir(data.join("bin"))
            .expect("bin")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        assert!(!init.is_empty());
        for path in init {
            assert_eq!(mode(&path), "755", "{}", path.display());
        }
    };
    check(&data);

    // Files left loose (by hand, or by an older skiff) are tightened at the next start.
    assert!(d.terminate().await, "{}", d.log());
    set_mode(&data, 0o755);
    for file in ["skiff.db", "skiff.db-wal", "skiff.db-shm", "skiff.lock"] {
        let path = data.join(file);
        if path.exists() {
            set_mode(&path, 0o644);
        }
    }
    d.restart().await;
    let (status, body) = d.invoke("nobody", "again").await.status_text();
    assert_eq!(status, StatusCode::OK, "{body}");
    check(&data);
    d.stop().await;
}

// ---------------------------------------------------------------------------------------
// DOCKER_HOST.

/// The engine's socket as this test process reaches it.
fn docker_socket() -> PathBuf {
    match std::env::var("DOCKER_HOST") {
        Ok(host) if host.starts_with("unix://") => PathBuf::from(&host["unix://".len()..]),
        _ => PathBuf::from("/var/run/docker.sock"),
    }
}

/// A TCP (optionally TLS) front for the engine's Unix socket, on a free local port; it
/// counts the connections it carried. Dropping it stops it and its connections.
struct Proxy {
    address: std::net::SocketAddr,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    async fn start(tls: Option<tokio_rustls::TlsAcceptor>) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let address = listener.local_addr().expect("proxy address");
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        let socket = docker_socket();
        let task = tokio::spawn(async move {
            let mut carried = tokio::task::JoinSet::new();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let socket = socket.clone();
                let counted = counted.clone();
                let tls = tls.clone();
                carried.spawn(async move {
                    let Ok(mut engine) = tokio::net::UnixStream::connect(&socket).await else {
                        return;
                    };
                    match tls {
                        Some(acceptor) => {
                            let Ok(mut client) = acceptor.accept(client).await else {
                                return;
                            };
                            counted.fetch_add(1, Ordering::SeqCst);
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut engine).await;
                        }
                        None => {
                            let mut client = client;
                            counted.fetch_add(1, Ordering::SeqCst);
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut engine).await;
                        }
                    }
                });
                while carried.try_join_next().is_some() {}
            }
        });
        Proxy {
            address,
            connections,
            task,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Deploys and calls an exec function (`hello`) and stops the daemon cleanly.
async fn deploy_call_and_stop(d: Daemon) {
    d.deploy(
        "hello",
        json!({"image": "skiff/hello:latest", "memory": "64Mi", "timeout": "20s"}),
    )
    .await;
    let (status, body) = d.invoke("hello", r#"{"name":"Ann"}"#).await.status_text();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, "Hello Ann!\n");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_host_tcp_is_where_the_daemon_talks_to_the_engine() {
    if !skiff_testing::ready() {
        return;
    }
    let proxy = Proxy::start(None).await;
    let host = format!("tcp://{}", proxy.address);
    let d = Daemon::builder(skiff_bin!())
        .env("DOCKER_HOST", &host)
        .start()
        .await;
    let at_start = proxy.connections();
    assert!(
        at_start > 0,
        "no engine traffic through {host}:\n{}",
        d.log()
    );
    assert!(d.plain_log().contains(&host), "{}", d.log());
    deploy_call_and_stop(d).await;
    assert!(
        proxy.connections() > at_start,
        "the deploy and the call did not go through {host}"
    );
}

/// A TLS acceptor that presents the server certificate and requires a client certificate
/// signed by the CA, as a Docker engine started with `--tlsverify` does.
fn tls_acceptor(dir: &Path) -> tokio_rustls::TlsAcceptor {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .expect("server.pem")
        .collect::<Result<_, _>>()
        .expect("server certificate");
    let key = PrivateKeyDer::from_pem_file(dir.join("server-key.pem")).expect("server key");
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(dir.join("ca.pem")).expect("ca.pem") {
        roots.add(ca.expect("CA certificate")).expect("add the CA");
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .expect("client verifier");
    let config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .expect("server config");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_host_tcp_with_tls_verify_uses_the_certificates() {
    if !skiff_testing::ready() {
        return;
    }
    let certs = tempfile::tempdir().expect("tempdir");
    skiff_testing::tls::make_certificates(certs.path());
    let proxy = Proxy::start(Some(tls_acceptor(certs.path()))).await;
    let host = format!("tcp://{}", proxy.address);
    let cert_path = certs.path().to_str().expect("utf-8 path");

    // Without the right CA the engine is not trusted: one error line at start.
    let other = tempfile::tempdir().expect("tempdir");
    skiff_testing::tls::make_certificates(other.path());
    let empty = tempfile::tempdir().expect("tempdir");
    let stderr = serve_must_fail(
        empty.path(),
        &[
            ("DOCKER_HOST", &host),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", other.path().to_str().expect("utf-8")),
        ],
    )
    .await;
    let line = error_line(&stderr);
    assert!(line.contains(&host) && line.contains("TLS"), "{line}");
    assert_eq!(
        proxy.connections(),
        0,
        "a handshake succeeded with another CA"
    );

    let d = Daemon::builder(skiff_bin!())
        .env("DOCKER_HOST", &host)
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", cert_path)
        .start()
        .await;
    let at_start = proxy.connections();
    assert!(
        at_start > 0,
        "no TLS connection through {host}:\n{}",
        d.log()
    );
    deploy_call_and_stop(d).await;
    assert!(proxy.connections() > at_start);
}

#[tokio::test]
async fn a_docker_host_skiff_cannot_use_is_refused_at_start() {
    if !skiff_testing::ready() {
        return;
    }
    let certs = tempfile::tempdir().expect("tempdir");
    let cert_path = certs.path().to_str().expect("utf-8 path");
    for (env, says) in [
        (vec![("DOCKER_HOST", "ssh://x")], "DOCKER_HOST=ssh://x: "),
        (
            vec![("DOCKER_HOST", "foo://bar")],
            "DOCKER_HOST=foo://bar: ",
        ),
        (
            vec![("DOCKER_HOST", "npipe:////./pipe/docker_engine")],
            "DOCKER_HOST=npipe:////./pipe/docker_engine: ",
        ),
        (vec![("DOCKER_HOST", "garbage")], "DOCKER_HOST=garbage: "),
        (
            vec![("DOCKER_HOST", "tcp://127.0.0.1:notaport")],
            "DOCKER_HOST=tcp://127.0.0.1:notaport: ",
        ),
        (
            vec![
                ("DOCKER_HOST", "tcp://127.0.0.1:2376"),
                ("DOCKER_TLS_VERIFY", "1"),
                ("DOCKER_CERT_PATH", cert_path),
            ],
            "ca.pem cannot be read",
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let stderr = serve_must_fail(dir.path(), &env).await;
        let line = error_line(&stderr);
        assert!(line.contains(says), "{env:?}: {line}");
    }
}

// ---------------------------------------------------------------------------------------
// One daemon per data directory; a copy of one gets its own daemon id.

#[tokio::test]
async fn a_second_daemon_on_the_same_data_dir_is_refused() {
    if !skiff_testing::ready() {
        return;
    }
    let first = Daemon::start(skiff_bin!(), &[]).await;
    first
        .deploy("echo", json!({"image": "skiff/testfn:latest"}))
        .await;
    let stderr = serve_must_fail(first.data_dir.path(), &[]).await;
    let line = error_line(&stderr);
    let expected = format!(
        "another skiff daemon (pid {}) is using {}",
        first.pid(),
        first.data_dir.path().display()
    );
    assert!(line.contains(&expected), "{line}");
    // The first one is undisturbed.
    let (status, body) = first.invoke("echo", "still here").await.status_text();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, "still here");
    first.stop().await;
}

async fn ready_instances(d: &Daemon, name: &str) -> usize {
    d.instances(name)
        .await
        .iter()
        .filter(|i| i["state"] == "ready")
        .count()
}

#[tokio::test]
async fn a_copy_of_a_data_dir_gets_its_own_daemon_id_and_leaves_the_original_alone() {
    if !skiff_testing::ready() {
        return;
    }
    let mut original = Daemon::start(skiff_bin!(), &[]).await;
    let web = json!({"image": "skiff/echo-http:latest", "contract": "http",
                     "readiness_path": "/ready", "memory": "64Mi", "min_instances": 1});
    original.deploy("web", web).await;
    wait_until("an instance", Duration::from_secs(60), async || {
        ready_instances(&original, "web").await == 1
    })
    .await;
    assert!(original.terminate().await, "{}", original.log());

    // A copy of the stopped daemon's directory, as a backup or a second install would be.
    let copy = tempfile::tempdir().expect("tempdir");
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", original.data_dir.path().display()))
        .arg(copy.path())
        .status()
        .expect("cp");
    assert!(status.success());
    // The harness logs each daemon into its data directory: the copy starts a log of its own.
    std::fs::remove_file(copy.path().join("daemon.log")).expect("the copied log");

    original.restart().await;
    wait_until("the instance again", Duration::from_secs(60), async || {
        ready_instances(&original, "web").await == 1
    })
    .await;
    let before = original.containers();
    assert!(!before.is_empty());

    let copied = Daemon::builder(skiff_bin!()).data_dir(copy).start().await;
    assert_ne!(copied.id, original.id, "the copy kept the daemon id");
    assert!(
        copied.plain_log().contains(&original.id),
        "the copy does not say whose id it had:\n{}",
        copied.log()
    );
    // The copy's start-up (which removes its own leftovers) left the original's alone.
    let after = original.containers();
    for container in &before {
        assert!(after.contains(container), "{container} was removed");
    }
    assert_eq!(original.get("/fn/web/hello").await.status, StatusCode::OK);
    wait_until("the copy's instance", Duration::from_secs(60), async || {
        ready_instances(&copied, "web").await == 1
    })
    .await;
    copied.stop().await;
    assert_eq!(original.containers().len(), before.len());
    assert_eq!(original.get("/fn/web/again").await.status, StatusCode::OK);
    original.stop().await;
}

// ---------------------------------------------------------------------------------------
// File descriptors.

/// The soft and hard limits of open files of process `pid`.
fn nofile_limits(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files");
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

#[tokio::test]
async fn the_open_files_limit_is_raised_to_the_hard_limit() {
    if !skiff_testing::ready() {
        return;
    }
    let d = Daemon::builder(skiff_bin!())
        .nofile(256, 8192)
        .start()
        .await;
    assert_eq!(nofile_limits(d.pid()), (8192, 8192));
    assert!(d.plain_log().contains("8192"), "{}", d.log());
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_the_open_files_limit_calls_are_refused_with_429_not_failed() {
    if !skiff_testing::ready() {
        return;
    }
    // Enough for the daemon, not for sixty calls at once (each holds a connection from the
    // client and two or three to the engine).
    let d = Daemon::builder(skiff_bin!()).nofile(160, 160).start().await;
    d.deploy(
        "slow",
        json!({"image": "skiff/testfn:latest", "timeout": "60s",
               "env": {"MODE": "sleep", "SLEEP_MS": "3000"}}),
    )
    .await;
    let client = d.client();
    let calls = (0..60).map(|i| {
        let client = client.clone();
        let url = format!("{}/v1/functions/slow/invoke", d.url);
        async move {
            let response = client
                .post(url)
                .body(format!("call {i}"))
                .send()
                .await
                .expect("an answer");
            let status = response.status();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let body = response.text().await.unwrap_or_default();
            (i, status, retry_after, body)
        }
    });
    let answers = futures::future::join_all(calls).await;
    let mut served = 0;
    let mut refused = 0;
    for (i, status, retry_after, body) in answers {
        match status {
            StatusCode::OK => {
                assert_eq!(body, format!("call {i}"));
                served += 1;
            }
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(
                    retry_after.is_some_and(|s| s >= 1),
                    "no Retry-After: {body}"
                );
                let error: Value = serde_json::from_str(&body).expect("JSON error");
                assert_eq!(error["error"]["code"], "too_many_requests", "{body}");
                refused += 1;
            }
            other => panic!("call {i}: {other}: {body}\n{}", d.log()),
        }
    }
    eprintln!("{served} calls served, {refused} refused");
    assert!(served > 0, "no call was served");
    assert!(refused > 0, "no call was refused: the limit was never near");

    // No call failed for want of a descriptor.
    let page = d.get("/v1/calls?function=slow&limit=1000").await.json();
    for call in page["calls"].as_array().expect("calls") {
        assert_ne!(call["error_type"], "start_failed", "{call}");
    }
    assert!(
        !d.plain_log().contains("Too many open files"),
        "{}",
        d.log()
    );

    // Once the burst is over, the daemon serves again, then stops cleanly.
    wait_until("a served call", Duration::from_secs(60), async || {
        d.invoke("slow", "after").await.status == StatusCode::OK
    })
    .await;
    d.stop().await;
}

#[test]
fn a_sigterm_while_the_daemon_starts_stops_it_cleanly_once_started() {
    use std::io::BufRead;
    if !skiff_testing::ready() {
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let mut child = Command::new(skiff_bin!())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("SKIFF_CLI_CONFIG", dir.path().join("cli-config.toml"))
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("skiff serve");
    let mut lines = std::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    // Its first line is logged once it listens for signals, long before it has started
    // (connected to the engine, opened its store, bound its listeners).
    let first = lines.next().expect("a first line").expect("read");
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill")
        .success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().expect("wait");
    let text = format!("{first}\n{}", rest.join("\n"));
    assert!(status.success(), "{status}:\n{text}");
    assert!(text.contains("SIGTERM received"), "{text}");
}
