//! Functions: deploy (create or update), scale, delete, read; and their triggers, whose
//! changes are serialized with the functions' own.

use super::{setup, Platform};
use crate::error::PlatformError;
use crate::pool::InstanceView;
use crate::registry::Entry;
use crate::running::StopReason;
use chrono::Utc;
use skiff_core::api::{FunctionState, FunctionStatus};
use skiff_core::trigger::parse_trigger_name;
use skiff_core::{
    Contract, Function, FunctionName, FunctionSpec, FunctionView, TriggerSpec, TriggerView,
};
use skiff_runtime::EngineError;
use std::sync::Arc;
use tokio::sync::OnceCell;

impl Platform {
    /// Creates or updates a function. The image must be on the engine; it is pinned to its
    /// id. Returns the function and whether it was created.
    pub async fn deploy(
        &self,
        name: &str,
        spec: &FunctionSpec,
    ) -> Result<(FunctionView, bool), PlatformError> {
        let name = FunctionName::parse(name)?;
        let mut config = spec.validate()?;
        setup::runnable_here(&*self.engine, &config)?;
        // A namespace's volumes are its own: named apart on the engine.
        for volume in &mut config.volumes {
            *volume = volume.in_namespace(name.namespace());
        }
        let image = self
            .engine
            .inspect_image(&config.image)
            .await
            .map_err(|err| match err {
                EngineError::ImageNotFound { reference } => {
                    PlatformError::ImageNotFound { image: reference }
                }
                err @ EngineError::InvalidReference { .. } => {
                    PlatformError::InvalidSpec(skiff_core::SpecError::new("image", err.to_string()))
                }
                other => PlatformError::Engine(other),
            })?;
        setup::ensure_volumes(&*self.engine, &config.volumes, &self.config.allowed_volumes).await?;
        let _serialized = self.deploys.lock().await;
        let now = Utc::now();
        let previous = self.functions.get(name.as_str());
        if previous.is_none() {
            self.admits_function(name.namespace())?;
        }
        let function = Function {
            name: name.clone(),
            config,
            image_digest: image.id.clone(),
            version: previous.as_ref().map_or(1, |e| e.function.version + 1),
            created_at: previous.as_ref().map_or(now, |e| e.function.created_at),
            updated_at: now,
        };
        self.store.put_function(&function).await?;
        let targets = &self.contracts.targets;
        let exec = Arc::new(targets.exec(&function, image.command()));
        let instances = targets.instance(&function);
        let was_instances = previous
            .as_ref()
            .is_some_and(|e| e.function.config.contract != Contract::Exec);
        let entry = Arc::new(Entry {
            function,
            target: OnceCell::new_with(Some(exec.clone())),
            refused: None,
        });
        self.functions.insert(entry.clone());
        let drivers = &self.contracts;
        if previous.is_some() {
            drivers.exec.forget(name.as_str());
        }
        match instances {
            Some(target) => drivers.instances.set_target(Arc::new(target)),
            None if was_instances => drivers.instances.remove_function(name.as_str()),
            None => {
                if self.is_accepting() {
                    drivers.exec.refill(&exec);
                }
            }
        }
        Ok((self.view(&entry), previous.is_none()))
    }

    /// One function, whole (its validated configuration included, secrets too: for
    /// transports that must rebuild a spec, never to be shown as is).
    pub fn function(&self, name: &str) -> Result<Function, PlatformError> {
        self.functions
            .get(name)
            .map(|e| e.function.clone())
            .ok_or_else(|| PlatformError::FunctionNotFound {
                name: name.to_string(),
            })
    }

    /// One function, with where it stands now.
    pub fn get_function(&self, name: &str) -> Result<FunctionView, PlatformError> {
        self.functions
            .get(name)
            .map(|e| self.view(&e))
            .ok_or_else(|| PlatformError::FunctionNotFound {
                name: name.to_string(),
            })
    }

    /// All functions, by name, with where each stands now.
    pub fn list_functions(&self) -> Vec<FunctionView> {
        let mut views: Vec<FunctionView> =
            self.functions.all().iter().map(|e| self.view(e)).collect();
        views.sort_by(|a, b| a.name.cmp(&b.name));
        views
    }

    /// The functions of `namespace`, by name, with where each stands now.
    pub fn list_functions_in(&self, namespace: &str) -> Vec<FunctionView> {
        let mut views: Vec<FunctionView> = self
            .functions
            .all()
            .iter()
            .filter(|e| e.function.name.namespace() == namespace)
            .map(|e| self.view(e))
            .collect();
        views.sort_by(|a, b| a.name.cmp(&b.name));
        views
    }

    /// The triggers of `namespace`, by name.
    pub fn list_triggers_in(&self, namespace: &str) -> Vec<TriggerView> {
        self.triggers
            .list()
            .into_iter()
            .filter(|t| skiff_core::access::namespace_of(&t.name) == namespace)
            .collect()
    }

    /// A function as the API shows it, with its state.
    fn view(&self, entry: &Entry) -> FunctionView {
        let mut view = FunctionView::from(&entry.function);
        view.state = Some(self.state_of(entry));
        view
    }

    /// Where a function stands: an `exec` function is ready (each call gets a container of
    /// its own); an instance-based one as its pool says.
    fn state_of(&self, entry: &Entry) -> FunctionState {
        let mut state = FunctionState {
            status: FunctionStatus::Ready,
            instances: None,
            failures: 0,
            last_error: None,
            retry_at: None,
        };
        if let Some(reason) = &entry.refused {
            state.status = FunctionStatus::Refused;
            state.last_error = Some(reason.clone());
            return state;
        }
        if entry.function.config.contract == Contract::Exec {
            return state;
        }
        let name = entry.function.name.as_str();
        let Some(standing) = self.contracts.instances.standing(name) else {
            state.status = FunctionStatus::Idle;
            state.instances = Some(0);
            return state;
        };
        let now = std::time::Instant::now();
        state.status = if standing.serving > 0 {
            FunctionStatus::Ready
        } else if standing.retry_at.is_some() {
            FunctionStatus::BackingOff
        } else if standing.starting > 0 {
            FunctionStatus::Starting
        } else {
            FunctionStatus::Idle
        };
        state.instances = Some(u32::try_from(standing.serving).unwrap_or(u32::MAX));
        state.failures = standing.failures;
        state.last_error = standing.last_error;
        state.retry_at = standing.retry_at.map(|at| {
            let wait = at.saturating_duration_since(now);
            Utc::now() + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::zero())
        });
        state
    }

    /// Deletes a function and its triggers. Its calls in flight are stopped (`interrupted`)
    /// and every container of it is removed.
    pub async fn delete_function(&self, name: &str) -> Result<(), PlatformError> {
        let _serialized = self.deploys.lock().await;
        if self.functions.get(name).is_none() {
            return Err(PlatformError::FunctionNotFound {
                name: name.to_string(),
            });
        }
        self.triggers.delete_of(name).await?;
        self.store.delete_function(name).await?;
        // A function made again under this name must not inherit its keys.
        self.store.revoke_keys_of(name, Utc::now()).await?;
        let exec = &self.contracts.exec;
        self.functions.remove(name, || exec.forget(name));
        // Its calls in flight stop now: their containers are killed and removed.
        let stopped = self
            .running
            .stop_function(name, StopReason::FunctionDeleted);
        if stopped > 0 {
            tracing::info!(
                function = name,
                calls = stopped,
                "stopped the calls of a deleted function"
            );
        }
        self.contracts.instances.remove_function(name);
        Ok(())
    }

    /// The instances of a function (empty for `exec` functions, whose containers serve a
    /// single call each).
    pub fn instances(&self, name: &str) -> Result<Vec<InstanceView>, PlatformError> {
        self.functions
            .get(name)
            .ok_or_else(|| PlatformError::FunctionNotFound {
                name: name.to_string(),
            })?;
        Ok(self.contracts.instances.instances(name))
    }

    /// Changes how many instances a function may have, without a new version.
    pub async fn scale(
        &self,
        name: &str,
        min: Option<u32>,
        max: Option<u32>,
    ) -> Result<FunctionView, PlatformError> {
        let _serialized = self.deploys.lock().await;
        let entry = self
            .functions
            .get(name)
            .ok_or_else(|| PlatformError::FunctionNotFound {
                name: name.to_string(),
            })?;
        let mut function = entry.function.clone();
        if function.config.contract == Contract::Exec {
            return Err(PlatformError::InvalidSpec(skiff_core::SpecError::new(
                "min_instances",
                "the `exec` contract runs a fresh container per call; it has no instances to scale",
            )));
        }
        let scaling = function.config.scaling.with_bounds(min, max)?;
        function.config.scaling = scaling;
        function.updated_at = Utc::now();
        self.store.put_function(&function).await?;
        let target = entry.target.get().cloned();
        let entry = Arc::new(Entry {
            function,
            target: OnceCell::new_with(target),
            refused: entry.refused.clone(),
        });
        self.functions.insert(entry.clone());
        self.contracts.instances.set_scaling(name, scaling);
        Ok(self.view(&entry))
    }

    /// Creates or replaces a trigger; returns it and whether it was created. The function
    /// must exist. Replacing starts afresh: a new generation, a cron schedule that counts
    /// from now, a broker subscription that reconnects.
    pub async fn put_trigger(
        &self,
        name: &str,
        spec: &TriggerSpec,
    ) -> Result<(TriggerView, bool), PlatformError> {
        let name = parse_trigger_name(name).map_err(PlatformError::InvalidTrigger)?;
        let spec = spec.validate().map_err(PlatformError::InvalidTrigger)?;
        let _serialized = self.deploys.lock().await;
        self.function(&spec.function)?;
        self.triggers.put(self.me(), name, spec).await
    }

    /// One trigger.
    pub fn get_trigger(&self, name: &str) -> Result<TriggerView, PlatformError> {
        self.triggers.get(name)
    }

    /// All triggers, by name.
    pub fn list_triggers(&self) -> Vec<TriggerView> {
        self.triggers.list()
    }

    /// Deletes a trigger: no further call starts from it (calls already queued run).
    pub async fn delete_trigger(&self, name: &str) -> Result<(), PlatformError> {
        let _serialized = self.deploys.lock().await;
        self.triggers.delete(name).await
    }
}
