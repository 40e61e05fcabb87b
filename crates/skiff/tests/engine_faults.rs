//! A container engine that stops answering, on the real engine behind a proxy: calls still
//! end by their deadline, `/readyz` says the engine is unavailable, and all recovers once
//! the engine answers again.

use reqwest::StatusCode;
use serde_json::{json, Value};
use skiff_testing::{eventually, skiff_bin, Daemon};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

const ENGINE_SOCKET: &str = "/var/run/docker.sock";

/// A Unix-socket proxy in front of the engine's socket that can be frozen: while frozen it
/// accepts connections and reads requests but relays nothing either way, as an engine that
/// hangs would.
struct FreezingProxy {
    path: PathBuf,
    frozen: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl FreezingProxy {
    async fn start() -> FreezingProxy {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("engine.sock");
        let listener = UnixListener::bind(&path).expect("bind the proxy");
        let frozen = Arc::new(AtomicBool::new(false));
        let flag = frozen.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let flag = flag.clone();
                tokio::spawn(async move {
                    let Ok(upstream) = UnixStream::connect(ENGINE_SOCKET).await else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (upstream_read, upstream_write) = upstream.into_split();
                    tokio::join!(
                        pump(client_read, upstream_write, flag.clone()),
                        pump(upstream_read, client_write, flag),
                    );
                });
            }
        });
        FreezingProxy {
            path,
            frozen,
            task,
            _dir: dir,
        }
    }

    fn docker_host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    fn freeze(&self, frozen: bool) {
        self.frozen.store(frozen, Ordering::SeqCst);
    }
}

impl Drop for FreezingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to`, holding every chunk while the proxy is frozen.
async fn pump(
    mut from: tokio::net::unix::OwnedReadHalf,
    mut to: tokio::net::unix::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => n,
        };
        while frozen.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn calls_end_by_their_deadline_when_the_engine_hangs_and_readyz_says_so() {
    if !skiff_testing::ready() {
        return;
    }
    let proxy = FreezingProxy::start().await;
    let host = proxy.docker_host();
    let d = Daemon::builder(skiff_bin!())
        .args(&["--engine-timeout", "5s"])
        .env("DOCKER_HOST", &host)
        .start()
        .await;
    let echo = json!({"image": "skiff/testfn:latest", "timeout": "3s"});
    d.deploy("warm", echo.clone()).await;
    d.deploy("cold", echo).await;
    let client = d.client_with(reqwest::Client::builder().timeout(Duration::from_secs(60)));
    let call = |name: &'static str| {
        let client = client.clone();
        let url = format!("{}/fn/{name}", d.url);
        async move {
            client
                .post(url)
                .body("ping")
                .send()
                .await
                .expect("an answer")
        }
    };
    assert_eq!(call("warm").await.status(), StatusCode::OK);
    // A container is prepared for the next call of `warm` before the engine hangs.
    eventually("a prepared container", Duration::from_secs(30), || async {
        (!d.function_containers("warm").is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    proxy.freeze(true);
    // Both a call with a prepared container and one that needs a new container answer
    // (504, by their 3 s deadline and the answer margin), rather than hang with the engine.
    for name in ["warm", "cold"] {
        let answer = call(name).await;
        assert_eq!(answer.status(), StatusCode::GATEWAY_TIMEOUT, "{name}");
        let body: Value = answer.json().await.expect("json");
        assert_eq!(body["error"]["code"], "timeout", "{name}: {body}");
    }
    let (status, health) = eventually("readyz to notice", Duration::from_secs(30), || async {
        let (status, health) = d.get("/readyz").await.status_json();
        (status == StatusCode::SERVICE_UNAVAILABLE).then_some((status, health))
    })
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health["status"], "engine_unavailable", "{health}");
    // Liveness is not readiness: the process is up.
    assert_eq!(d.get("/healthz").await.status, StatusCode::OK);

    proxy.freeze(false);
    eventually("readyz to recover", Duration::from_secs(30), || async {
        (d.get("/readyz").await.status == StatusCode::OK).then_some(())
    })
    .await;
    assert_eq!(call("warm").await.status(), StatusCode::OK);
    assert_eq!(call("cold").await.status(), StatusCode::OK);
    // The calls that timed out are recorded as such, and nothing is left behind.
    for name in ["warm", "cold"] {
        let page = d.get_json(&format!("/v1/calls?function={name}")).await;
        let timed_out = page["calls"]
            .as_array()
            .expect("calls")
            .iter()
            .filter(|c| c["status"] == "timed_out")
            .count();
        assert_eq!(timed_out, 1, "{name}: {page}");
    }
    d.stop().await;
}
