//! [`ContainerEngine`] on the Docker Engine API, through bollard.

use crate::docker_network;
use crate::endpoint::{Endpoint, EndpointError};
use crate::error::Op;
use crate::{
    Attachment, ContainerEngine, ContainerSpec, ContainerState, ContainerSummary, EngineError,
    ImageInfo, NetworkInfo, Output, Progress, RegistryAuth,
};
use async_trait::async_trait;
use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, ContainerSummaryStateEnum, HostConfig, HostConfigLogConfig, Mount,
    MountType, NetworkCreateRequest, ResourcesUlimits, VolumeCreateRequest,
};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, KillContainerOptionsBuilder,
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, RemoveContainerOptionsBuilder,
    StopContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use bollard::{Docker, API_DEFAULT_VERSION};
use futures::{StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::time::Duration;

/// How long a request to the engine may take, unless set with
/// [`DockerEngine::with_timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The bridge driver's option that turns inter-container communication off.
const ICC_OPTION: &str = "com.docker.network.bridge.enable_icc";

/// The Docker engine, reached over its Unix socket, or over TCP (with or without TLS).
#[derive(Debug, Clone)]
pub struct DockerEngine {
    pub(crate) docker: Docker,
    timeout: Duration,
}

/// Seconds bollard lets a request take before skiff's own bound applies: during the
/// connection, the same as [`DEFAULT_TIMEOUT`] (bollard's own default is 120 s).
const REQUEST_TIMEOUT_SECS: u64 = DEFAULT_TIMEOUT.as_secs();

impl DockerEngine {
    /// Connects where `DOCKER_HOST` (with `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH`) says,
    /// else to `/var/run/docker.sock`; see [`DockerEngine::connect_to`].
    pub async fn connect() -> Result<Self, EngineError> {
        DockerEngine::connect_to(&Endpoint::from_process()?).await
    }

    /// Connects to `endpoint` and negotiates the API version with the engine, so that older
    /// engines (API 1.41) work. For TLS, the three files must be readable now.
    pub async fn connect_to(endpoint: &Endpoint) -> Result<Self, EngineError> {
        let docker = match endpoint {
            Endpoint::Unix(path) => Docker::connect_with_unix(
                &format!("unix://{}", path.display()),
                REQUEST_TIMEOUT_SECS,
                API_DEFAULT_VERSION,
            ),
            Endpoint::Tcp { address } => Docker::connect_with_http(
                &format!("tcp://{address}"),
                REQUEST_TIMEOUT_SECS,
                API_DEFAULT_VERSION,
            ),
            Endpoint::Tls { address, cert_dir } => {
                let [ca, cert, key] = ["ca.pem", "cert.pem", "key.pem"].map(|f| cert_dir.join(f));
                for path in [&ca, &cert, &key] {
                    if let Err(err) = std::fs::File::open(path) {
                        return Err(EndpointError::Certificate {
                            path: path.clone(),
                            message: err.to_string(),
                        }
                        .into());
                    }
                }
                Docker::connect_with_ssl(
                    &format!("tcp://{address}"),
                    &key,
                    &cert,
                    &ca,
                    REQUEST_TIMEOUT_SECS,
                    API_DEFAULT_VERSION,
                )
            }
        }
        .map_err(|e| classify(Op("connect"), e))?;
        let docker = tokio::time::timeout(DEFAULT_TIMEOUT, docker.negotiate_version())
            .await
            .map_err(|_| EngineError::TimedOut {
                op: "negotiate API version",
                after: DEFAULT_TIMEOUT,
            })?
            .map_err(|e| classify(Op("negotiate API version"), e))?;
        Ok(DockerEngine {
            docker,
            timeout: DEFAULT_TIMEOUT,
        }
        .with_timeout(DEFAULT_TIMEOUT))
    }

    /// Bounds every request (but the wait for a container's exit) by `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        let timeout = timeout.max(Duration::from_secs(1));
        self.timeout = timeout;
        // bollard's own bound on a response's head, kept above ours so that ours speaks.
        self.docker = self.docker.with_timeout(timeout + Duration::from_secs(5));
        self
    }

    /// `request`, failed with [`EngineError::TimedOut`] if the engine takes longer than
    /// the timeout (plus `extra`).
    pub(crate) async fn bounded<T>(
        &self,
        op: &'static str,
        extra: Duration,
        request: impl std::future::Future<Output = Result<T, EngineError>>,
    ) -> Result<T, EngineError> {
        let after = self.timeout + extra;
        tokio::time::timeout(after, request)
            .await
            .unwrap_or(Err(EngineError::TimedOut { op, after }))
    }

    /// What a network's inspection says.
    pub(crate) fn network_of(
        network: bollard::models::NetworkInspect,
    ) -> Result<NetworkInfo, EngineError> {
        let id = network.id.ok_or_else(|| EngineError::Other {
            op: "inspect network",
            message: "the engine gave no id for a network".to_string(),
        })?;
        let configs = network
            .ipam
            .and_then(|ipam| ipam.config)
            .unwrap_or_default();
        let gateway = configs
            .iter()
            .filter_map(|config| config.gateway.as_deref())
            .find_map(|gateway| gateway.parse().ok());
        let subnets = configs
            .iter()
            .filter_map(|config| config.subnet.as_deref())
            .filter_map(|subnet| subnet.parse().ok())
            .collect();
        let containers_connect = network
            .options
            .as_ref()
            .and_then(|options| options.get(ICC_OPTION))
            .is_none_or(|value| value != "false");
        Ok(NetworkInfo {
            id,
            gateway,
            subnets,
            containers_connect,
            containers: network.containers.map_or(0, |c| c.len()),
        })
    }

    /// The bound on each request, as set by [`DockerEngine::with_timeout`].
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The API version in use after negotiation, e.g. `1.41`.
    pub fn api_version(&self) -> String {
        let v = self.docker.client_version();
        format!("{}.{}", v.major_version, v.minor_version)
    }

    /// The networks named exactly `name` (the engine's name filter matches substrings).
    pub(crate) async fn networks_named(
        &self,
        name: &str,
    ) -> Result<Vec<bollard::models::Network>, EngineError> {
        let filters = HashMap::from([("name".to_string(), vec![name.to_string()])]);
        let options = ListNetworksOptionsBuilder::default()
            .filters(&filters)
            .build();
        let networks = self
            .docker
            .list_networks(Some(options))
            .await
            .map_err(|e| classify(Op("list networks"), e))?;
        Ok(networks
            .into_iter()
            .filter(|n| n.name.as_deref() == Some(name))
            .collect())
    }

    /// The networks named exactly `name`, with their creation times.
    async fn networks_seen(&self, name: &str) -> Result<Vec<docker_network::Seen>, EngineError> {
        Ok(self
            .networks_named(name)
            .await?
            .into_iter()
            .filter_map(|n| {
                Some(docker_network::Seen {
                    created: docker_network::parse_created(n.created.as_deref()),
                    id: n.id?,
                })
            })
            .collect())
    }

    /// Creates a bridge network named `name` that keeps containers apart. One of that name
    /// made meanwhile is no error: the caller looks again.
    async fn create_network(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> Result<(), EngineError> {
        let request = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".to_string()),
            labels: Some(labels.clone()),
            // Function containers reach the host (skiff's APIs on the gateway), never each
            // other.
            options: Some(HashMap::from([(
                ICC_OPTION.to_string(),
                "false".to_string(),
            )])),
            ..Default::default()
        };
        match self.docker.create_network(request).await {
            Ok(_)
            | Err(BollardError::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(()),
            Err(other) => Err(classify(Op("create network"), other)),
        }
    }

    /// Removes `id`, a network named `name` that no daemon settled on. While it is there no
    /// container of that name's network starts, so a failure is worth a warning.
    async fn remove_duplicate_network(&self, name: &str, id: &str) {
        match self.docker.remove_network(id).await {
            Ok(())
            | Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(err) => tracing::warn!(
                %err,
                network = name,
                duplicate = id,
                "cannot remove a second network of this name; containers on it cannot start \
                 until it is removed"
            ),
        }
    }

    /// The bollard client, for callers that need an API call this trait does not offer
    /// (benchmarks measuring the raw engine, for instance).
    pub fn client(&self) -> &Docker {
        &self.docker
    }
}

/// The engine's filter for objects that carry every one of `labels`.
pub(crate) fn label_filters(labels: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_string(),
        labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
    )])
}

/// Maps a bollard error to an [`EngineError`] with the operation as context.
pub(crate) fn classify(op: Op, err: BollardError) -> EngineError {
    match err {
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => EngineError::Api {
            op: op.0,
            status: status_code,
            message,
        },
        BollardError::IOError { err } => EngineError::Unavailable {
            op: op.0,
            message: err.to_string(),
        },
        BollardError::HyperResponseError { err } => EngineError::Unavailable {
            op: op.0,
            message: err.to_string(),
        },
        BollardError::RequestTimeoutError => EngineError::Unavailable {
            op: op.0,
            message: "the request timed out".to_string(),
        },
        other => EngineError::Other {
            op: op.0,
            message: other.to_string(),
        },
    }
}

/// `result`, with the engine's 404 (the object is gone, or never was) read as `gone`.
pub(crate) fn gone_as<T>(
    op: Op,
    result: Result<T, BollardError>,
    gone: T,
) -> Result<T, EngineError> {
    match result {
        Err(BollardError::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(gone),
        other => other.map_err(|err| classify(op, err)),
    }
}

pub(crate) fn not_found_or(id: &str, op: Op, err: BollardError) -> EngineError {
    match err {
        BollardError::DockerResponseServerError {
            status_code: 404, ..
        } => EngineError::NotFound { id: id.to_string() },
        other => classify(op, other),
    }
}

#[async_trait]
impl ContainerEngine for DockerEngine {
    async fn inspect_image(&self, reference: &str) -> Result<ImageInfo, EngineError> {
        self.bounded("inspect image", Duration::ZERO, async {
            let image = self
                .docker
                .inspect_image(reference)
                .await
                .map_err(|err| match err {
                    BollardError::DockerResponseServerError {
                        status_code: 404, ..
                    } => EngineError::ImageNotFound {
                        reference: reference.to_string(),
                    },
                    BollardError::DockerResponseServerError {
                        status_code: 400,
                        message,
                    } => EngineError::InvalidReference {
                        reference: reference.to_string(),
                        message,
                    },
                    other => classify(Op("inspect image"), other),
                })?;
            let id = image.id.ok_or_else(|| EngineError::Other {
                op: "inspect image",
                message: format!("the engine gave no id for `{reference}`"),
            })?;
            let config = image.config.unwrap_or_default();
            Ok(ImageInfo {
                id,
                entrypoint: config.entrypoint.unwrap_or_default(),
                cmd: config.cmd.unwrap_or_default(),
                env: config.env.unwrap_or_default(),
                digests: image.repo_digests.unwrap_or_default(),
            })
        })
        .await
    }

    fn pull_image(&self, reference: &str, auth: Option<RegistryAuth>) -> Progress {
        self.pull(reference, auth)
    }

    fn push_image(&self, reference: &str, auth: Option<RegistryAuth>) -> Progress {
        self.push(reference, auth)
    }

    async fn tag_image(&self, source: &str, target: &str) -> Result<(), EngineError> {
        self.bounded("tag image", Duration::ZERO, self.tag(source, target))
            .await
    }

    async fn ensure_network(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> Result<NetworkInfo, EngineError> {
        // Several daemons may make the network at once: see `docker_network` for how they
        // all settle on one. The bound covers the waits.
        let id = self
            .bounded("ensure network", docker_network::SETTLE * 3, async {
                let mut waited = false;
                for _ in 0..6 {
                    let seen = self.networks_seen(name).await?;
                    match docker_network::next(seen, chrono::Utc::now(), waited) {
                        docker_network::Step::Create => {
                            self.create_network(name, labels).await?;
                            waited = false;
                        }
                        docker_network::Step::Wait(wait) => {
                            tokio::time::sleep(wait).await;
                            waited = true;
                        }
                        docker_network::Step::Settled { chosen, others } => {
                            for other in others {
                                self.remove_duplicate_network(name, &other).await;
                            }
                            return Ok(chosen);
                        }
                    }
                }
                Err(EngineError::Other {
                    op: "ensure network",
                    message: format!(
                        "networks named `{name}` keep appearing and disappearing: another \
                         program is creating or removing them"
                    ),
                })
            })
            .await?;
        self.network_info(&id).await
    }

    async fn ping(&self) -> Result<(), EngineError> {
        self.bounded("ping", Duration::ZERO, async {
            self.docker
                .ping()
                .await
                .map(|_| ())
                .map_err(|e| classify(Op("ping"), e))
        })
        .await
    }

    async fn network_info(&self, id: &str) -> Result<NetworkInfo, EngineError> {
        self.bounded("inspect network", Duration::ZERO, async {
            let network = self
                .docker
                .inspect_network(id, None)
                .await
                // The engine says "network … not found"; `NotFound` speaks of containers.
                .map_err(|e| classify(Op("inspect network"), e))?;
            DockerEngine::network_of(network)
        })
        .await
    }

    async fn remove_network(&self, id: &str) -> Result<(), EngineError> {
        self.bounded("remove network", Duration::ZERO, async {
            gone_as(
                Op("remove network"),
                self.docker.remove_network(id).await,
                (),
            )
        })
        .await
    }

    async fn ensure_volume(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> Result<HashMap<String, String>, EngineError> {
        self.bounded("ensure volume", Duration::ZERO, async {
            match self.docker.inspect_volume(name).await {
                Ok(volume) => return Ok(volume.labels),
                Err(BollardError::DockerResponseServerError {
                    status_code: 404, ..
                }) => {}
                Err(other) => return Err(classify(Op("inspect volume"), other)),
            }
            // Creating a volume that exists (one made since the inspect) is not an error: the
            // engine answers with that volume, its own labels included.
            let request = VolumeCreateRequest {
                name: Some(name.to_string()),
                labels: Some(labels.clone()),
                ..Default::default()
            };
            self.docker
                .create_volume(request)
                .await
                .map(|volume| volume.labels)
                .map_err(|e| classify(Op("create volume"), e))
        })
        .await
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String, EngineError> {
        self.bounded("create container", Duration::ZERO, async {
            let limits = &spec.limits;
            let memory = i64::try_from(limits.memory_bytes).unwrap_or(i64::MAX);
            let nofile = i64::try_from(limits.nofile).unwrap_or(i64::MAX);
            let host_config = HostConfig {
                memory: Some(memory),
                memory_swap: Some(memory),
                nano_cpus: Some((limits.cpus * 1e9) as i64),
                pids_limit: Some(i64::from(limits.pids)),
                readonly_rootfs: Some(true),
                cap_drop: Some(vec!["ALL".to_string()]),
                security_opt: Some(vec!["no-new-privileges".to_string()]),
                privileged: Some(false),
                tmpfs: Some(HashMap::from([(
                    "/tmp".to_string(),
                    format!("rw,nosuid,nodev,size={}", limits.tmp_bytes),
                )])),
                ulimits: Some(vec![ResourcesUlimits {
                    name: Some("nofile".to_string()),
                    soft: Some(nofile),
                    hard: Some(nofile),
                }]),
                mounts: Some(
                    spec.mounts
                        .iter()
                        .map(|m| Mount {
                            source: Some(m.source.display().to_string()),
                            target: Some(m.target.clone()),
                            typ: Some(MountType::BIND),
                            read_only: Some(true),
                            ..Default::default()
                        })
                        .chain(spec.volumes.iter().map(|v| Mount {
                            source: Some(v.name.clone()),
                            target: Some(v.target.clone()),
                            typ: Some(MountType::VOLUME),
                            read_only: Some(v.read_only),
                            ..Default::default()
                        }))
                        .collect(),
                ),
                network_mode: Some(spec.network.clone().unwrap_or_else(|| "none".to_string())),
                // skiff reads each container's output through its attachment and keeps what a
                // call needs; the engine keeping another copy on disk is pure cost.
                log_config: Some(HostConfigLogConfig {
                    typ: Some("none".to_string()),
                    config: None,
                }),
                init: Some(false),
                ..Default::default()
            };
            let body = ContainerCreateBody {
                image: Some(spec.image.clone()),
                entrypoint: spec.entrypoint.clone(),
                cmd: spec.cmd.clone(),
                env: Some(spec.env.clone()),
                labels: Some(spec.labels.clone()),
                attach_stdin: Some(spec.stdin),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                open_stdin: Some(spec.stdin),
                stdin_once: Some(spec.stdin),
                tty: Some(false),
                network_disabled: Some(spec.network.is_none()),
                host_config: Some(host_config),
                ..Default::default()
            };
            let options = CreateContainerOptionsBuilder::default()
                .name(&spec.name)
                .build();
            let created = self
                .docker
                .create_container(Some(options), body)
                .await
                .map_err(|err| match err {
                    BollardError::DockerResponseServerError {
                        status_code: 404,
                        message,
                    } if message.contains("image") => EngineError::ImageNotFound {
                        reference: spec.image.clone(),
                    },
                    other => classify(Op("create container"), other),
                })?;
            Ok(created.id)
        })
        .await
    }

    async fn attach(&self, id: &str) -> Result<Attachment, EngineError> {
        self.bounded("attach container", Duration::ZERO, async {
            let options = AttachContainerOptionsBuilder::default()
                .stdin(true)
                .stdout(true)
                .stderr(true)
                .stream(true)
                .build();
            let attached = self
                .docker
                .attach_container(id, Some(options))
                .await
                .map_err(|e| not_found_or(id, Op("attach container"), e))?;
            let output = attached
                .output
                .map_err(|e| classify(Op("read container output"), e))
                .try_filter_map(|chunk| async move {
                    Ok(match chunk {
                        LogOutput::StdOut { message } | LogOutput::Console { message } => {
                            Some(Output::Stdout(message))
                        }
                        LogOutput::StdErr { message } => Some(Output::Stderr(message)),
                        LogOutput::StdIn { .. } => None,
                    })
                })
                .boxed();
            Ok(Attachment {
                stdin: attached.input,
                output,
            })
        })
        .await
    }

    async fn start(&self, id: &str) -> Result<(), EngineError> {
        self.bounded("start container", Duration::ZERO, async {
            self.docker
                .start_container(id, None)
                .await
                .map_err(|e| not_found_or(id, Op("start container"), e))
        })
        .await
    }

    async fn wait(&self, id: &str) -> Result<i64, EngineError> {
        let options = WaitContainerOptionsBuilder::default()
            .condition("not-running")
            .build();
        let mut stream = self.docker.wait_container(id, Some(options));
        match stream.next().await {
            Some(Ok(response)) => Ok(response.status_code),
            // bollard reports a non-zero exit as an error; for us it is an exit code.
            Some(Err(BollardError::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(err)) => Err(not_found_or(id, Op("wait for container"), err)),
            None => Err(EngineError::Other {
                op: "wait for container",
                message: "the engine closed the wait without an exit code".to_string(),
            }),
        }
    }

    async fn inspect(&self, id: &str) -> Result<ContainerState, EngineError> {
        self.bounded("inspect container", Duration::ZERO, async {
            let inspected = self
                .docker
                .inspect_container(id, None)
                .await
                .map_err(|e| not_found_or(id, Op("inspect container"), e))?;
            let state = inspected.state.unwrap_or_default();
            let running = state.running.unwrap_or(false);
            let ip = inspected
                .network_settings
                .and_then(|n| n.networks)
                .and_then(|networks| {
                    networks
                        .into_values()
                        .filter_map(|endpoint| endpoint.ip_address)
                        .find_map(|ip| ip.parse().ok())
                });
            Ok(ContainerState {
                running,
                exit_code: if running { None } else { state.exit_code },
                oom_killed: state.oom_killed.unwrap_or(false),
                ip,
            })
        })
        .await
    }

    async fn kill(&self, id: &str) -> Result<(), EngineError> {
        self.bounded("kill container", Duration::ZERO, async {
            let options = KillContainerOptionsBuilder::default()
                .signal("SIGKILL")
                .build();
            match self.docker.kill_container(id, Some(options)).await {
                Ok(()) => Ok(()),
                // 404: gone; 409: not running. Either way it is not running any more.
                Err(BollardError::DockerResponseServerError {
                    status_code: 404 | 409,
                    ..
                }) => Ok(()),
                Err(other) => Err(classify(Op("kill container"), other)),
            }
        })
        .await
    }

    async fn stop(&self, id: &str, grace: std::time::Duration) -> Result<(), EngineError> {
        self.bounded("stop container", grace, async {
            let seconds = i32::try_from(grace.as_secs().max(1)).unwrap_or(i32::MAX);
            let options = StopContainerOptionsBuilder::default().t(seconds).build();
            match self.docker.stop_container(id, Some(options)).await {
                Ok(()) => Ok(()),
                // 304: already stopped; 404: gone.
                Err(BollardError::DockerResponseServerError {
                    status_code: 304 | 404,
                    ..
                }) => Ok(()),
                Err(other) => Err(classify(Op("stop container"), other)),
            }
        })
        .await
    }

    async fn pause(&self, id: &str) -> Result<(), EngineError> {
        self.bounded("pause container", Duration::ZERO, async {
            self.docker
                .pause_container(id)
                .await
                .map_err(|e| not_found_or(id, Op("pause container"), e))
        })
        .await
    }

    async fn unpause(&self, id: &str) -> Result<(), EngineError> {
        self.bounded("unpause container", Duration::ZERO, async {
            self.docker
                .unpause_container(id)
                .await
                .map_err(|e| not_found_or(id, Op("unpause container"), e))
        })
        .await
    }

    async fn remove(&self, id: &str) -> Result<(), EngineError> {
        self.bounded("remove container", Duration::ZERO, async {
            let options = RemoveContainerOptionsBuilder::default()
                .force(true)
                .v(true)
                .build();
            match self.docker.remove_container(id, Some(options)).await {
                Ok(()) => Ok(()),
                // 404: already gone; 409: removal already in progress.
                Err(BollardError::DockerResponseServerError {
                    status_code: 404 | 409,
                    ..
                }) => Ok(()),
                Err(other) => Err(classify(Op("remove container"), other)),
            }
        })
        .await
    }

    async fn list(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerSummary>, EngineError> {
        self.bounded("list containers", Duration::ZERO, async {
            let filters = label_filters(labels);
            let options = ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build();
            let containers = self
                .docker
                .list_containers(Some(options))
                .await
                .map_err(|e| classify(Op("list containers"), e))?;
            Ok(containers
                .into_iter()
                .filter_map(|c| {
                    Some(ContainerSummary {
                        id: c.id?,
                        labels: c.labels.unwrap_or_default(),
                        running: c.state == Some(ContainerSummaryStateEnum::RUNNING),
                    })
                })
                .collect())
        })
        .await
    }
}
