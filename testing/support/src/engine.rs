//! What the engine holds, read and changed with the `docker` command as an operator would:
//! containers by label, a container's address, and named volumes made for one test.

use std::process::Command;

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

/// The address of container `id` on its network (empty when it has none).
pub fn container_ip(id: &str) -> String {
    let output = Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            id,
        ])
        .output()
        .expect("docker inspect");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Starts `count` containers of `skiff/testfn` that sleep (an hour), labelled with
/// `labels` (`key=value`) and, each, `skiff.instance=<prefix>-<n>`: what a killed daemon
/// leaves behind, made with the `docker` command, 8 at a time. Returns their ids.
pub fn run_sleepers(count: usize, prefix: &str, labels: &[&str]) -> Vec<String> {
    let labels: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (labels, next, prefix) = (labels.clone(), next.clone(), prefix.to_string());
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                    if n >= count {
                        return ids;
                    }
                    let mut command = Command::new("docker");
                    command.args(["run", "-d", "--network", "none", "-e", "MODE=sleep"]);
                    for label in &labels {
                        command.args(["--label", label]);
                    }
                    command.args(["--label", &format!("skiff.instance={prefix}-{n}")]);
                    let output = command
                        .arg("skiff/testfn:latest")
                        .output()
                        .expect("docker run");
                    assert!(
                        output.status.success(),
                        "docker run: {}",
                        String::from_utf8_lossy(&output.stderr)
                    );
                    ids.push(String::from_utf8_lossy(&output.stdout).trim().to_string());
                }
            })
        })
        .collect();
    workers
        .into_iter()
        .flat_map(|w| w.join().expect("a docker run worker"))
        .collect()
}

/// The containers the engine creates with every label of a set, watched live from the
/// engine's event stream (`docker events`, whose replay of the past is too short on a
/// busy engine to count from): creates of containers gone since are counted too. Stops
/// watching when dropped.
#[derive(Debug)]
pub struct CreateWatch {
    child: std::process::Child,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl CreateWatch {
    /// Starts watching for creates of containers with every label of `labels`
    /// (`key=value`).
    pub fn start(labels: &[&str]) -> CreateWatch {
        let mut command = Command::new("docker");
        command.args([
            "events",
            "--filter",
            "type=container",
            "--filter",
            "event=create",
            "--format",
            "{{.Actor.ID}}",
        ]);
        for label in labels {
            command.args(["--filter", &format!("label={label}")]);
        }
        let mut child = command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("docker events");
        let stdout = child.stdout.take().expect("piped stdout");
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let lines = seen.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Ok(mut seen) = lines.lock() {
                    seen.push(line);
                }
            }
        });
        // `docker events` subscribes once it has connected: give it a moment.
        std::thread::sleep(std::time::Duration::from_millis(300));
        CreateWatch { child, seen }
    }

    /// The containers created so far.
    pub fn created(&self) -> Vec<String> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for CreateWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
