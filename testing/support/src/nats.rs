//! A real `nats-server -js` for the tests of NATS triggers.

use crate::poll::poll;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `nats-server -js` on a port of its own, with its store in a temporary directory;
/// killed when dropped.
#[derive(Debug)]
pub struct Nats {
    child: Option<Child>,
    port: u16,
    _store: tempfile::TempDir,
}

impl Nats {
    /// Whether `nats-server` is installed. When it is not: in CI (`CI=true`) this panics, so
    /// the test fails; elsewhere it prints why and returns false.
    pub fn available() -> bool {
        let found = Command::new("nats-server")
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        crate::setup::needs(found, "nats-server", "the Debian package nats-server")
    }

    pub async fn start(port: u16) -> Nats {
        let store = tempfile::tempdir().expect("a store directory");
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        let nats = Nats {
            child: Some(child),
            port,
            _store: store,
        };
        let listening = poll(
            Duration::from_secs(10),
            Duration::from_millis(100),
            async || {
                let connected = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
                connected.is_ok().then_some(())
            },
        )
        .await;
        assert!(
            listening.is_some(),
            "nats-server did not listen on {port} within 10s"
        );
        nats
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Publishes to JetStream and waits for the stream's acknowledgement.
    pub async fn publish(&self, subject: &str, body: &str, headers: &[(&str, &str)]) {
        let client = async_nats::connect(self.url())
            .await
            .expect("connect to nats");
        let js = async_nats::jetstream::new(client);
        let mut map = async_nats::HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, *v);
        }
        js.publish_with_headers(subject.to_string(), map, body.to_string().into())
            .await
            .expect("publish")
            .await
            .expect("stored by the stream");
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
