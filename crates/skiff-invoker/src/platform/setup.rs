//! What the platform does once at start-up: the functions' network made safe, leftover
//! containers removed, the functions loaded with their volumes checked.

use crate::error::PlatformError;
use crate::registry::Entry;
use skiff_core::labels;
use skiff_runtime::{ContainerEngine, EngineError};
use skiff_store::Store;
use std::collections::HashMap;
use std::sync::Arc;

/// The deployed functions, from the store. Volumes removed by hand since the last run are
/// created again, with labels; a function whose volume was replaced by one skiff did not
/// create is loaded refused (its calls fail, its containers do not start).
pub(super) async fn load_functions(
    store: &Store,
    engine: &dyn ContainerEngine,
    allowed_volumes: &[String],
) -> Result<HashMap<String, Arc<Entry>>, PlatformError> {
    let mut functions = HashMap::new();
    for function in store.list_functions().await? {
        let entry = checked_entry(engine, function, allowed_volumes).await;
        functions.insert(entry.function.name.to_string(), Arc::new(entry));
    }
    Ok(functions)
}

/// The registry entry of a stored `function`, its volumes checked: one that mounts a
/// volume skiff may not use is refused (its containers do not start), and says why.
pub(super) async fn checked_entry(
    engine: &dyn ContainerEngine,
    function: skiff_core::Function,
    allowed_volumes: &[String],
) -> Entry {
    let refused = match ensure_volumes(engine, &function.config.volumes, allowed_volumes).await {
        Ok(()) => None,
        Err(err) => {
            let why = match err {
                PlatformError::InvalidSpec(spec) => spec.message,
                other => format!("its volumes cannot be checked: {other}"),
            };
            let reason = format!(
                "{why}; the function's containers do not start until it is deployed again (or the daemon restarts with the volume allowed)"
            );
            tracing::warn!(function = %function.name, "{reason}");
            Some(reason)
        }
    };
    Entry::new(function, refused)
}

/// The functions' network, made sure to keep containers from reaching each other. One made
/// by an older skiff (containers connect) is replaced when nothing is attached to it;
/// otherwise skiff refuses to start rather than run functions that can reach each other.
pub(super) async fn isolated_network(
    engine: &dyn ContainerEngine,
    name: &str,
) -> Result<skiff_runtime::NetworkInfo, PlatformError> {
    let labels = HashMap::from([(labels::MANAGED.to_string(), "true".to_string())]);
    let network = engine.ensure_network(name, &labels).await?;
    if !network.containers_connect {
        return Ok(network);
    }
    if network.containers > 0 {
        return Err(PlatformError::Setup {
            what: "preparing the functions' network",
            message: format!(
                "network `{name}` lets containers reach each other, and {} container(s) are \
                 attached to it: remove it (`docker network rm {name}`) once they are gone, \
                 or pick another with --network",
                network.containers
            ),
        });
    }
    tracing::info!(
        network = name,
        "replacing the functions' network: containers on it could reach each other"
    );
    engine.remove_network(&network.id).await?;
    let network = engine.ensure_network(name, &labels).await?;
    if network.containers_connect {
        return Err(PlatformError::Setup {
            what: "preparing the functions' network",
            message: format!("network `{name}` still lets containers reach each other"),
        });
    }
    Ok(network)
}

/// Creates the volumes a function mounts that do not exist yet, labelled as skiff's, and
/// checks that every one is skiff's (`skiff.managed=true`) or in `allowed` (the daemon's
/// `--allow-volume`): any other volume on the engine is refused, as an invalid spec.
pub(super) async fn ensure_volumes(
    engine: &dyn ContainerEngine,
    volumes: &[skiff_core::VolumeMount],
    allowed: &[String],
) -> Result<(), PlatformError> {
    for volume in volumes {
        let name = &volume.name;
        let found = engine
            .ensure_volume(name, &labels::for_volume(name))
            .await?;
        let managed = found.get(labels::MANAGED).is_some_and(|v| v == "true");
        if !managed && !allowed.contains(name) {
            return Err(PlatformError::InvalidSpec(skiff_core::SpecError::new(
                "volumes",
                format!(
                    "volume `{name}` was not created by skiff (it has no {}=true label); skiff mounts such a volume only when the daemon allows it with `skiff serve --allow-volume {name}`",
                    labels::MANAGED
                ),
            )));
        }
    }
    Ok(())
}

/// Removes every container of this daemon; returns how many there were.
pub(super) async fn reap(
    engine: &dyn ContainerEngine,
    daemon_id: &str,
) -> Result<usize, EngineError> {
    let containers = engine
        .list(&[(labels::MANAGED, "true"), (labels::DAEMON, daemon_id)])
        .await?;
    let count = containers.len();
    futures::future::join_all(containers.iter().map(|c| engine.remove(&c.id)))
        .await
        .into_iter()
        .collect::<Result<Vec<()>, _>>()?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_skiffs_own_or_allowed_volumes_are_mounted() {
        let engine = skiff_runtime::fake::FakeEngine::new();
        engine.add_volume("theirs", HashMap::new());
        engine.add_volume("allowed", HashMap::new());
        let mount = |name: &str| skiff_core::VolumeMount {
            name: name.to_string(),
            target: "/data".to_string(),
            read_only: false,
        };
        let allowed = ["allowed".to_string()];
        // A missing volume is created with skiff's labels, and then it is skiff's own.
        ensure_volumes(&engine, &[mount("fresh")], &allowed)
            .await
            .expect("created");
        assert_eq!(
            engine.volumes().get("fresh"),
            Some(&labels::for_volume("fresh"))
        );
        ensure_volumes(&engine, &[mount("fresh"), mount("allowed")], &allowed)
            .await
            .expect("skiff's own and an allowed one");
        match ensure_volumes(&engine, &[mount("fresh"), mount("theirs")], &allowed).await {
            Err(PlatformError::InvalidSpec(err)) => {
                assert_eq!(err.field, "volumes");
                assert!(err.message.contains("`theirs`"), "{}", err.message);
                assert!(
                    err.message.contains("--allow-volume theirs"),
                    "{}",
                    err.message
                );
            }
            other => panic!("a foreign volume must be refused: {other:?}"),
        }
        assert_eq!(engine.volumes().get("theirs"), Some(&HashMap::new()));
    }
}
