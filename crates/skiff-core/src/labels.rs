//! Labels that skiff puts on every container it starts, so that a restarted daemon (or an
//! operator with `docker ps --filter label=skiff.managed=true`) finds and cleans them up,
//! and on every volume it creates (never removed by skiff: they hold user data).

/// Always `true` on containers skiff manages.
pub const MANAGED: &str = "skiff.managed";
/// The name of the function the container serves.
pub const FUNCTION: &str = "skiff.function";
/// The instance id of the container (unique per container).
pub const INSTANCE: &str = "skiff.instance";
/// The id of the daemon (one per data directory) that owns the container.
pub const DAEMON: &str = "skiff.daemon";
/// The contract the container speaks (`exec`, `http`, `lambda`).
pub const CONTRACT: &str = "skiff.contract";
/// The name of a volume skiff created.
pub const VOLUME: &str = "skiff.volume";

/// Every label of a named volume skiff creates.
pub fn for_volume(name: &str) -> std::collections::HashMap<String, String> {
    std::collections::HashMap::from([
        (MANAGED.to_string(), "true".to_string()),
        (VOLUME.to_string(), name.to_string()),
    ])
}

/// Every label of a container of `function` (instance `instance`, daemon `daemon`,
/// speaking `contract`).
pub fn for_container(
    function: &str,
    instance: &str,
    daemon: &str,
    contract: crate::Contract,
) -> std::collections::HashMap<String, String> {
    std::collections::HashMap::from([
        (MANAGED.to_string(), "true".to_string()),
        (FUNCTION.to_string(), function.to_string()),
        (INSTANCE.to_string(), instance.to_string()),
        (DAEMON.to_string(), daemon.to_string()),
        (CONTRACT.to_string(), contract.as_str().to_string()),
    ])
}
