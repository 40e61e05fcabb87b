//! A real image registry (Debian's `docker-registry`) on 127.0.0.1, for the tests of pulls
//! and pushes. The engine pulls from a registry on a loopback address over plain HTTP.

use crate::poll::poll;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Where Debian's package installs the registry.
const BINARY: &str = "docker-registry";

/// A registry on a port of its own, its storage in a temporary directory; killed when
/// dropped.
#[derive(Debug)]
pub struct Registry {
    child: Option<Child>,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Whether `docker-registry` is installed. When it is not: in CI (`CI=true`) this
    /// panics, so the test fails; elsewhere it prints why and returns false.
    pub fn available() -> bool {
        let found = Command::new(BINARY)
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        crate::setup::needs(found, BINARY, "the Debian package docker-registry")
    }

    /// Starts one on 127.0.0.1 and waits until it answers.
    pub async fn start() -> Registry {
        Registry::start_on("127.0.0.1").await
    }

    /// Starts one on every address of the host, so that the nodes of a test Swarm reach it
    /// on the host's bridge address (they treat registries there as plain HTTP), while the
    /// host's engine pushes to it on 127.0.0.1.
    pub async fn start_for_nodes() -> Registry {
        Registry::start_on("0.0.0.0").await
    }

    async fn start_on(ip: &str) -> Registry {
        let dir = tempfile::tempdir().expect("a registry directory");
        let port = crate::free_port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {ip}:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .expect("write the registry's config");
        let child = Command::new(BINARY)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let registry = Registry {
            child: Some(child),
            port,
            _dir: dir,
        };
        let url = format!("http://127.0.0.1:{port}/v2/");
        let answered = poll(
            Duration::from_secs(15),
            Duration::from_millis(100),
            async || {
                let answer = reqwest::get(&url).await.ok()?;
                answer.status().is_success().then_some(())
            },
        )
        .await;
        assert!(
            answered.is_some(),
            "docker-registry did not answer at {url} within 15s"
        );
        registry
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its address, as an image reference begins (`127.0.0.1:PORT`).
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
