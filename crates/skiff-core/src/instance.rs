//! The lifecycle of one instance: a container serving a function.
//!
//! ```text
//! Creating -> Starting -> Ready <-> Busy -> Idle -> (Paused) -> Stopping -> Gone
//!                  any state -> Failed -> Stopping
//! ```
//! An `exec` instance serves exactly one call: `Ready -> Busy -> Stopping -> Gone`.

use serde::{Deserialize, Serialize};
use std::fmt;
use utoipa::ToSchema;

/// Where an instance is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    /// The container is being created.
    Creating,
    /// Created; being started, or waiting until it is ready.
    Starting,
    /// Ready for a call.
    Ready,
    /// Serving at least one call.
    Busy,
    /// Served calls and has none now.
    Idle,
    /// Frozen while not needed, resumed on demand.
    Paused,
    /// Being stopped and removed.
    Stopping,
    /// Removed.
    Gone,
    /// Broke: could not start, crashed, or stopped answering.
    Failed,
}

impl InstanceState {
    /// Whether `next` may follow `self`.
    pub fn can_transition_to(self, next: InstanceState) -> bool {
        use InstanceState::*;
        match (self, next) {
            (Gone, _) => false,
            (_, Failed) => true,
            (Failed, Stopping) | (Failed, Gone) => true,
            (Creating, Starting) | (Creating, Gone) => true,
            (Starting, Ready) | (Starting, Stopping) => true,
            (Ready, Busy) | (Ready, Stopping) | (Ready, Paused) => true,
            (Busy, Ready) | (Busy, Idle) | (Busy, Stopping) => true,
            (Idle, Busy) | (Idle, Paused) | (Idle, Stopping) => true,
            (Paused, Ready) | (Paused, Stopping) => true,
            (Stopping, Gone) => true,
            _ => false,
        }
    }

    /// Whether the instance can take a call now.
    pub fn can_serve(self) -> bool {
        matches!(self, InstanceState::Ready | InstanceState::Idle)
    }
}

impl fmt::Display for InstanceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            InstanceState::Creating => "creating",
            InstanceState::Starting => "starting",
            InstanceState::Ready => "ready",
            InstanceState::Busy => "busy",
            InstanceState::Idle => "idle",
            InstanceState::Paused => "paused",
            InstanceState::Stopping => "stopping",
            InstanceState::Gone => "gone",
            InstanceState::Failed => "failed",
        };
        f.write_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::InstanceState::*;

    #[test]
    fn an_exec_instance_lives_once() {
        let path = [Creating, Starting, Ready, Busy, Stopping, Gone];
        for pair in path.windows(2) {
            assert!(
                pair[0].can_transition_to(pair[1]),
                "{} -> {}",
                pair[0],
                pair[1]
            );
        }
    }

    #[test]
    fn any_live_state_can_fail_but_gone_is_gone() {
        for s in [Creating, Starting, Ready, Busy, Idle, Paused, Stopping] {
            assert!(s.can_transition_to(Failed), "{s}");
        }
        assert!(!Gone.can_transition_to(Failed));
        assert!(!Gone.can_transition_to(Creating));
    }

    #[test]
    fn no_shortcuts() {
        assert!(!Creating.can_transition_to(Busy));
        assert!(!Stopping.can_transition_to(Ready));
        assert!(!Paused.can_transition_to(Busy));
        assert!(Ready.can_serve() && Idle.can_serve());
        assert!(!Busy.can_serve() && !Paused.can_serve());
    }
}
