//! The README's steps for running skiff as a Swarm stack ("When one machine is not enough"),
//! run as they are written, on a real 2-node swarm: `deploy/stack.yml` with skiff,
//! PostgreSQL and a registry, then an `http` function deployed from that registry, its
//! instances on both nodes, and called.
//!
//! The test machine cannot pull, and its kernel has no IPVS for Swarm's routing mesh, so the
//! steps run with the settings the README gives for that case: the stand-in images of
//! `scripts/build-stack-images.sh`, `SKIFF_PUBLISH_MODE=host`, and `REGISTRY` at the
//! address of the node that runs the registry. The test swarm has one manager, so the stack
//! runs one daemon (`SKIFF_REPLICAS=1`): a second manager made for the test wedged the
//! swarm's Raft store on these nested nodes ("data store lock held too long"). Two daemons
//! sharing one PostgreSQL on the swarm are tested in `swarm.rs`.
//!
//! Runs on the swarm and registry `SKIFF_TEST_SWARM` and `SKIFF_TEST_SWARM_REGISTRY` name
//! (`.ci/run` brings them up; see `skiff_testing::swarm`).

use skiff_testing::poll;
use skiff_testing::swarm::{run, TestSwarm};
use std::process::Command;
use std::time::Duration;

/// The stack's name in the README's steps.
const STACK: &str = "skiff";

/// The README's code block marked `<!-- stack-steps -->`.
fn readme_steps() -> String {
    let readme = std::fs::read_to_string(skiff_testing::repo_root().join("README.md"))
        .expect("read the README");
    let marker = readme
        .find("<!-- stack-steps")
        .expect("the README marks its stack steps");
    let block = &readme[marker..];
    let start = block.find("```sh\n").expect("a sh block after the marker") + "```sh\n".len();
    let end = block[start..].find("```").expect("the block ends");
    block[start..start + end].to_string()
}

/// What the test changes on the swarm, undone when it is dropped, whatever happened: the
/// stack and the functions' services, the stack's volumes on every node, its secrets and the
/// state label.
struct StackOnSwarm {
    swarm: TestSwarm,
    state_node: String,
}

impl StackOnSwarm {
    /// What a `docker` command aimed at the manager printed; empty when it failed (this runs
    /// in `Drop`, where a panic during a failing test's unwinding would abort it).
    fn quietly(&self, args: &[&str]) -> String {
        self.swarm
            .docker()
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    }

    /// The nodes' names and their Docker APIs.
    fn nodes(&self) -> Vec<(String, String)> {
        self.quietly(&["node", "ls", "--format", "{{.Hostname}}"])
            .lines()
            .map(|name| {
                let addr = self.quietly(&["node", "inspect", name, "--format", "{{.Status.Addr}}"]);
                (name.to_string(), format!("tcp://{addr}:2375"))
            })
            .collect()
    }

    /// The stack's services and those of skiff's functions.
    fn services(&self) -> Vec<String> {
        self.quietly(&["service", "ls", "--format", "{{.Name}}"])
            .lines()
            .filter(|s| s.starts_with(&format!("{STACK}_")))
            .map(str::to_string)
            .chain(
                self.quietly(&[
                    "service",
                    "ls",
                    "--filter",
                    "label=skiff.managed=true",
                    "--format",
                    "{{.Name}}",
                ])
                .lines()
                .map(str::to_string),
            )
            .collect()
    }
}

impl Drop for StackOnSwarm {
    fn drop(&mut self) {
        let docker = |args: &[&str]| {
            let _ = self.swarm.docker().args(args).output();
        };
        docker(&["stack", "rm", STACK]);
        // The daemons remove their functions' services as they stop; what is left after a
        // minute is removed here.
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        while !self.services().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(500));
        }
        for service in self.services() {
            docker(&["service", "rm", &service]);
        }
        // Volumes go once no container holds them.
        for (_, api) in self.nodes() {
            for _ in 0..60 {
                let out = Command::new("docker")
                    .args(["-H", &api, "ps", "-aq", "--filter"])
                    .arg(format!("label=com.docker.stack.namespace={STACK}"))
                    .output();
                if out.map(|o| o.stdout.is_empty()).unwrap_or(true) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            for volume in ["postgres-data", "registry-data", "skiff-data"] {
                let _ = Command::new("docker")
                    .args(["-H", &api, "volume", "rm", &format!("{STACK}_{volume}")])
                    .output();
            }
        }
        docker(&["network", "rm", "skiff-functions"]);
        docker(&["secret", "rm", "skiff_admin_token", "skiff_secret_key"]);
        docker(&[
            "node",
            "update",
            "--label-rm",
            "skiff.state",
            &self.state_node,
        ]);
    }
}

#[tokio::test]
async fn the_readme_stack_steps_run_as_written() {
    let Some(swarm) = TestSwarm::from_env() else {
        return;
    };
    if !skiff_testing::ready() {
        return;
    }
    let self_name = run(swarm.docker().args([
        "node",
        "inspect",
        "self",
        "--format",
        "{{.Description.Hostname}}",
    ]));
    let stack = StackOnSwarm {
        swarm: swarm.clone(),
        state_node: self_name.clone(),
    };

    // The images the steps use, on the manager's engine: the stand-ins for postgres:15 and
    // registry:2 (their services run on the state node, the manager) and the example.
    run(Command::new("bash").arg(skiff_testing::repo_root().join("scripts/build-stack-images.sh")));
    for image in [
        "skiff/postgres:15",
        "skiff/registry:2",
        "skiff/echo-http:latest",
    ] {
        run(Command::new("bash").arg("-c").arg(format!(
            "set -o pipefail; docker save {image} | docker -H {} load -q",
            swarm.manager
        )));
    }

    // The steps, as the README has them; then the token, for the checks below.
    let config = tempfile::tempdir().expect("a directory for the CLI's config");
    let skiff_bin = std::path::Path::new(env!("CARGO_BIN_EXE_skiff"));
    let path = format!(
        "{}:{}",
        skiff_bin
            .parent()
            .expect("the binary's directory")
            .display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let registry = format!("{}:5000", swarm.manager_ip);
    let script = format!(
        "set -euo pipefail\n{}\nprintf 'TOKEN %s\\n' \"$token\"\n",
        readme_steps()
    );
    let out = Command::new("timeout")
        .args(["900", "bash", "-c", &script])
        .current_dir(skiff_testing::repo_root())
        .env("PATH", path)
        .env("DOCKER_HOST", &swarm.manager)
        .env("REGISTRY", &registry)
        .env("SKIFF_PUBLISH_MODE", "host")
        .env("SKIFF_REPLICAS", "1")
        .env("SKIFF_POSTGRES_IMAGE", "skiff/postgres:15")
        .env("SKIFF_REGISTRY_IMAGE", "skiff/registry:2")
        .env("SKIFF_CLI_CONFIG", config.path().join("config.toml"))
        // skiff's image holds the binary under test, not a release build of its own.
        .env("SKIFF_IMAGE_BINARY", skiff_bin)
        .env_remove("SKIFF_URL")
        .env_remove("SKIFF_TOKEN")
        .output()
        .expect("run the README's steps");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let logs = || {
        let ps = Command::new("docker")
            .args(["-H", &swarm.manager, "stack", "ps", "--no-trunc", STACK])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default();
        let skiff_logs = Command::new("docker")
            .args(["-H", &swarm.manager, "service", "logs", "--raw"])
            .arg(format!("{STACK}_skiff"))
            .output()
            .map(|o| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )
            })
            .unwrap_or_default();
        format!("{ps}\n{skiff_logs}")
    };
    assert!(
        out.status.success(),
        "the README's steps failed ({}):\n{stdout}\n{stderr}\n{}",
        out.status,
        logs()
    );
    // The call was answered by the function, which echoes its body on /echo.
    assert!(
        stdout.lines().any(|l| l == "hello"),
        "the call to web was answered:\n{stdout}\n{stderr}"
    );
    let token = stdout
        .lines()
        .find_map(|l| l.strip_prefix("TOKEN "))
        .expect("the token printed")
        .to_string();

    // The daemon runs on the manager and answers there with the token chosen.
    let nodes = swarm.nodes_of_service(&format!("{STACK}_skiff"));
    assert_eq!(
        nodes,
        vec![self_name.clone()],
        "skiff on the manager\n{}",
        logs()
    );
    let client = reqwest::Client::new();
    let url = format!("http://{}:8080", swarm.manager_ip);
    let listed: serde_json::Value = client
        .get(format!("{url}/v1/functions"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("list the functions")
        .json()
        .await
        .expect("json");
    assert!(listed.to_string().contains("\"web\""), "{listed}");

    // The function's two instances are services of the swarm (placed by Swarm: the manager
    // runs the stack's three services, so they may both go to the other node), with the
    // image pinned by its digest in the stack's registry, pulled by the nodes from there.
    let instances = swarm.services("skiff.function=web");
    assert_eq!(instances.len(), 2, "two instances of web: {instances:?}");
    let image = run(swarm.docker().args([
        "service",
        "inspect",
        &instances[0],
        "--format",
        "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
    ]));
    assert!(
        image.starts_with(&format!("{registry}/echo-http")) && image.contains("@sha256:"),
        "the instance's image is pinned in the stack's registry: {image}"
    );
    let on = swarm.nodes_of("skiff.function=web");
    assert!(
        on.len() == 2 && on.iter().all(|n| !n.is_empty()),
        "both instances run on a node: {on:?}"
    );
    for i in 0..4 {
        let body = format!("call {i}");
        let answer = client
            .post(format!("{url}/fn/web/echo"))
            .bearer_auth(&token)
            .body(body.clone())
            .send()
            .await
            .expect("call web");
        assert!(answer.status().is_success(), "{:?}", answer.status());
        assert_eq!(answer.text().await.expect("the answer"), body);
    }

    // `docker stack rm` leaves nothing: the daemon removes its functions' services as it
    // stops, and once they are gone a second `stack rm` removes the functions' network
    // (the first finds it still in use).
    let _ = swarm.docker().args(["stack", "rm", STACK]).output();
    let gone = poll(
        Duration::from_secs(120),
        Duration::from_millis(500),
        async || stack.services().is_empty().then_some(()),
    )
    .await;
    assert!(
        gone.is_some(),
        "services left after docker stack rm: {:?}",
        stack.services()
    );
    let network_gone = poll(
        Duration::from_secs(60),
        Duration::from_secs(1),
        async || {
            let _ = swarm.docker().args(["stack", "rm", STACK]).output();
            let out = swarm
                .docker()
                .args([
                    "network",
                    "ls",
                    "--quiet",
                    "--filter",
                    "name=skiff-functions",
                ])
                .output()
                .ok()?;
            out.stdout.is_empty().then_some(())
        },
    )
    .await;
    assert!(network_gone.is_some(), "the functions' network stays");
    drop(stack);
}
