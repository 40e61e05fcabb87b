//! What the platform does once at start-up: the functions' network made safe, leftover
//! containers found (and removed in the background), the functions loaded with their
//! volumes checked.

use crate::backoff::Backoff;
use crate::error::PlatformError;
use crate::registry::Entry;
use skiff_core::labels;
use skiff_runtime::{ContainerEngine, EngineError};
use skiff_store::Store;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Passes over the leftovers that could not be removed: the first, then two more.
const LEFTOVER_PASSES: u32 = 3;
/// The waits between those passes: 1 s, then 2 s.
const LEFTOVER_RETRY: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(2));

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

/// The registry entry of a stored `function`, checked: one that mounts a volume skiff may
/// not use, or that this engine cannot run, is refused (its containers do not start), and
/// says why.
pub(super) async fn checked_entry(
    engine: &dyn ContainerEngine,
    function: skiff_core::Function,
    allowed_volumes: &[String],
) -> Entry {
    let checked = async {
        runnable_here(engine, &function.config)?;
        ensure_volumes(engine, &function.config.volumes, allowed_volumes).await
    }
    .await;
    let refused = match checked {
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

/// Whether this engine can run a function of this configuration: an `exec` function needs
/// an engine that attaches to a container's stdio.
pub(super) fn runnable_here(
    engine: &dyn ContainerEngine,
    config: &skiff_core::FunctionConfig,
) -> Result<(), PlatformError> {
    if config.contract == skiff_core::Contract::Exec && !engine.capabilities().attach {
        return Err(PlatformError::InvalidSpec(skiff_core::SpecError::new(
            "contract",
            "this daemon's engine cannot reach a container's stdin, which the exec contract \
             needs (on Swarm, skiff's own image must be known: see --swarm-image): deploy it \
             with the http or lambda contract",
        )));
    }
    Ok(())
}

/// The functions' network, made sure to keep containers from reaching each other. One made
/// by an older skiff (containers connect) is replaced when nothing is attached to it (this
/// daemon's `leftovers` are removed first, then and there); otherwise skiff refuses to start
/// rather than run functions that can reach each other.
pub(super) async fn isolated_network(
    engine: &dyn ContainerEngine,
    name: &str,
    leftovers: &mut Vec<String>,
) -> Result<skiff_runtime::NetworkInfo, PlatformError> {
    let labels = HashMap::from([(labels::MANAGED.to_string(), "true".to_string())]);
    let mut network = engine.ensure_network(name, &labels).await?;
    if !engine.capabilities().isolated_networks {
        tracing::warn!(
            network = name,
            "this engine's networks cannot keep function containers apart (a Swarm overlay): \
             functions on it can reach each other's instances"
        );
        return Ok(network);
    }
    if !network.containers_connect {
        return Ok(network);
    }
    if network.containers > 0 && !leftovers.is_empty() {
        remove_all(engine, leftovers).await?;
        leftovers.clear();
        network = engine.network_info(&network.id).await?;
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

/// The containers of this daemon on the engine, running or not. Listed at start-up, before
/// this run creates any, they are all leftovers of a previous run.
pub(super) async fn containers_of(
    engine: &dyn ContainerEngine,
    daemon_id: &str,
) -> Result<Vec<String>, EngineError> {
    Ok(engine
        .list(&[(labels::MANAGED, "true"), (labels::DAEMON, daemon_id)])
        .await?
        .into_iter()
        .map(|c| c.id)
        .collect())
}

/// Kills `containers` all at once (a kill is a signal, which the engine's gate lets
/// through), so that their removals, which wait their turn at the gate, are of stopped
/// containers: quick and alike, which keeps the gate's limit up.
async fn kill_all(engine: &dyn ContainerEngine, containers: &[String]) {
    futures::future::join_all(containers.iter().map(|c| engine.kill(c))).await;
}

/// Kills, then removes, `containers` all at once: the engine's gate lets as many removals
/// run together as it admits.
async fn remove_all(
    engine: &dyn ContainerEngine,
    containers: &[String],
) -> Result<(), EngineError> {
    kill_all(engine, containers).await;
    futures::future::join_all(containers.iter().map(|c| engine.remove(c)))
        .await
        .into_iter()
        .collect::<Result<Vec<()>, _>>()?;
    Ok(())
}

/// Removes every container of this daemon; returns how many there were.
pub(super) async fn reap(
    engine: &dyn ContainerEngine,
    daemon_id: &str,
) -> Result<usize, EngineError> {
    let containers = containers_of(engine, daemon_id).await?;
    remove_all(engine, &containers).await?;
    Ok(containers.len())
}

/// Removes the leftovers of a previous run, found at start-up, while the daemon serves:
/// all at once through the engine's gate, counting down `remaining` as each goes. Those
/// that fail are tried again (twice, 1 s and 2 s later); whatever still fails is logged and
/// no longer counted. Ends early at `cancel` (shutdown removes what is left).
pub(super) async fn remove_leftovers(
    engine: Arc<dyn ContainerEngine>,
    mut containers: Vec<String>,
    remaining: Arc<AtomicUsize>,
    cancel: CancellationToken,
) {
    let started = std::time::Instant::now();
    let total = containers.len();
    tokio::select! {
        () = kill_all(&*engine, &containers) => {}
        _ = cancel.cancelled() => return,
    }
    for pass in 1..=LEFTOVER_PASSES {
        let removals = containers.iter().map(|id| {
            let (engine, remaining) = (engine.clone(), remaining.clone());
            async move {
                match engine.remove(id).await {
                    Ok(()) => {
                        remaining.fetch_sub(1, Ordering::AcqRel);
                        None
                    }
                    Err(err) => Some((id.clone(), err)),
                }
            }
        });
        let failed: Vec<(String, EngineError)> = tokio::select! {
            failed = futures::future::join_all(removals) => failed.into_iter().flatten().collect(),
            _ = cancel.cancelled() => return,
        };
        if failed.is_empty() {
            tracing::info!(
                removed = total,
                took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "removed the containers a previous run left behind"
            );
            return;
        }
        if pass == LEFTOVER_PASSES {
            for (container, err) in &failed {
                tracing::warn!(%err, container, "could not remove a container a previous run left behind");
            }
            remaining.store(0, Ordering::Release);
            return;
        }
        containers = failed.into_iter().map(|(id, _)| id).collect();
        tokio::select! {
            _ = tokio::time::sleep(LEFTOVER_RETRY.delay(pass)) => {}
            _ = cancel.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_runtime::fake::{FakeEngine, Script};
    use skiff_runtime::{ContainerSpec, Limits};

    async fn container(engine: &FakeEngine, daemon: &str, instance: &str) -> String {
        let spec = ContainerSpec {
            name: format!("skiff-web-{instance}"),
            image: "web:1".into(),
            image_reference: None,
            entrypoint: None,
            cmd: None,
            env: Vec::new(),
            labels: labels::for_container("web", instance, daemon, skiff_core::Contract::Http),
            limits: Limits {
                memory_bytes: 1 << 26,
                cpus: 1.0,
                pids: 64,
                tmp_bytes: 1 << 20,
                nofile: 1024,
            },
            stdin: false,
            network: None,
            mounts: Vec::new(),
            volumes: Vec::new(),
        };
        let id = engine.create(&spec).await.expect("create");
        engine.start(&id).await.expect("start");
        id
    }

    #[tokio::test]
    async fn leftovers_are_killed_then_removed_and_counted_down() {
        let engine = Arc::new(FakeEngine::new());
        engine.add_image(
            "web:1",
            Script {
                stdout: "".into(),
                stderr: "".into(),
                exit_code: 0,
            },
        );
        for n in 0..5 {
            container(&engine, "mine", &format!("i{n}")).await;
        }
        let theirs = container(&engine, "theirs", "x").await;
        let leftovers = containers_of(engine.as_ref(), "mine").await.expect("list");
        assert_eq!(leftovers.len(), 5);
        let remaining = Arc::new(AtomicUsize::new(leftovers.len()));
        let before = engine.operations().len();
        remove_leftovers(
            engine.clone(),
            leftovers,
            remaining.clone(),
            CancellationToken::new(),
        )
        .await;
        assert_eq!(remaining.load(Ordering::Acquire), 0);
        assert_eq!(engine.container_count(), 1, "another daemon's stays");
        assert_eq!(
            containers_of(engine.as_ref(), "theirs")
                .await
                .expect("list"),
            [theirs]
        );
        let ops = engine.operations()[before..].to_vec();
        assert_eq!(
            ops,
            [vec!["kill"; 5], vec!["remove"; 5]].concat(),
            "all killed first, then removed"
        );
    }

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
