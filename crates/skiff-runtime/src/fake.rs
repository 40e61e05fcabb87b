//! An in-memory [`ContainerEngine`] for unit tests of scheduling and HTTP handling. It never
//! runs anything: a container "runs" by answering with the scripted output of its image.
//! Proof that features work comes from the tests on the real engine, never from this.

use crate::{
    Attachment, Capabilities, ContainerEngine, ContainerSpec, ContainerState, ContainerSummary,
    EngineError, ImageInfo, NetworkInfo, Output,
};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// What a fake image does when a container of it is called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// Written to stdout.
    pub stdout: Bytes,
    /// Written to stderr.
    pub stderr: Bytes,
    /// Exit code.
    pub exit_code: i64,
}

#[derive(Debug, Clone)]
struct FakeContainer {
    spec: ContainerSpec,
    running: bool,
    exit_code: Option<i64>,
    /// Fires when the container stops or goes: a long-lived container's output ends then.
    stopped: tokio::sync::watch::Sender<bool>,
}

/// The fake engine. Register images with [`FakeEngine::add_image`].
#[derive(Debug, Default)]
pub struct FakeEngine {
    images: Mutex<HashMap<String, (ImageInfo, Script)>>,
    containers: Mutex<HashMap<String, FakeContainer>>,
    next_id: AtomicU64,
    /// Volumes by name, with their labels.
    volumes: Mutex<HashMap<String, HashMap<String, String>>>,
    /// The spec of every container created so far, in order.
    created: Mutex<Vec<ContainerSpec>>,
    /// Every operation, in order (`create`, `start`, `remove`, ...), for assertions.
    log: Mutex<Vec<String>>,
    /// Images a registry has, by reference: a pull of one puts it on the engine.
    registry: Mutex<HashMap<String, Script>>,
    /// What it claims to be able to do (`None`: everything).
    capabilities: Mutex<Option<Capabilities>>,
}

fn lock<T>(m: &Mutex<T>) -> parking_lot::MutexGuard<'_, T> {
    m.lock()
}

impl FakeEngine {
    /// An engine with no images.
    pub fn new() -> Self {
        FakeEngine::default()
    }

    /// Makes it claim these capabilities (an engine like Swarm's, say).
    pub fn set_capabilities(&self, capabilities: Capabilities) {
        *lock(&self.capabilities) = Some(capabilities);
    }

    /// Registers an image under `reference` (and its id) that answers with `script`.
    pub fn add_image(&self, reference: &str, script: Script) {
        let id = format!(
            "sha256:{:064x}",
            self.next_id.fetch_add(1, Ordering::Relaxed) + 1
        );
        let info = ImageInfo {
            id: id.clone(),
            entrypoint: vec!["/fn".to_string()],
            cmd: Vec::new(),
            env: Vec::new(),
            digests: Vec::new(),
        };
        let mut images = lock(&self.images);
        images.insert(reference.to_string(), (info.clone(), script.clone()));
        images.insert(id, (info, script));
    }

    /// Puts an image in the registry under `reference`: it is not on the engine until a pull
    /// of `reference` brings it there.
    pub fn add_registry_image(&self, reference: &str, script: Script) {
        lock(&self.registry).insert(reference.to_string(), script);
    }

    /// Containers that exist now.
    pub fn container_count(&self) -> usize {
        lock(&self.containers).len()
    }

    /// Containers that exist now and are not stopped.
    pub fn running_count(&self) -> usize {
        lock(&self.containers)
            .values()
            .filter(|c| c.running)
            .count()
    }

    /// Makes a running container exit, as a crash would.
    pub fn crash(&self, id: &str) {
        if let Some(c) = lock(&self.containers).get_mut(id) {
            c.running = false;
            c.exit_code = Some(3);
            c.stopped.send_replace(true);
        }
    }

    /// Adds a volume with `labels`, as one made by someone else (`docker volume create`)
    /// would be; it replaces a volume of that name.
    pub fn add_volume(&self, name: &str, labels: HashMap<String, String>) {
        lock(&self.volumes).insert(name.to_string(), labels);
    }

    /// The volumes that exist, with their labels.
    pub fn volumes(&self) -> HashMap<String, HashMap<String, String>> {
        lock(&self.volumes).clone()
    }

    /// The spec of every container created so far, in order (removed ones included).
    pub fn created_specs(&self) -> Vec<ContainerSpec> {
        lock(&self.created).clone()
    }

    /// The operations seen so far.
    pub fn operations(&self) -> Vec<String> {
        lock(&self.log).clone()
    }

    fn note(&self, op: &str) {
        lock(&self.log).push(op.to_string());
    }

    /// A pull or push of an image the fake has: one step, `status`; of any other: not found,
    /// as a registry without it would say.
    fn one_step(&self, reference: &str, status: String) -> crate::Progress {
        let step = if lock(&self.images).contains_key(reference) {
            Ok(crate::ImageProgress {
                layer: None,
                status,
                current: None,
                total: None,
            })
        } else {
            Err(EngineError::ImageNotFound {
                reference: reference.to_string(),
            })
        };
        futures::stream::iter([step]).boxed()
    }

    fn script_of(&self, id: &str) -> Result<Script, EngineError> {
        let image = lock(&self.containers)
            .get(id)
            .map(|c| c.spec.image.clone())
            .ok_or_else(|| EngineError::NotFound { id: id.to_string() })?;
        lock(&self.images)
            .get(&image)
            .map(|(_, s)| s.clone())
            .ok_or(EngineError::ImageNotFound { reference: image })
    }
}

#[async_trait]
impl ContainerEngine for FakeEngine {
    fn capabilities(&self) -> Capabilities {
        lock(&self.capabilities).unwrap_or(Capabilities::ALL)
    }

    async fn inspect_image(&self, reference: &str) -> Result<ImageInfo, EngineError> {
        lock(&self.images)
            .get(reference)
            .map(|(info, _)| info.clone())
            .ok_or_else(|| EngineError::ImageNotFound {
                reference: reference.to_string(),
            })
    }

    /// A pull of an image the fake has succeeds in one step; of any other, fails as a
    /// registry without it would.
    fn pull_image(&self, reference: &str, auth: Option<crate::RegistryAuth>) -> crate::Progress {
        match auth {
            Some(auth) => self.note(&format!("pull {reference} as {}", auth.username)),
            None => self.note(&format!("pull {reference}")),
        }
        let pulled = lock(&self.registry).remove(reference);
        if let Some(script) = pulled {
            self.add_image(reference, script);
        }
        self.one_step(
            reference,
            format!("Status: Image is up to date for {reference}"),
        )
    }

    fn push_image(&self, reference: &str, _auth: Option<crate::RegistryAuth>) -> crate::Progress {
        self.note(&format!("push {reference}"));
        self.one_step(reference, "Pushed".to_string())
    }

    async fn tag_image(&self, source: &str, target: &str) -> Result<(), EngineError> {
        let mut images = lock(&self.images);
        let image = images
            .get(source)
            .cloned()
            .ok_or_else(|| EngineError::ImageNotFound {
                reference: source.to_string(),
            })?;
        images.insert(target.to_string(), image);
        Ok(())
    }

    async fn ping(&self) -> Result<(), EngineError> {
        Ok(())
    }

    async fn ensure_network(
        &self,
        name: &str,
        _labels: &HashMap<String, String>,
    ) -> Result<NetworkInfo, EngineError> {
        self.network_info(&format!("net-{name}")).await
    }

    async fn network_info(&self, id: &str) -> Result<NetworkInfo, EngineError> {
        Ok(NetworkInfo {
            id: id.to_string(),
            gateway: Some(std::net::IpAddr::from([127, 0, 0, 1])),
            subnets: Vec::new(),
            containers_connect: false,
            containers: 0,
        })
    }

    async fn remove_network(&self, _id: &str) -> Result<(), EngineError> {
        Ok(())
    }

    async fn ensure_volume(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> Result<HashMap<String, String>, EngineError> {
        self.note("ensure_volume");
        Ok(lock(&self.volumes)
            .entry(name.to_string())
            .or_insert_with(|| labels.clone())
            .clone())
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String, EngineError> {
        self.note("create");
        if !lock(&self.images).contains_key(&spec.image) {
            return Err(EngineError::ImageNotFound {
                reference: spec.image.clone(),
            });
        }
        lock(&self.created).push(spec.clone());
        let id = format!("fake{:08}", self.next_id.fetch_add(1, Ordering::Relaxed));
        lock(&self.containers).insert(
            id.clone(),
            FakeContainer {
                spec: spec.clone(),
                running: false,
                exit_code: None,
                stopped: tokio::sync::watch::channel(false).0,
            },
        );
        Ok(id)
    }

    async fn attach(&self, id: &str) -> Result<Attachment, EngineError> {
        self.note("attach");
        let script = self.script_of(id)?;
        let mut chunks = Vec::new();
        if !script.stderr.is_empty() {
            chunks.push(Ok(Output::Stderr(script.stderr)));
        }
        if !script.stdout.is_empty() {
            chunks.push(Ok(Output::Stdout(script.stdout)));
        }
        let long_lived = lock(&self.containers)
            .get(id)
            .map(|c| (!c.spec.stdin).then(|| c.stopped.subscribe()));
        let output = futures::stream::iter(chunks.into_iter().map(Some));
        let output = match long_lived.flatten() {
            // A server (no stdin): its output stays open until it stops, like a real one's.
            Some(mut stopped) => output
                .chain(futures::stream::once(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                    None
                }))
                .filter_map(|x| async move { x })
                .boxed(),
            None => output.filter_map(|x| async move { x }).boxed(),
        };
        Ok(Attachment {
            stdin: Box::pin(tokio::io::sink()),
            output,
        })
    }

    async fn start(&self, id: &str) -> Result<(), EngineError> {
        self.note("start");
        let mut containers = lock(&self.containers);
        let container = containers
            .get_mut(id)
            .ok_or_else(|| EngineError::NotFound { id: id.to_string() })?;
        container.running = true;
        Ok(())
    }

    async fn wait(&self, id: &str) -> Result<i64, EngineError> {
        self.note("wait");
        let script = self.script_of(id)?;
        if let Some(c) = lock(&self.containers).get_mut(id) {
            c.running = false;
            c.exit_code = Some(script.exit_code);
        }
        Ok(script.exit_code)
    }

    async fn inspect(&self, id: &str) -> Result<ContainerState, EngineError> {
        lock(&self.containers)
            .get(id)
            .map(|c| ContainerState {
                running: c.running,
                exit_code: c.exit_code,
                oom_killed: false,
                ip: c.running.then(|| std::net::IpAddr::from([127, 0, 0, 1])),
            })
            .ok_or_else(|| EngineError::NotFound { id: id.to_string() })
    }

    async fn kill(&self, id: &str) -> Result<(), EngineError> {
        self.note("kill");
        if let Some(c) = lock(&self.containers).get_mut(id) {
            c.running = false;
            c.exit_code.get_or_insert(137);
            c.stopped.send_replace(true);
        }
        Ok(())
    }

    async fn stop(&self, id: &str, _grace: std::time::Duration) -> Result<(), EngineError> {
        self.note("stop");
        if let Some(c) = lock(&self.containers).get_mut(id) {
            c.running = false;
            c.exit_code.get_or_insert(0);
            c.stopped.send_replace(true);
        }
        Ok(())
    }

    async fn pause(&self, id: &str) -> Result<(), EngineError> {
        self.note("pause");
        lock(&self.containers)
            .get(id)
            .map(|_| ())
            .ok_or_else(|| EngineError::NotFound { id: id.to_string() })
    }

    async fn unpause(&self, id: &str) -> Result<(), EngineError> {
        self.note("unpause");
        lock(&self.containers)
            .get(id)
            .map(|_| ())
            .ok_or_else(|| EngineError::NotFound { id: id.to_string() })
    }

    async fn remove(&self, id: &str) -> Result<(), EngineError> {
        self.note("remove");
        if let Some(c) = lock(&self.containers).remove(id) {
            c.stopped.send_replace(true);
        }
        Ok(())
    }

    async fn list(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerSummary>, EngineError> {
        Ok(lock(&self.containers)
            .iter()
            .filter(|(_, c)| {
                labels
                    .iter()
                    .all(|(k, v)| c.spec.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(id, c)| ContainerSummary {
                id: id.clone(),
                labels: c.spec.labels.clone(),
                running: c.running,
            })
            .collect())
    }
}
