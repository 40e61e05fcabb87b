//! `exec` functions on Swarm: still a fresh container per call. A prepared exec container is
//! a service whose task runs `skiff-init` in listen mode (`SKIFF_INIT_LISTEN`): it takes its
//! one call over the overlay network through [`crate::init_link`] and exits, and the
//! service is removed, as a container is on one engine.
//!
//! `skiff-init` reaches the task through a node-local named volume, `skiff-init-<hash>`,
//! mounted read-only at `/.skiff`: a global service (one task on every node, new nodes
//! included), `skiff-init-<hash>`, runs skiff's own image as `skiff init-carrier`, which
//! writes the binary into that volume on its node and then waits. (A Swarm config would
//! carry it everywhere by itself, but a config holds at most 500 KB, and the static binary
//! is larger.) A task that lands on a node before the carrier has written the binary there
//! fails to start and is replaced, as any prepared container that fails.

use crate::docker::{classify, DockerEngine};
use crate::error::Op;
use crate::{ContainerSpec, EngineError};
use bollard::models::{
    Mount, MountType, ServiceSpec, ServiceSpecMode, TaskSpec, TaskSpecContainerSpec,
    TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum,
};
use std::collections::HashMap;
use std::time::Duration;

/// The port `skiff-init` listens on in an exec task (its own network namespace: any fixed
/// port does).
pub const LISTEN_PORT: u16 = 7070;

/// Longest the first exec container waits for the carrier to run on every node.
const CARRIER_WAIT: Duration = Duration::from_secs(60);

/// Where the carrier mounts the volume it fills.
pub const CARRIER_DIR: &str = "/.skiff-carrier";

/// Where exec tasks mount it: `skiff-init` is then at [`crate::init::INIT_PATH_IN_CONTAINER`].
const MOUNTED_AT: &str = "/.skiff";

/// What exec functions need on a swarm: skiff's own image, which carries `skiff-init`.
#[derive(Debug, Clone)]
pub struct ExecSupport {
    /// skiff's image as the nodes pull it (pinned by digest).
    image: String,
    /// The carrier service's name and its volume's.
    name: String,
    /// Whether the carrier is known to exist.
    carrier: std::sync::Arc<tokio::sync::OnceCell<()>>,
}

impl ExecSupport {
    /// Exec support with `image`, skiff's own image, as the carrier.
    pub fn new(image: String) -> ExecSupport {
        ExecSupport {
            image,
            name: format!("skiff-init-{}", crate::init::binary_hash()),
            carrier: std::sync::Arc::new(tokio::sync::OnceCell::new()),
        }
    }

    /// The carrier's image.
    pub fn image(&self) -> &str {
        &self.image
    }

    /// Makes sure the carrier service exists (once per process; one made by another daemon
    /// is kept as it is).
    pub async fn ensure_carrier(&self, manager: &DockerEngine) -> Result<(), EngineError> {
        self.carrier
            .get_or_try_init(|| async {
                manager
                    .bounded("create the skiff-init carrier", Duration::ZERO, async {
                        match manager
                            .docker
                            .create_service(self.carrier_spec(), None)
                            .await
                        {
                            Ok(_) => Ok(()),
                            // It exists: made by another daemon, or by this one before.
                            Err(bollard::errors::Error::DockerResponseServerError {
                                status_code: 409,
                                ..
                            }) => Ok(()),
                            Err(err) => Err(classify(Op("create the skiff-init carrier"), err)),
                        }
                    })
                    .await?;
                self.until_carried(manager).await;
                Ok::<(), EngineError>(())
            })
            .await
            .map(|_| ())
    }

    /// Waits (up to [`CARRIER_WAIT`]) until the carrier runs on every node that takes tasks,
    /// so that the first exec tasks find `skiff-init` wherever they land. A node that joins
    /// later gets the carrier too; a task that lands on it first fails and is replaced.
    async fn until_carried(&self, manager: &DockerEngine) {
        let started = tokio::time::Instant::now();
        loop {
            match self.uncarried_nodes(manager).await {
                Ok(0) => return,
                Ok(left) if started.elapsed() >= CARRIER_WAIT => {
                    tracing::warn!(
                        nodes = left,
                        "skiff-init is not on every node yet; exec tasks that land there fail \
                         and are replaced"
                    );
                    return;
                }
                Err(err) if started.elapsed() >= CARRIER_WAIT => {
                    tracing::warn!(%err, "cannot tell where skiff-init is");
                    return;
                }
                _ => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }

    /// How many nodes that take tasks have no running carrier task.
    async fn uncarried_nodes(&self, manager: &DockerEngine) -> Result<usize, EngineError> {
        use bollard::models::{NodeSpecAvailabilityEnum, NodeState, TaskState};
        let docker = &manager.docker;
        let nodes = docker
            .list_nodes(None::<bollard::query_parameters::ListNodesOptions>)
            .await
            .map_err(|e| classify(Op("list nodes"), e))?;
        let filters = HashMap::from([
            ("service".to_string(), vec![self.name.clone()]),
            ("desired-state".to_string(), vec!["running".to_string()]),
        ]);
        let tasks = docker
            .list_tasks(Some(
                bollard::query_parameters::ListTasksOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(|e| classify(Op("list tasks"), e))?;
        let carried: std::collections::HashSet<String> = tasks
            .into_iter()
            .filter(|t| t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING))
            .filter_map(|t| t.node_id)
            .collect();
        Ok(nodes
            .into_iter()
            .filter(|n| n.status.as_ref().and_then(|s| s.state) == Some(NodeState::READY))
            .filter(|n| {
                n.spec.as_ref().and_then(|s| s.availability)
                    == Some(NodeSpecAvailabilityEnum::ACTIVE)
            })
            .filter(|n| n.id.as_ref().is_none_or(|id| !carried.contains(id)))
            .count())
    }

    /// The global service that fills the volume on every node.
    fn carrier_spec(&self) -> ServiceSpec {
        ServiceSpec {
            name: Some(self.name.clone()),
            labels: Some(HashMap::from([(
                "skiff.init-carrier".to_string(),
                "true".to_string(),
            )])),
            mode: Some(ServiceSpecMode {
                global: Some(Default::default()),
                ..Default::default()
            }),
            task_template: Some(TaskSpec {
                container_spec: Some(TaskSpecContainerSpec {
                    image: Some(self.image.clone()),
                    command: Some(vec!["/skiff".to_string()]),
                    args: Some(vec!["init-carrier".to_string(), CARRIER_DIR.to_string()]),
                    read_only: Some(true),
                    capability_drop: Some(vec!["ALL".to_string()]),
                    mounts: Some(vec![Mount {
                        source: Some(self.name.clone()),
                        target: Some(CARRIER_DIR.to_string()),
                        typ: Some(MountType::VOLUME),
                        read_only: Some(false),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                restart_policy: Some(TaskSpecRestartPolicy {
                    condition: Some(TaskSpecRestartPolicyConditionEnum::ANY),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// `spec` (a prepared exec container: stdin kept open, `skiff-init` bind-mounted) as a
    /// task can have it: without the bind mount, with `skiff-init` told to listen; and the
    /// mount that brings `skiff-init` instead.
    pub fn task_spec(&self, spec: &ContainerSpec) -> (ContainerSpec, Mount) {
        let mut task = spec.clone();
        task.mounts
            .retain(|m| m.target != crate::init::INIT_PATH_IN_CONTAINER);
        task.stdin = false;
        task.env.push(format!("SKIFF_INIT_LISTEN={LISTEN_PORT}"));
        let mount = Mount {
            source: Some(self.name.clone()),
            target: Some(MOUNTED_AT.to_string()),
            typ: Some(MountType::VOLUME),
            read_only: Some(true),
            ..Default::default()
        };
        (task, mount)
    }
}

/// Writes `skiff-init` as `init` in `dir` (the carrier's volume), whole or not at all.
pub fn write_init(dir: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("init");
    if std::fs::read(&path).is_ok_and(|b| b == crate::init::INIT_BINARY) {
        return Ok(path);
    }
    let partial = dir.join(format!(".init.{}", std::process::id()));
    std::fs::write(&partial, crate::init::INIT_BINARY)?;
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&partial, &path)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BindMount, Limits};

    fn prepared() -> ContainerSpec {
        ContainerSpec {
            name: "skiff-fn-1".to_string(),
            image: "sha256:abc".to_string(),
            image_reference: None,
            entrypoint: Some(vec![crate::init::INIT_PATH_IN_CONTAINER.to_string()]),
            cmd: Some(vec!["/fn".to_string()]),
            env: vec!["A=1".to_string()],
            labels: HashMap::new(),
            limits: Limits {
                memory_bytes: 1 << 25,
                cpus: 0.5,
                pids: 64,
                tmp_bytes: 1 << 20,
                nofile: 1024,
            },
            stdin: true,
            network: Some("skiff-fn".to_string()),
            mounts: vec![BindMount {
                source: "/var/lib/skiff/bin/skiff-init-0".into(),
                target: crate::init::INIT_PATH_IN_CONTAINER.to_string(),
            }],
            volumes: Vec::new(),
        }
    }

    #[test]
    fn a_prepared_exec_container_listens_and_gets_skiff_init_from_the_volume() {
        let exec = ExecSupport::new("registry:5000/skiff@sha256:def".to_string());
        let (task, mount) = exec.task_spec(&prepared());
        assert!(task.mounts.is_empty(), "the host path is not used");
        assert!(!task.stdin);
        assert_eq!(task.env, ["A=1", "SKIFF_INIT_LISTEN=7070"]);
        assert_eq!(
            task.entrypoint,
            prepared().entrypoint,
            "skiff-init runs first"
        );
        assert_eq!(mount.target.as_deref(), Some("/.skiff"));
        assert_eq!(mount.read_only, Some(true));
        assert_eq!(mount.typ, Some(MountType::VOLUME));
        assert_eq!(
            mount.source,
            Some(format!("skiff-init-{}", crate::init::binary_hash()))
        );
        // The carrier fills that volume on every node, from skiff's own image.
        let carrier = exec.carrier_spec();
        assert_eq!(carrier.name, mount.source);
        assert!(carrier.mode.and_then(|m| m.global).is_some());
        let container = carrier
            .task_template
            .and_then(|t| t.container_spec)
            .expect("a container");
        assert_eq!(container.image.as_deref(), Some(exec.image()));
        assert_eq!(
            container.args,
            Some(vec!["init-carrier".to_string(), CARRIER_DIR.to_string()])
        );
    }

    #[test]
    fn the_carrier_writes_skiff_init_whole() {
        let dir = tempfile::tempdir().expect("dir");
        let path = write_init(dir.path()).expect("write");
        assert_eq!(path, dir.path().join("init"));
        assert_eq!(
            std::fs::read(&path).expect("read"),
            crate::init::INIT_BINARY
        );
        assert_eq!(write_init(dir.path()).expect("again"), path);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["init"], "no partial file is left");
    }
}
