//! The functions deployed, in memory: the hot path's copy of the store's `functions` table,
//! and what each one's containers run.
//!
//! [`Functions`] maps names to [`Entry`]s behind one lock. [`Targets`] turns a function into
//! what the drivers start: an [`ExecTarget`] for `exec` functions (resolved from the image
//! once per process), an [`InstanceTarget`] for `http` and `lambda` ones.

use crate::exec::ExecTarget;
use crate::pool::InstanceTarget;
use parking_lot::RwLock;
use skiff_core::{Contract, Function};
use skiff_runtime::{ContainerEngine, EngineError};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::OnceCell;

/// A deployed function and, once resolved, what its containers run.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) function: Function,
    pub(crate) target: OnceCell<Arc<ExecTarget>>,
    /// Why its containers may not start, when its volumes failed their check at start-up
    /// (a volume skiff did not create and no `--allow-volume` allows): its calls fail
    /// with `start_failed` until it is deployed again.
    pub(crate) refused: Option<String>,
}

impl Entry {
    /// An entry whose exec target is not resolved yet.
    pub(crate) fn new(function: Function, refused: Option<String>) -> Self {
        Entry {
            function,
            target: OnceCell::new(),
            refused,
        }
    }

    /// What the entry's `exec` containers run, resolving its image on first use after a
    /// restart.
    pub(crate) async fn exec_target(
        &self,
        engine: &dyn ContainerEngine,
        targets: &Targets,
    ) -> Result<Arc<ExecTarget>, EngineError> {
        self.target
            .get_or_try_init(|| async {
                let image = engine.inspect_image(&self.function.image_digest).await?;
                Ok(Arc::new(targets.exec(&self.function, image.command())))
            })
            .await
            .cloned()
    }
}

/// The functions, by name.
#[derive(Debug, Default)]
pub(crate) struct Functions {
    entries: RwLock<HashMap<String, Arc<Entry>>>,
}

impl Functions {
    pub(crate) fn new(entries: HashMap<String, Arc<Entry>>) -> Self {
        Functions {
            entries: RwLock::new(entries),
        }
    }

    /// The function `name`, if deployed.
    pub(crate) fn get(&self, name: &str) -> Option<Arc<Entry>> {
        self.entries.read().get(name).cloned()
    }

    /// Every function.
    pub(crate) fn all(&self) -> Vec<Arc<Entry>> {
        self.entries.read().values().cloned().collect()
    }

    /// Installs `entry` under its name.
    pub(crate) fn insert(&self, entry: Arc<Entry>) {
        self.entries
            .write()
            .insert(entry.function.name.to_string(), entry);
    }

    /// Removes `name`, running `then` while no one can look the function up or see it
    /// current ([`Functions::while_current`]).
    pub(crate) fn remove(&self, name: &str, then: impl FnOnce()) -> Option<Arc<Entry>> {
        let mut entries = self.entries.write();
        let removed = entries.remove(name);
        then();
        removed
    }

    /// Runs `then` if `target` is still what its function's `exec` containers run, with the
    /// function kept from being removed meanwhile.
    pub(crate) fn while_current(&self, target: &Arc<ExecTarget>, then: impl FnOnce()) {
        let entries = self.entries.read();
        let current = entries
            .get(&target.function)
            .and_then(|e| e.target.get())
            .is_some_and(|t| Arc::ptr_eq(t, target));
        if current {
            then();
        }
    }
}

/// Numbers each exec target made in this process (see [`ExecTarget::generation`]).
static EXEC_GENERATION: AtomicU64 = AtomicU64::new(1);

/// What every function's containers get from the daemon.
#[derive(Debug, Clone)]
pub(crate) struct Targets {
    /// The function API's URL, as containers reach it (`SKIFF_API_URL`).
    pub(crate) api_url: String,
    /// Where `lambda` instances reach the Runtime API.
    pub(crate) runtime_api: SocketAddr,
    /// The AWS region told to `lambda` functions.
    pub(crate) region: String,
}

impl Targets {
    /// The variable that lets a function's containers call other functions. (Each
    /// container also gets its own `SKIFF_TOKEN`, minted by the driver that creates it.)
    fn calling_env(&self) -> String {
        format!("SKIFF_API_URL={}", self.api_url)
    }

    /// What an `exec` function's containers run: the image's `command`, the function's env
    /// and secrets.
    pub(crate) fn exec(&self, function: &Function, command: Vec<String>) -> ExecTarget {
        let config = &function.config;
        ExecTarget {
            function: function.name.to_string(),
            version: function.version,
            generation: EXEC_GENERATION.fetch_add(1, Ordering::Relaxed),
            image: function.image_digest.clone(),
            image_reference: config.image.clone(),
            command,
            env: config
                .env
                .iter()
                .chain(&config.secrets)
                .map(|(k, v)| format!("{k}={v}"))
                .chain([self.calling_env()])
                .collect(),
            resources: config.resources,
            volumes: config.volumes.clone(),
        }
    }

    /// What the instances of an `http` or `lambda` function run; `None` for `exec`.
    pub(crate) fn instance(&self, function: &Function) -> Option<InstanceTarget> {
        let config = &function.config;
        let mut env: Vec<String> = config
            .env
            .iter()
            .chain(&config.secrets)
            .map(|(k, v)| format!("{k}={v}"))
            .chain([self.calling_env()])
            .collect();
        let mut cmd = None;
        match config.contract {
            Contract::Exec => return None,
            Contract::Http => env.push(format!("PORT={}", config.http.port)),
            Contract::Lambda => {
                let region = &self.region;
                env.extend([
                    format!("AWS_LAMBDA_RUNTIME_API={}", self.runtime_api),
                    format!("AWS_LAMBDA_FUNCTION_NAME={}", function.name),
                    format!(
                        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE={}",
                        config.resources.memory_bytes >> 20
                    ),
                    format!("AWS_LAMBDA_FUNCTION_VERSION={}", function.version),
                    format!("AWS_REGION={region}"),
                    format!("AWS_DEFAULT_REGION={region}"),
                    "LAMBDA_TASK_ROOT=/var/task".to_string(),
                    "LAMBDA_RUNTIME_DIR=/var/runtime".to_string(),
                    format!("AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/{}", function.name),
                ]);
                if let Some(handler) = &config.handler {
                    env.push(format!("_HANDLER={handler}"));
                    cmd = Some(vec![handler.clone()]);
                }
            }
        }
        Some(InstanceTarget {
            function: function.name.to_string(),
            version: function.version,
            image: function.image_digest.clone(),
            image_reference: config.image.clone(),
            env,
            resources: config.resources,
            http: config.http.clone(),
            scaling: config.scaling,
            contract: config.contract,
            cmd,
            volumes: config.volumes.clone(),
        })
    }

    /// The ARN skiff gives a function, in AWS's shape.
    pub(crate) fn function_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:lambda:{}:000000000000:function:{name}",
            self.region
        )
    }
}
