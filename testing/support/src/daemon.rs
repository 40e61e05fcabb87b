//! A `skiff serve` process for one test: started on its own data directory and port,
//! restarted, stopped gracefully or killed, and never left behind with its containers.

use crate::engine::containers_with_label;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A `skiff serve` process for one test, with its own data directory and port.
///
/// Dropping it kills the process (SIGKILL); call [`Daemon::stop`] for a graceful stop that
/// also checks that no container of this daemon is left.
#[derive(Debug)]
pub struct Daemon {
    child: Option<std::process::Child>,
    binary: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    nofile: Option<(u64, u64)>,
    /// With TLS: the CA its certificate is signed by.
    pub(crate) tls: Option<PathBuf>,
    /// The daemon's data directory (kept across restarts).
    pub data_dir: tempfile::TempDir,
    /// Base URL, e.g. `http://127.0.0.1:41234` (`https://` with TLS).
    pub url: String,
    /// The daemon id (the `skiff.daemon` label of its containers).
    pub id: String,
    /// The admin token it made at its first start (from `admin.token` in its data
    /// directory), which [`Daemon::request`] and [`Daemon::client`] send; empty if there is
    /// none (a daemon joining a store that has tokens: set it from the first daemon's).
    pub token: String,
    log_path: PathBuf,
}

/// A TCP port on 127.0.0.1 that nothing listens on (as of this call).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// How to start a [`Daemon`] when the defaults of [`Daemon::start`] do not fit: extra
/// environment variables, a data directory made beforehand, a lower open-files limit.
#[derive(Debug)]
pub struct DaemonBuilder {
    binary: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    data_dir: Option<tempfile::TempDir>,
    nofile: Option<(u64, u64)>,
    tls: Option<PathBuf>,
}

impl DaemonBuilder {
    /// Adds arguments to `skiff serve`.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Sets an environment variable of the daemon (on top of the test's own environment).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Runs the daemon on this data directory rather than a new empty one.
    pub fn data_dir(mut self, dir: tempfile::TempDir) -> Self {
        self.data_dir = Some(dir);
        self
    }

    /// Serves the API over TLS with the certificates [`crate::tls::make_certificates`] wrote
    /// in `dir` (the daemon's URL is then `https://`, and its clients trust `ca.pem`).
    pub fn tls(mut self, dir: &Path) -> Self {
        self.args.extend([
            "--tls-cert".to_string(),
            dir.join("server.pem").display().to_string(),
            "--tls-key".to_string(),
            dir.join("server-key.pem").display().to_string(),
        ]);
        self.tls = Some(dir.join("ca.pem"));
        self
    }

    /// Starts the daemon with these soft and hard limits of open files (through
    /// util-linux's `prlimit`, which sets them and then becomes the daemon).
    pub fn nofile(mut self, soft: u64, hard: u64) -> Self {
        self.nofile = Some((soft, hard));
        self
    }

    /// Starts the daemon and waits until it is ready.
    pub async fn start(self) -> Daemon {
        let data_dir = match self.data_dir {
            Some(dir) => dir,
            None => tempfile::tempdir().expect("a temporary data directory"),
        };
        let log_path = data_dir.path().join("daemon.log");
        let mut daemon = Daemon {
            child: None,
            binary: self.binary,
            args: self.args,
            env: self.env,
            nofile: self.nofile,
            tls: self.tls,
            url: String::new(),
            id: String::new(),
            token: String::new(),
            data_dir,
            log_path,
        };
        daemon.spawn().await;
        daemon
    }
}

impl Daemon {
    /// A daemon this test did not start (skiff in a Swarm service, say), at `url`, whose
    /// requests carry `token`: the API helpers work on it; stopping it is the caller's job.
    pub fn remote(url: &str, token: &str) -> Daemon {
        Daemon {
            child: None,
            binary: PathBuf::new(),
            args: Vec::new(),
            env: Vec::new(),
            nofile: None,
            tls: None,
            data_dir: tempfile::tempdir().expect("a temporary directory"),
            url: url.to_string(),
            id: String::new(),
            token: token.to_string(),
            log_path: PathBuf::new(),
        }
    }

    /// Starts `skiff serve` from `binary` with `args` added, and waits until it is ready.
    pub async fn start(binary: &Path, args: &[&str]) -> Daemon {
        Daemon::builder(binary).args(args).start().await
    }

    /// [`Daemon::start`] once the engine and the images are [`ready`](crate::ready); `None`
    /// when the test is to be skipped: `let Some(d) = Daemon::start_if_ready(..).await else
    /// { return };`.
    pub async fn start_if_ready(binary: &Path, args: &[&str]) -> Option<Daemon> {
        if !crate::ready() {
            return None;
        }
        Some(Daemon::start(binary, args).await)
    }

    /// A daemon to set up before [`DaemonBuilder::start`].
    pub fn builder(binary: &Path) -> DaemonBuilder {
        DaemonBuilder {
            binary: binary.to_path_buf(),
            args: Vec::new(),
            env: Vec::new(),
            data_dir: None,
            nofile: None,
            tls: None,
        }
    }

    async fn spawn(&mut self) {
        self.launch();
        self.wait_ready().await;
    }

    /// Starts the process and sets the URL, without waiting for it to listen.
    fn launch(&mut self) {
        let port = free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("daemon log file");
        let mut command = match self.nofile {
            Some((soft, hard)) => {
                let mut command = Command::new("prlimit");
                command
                    .arg(format!("--nofile={soft}:{hard}"))
                    .arg("--")
                    .arg(&self.binary);
                command
            }
            None => Command::new(&self.binary),
        };
        let child = command
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("SKIFF_LOG", "info,skiff=debug")
            // The daemon hands its admin token to this file, not to the user's own config.
            .env("SKIFF_CLI_CONFIG", self.cli_config())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("start skiff serve");
        self.child = Some(child);
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        self.url = format!("{scheme}://127.0.0.1:{port}");
    }

    /// Waits until the daemon answers `/readyz` with 200, and notes its id.
    async fn wait_ready(&mut self) {
        let client = self.client();
        for _ in 0..300 {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("skiff serve exited with {status}:\n{}", self.log());
                }
            }
            if let Ok(response) = client.get(format!("{}/readyz", self.url)).send().await {
                if response.status().is_success() {
                    let body: serde_json::Value = response.json().await.expect("readyz body");
                    self.id = body["daemon"].as_str().expect("daemon id").to_string();
                    if let Ok(token) =
                        std::fs::read_to_string(self.data_dir.path().join("admin.token"))
                    {
                        self.token = token.trim().to_string();
                    }
                    return;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("skiff serve did not become ready in 15s:\n{}", self.log());
    }

    /// The command line's config file the daemon writes its admin token to: point
    /// `skiff` commands at it with `SKIFF_CLI_CONFIG` (see [`Daemon::cli`]).
    pub fn cli_config(&self) -> PathBuf {
        self.data_dir.path().join("cli-config.toml")
    }

    /// A `skiff` command for this daemon: `--url` set, and its token, through the config
    /// file the daemon wrote.
    pub fn cli(&self) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .env("SKIFF_CLI_CONFIG", self.cli_config())
            .env_remove("SKIFF_TOKEN")
            .env_remove("SKIFF_NAMESPACE")
            .arg("--url")
            .arg(&self.url);
        command
    }

    /// What the daemon has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// What the daemon has logged so far, without its colours (ANSI escape sequences).
    pub fn plain_log(&self) -> String {
        let log = self.log();
        let mut plain = String::with_capacity(log.len());
        let mut chars = log.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                // `ESC [ ... m`
                for c in chars.by_ref() {
                    if c == 'm' {
                        break;
                    }
                }
            } else {
                plain.push(c);
            }
        }
        plain
    }

    /// The process id of the running daemon.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(|c| c.id())
            .expect("a running daemon")
    }

    /// Sends SIGTERM and waits for the daemon to exit; returns whether it exited with 0.
    pub async fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        for _ in 0..1200 {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "skiff serve did not stop within 60s of SIGTERM:\n{}",
            self.log()
        );
    }

    /// Kills the daemon with SIGKILL, leaving whatever it had running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the daemon again on the same data directory (after `terminate` or `kill`).
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the daemon before restarting it");
        self.spawn().await;
    }

    /// Starts the daemon again on the same data directory and returns at once, without
    /// waiting for it to listen or be ready (the id stays the one it had).
    pub fn restart_unready(&mut self) {
        assert!(self.child.is_none(), "stop the daemon before restarting it");
        self.launch();
    }

    /// Whether the process has exited (its status, if so).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// [`Daemon::restart`] with other arguments.
    pub async fn restart_with(&mut self, args: &[&str]) {
        self.args = args.iter().map(|a| a.to_string()).collect();
        self.restart().await;
    }

    /// Containers of this daemon on the engine (by its `skiff.daemon` label).
    pub fn containers(&self) -> Vec<String> {
        containers_with_label(&format!("skiff.daemon={}", self.id))
    }

    /// The containers of this daemon that serve function `name`.
    pub fn function_containers(&self, name: &str) -> Vec<String> {
        let of_daemon = self.containers();
        containers_with_label(&format!("skiff.function={name}"))
            .into_iter()
            .filter(|c| of_daemon.contains(c))
            .collect()
    }

    /// Stops the daemon with SIGTERM and asserts that it exited cleanly and left no container.
    pub async fn stop(mut self) {
        let clean = self.terminate().await;
        assert!(clean, "skiff serve did not exit cleanly:\n{}", self.log());
        let left = self.containers();
        assert!(
            left.is_empty(),
            "containers left behind: {left:?}\n{}",
            self.log()
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            // A test that failed midway: do not leak its containers either. Creates the
            // engine was still carrying out when the daemon was killed land after the first
            // pass, so pass again, a second apart, until one finds none (as the takeover's
            // sweep does).
            for pass in 0..5 {
                let left = self.containers();
                if left.is_empty() && pass > 0 {
                    break;
                }
                for id in left {
                    let _ = Command::new("docker").args(["rm", "-f", &id]).output();
                }
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        }
    }
}
