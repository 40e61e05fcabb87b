//! The Docker Swarm of the test environment (`scripts/swarm.sh`: node containers on this
//! machine, each running its own dockerd), the registry its nodes pull from, and skiff
//! itself running in it as a service, as a stack runs it.
//!
//! The swarm is the one `SKIFF_TEST_SWARM` names (its manager's Docker API) with the
//! registry `SKIFF_TEST_SWARM_REGISTRY` names (`HOST:PORT` as the nodes reach it; the host's
//! engine pushes to the same port on 127.0.0.1); `.ci/run` brings both up. With `CI=true`
//! and either unset, a test fails rather than skip. A test leaves the swarm as it found it.

use crate::daemon::Daemon;
use crate::poll::poll;
use std::process::{Command, Output};
use std::time::Duration;

/// The overlay network `scripts/swarm.sh up` makes for functions.
pub const FUNCTIONS_NETWORK: &str = "skiff-fn";

/// The label of the skiff services tests start.
const SKIFF_SERVICE_LABEL: &str = "skiff.test-daemon=true";

/// The port skiff's service publishes on the manager node, by default.
const SKIFF_PORT: u16 = 8080;

/// Runs `command`, panicking with its output when it fails; its stdout, trimmed.
pub fn run(command: &mut Command) -> String {
    let output: Output = command.output().expect("run a command");
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The environment's swarm and registry.
#[derive(Debug, Clone)]
pub struct TestSwarm {
    /// The manager's Docker API (`tcp://10.231.0.2:2375`).
    pub manager: String,
    /// The manager node's address (where skiff's service is published).
    pub manager_ip: String,
    /// The registry as the nodes reach it (`10.231.0.1:5099`).
    registry: String,
}

impl TestSwarm {
    /// The swarm and registry of the environment; `None` when the test is to be skipped
    /// (in CI, a failure instead, see [`crate::needs`]).
    pub fn from_env() -> Option<TestSwarm> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let (manager, registry) = (var("SKIFF_TEST_SWARM"), var("SKIFF_TEST_SWARM_REGISTRY"));
        let (Some(manager), Some(registry)) = (manager, registry) else {
            crate::needs(
                false,
                "a Docker Swarm and a registry",
                "SKIFF_TEST_SWARM=tcp://MANAGER:2375 and SKIFF_TEST_SWARM_REGISTRY=HOST:PORT, \
                 which scripts/swarm.sh up 2 and scripts/swarm.sh registry print",
            );
            return None;
        };
        let manager_ip = manager
            .trim_start_matches("tcp://")
            .split(':')
            .next()
            .unwrap_or_default()
            .to_string();
        Some(TestSwarm {
            manager,
            manager_ip,
            registry,
        })
    }

    /// A `docker` command aimed at the manager.
    pub fn docker(&self) -> Command {
        let mut command = Command::new("docker");
        command.arg("-H").arg(&self.manager);
        command
    }

    /// The registry as the nodes reach it (`10.231.0.1:PORT`).
    pub fn registry(&self) -> String {
        self.registry.clone()
    }

    /// The registry as the host's engine pushes to it (`127.0.0.1:PORT`).
    fn registry_on_host(&self) -> String {
        let port = self.registry.rsplit(':').next().unwrap_or_default();
        format!("127.0.0.1:{port}")
    }

    /// Pushes the host's image `local` to the registry as `repo:latest`; the reference the
    /// nodes pull it by.
    pub fn push(&self, local: &str, repo: &str) -> String {
        let pushed = format!("{}/{repo}:latest", self.registry_on_host());
        run(Command::new("docker").args(["tag", local, &pushed]));
        run(Command::new("docker").args(["push", "--quiet", &pushed]));
        let _ = Command::new("docker").args(["rmi", &pushed]).output();
        format!("{}/{repo}:latest", self.registry())
    }

    /// skiff's own image (`scripts/build-skiff-image.sh`) with `binary` in it (the one the
    /// test or benchmark runs: `skiff_bin!()`), pushed to the registry; the reference the
    /// nodes pull it by.
    pub fn skiff_image(&self, binary: &std::path::Path) -> String {
        run(Command::new("bash")
            .arg(crate::repo_root().join("scripts/build-skiff-image.sh"))
            .env("SKIFF_IMAGE_BINARY", binary));
        self.push("skiff/skiff:latest", "skiff")
    }

    /// The node each task of the services labelled `label` (`KEY=VALUE`) runs on, for the
    /// tasks Swarm wants running.
    pub fn nodes_of(&self, label: &str) -> Vec<String> {
        // A service removed since it was listed has no tasks to count.
        self.services(label)
            .iter()
            .flat_map(|service| self.nodes_of_service(service))
            .collect()
    }

    /// The nodes the tasks of service `name` that Swarm wants running are on (an empty
    /// name for one not yet given to a node).
    pub fn nodes_of_service(&self, name: &str) -> Vec<String> {
        self.docker()
            .args([
                "service",
                "ps",
                "--filter",
                "desired-state=running",
                "--format",
                "{{.Node}}",
                name,
            ])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Sets a node's availability (`active`, `pause` or `drain`).
    pub fn set_availability(&self, node: &str, availability: &str) {
        run(self
            .docker()
            .args(["node", "update", "--availability", availability, node]));
    }

    /// The services labelled `label` (`KEY=VALUE`).
    pub fn services(&self, label: &str) -> Vec<String> {
        run(self.docker().args([
            "service",
            "ls",
            "--quiet",
            "--filter",
            &format!("label={label}"),
        ]))
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
    }

    /// Starts skiff as the service `name` on the manager, with the Swarm engine, the
    /// functions' overlay network, its API published on the manager's port 8080, and a
    /// first admin token given as a Docker secret; `image` is skiff's image as the nodes
    /// pull it ([`TestSwarm::push`] of `skiff/skiff:latest`, which
    /// `scripts/build-skiff-image.sh` builds). Returns once it is ready, as a [`Daemon`]
    /// whose requests carry that token. Clears what an earlier run left first.
    pub async fn start_skiff(&self, name: &str, image: &str, args: &[&str]) -> SwarmSkiff {
        self.skiff(name, image).args(args).start().await
    }

    /// skiff as the service `name`, to start as [`TestSwarm::start_skiff`] does but with
    /// another port, token, environment or arguments.
    pub fn skiff<'a>(&'a self, name: &str, image: &str) -> SkiffService<'a> {
        SkiffService {
            swarm: self,
            name: name.to_string(),
            image: image.to_string(),
            port: SKIFF_PORT,
            token: None,
            env: Vec::new(),
            args: Vec::new(),
            beside_others: false,
        }
    }

    /// Removes the services of skiff's that earlier runs left: the skiff services tests
    /// started (labelled [`SKIFF_SERVICE_LABEL`]) and `name`, which remove their instances as
    /// they stop, then whatever instances remain.
    async fn clear_earlier_runs(&self, name: &str) {
        let mut earlier = self.services(SKIFF_SERVICE_LABEL);
        earlier.push(name.to_string());
        for service in earlier {
            let _ = self.docker().args(["service", "rm", &service]).output();
        }
        let cleared = poll(
            Duration::from_secs(60),
            Duration::from_millis(500),
            async || self.services("skiff.managed=true").is_empty().then_some(()),
        )
        .await;
        if cleared.is_none() {
            for service in self.services("skiff.managed=true") {
                let _ = self.docker().args(["service", "rm", &service]).output();
            }
        }
    }

    /// Creates (or replaces) the Docker secret `name` holding `value`.
    fn put_secret(&self, name: &str, value: &str) {
        let _ = self.docker().args(["secret", "rm", name]).output();
        let mut create = self.docker();
        create.args(["secret", "create", name, "-"]);
        let mut child = create
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("docker secret create");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(value.as_bytes()).expect("write the secret");
        }
        assert!(
            child.wait().expect("wait").success(),
            "docker secret create"
        );
    }

    /// A PostgreSQL cluster of its own that the nodes reach, at this machine's address on
    /// the nodes' network (the registry's host); stopped and removed when it is dropped.
    pub fn postgres(&self) -> SwarmPostgres {
        let host = self
            .registry
            .rsplit_once(':')
            .map_or("", |(h, _)| h)
            .to_string();
        let script = crate::repo_root().join("scripts/postgres.sh");
        let out = run(Command::new("bash").arg(script).args([
            "start",
            "--listen",
            &format!("127.0.0.1,{host}"),
            "--trust",
            &format!("{}/16", host),
        ]));
        let mut words = out.split_whitespace();
        let (url, dir) = (
            words.next().unwrap_or_default(),
            words.next().unwrap_or_default(),
        );
        SwarmPostgres {
            url: url.replace("@127.0.0.1:", &format!("@{host}:")),
            dir: dir.to_string(),
        }
    }
}

/// A PostgreSQL cluster of `scripts/postgres.sh` that the swarm's nodes reach (trust
/// authentication from their network), for daemons on the swarm to share.
#[derive(Debug)]
pub struct SwarmPostgres {
    /// Its URL as the nodes reach it, for `skiff serve --store`.
    pub url: String,
    dir: String,
}

impl Drop for SwarmPostgres {
    fn drop(&mut self) {
        let script = crate::repo_root().join("scripts/postgres.sh");
        let _ = Command::new("bash")
            .arg(script)
            .args(["stop", &self.dir])
            .output();
    }
}

/// skiff as a service of a [`TestSwarm`], to start: [`TestSwarm::skiff`].
#[derive(Debug)]
pub struct SkiffService<'a> {
    swarm: &'a TestSwarm,
    name: String,
    image: String,
    port: u16,
    token: Option<String>,
    env: Vec<String>,
    args: Vec<String>,
    beside_others: bool,
}

impl SkiffService<'_> {
    /// The port its API is published on, on the manager node (8080 by default).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The secret of its first admin token (a random one by default). Daemons sharing a
    /// store share the token the first one made: give the others the same.
    pub fn token(mut self, secret: &str) -> Self {
        self.token = Some(secret.to_string());
        self
    }

    /// Sets the environment variable `key` of the service.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push(format!("{key}={value}"));
        self
    }

    /// Adds `args` to `skiff serve`'s.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Joins skiffs that run already, leaving their services and instances be (by default
    /// what an earlier run left is removed first).
    pub fn beside_others(mut self) -> Self {
        self.beside_others = true;
        self
    }

    /// Starts it and waits until it is ready.
    pub async fn start(self) -> SwarmSkiff {
        let swarm = self.swarm;
        let name = self.name.as_str();
        let port = self.port;
        let secret = self
            .token
            .clone()
            .unwrap_or_else(|| format!("skt_{}", random_hex()));
        let secret_name = format!("{name}-admin-token");
        if self.beside_others {
            let _ = swarm.docker().args(["service", "rm", name]).output();
        } else {
            swarm.clear_earlier_runs(name).await;
        }
        swarm.put_secret(&secret_name, &secret);
        let mut service = swarm.docker();
        service.args([
            "service",
            "create",
            "--quiet",
            "--detach",
            "--name",
            name,
            "--label",
            SKIFF_SERVICE_LABEL,
            "--network",
            FUNCTIONS_NETWORK,
            "--constraint",
            "node.role==manager",
            "--publish",
            &format!("mode=host,target={port},published={port}"),
            "--mount",
            "type=bind,source=/var/run/docker.sock,target=/var/run/docker.sock",
            "--secret",
            &secret_name,
            "--restart-condition",
            "none",
            "--stop-grace-period",
            "60s",
            "--env",
            &format!("SKIFF_ADMIN_TOKEN_FILE=/run/secrets/{secret_name}"),
        ]);
        for var in &self.env {
            service.args(["--env", var]);
        }
        service.args([
            self.image.as_str(),
            "serve",
            "--engine",
            "swarm",
            "--network",
            FUNCTIONS_NETWORK,
            "--listen",
            &format!("0.0.0.0:{port}"),
        ]);
        service.args(&self.args);
        run(&mut service);
        let url = format!("http://{}:{port}", swarm.manager_ip);
        let mut daemon = Daemon::remote(&url, &secret);
        let ready = poll(
            Duration::from_secs(120),
            Duration::from_millis(500),
            async || {
                let answer = reqwest::get(format!("{url}/readyz")).await.ok()?;
                if !answer.status().is_success() {
                    return None;
                }
                let body: serde_json::Value = answer.json().await.ok()?;
                // This daemon, not one an earlier run left going away: it takes the token.
                let mine = reqwest::Client::new()
                    .get(format!("{url}/v1/functions"))
                    .bearer_auth(&secret)
                    .send()
                    .await
                    .ok()?;
                if !mine.status().is_success() {
                    return None;
                }
                body["daemon"].as_str().map(str::to_string)
            },
        )
        .await;
        let skiff = SwarmSkiff {
            name: name.to_string(),
            secret: secret_name,
            manager: swarm.manager.clone(),
            daemon: Daemon::remote(&url, &secret),
        };
        let Some(id) = ready else {
            panic!(
                "skiff on the swarm did not become ready in 120s:\n{}\n{}",
                run(swarm.docker().args(["service", "ps", "--no-trunc", name])),
                skiff.logs()
            );
        };
        daemon.id = id;
        SwarmSkiff { daemon, ..skiff }
    }
}

/// skiff running as a service of a [`TestSwarm`].
#[derive(Debug)]
pub struct SwarmSkiff {
    name: String,
    secret: String,
    manager: String,
    /// Its API, with the admin token (the API helpers of [`Daemon`] work on it).
    pub daemon: Daemon,
}

impl SwarmSkiff {
    /// What the service has logged (`docker service logs`).
    pub fn logs(&self) -> String {
        let out = Command::new("docker")
            .args(["-H", &self.manager, "service", "logs", "--raw", &self.name])
            .output()
            .map(|o| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )
            })
            .unwrap_or_default();
        out
    }

    /// Its running container on the manager, if any.
    pub fn container(&self) -> Option<String> {
        let out = Command::new("docker")
            .args([
                "-H",
                &self.manager,
                "ps",
                "--quiet",
                "--filter",
                &format!("label=com.docker.swarm.service.name={}", self.name),
            ])
            .output()
            .ok()?;
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (!id.is_empty()).then_some(id)
    }

    /// Kills its container (SIGKILL: no graceful stop, nothing cleaned up); Swarm does not
    /// restart it. [`SwarmSkiff::stop`] then removes the service.
    pub fn kill(&self) {
        let container = self.container().expect("skiff's container runs");
        run(Command::new("docker").args(["-H", &self.manager, "kill", &container]));
    }

    /// Removes the service (SIGTERM, a graceful stop) and waits until its task is gone.
    pub async fn stop(self) -> String {
        let logs_before = self.logs();
        let _ = Command::new("docker")
            .args(["-H", &self.manager, "service", "rm", &self.name])
            .output();
        let manager = self.manager.clone();
        let name = self.name.clone();
        let gone = poll(
            Duration::from_secs(90),
            Duration::from_millis(500),
            async || {
                let out = Command::new("docker")
                    .args([
                        "-H",
                        &manager,
                        "ps",
                        "--quiet",
                        "--filter",
                        &format!("label=com.docker.swarm.service.name={name}"),
                    ])
                    .output()
                    .ok()?;
                String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .is_empty()
                    .then_some(())
            },
        )
        .await;
        assert!(
            gone.is_some(),
            "skiff's container did not go:\n{logs_before}"
        );
        let _ = Command::new("docker")
            .args(["-H", &self.manager, "secret", "rm", &self.secret])
            .output();
        logs_before
    }
}

/// A random secret's tail: 64 hex digits.
fn random_hex() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}
