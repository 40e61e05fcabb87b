//! Labels that skiff puts on every container it starts, so that a restarted daemon (or an
//! operator with `docker ps --filter label=skiff.managed=true`) finds and cleans them up.

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
