//! Functions: deploy (create or update), scale, delete, read; and their triggers, whose
//! changes are serialized with the functions' own.

use super::{setup, Platform};
use crate::error::PlatformError;
use crate::pool::InstanceView;
use crate::registry::Entry;
use crate::running::StopReason;
use chrono::Utc;
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
        let config = spec.validate()?;
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
        let view = FunctionView::from(&entry.function);
        self.functions.insert(entry);
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
        Ok((view, previous.is_none()))
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

    /// One function.
    pub fn get_function(&self, name: &str) -> Result<FunctionView, PlatformError> {
        self.functions
            .get(name)
            .map(|e| FunctionView::from(&e.function))
            .ok_or_else(|| PlatformError::FunctionNotFound {
                name: name.to_string(),
            })
    }

    /// All functions, by name.
    pub fn list_functions(&self) -> Vec<FunctionView> {
        self.functions.views()
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
        let view = FunctionView::from(&function);
        let target = entry.target.get().cloned();
        self.functions.insert(Arc::new(Entry {
            function,
            target: OnceCell::new_with(target),
            refused: entry.refused.clone(),
        }));
        self.contracts.instances.set_scaling(name, scaling);
        Ok(view)
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
