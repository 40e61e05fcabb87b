//! Helpers shared by skiff's end-to-end tests and benchmarks: the real Docker engine must be
//! there (in CI a missing engine fails the test, it is never skipped silently), and the
//! function images are built from source, FROM scratch, once per test process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Whether the Docker engine answers. When it does not: in CI (`CI=true`) this panics, so the
/// test fails; elsewhere it prints why and returns false, and the caller returns early.
pub fn docker_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    let available = *AVAILABLE.get_or_init(|| {
        Command::new("docker")
            .args(["version", "--format", "{{.Server.APIVersion}}"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    });
    if !available {
        let in_ci = std::env::var("CI")
            .map(|v| v == "true" || v == "1")
            .unwrap_or(false);
        assert!(
            !in_ci,
            "this test needs the Docker engine, and CI=true: Docker must be running"
        );
        eprintln!("SKIPPED: the Docker engine is not reachable; this test needs it");
    }
    available
}

/// Builds the example and test images (`skiff/hello`, `skiff/uppercase`, `skiff/testfn`) once
/// per process with `scripts/build-examples.sh`. Panics if the build fails.
pub fn ensure_images() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let result = BUILT.get_or_init(|| {
        let script = repo_root().join("scripts/build-examples.sh");
        let output = Command::new("bash")
            .arg(&script)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} failed:\n{}{}",
                script.display(),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    });
    if let Err(message) = result {
        panic!("{message}");
    }
}

/// Docker and the images, or an early return: `if !ready() { return; }`.
pub fn ready() -> bool {
    if !docker_available() {
        return false;
    }
    ensure_images();
    true
}

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
    /// The daemon's data directory (kept across restarts).
    pub data_dir: tempfile::TempDir,
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// The daemon id (the `skiff.daemon` label of its containers).
    pub id: String,
    log_path: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
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
            url: String::new(),
            id: String::new(),
            data_dir,
            log_path,
        };
        daemon.spawn().await;
        daemon
    }
}

impl Daemon {
    /// Starts `skiff serve` from `binary` with `args` added, and waits until it is ready.
    pub async fn start(binary: &Path, args: &[&str]) -> Daemon {
        Daemon::builder(binary).args(args).start().await
    }

    /// A daemon to set up before [`DaemonBuilder::start`].
    pub fn builder(binary: &Path) -> DaemonBuilder {
        DaemonBuilder {
            binary: binary.to_path_buf(),
            args: Vec::new(),
            env: Vec::new(),
            data_dir: None,
            nofile: None,
        }
    }

    async fn spawn(&mut self) {
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
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("start skiff serve");
        self.child = Some(child);
        self.url = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
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
                    return;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("skiff serve did not become ready in 15s:\n{}", self.log());
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

    /// [`Daemon::restart`] with other arguments.
    pub async fn restart_with(&mut self, args: &[&str]) {
        self.args = args.iter().map(|a| a.to_string()).collect();
        self.restart().await;
    }

    /// Containers of this daemon on the engine (by its `skiff.daemon` label).
    pub fn containers(&self) -> Vec<String> {
        containers_with_label(&format!("skiff.daemon={}", self.id))
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
            // A test that failed midway: do not leak its containers either.
            for id in containers_with_label(&format!("skiff.daemon={}", self.id)) {
                let _ = Command::new("docker").args(["rm", "-f", &id]).output();
            }
        }
    }
}

/// Ids of all containers (running or not) carrying `label` (`key=value`).
pub fn containers_with_label(label: &str) -> Vec<String> {
    Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            &format!("label={label}"),
        ])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_string)
                .filter(|l| !l.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// A Docker named volume for one test, with a name no other run uses. Dropping it removes
/// the volume (declare it before the [`Daemon`], so the daemon and its containers go
/// first).
#[derive(Debug)]
pub struct TestVolume {
    /// The volume's name.
    pub name: String,
}

impl TestVolume {
    /// A unique name starting with `prefix`; the volume itself is made by whoever mounts it.
    pub fn new(prefix: &str) -> TestVolume {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        TestVolume {
            name: format!("{prefix}-{}-{nanos:x}-{n}", std::process::id()),
        }
    }

    /// Creates the volume as an operator would, with plain `docker volume create` (no
    /// label), replacing one of that name that no container uses.
    pub fn create_unlabelled(&self) {
        let _ = Command::new("docker")
            .args(["volume", "rm", "-f", &self.name])
            .output();
        let out = Command::new("docker")
            .args(["volume", "create", &self.name])
            .output()
            .expect("docker volume create");
        assert!(out.status.success(), "docker volume create: {out:?}");
    }

    /// Whether the volume exists on the engine.
    pub fn exists(&self) -> bool {
        Command::new("docker")
            .args(["volume", "inspect", &self.name])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// The volume's labels (empty when it does not exist).
    pub fn labels(&self) -> std::collections::HashMap<String, String> {
        Command::new("docker")
            .args([
                "volume",
                "inspect",
                "--format",
                "{{json .Labels}}",
                &self.name,
            ])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| serde_json::from_slice(&o.stdout).ok())
            .unwrap_or_default()
    }
}

impl Drop for TestVolume {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["volume", "rm", "-f", &self.name])
            .output();
    }
}

impl Daemon {
    /// Creates or updates function `name` with `spec` through the API; panics unless it
    /// succeeded.
    pub async fn deploy(&self, name: &str, spec: serde_json::Value) {
        let response = reqwest::Client::new()
            .put(format!("{}/v1/functions/{name}", self.url))
            .json(&spec)
            .send()
            .await
            .expect("deploy");
        let status = response.status();
        assert!(
            status.is_success(),
            "deploying {name}: {status} {}",
            response.text().await.unwrap_or_default()
        );
    }

    /// `GET path` (below the daemon's URL) as JSON, whatever the status.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        reqwest::get(format!("{}{path}", self.url))
            .await
            .expect("GET")
            .json()
            .await
            .expect("a JSON answer")
    }

    /// The containers of this daemon that serve function `name`.
    pub fn function_containers(&self, name: &str) -> Vec<String> {
        let of_daemon = self.containers();
        containers_with_label(&format!("skiff.function={name}"))
            .into_iter()
            .filter(|c| of_daemon.contains(c))
            .collect()
    }
}

/// Polls `check` every 100 ms until it gives a value, for at most `bound`; panics naming
/// `what` if it never does.
pub async fn eventually<T, F, Fut>(what: &str, bound: std::time::Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = std::time::Instant::now() + bound;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            std::time::Instant::now() < until,
            "{what}: not within {bound:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
