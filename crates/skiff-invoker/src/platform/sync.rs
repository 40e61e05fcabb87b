//! Changes made through other daemons of a shared store, applied here: a function
//! deployed, scaled or deleted elsewhere, a trigger created, replaced or deleted elsewhere.
//!
//! The store announces each change when it commits ([`skiff_store::Store::listen`],
//! PostgreSQL's LISTEN/NOTIFY); this daemon reads the item again and brings its registry,
//! its drivers and its triggers in line, as a deploy or a delete through its own API would
//! (without writing the store again). A change it made itself reads back the same and does
//! nothing. After a lost connection everything is read again. On SQLite there is nothing to
//! hear: one daemon uses the file.

use super::{setup, Platform};
use crate::error::PlatformError;
use crate::registry::Entry;
use crate::running::StopReason;
use skiff_core::Contract;
use skiff_store::Change;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

/// How long the listener waits before it tries again after the store failed.
const RETRY: Duration = Duration::from_secs(1);

impl Platform {
    /// Starts hearing changes, on a store that announces them (PostgreSQL).
    pub(super) async fn spawn_sync(self: &Arc<Self>) -> Result<(), PlatformError> {
        let Some(changes) = self.store.listen().await? else {
            return Ok(());
        };
        let platform = Arc::downgrade(self);
        let store = self.store.clone();
        let cancel = self.cancel.clone();
        self.tracker.spawn(async move {
            let mut changes = Some(changes);
            // What changed between loading the functions and listening is read again.
            let mut resync = true;
            loop {
                let change = if std::mem::take(&mut resync) {
                    Ok(Change::Resync)
                } else {
                    let next = async {
                        match changes.as_mut() {
                            Some(listening) => listening.next().await,
                            None => {
                                tokio::time::sleep(RETRY).await;
                                match store.listen().await? {
                                    Some(listening) => {
                                        changes = Some(listening);
                                        Ok(Change::Resync)
                                    }
                                    None => std::future::pending().await,
                                }
                            }
                        }
                    };
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        change = next => change,
                    }
                };
                let Some(platform) = platform.upgrade() else {
                    return;
                };
                let applied = match change {
                    Ok(change) => platform.apply(change).await,
                    Err(err) => Err(err.into()),
                };
                if let Err(err) = applied {
                    tracing::warn!(%err, "cannot apply a change made through another daemon; reading everything again");
                    changes = None;
                }
            }
        });
        Ok(())
    }

    /// Applies one change.
    async fn apply(&self, change: Change) -> Result<(), PlatformError> {
        match change {
            Change::Function(name) => self.reload_function(&name).await,
            Change::Trigger(name) => {
                // After a local change is complete, never in the middle of it.
                let _serialized = self.deploys.lock().await;
                self.triggers.reload(self.me(), &name).await
            }
            Change::Resync => {
                let mut stored: std::collections::HashMap<String, skiff_core::Function> = self
                    .store
                    .list_functions()
                    .await?
                    .into_iter()
                    .map(|f| (f.name.to_string(), f))
                    .collect();
                let mut names: Vec<String> = stored.keys().cloned().collect();
                names.extend(
                    self.functions
                        .all()
                        .iter()
                        .map(|e| e.function.name.to_string()),
                );
                names.sort();
                names.dedup();
                for name in names {
                    let function = stored.remove(&name);
                    self.reconcile_function(&name, function).await;
                }
                let _serialized = self.deploys.lock().await;
                self.triggers.reload_all(self.me()).await
            }
        }
    }

    /// Brings function `name` in line with the store.
    async fn reload_function(&self, name: &str) -> Result<(), PlatformError> {
        let stored = self.store.get_function(name).await?;
        self.reconcile_function(name, stored).await;
        Ok(())
    }

    /// Brings function `name` in line with `stored`, as read from the store.
    async fn reconcile_function(&self, name: &str, stored: Option<skiff_core::Function>) {
        let _serialized = self.deploys.lock().await;
        let current = self.functions.get(name);
        match (stored, current) {
            (None, None) => {}
            // Its own change, heard back (times read back to the millisecond).
            (Some(stored), Some(current))
                if stored.version == current.function.version
                    && stored.config == current.function.config
                    && stored.image_digest == current.function.image_digest => {}
            (None, Some(_)) => {
                tracing::info!(function = name, "deleted through another daemon");
                let exec = &self.contracts.exec;
                self.functions.remove(name, || exec.forget(name));
                self.running
                    .stop_function(name, StopReason::FunctionDeleted);
                self.contracts.instances.remove_function(name);
            }
            (Some(stored), Some(current)) if stored.version == current.function.version => {
                // Scaled: the same version, new bounds.
                let scaling = stored.config.scaling;
                self.functions.insert(Arc::new(Entry {
                    function: stored,
                    target: OnceCell::new_with(current.target.get().cloned()),
                    refused: current.refused.clone(),
                }));
                self.contracts.instances.set_scaling(name, scaling);
            }
            (Some(stored), current) => {
                tracing::info!(
                    function = name,
                    version = stored.version,
                    "deployed through another daemon"
                );
                let entry =
                    setup::checked_entry(&*self.engine, stored, &self.config.allowed_volumes).await;
                let was_instances = current
                    .as_ref()
                    .is_some_and(|e| e.function.config.contract != Contract::Exec);
                let instances = self.contracts.targets.instance(&entry.function);
                let refused = entry.refused.is_some();
                self.functions.insert(Arc::new(entry));
                let drivers = &self.contracts;
                if current.is_some() {
                    drivers.exec.forget(name);
                }
                match instances {
                    Some(target) if !refused => drivers.instances.set_target(Arc::new(target)),
                    _ if was_instances => drivers.instances.remove_function(name),
                    // Exec containers are prepared on its first call here.
                    _ => {}
                }
            }
        }
    }
}
