//! [`ContainerEngine`] on Docker Swarm, through the API of a manager node.
//!
//! An instance is a service with one replicated task (never one service per function: on
//! scale-down Swarm picks which task to remove, while skiff's pool retires exactly the idle
//! instance it chose). The service is created with restart condition `none` and endpoint
//! mode `dnsrr` (no virtual IP): its task is addressed by its own IP on the functions'
//! overlay network, and an instance whose task ended, or whose node went down or was
//! drained, is over ([`ContainerEngine::wait`] returns) and replaced by the pool. The image
//! is pinned by its registry digest so that every node pulls the same bytes; images are
//! resolved, pulled, tagged and pushed on the manager, through an inner [`DockerEngine`].
//!
//! A task's stdio cannot be attached to: an instance's output is followed through its
//! service's logs, and an exec container's call goes to its `skiff-init` over the network
//! (see [`exec`]). What Swarm cannot do here: pause a task, mount a host path (bind
//! mounts), apply a stop grace period per call ([`spec::STOP_GRACE_PERIOD`] is in every
//! service), and, on API versions before 1.44, `no-new-privileges` (see
//! [`spec::NO_NEW_PRIVILEGES_SINCE`]). Named volumes are local to each node.

pub mod exec;
mod network;
pub mod spec;
pub mod tasks;

use crate::docker::{classify, gone_as, DockerEngine};
use crate::endpoint::Endpoint;
use crate::error::Op;
use crate::{
    Attachment, ContainerEngine, ContainerSpec, ContainerState, ContainerSummary, EngineError,
    ImageInfo, NetworkInfo, Progress, RegistryAuth,
};
use async_trait::async_trait;
use bollard::models::{LocalNodeState, TaskState};
use bollard::query_parameters::{
    ListServicesOptionsBuilder, ListTasksOptionsBuilder, LogsOptionsBuilder,
};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tasks::{TaskReader, TaskView, LOST_EXIT_CODE};

/// How often [`ContainerEngine::start`] and [`ContainerEngine::wait`] look at a service's
/// task.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// How long an instance's log is still followed after it is over: its last lines reach the
/// manager after its task has ended.
const LOG_TAIL: Duration = Duration::from_secs(1);

/// How many failed looks in a row [`ContainerEngine::wait`] takes before it gives up: one
/// request that fails (the manager busy for a moment) does not end an instance.
const WAIT_ERRORS_TOLERATED: u32 = 3;

/// An image id and the reference it was deployed by, if any.
type PinKey = (String, Option<String>);

/// Docker Swarm, reached through a manager node's Docker API.
#[derive(Debug, Clone)]
pub struct SwarmEngine {
    /// The manager's engine: images, networks, and the bollard client for services.
    manager: DockerEngine,
    /// Tasks with their addresses.
    tasks: TaskReader,
    /// Whether the manager's API can set `no-new-privileges` on a service.
    no_new_privileges: bool,
    /// The registry digest reference each image id, deployed by a reference, was pinned to.
    pinned: Arc<Mutex<HashMap<PinKey, String>>>,
    /// What exec functions need, when skiff's own image is known (see [`exec`]).
    exec: Option<exec::ExecSupport>,
    /// The services that are prepared exec containers.
    exec_ids: Arc<Mutex<HashSet<String>>>,
    /// The exit status each exec container's `skiff-init` will send, once attached.
    exits: Arc<Mutex<HashMap<String, ExitReceiver>>>,
}

/// Where an exec container's exit status arrives.
type ExitReceiver = tokio::sync::oneshot::Receiver<Result<i64, EngineError>>;

/// Locks a mutex of this module, poisoned or not (what it guards stays consistent).
fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SwarmEngine {
    /// Connects to the manager node at `endpoint`; [`EngineError::NotSwarmManager`] if the
    /// engine there is not in a swarm or is not a manager of it.
    pub async fn connect_to(endpoint: &Endpoint) -> Result<Self, EngineError> {
        let manager = DockerEngine::connect_to(endpoint).await?;
        let info = manager
            .bounded("inspect engine", Duration::ZERO, async {
                manager
                    .docker
                    .info()
                    .await
                    .map_err(|e| classify(Op("inspect engine"), e))
            })
            .await?;
        let swarm = info.swarm.unwrap_or_default();
        let not_manager = |reason: String| EngineError::NotSwarmManager {
            endpoint: endpoint.to_string(),
            reason,
        };
        let state = swarm.local_node_state.unwrap_or(LocalNodeState::EMPTY);
        if state != LocalNodeState::ACTIVE {
            let state = match state {
                LocalNodeState::EMPTY => "unknown".to_string(),
                other => other.to_string(),
            };
            return Err(not_manager(format!(
                "it is not an active member of a swarm (its swarm state is `{state}`)"
            )));
        }
        if swarm.control_available != Some(true) {
            return Err(not_manager(
                "it is a worker node of its swarm; connect to a manager".to_string(),
            ));
        }
        let version = manager.docker.client_version();
        let no_new_privileges =
            (version.major_version, version.minor_version) >= spec::NO_NEW_PRIVILEGES_SINCE;
        if !no_new_privileges {
            tracing::info!(
                api = manager.api_version(),
                "this Swarm manager's API cannot set no-new-privileges on services; \
                 instances run without it (every capability is still dropped)"
            );
        }
        let tasks = TaskReader::new(endpoint, manager.timeout())?;
        Ok(SwarmEngine {
            manager,
            tasks,
            no_new_privileges,
            pinned: Arc::new(Mutex::new(HashMap::new())),
            exec: None,
            exec_ids: Arc::new(Mutex::new(HashSet::new())),
            exits: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// Runs exec functions with `image`, skiff's own image as the nodes pull it, carrying
    /// `skiff-init` to every node (see [`exec`]); without it, exec functions cannot run.
    pub fn with_exec_image(mut self, image: Option<String>) -> Self {
        self.exec = image.map(exec::ExecSupport::new);
        self
    }

    /// The image of the container this process runs in, when it runs in one on the
    /// manager it talks to (skiff as a service of a stack): its hostname names it.
    pub async fn own_image(&self) -> Option<String> {
        let hostname = std::fs::read_to_string("/etc/hostname").ok()?;
        let hostname = hostname.trim();
        if hostname.is_empty() {
            return None;
        }
        let inspected = self
            .manager
            .docker
            .inspect_container(hostname, None)
            .await
            .ok()?;
        inspected.config?.image
    }

    /// Connects to the `skiff-init` of exec container `id` once its task runs, and keeps
    /// where its exit status will arrive.
    async fn attach_exec(&self, id: &str) -> Result<Attachment, EngineError> {
        let deadline = tokio::time::Instant::now() + self.manager.timeout();
        let ip = loop {
            let state = self.inspect(id).await?;
            if let (true, Some(ip)) = (state.running, state.ip) {
                break ip;
            }
            if state.exit_code.is_some() {
                return Err(EngineError::Other {
                    op: "attach to an exec container",
                    message: format!("its task ended before it took a call ({id})"),
                });
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(EngineError::TimedOut {
                    op: "attach to an exec container",
                    after: self.manager.timeout(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let address = std::net::SocketAddr::new(ip, exec::LISTEN_PORT);
        let link = crate::init_link::connect(address, Duration::from_secs(10)).await?;
        locked(&self.exits).insert(id.to_string(), link.exit);
        Ok(link.attachment)
    }

    /// The manager's engine, for images and for API calls this type does not offer.
    pub fn manager(&self) -> &DockerEngine {
        &self.manager
    }

    /// The digest reference that pins `image` (an id or a reference) on every node: in the
    /// repository of `deployed_as` (the reference it was deployed by) when it has a digest
    /// there.
    async fn pin(&self, image: &str, deployed_as: Option<&str>) -> Result<String, EngineError> {
        if let Some(pinned) = self.cached(image, deployed_as) {
            return Ok(pinned);
        }
        let info = self.manager.inspect_image(image).await?;
        let pinned = spec::pinned_reference(deployed_as.unwrap_or(image), &info)?;
        locked(&self.pinned).insert((info.id, deployed_as.map(str::to_string)), pinned.clone());
        Ok(pinned)
    }

    fn cached(&self, image: &str, deployed_as: Option<&str>) -> Option<String> {
        // Only an image id names the same bytes for ever; a tag is looked up every time.
        if !image.starts_with("sha256:") {
            return None;
        }
        locked(&self.pinned)
            .get(&(image.to_string(), deployed_as.map(str::to_string)))
            .cloned()
    }

    /// Whether service `id` exists.
    async fn service_exists(&self, id: &str) -> Result<bool, EngineError> {
        self.manager
            .bounded("inspect service", Duration::ZERO, async {
                let found = self.manager.docker.inspect_service(id, None).await;
                gone_as(Op("inspect service"), found.map(|_| true), false)
            })
            .await
    }

    /// The tasks of service `id`, with their addresses.
    async fn service_tasks(&self, id: &str) -> Result<Vec<TaskView>, EngineError> {
        let version = self.manager.api_version();
        self.manager
            .bounded("list tasks", Duration::ZERO, self.tasks.tasks(&version, id))
            .await
    }

    /// Whether the instances on node `id` are lost (see [`tasks::node_lost`]); a node that
    /// left the swarm is.
    async fn node_lost(&self, id: &str) -> Result<bool, EngineError> {
        self.manager
            .bounded("inspect node", Duration::ZERO, async {
                let node = self.manager.docker.inspect_node(id).await;
                gone_as(Op("inspect node"), node.map(|n| tasks::node_lost(&n)), true)
            })
            .await
    }

    /// One look at the instance for [`ContainerEngine::wait`]: its exit code once it is over.
    /// `followed` is the task it is (the first one seen).
    async fn over(
        &self,
        id: &str,
        followed: &mut Option<String>,
    ) -> Result<Option<i64>, EngineError> {
        if !self.service_exists(id).await? {
            tracing::debug!(service = id, "the instance's service is gone");
            return Ok(Some(LOST_EXIT_CODE));
        }
        let all = self.service_tasks(id).await?;
        let task = match followed {
            Some(task_id) => all
                .iter()
                .find(|t| t.task.id.as_deref() == Some(task_id.as_str())),
            None => tasks::current(&all),
        };
        let Some(task) = task else {
            if followed.is_some() {
                tracing::debug!(service = id, "the instance's task is gone");
                return Ok(Some(LOST_EXIT_CODE));
            }
            return Ok(None);
        };
        *followed = task.task.id.clone();
        if let Some(state) = task.state().filter(|s| tasks::terminal(*s)) {
            return Ok(Some(task.exit_code().unwrap_or_else(|| {
                tracing::debug!(
                    service = id,
                    %state,
                    "the instance's task ended without an exit code; reporting {LOST_EXIT_CODE}"
                );
                LOST_EXIT_CODE
            })));
        }
        if let Some(node) = task.node() {
            if self.node_lost(node).await? {
                tracing::info!(
                    service = id,
                    node,
                    "the node of the instance's task is down or drained; the instance is over"
                );
                return Ok(Some(LOST_EXIT_CODE));
            }
        }
        Ok(None)
    }
}

#[async_trait]
impl ContainerEngine for SwarmEngine {
    /// A task cannot be paused; an exec container's stdin is reached (through its
    /// `skiff-init`) only where skiff's own image carries the init to the nodes; an overlay
    /// network has no switch that keeps the containers on it from reaching each other.
    fn capabilities(&self) -> crate::Capabilities {
        crate::Capabilities {
            pause: false,
            isolated_networks: false,
            attach: self.exec.is_some(),
        }
    }

    async fn inspect_image(&self, reference: &str) -> Result<ImageInfo, EngineError> {
        self.manager.inspect_image(reference).await
    }

    fn pull_image(&self, reference: &str, auth: Option<RegistryAuth>) -> Progress {
        self.manager.pull_image(reference, auth)
    }

    fn push_image(&self, reference: &str, auth: Option<RegistryAuth>) -> Progress {
        self.manager.push_image(reference, auth)
    }

    async fn tag_image(&self, source: &str, target: &str) -> Result<(), EngineError> {
        self.manager.tag_image(source, target).await
    }

    async fn ping(&self) -> Result<(), EngineError> {
        self.manager.ping().await
    }

    async fn ensure_network(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> Result<NetworkInfo, EngineError> {
        let id = self.ensure_overlay(name, labels).await?;
        self.network_info(&id).await
    }

    async fn network_info(&self, id: &str) -> Result<NetworkInfo, EngineError> {
        let info = self.manager.network_info(id).await?;
        Ok(network::as_seen_here(info))
    }

    async fn remove_network(&self, id: &str) -> Result<(), EngineError> {
        self.manager.remove_network(id).await
    }

    /// Creates nothing: on a swarm, named volumes are local to each node, and a node's engine
    /// creates the volume the first time a task on it mounts it. Returns `labels`.
    async fn ensure_volume(
        &self,
        _name: &str,
        labels: &HashMap<String, String>,
    ) -> Result<HashMap<String, String>, EngineError> {
        Ok(labels.clone())
    }

    /// Creates the service that is the instance (see the module's documentation); returns
    /// the service's id.
    async fn create(&self, spec: &ContainerSpec) -> Result<String, EngineError> {
        // A prepared exec container (stdin kept for its call): skiff-init listens instead.
        let exec_task = match (&self.exec, spec.stdin) {
            (_, false) => None,
            (None, true) => {
                return Err(EngineError::Unsupported {
                    op: "an exec container without skiff's own image to carry skiff-init",
                    engine: "swarm",
                })
            }
            (Some(exec), true) => {
                exec.ensure_carrier(&self.manager).await?;
                Some(exec.task_spec(spec))
            }
        };
        let spec = exec_task.as_ref().map_or(spec, |(task, _)| task);
        spec::check(spec)?;
        let image = self
            .pin(&spec.image, spec.image_reference.as_deref())
            .await?;
        let mut service = spec::service_spec(spec, &image, self.no_new_privileges);
        if let Some((_, mount)) = exec_task.as_ref() {
            if let Some(container) = service
                .task_template
                .as_mut()
                .and_then(|t| t.container_spec.as_mut())
            {
                container
                    .mounts
                    .get_or_insert_with(Vec::new)
                    .push(mount.clone());
            }
        }
        let is_exec = exec_task.is_some();
        self.manager
            .bounded("create service", Duration::ZERO, async {
                let created = self
                    .manager
                    .docker
                    .create_service(service, None)
                    .await
                    .map_err(|e| classify(Op("create service"), e))?;
                created.id.ok_or_else(|| EngineError::Other {
                    op: "create service",
                    message: format!("the engine gave no id for service `{}`", spec.name),
                })
            })
            .await
            .inspect(|id| {
                if is_exec {
                    locked(&self.exec_ids).insert(id.clone());
                }
            })
    }

    /// The instance's output as Swarm's service logs give it (stdout and stderr, through the
    /// manager, from whichever node runs the task), until the instance is over; its stdin
    /// takes nothing (Swarm cannot attach to a task). A log stream that fails or ends early
    /// leaves the output open, without lines, until the instance is over: the end of the
    /// output says the instance ended, and nothing else.
    async fn attach(&self, id: &str) -> Result<Attachment, EngineError> {
        use bollard::container::LogOutput;
        use futures::{FutureExt, StreamExt};
        if locked(&self.exec_ids).contains(id) {
            return self.attach_exec(id).await;
        }
        let options = LogsOptionsBuilder::default()
            .follow(true)
            .stdout(true)
            .stderr(true)
            .build();
        let engine = self.clone();
        let service = id.to_string();
        let over = async move {
            if let Err(err) = engine.wait(&service).await {
                tracing::debug!(%err, service, "watching an instance ended");
            }
            // The last lines reach the manager after the task has ended.
            tokio::time::sleep(LOG_TAIL).await;
        }
        .boxed()
        .shared();
        let service = id.to_string();
        let lines = self
            .manager
            .docker
            .service_logs(id, Some(options))
            .filter_map(move |item| {
                let chunk = match item {
                    Ok(LogOutput::StdOut { message }) => Some(crate::Output::Stdout(message)),
                    Ok(LogOutput::StdErr { message }) => Some(crate::Output::Stderr(message)),
                    Ok(_) => None,
                    Err(err) => {
                        tracing::debug!(%err, service, "following an instance's logs failed");
                        None
                    }
                };
                std::future::ready(chunk.map(Ok))
            });
        let until_over =
            futures::stream::once(over.clone()).filter_map(|()| std::future::ready(None));
        let output = lines.chain(until_over).take_until(over).boxed();
        Ok(Attachment {
            stdin: Box::pin(tokio::io::sink()),
            output,
        })
    }

    /// Waits (within the engine's timeout) until Swarm has given the service's task to a
    /// node; not until it runs.
    async fn start(&self, id: &str) -> Result<(), EngineError> {
        let bound = self.manager.timeout();
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            if !self.service_exists(id).await? {
                return Err(EngineError::NotFound { id: id.to_string() });
            }
            let all = self.service_tasks(id).await?;
            let task = tasks::current(&all);
            if let Some(task) = task {
                if task.state().is_some_and(tasks::terminal) {
                    return Err(EngineError::Other {
                        op: "start service",
                        message: format!("the task of service {id} ended: {}", task.describe()),
                    });
                }
                if task.node().is_some() {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() >= deadline {
                let state = task.map_or_else(|| "no task yet".to_string(), TaskView::describe);
                return Err(EngineError::Other {
                    op: "start service",
                    message: format!(
                        "no node took the task of service {id} within {}s ({state})",
                        bound.as_secs()
                    ),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Returns once the instance is over: its task ended, its node is down or drained, or
    /// the service is gone; with the task's exit code, else [`LOST_EXIT_CODE`].
    async fn wait(&self, id: &str) -> Result<i64, EngineError> {
        let exit = locked(&self.exits).remove(id);
        if let Some(exit) = exit {
            return exit.await.unwrap_or_else(|_| {
                Err(EngineError::Other {
                    op: "wait for an exec container",
                    message: "its connection to skiff-init was dropped".to_string(),
                })
            });
        }
        let mut followed = None;
        let mut errors = 0;
        loop {
            match self.over(id, &mut followed).await {
                Ok(Some(code)) => return Ok(code),
                Ok(None) => errors = 0,
                Err(err) => {
                    errors += 1;
                    if errors >= WAIT_ERRORS_TOLERATED {
                        return Err(err);
                    }
                    tracing::debug!(%err, service = id, "a look at an instance failed");
                }
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    async fn inspect(&self, id: &str) -> Result<ContainerState, EngineError> {
        if !self.service_exists(id).await? {
            return Err(EngineError::NotFound { id: id.to_string() });
        }
        let all = self.service_tasks(id).await?;
        let Some(task) = tasks::current(&all) else {
            return Ok(ContainerState {
                running: false,
                exit_code: None,
                oom_killed: false,
                ip: None,
            });
        };
        let state = task.state();
        Ok(ContainerState {
            running: state == Some(TaskState::RUNNING),
            exit_code: state
                .filter(|s| tasks::terminal(*s))
                .and_then(|_| task.exit_code()),
            oom_killed: task.oom_killed(),
            ip: task.ip(),
        })
    }

    async fn kill(&self, id: &str) -> Result<(), EngineError> {
        self.remove(id).await
    }

    /// Removes the service: Swarm stops its task with the service's own grace period
    /// ([`spec::STOP_GRACE_PERIOD`]), not `grace`.
    async fn stop(&self, id: &str, _grace: Duration) -> Result<(), EngineError> {
        self.remove(id).await
    }

    async fn pause(&self, _id: &str) -> Result<(), EngineError> {
        Err(EngineError::Unsupported {
            op: "pause",
            engine: "swarm",
        })
    }

    async fn unpause(&self, _id: &str) -> Result<(), EngineError> {
        Err(EngineError::Unsupported {
            op: "unpause",
            engine: "swarm",
        })
    }

    async fn remove(&self, id: &str) -> Result<(), EngineError> {
        locked(&self.exec_ids).remove(id);
        locked(&self.exits).remove(id);
        self.manager
            .bounded("remove service", Duration::ZERO, async {
                let removed = self.manager.docker.delete_service(id).await;
                gone_as(Op("remove service"), removed, ())
            })
            .await
    }

    /// The services that carry every one of `labels`; running when a task of it runs.
    async fn list(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerSummary>, EngineError> {
        self.manager
            .bounded("list services", Duration::ZERO, async {
                let docker = &self.manager.docker;
                let filters = crate::docker::label_filters(labels);
                let options = ListServicesOptionsBuilder::default()
                    .filters(&filters)
                    .build();
                let services = docker
                    .list_services(Some(options))
                    .await
                    .map_err(|e| classify(Op("list services"), e))?;
                let ids: Vec<String> = services.iter().filter_map(|s| s.id.clone()).collect();
                let running: HashSet<String> = if ids.is_empty() {
                    HashSet::new()
                } else {
                    let filters = HashMap::from([
                        ("service".to_string(), ids),
                        ("desired-state".to_string(), vec!["running".to_string()]),
                    ]);
                    let options = ListTasksOptionsBuilder::default().filters(&filters).build();
                    docker
                        .list_tasks(Some(options))
                        .await
                        .map_err(|e| classify(Op("list tasks"), e))?
                        .into_iter()
                        .filter(|t| {
                            t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING)
                        })
                        .filter_map(|t| t.service_id)
                        .collect()
                };
                Ok(services
                    .into_iter()
                    .filter_map(|s| {
                        let id = s.id?;
                        Some(ContainerSummary {
                            running: running.contains(&id),
                            labels: s.spec.and_then(|spec| spec.labels).unwrap_or_default(),
                            id,
                        })
                    })
                    .collect())
            })
            .await
    }
}
