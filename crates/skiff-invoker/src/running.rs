//! The sync calls in flight: which container serves which call, and how to stop them.
//!
//! Every sync call registers here for as long as it runs, with its function, deadline and
//! depth (function-to-function hops). Once a container takes the call, the call is bound to
//! it (its instance id). Two things follow:
//!
//! - **Stopping.** A call can be stopped from outside its own task: its caller went away,
//!   its function was deleted, or the daemon is shutting down. [`RunningCalls::stop_function`]
//!   and [`RunningCalls::stop_all`] fire the calls' stop tokens with a [`StopReason`]; the
//!   contract drivers watch the token, kill what they run and end the call's record with the
//!   reason's error type.
//! - **Parents.** A request of the function API names its container (its token does). The
//!   call that container is serving is the request's parent: the new call inherits its
//!   deadline (a callee never gets more time than its caller has left) and one more hop of
//!   depth ([`RunningCalls::parent`]).
//!
//! Plain data behind one mutex, no I/O: unit-tested below.

use parking_lot::{Mutex, MutexGuard};
use skiff_core::CallErrorType;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Why a call was stopped before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// The caller of a sync call went away.
    ClientGone,
    /// The call's function was deleted.
    FunctionDeleted,
    /// The daemon is stopping and the grace period is over.
    ShuttingDown,
}

impl StopReason {
    /// The error type a call stopped for this reason ends with.
    pub(crate) fn error_type(self) -> CallErrorType {
        match self {
            StopReason::ClientGone => CallErrorType::ClientDisconnected,
            StopReason::FunctionDeleted | StopReason::ShuttingDown => CallErrorType::Interrupted,
        }
    }

    /// A readable account, for the call's record.
    pub(crate) fn message(self) -> &'static str {
        match self {
            StopReason::ClientGone => "the caller went away before the call ended; it was stopped",
            StopReason::FunctionDeleted => "the function was deleted while the call ran",
            StopReason::ShuttingDown => "skiff stopped while the call ran",
        }
    }
}

/// The call a function-API request was made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Parent {
    /// The parent call.
    pub(crate) call: Uuid,
    /// Its deadline.
    pub(crate) deadline: Instant,
    /// Its depth.
    pub(crate) depth: u32,
}

#[derive(Debug)]
struct Running {
    function: String,
    deadline: Instant,
    depth: u32,
    instance: Option<String>,
    stop: CancellationToken,
    reason: Arc<OnceLock<StopReason>>,
}

#[derive(Debug, Default)]
struct State {
    calls: HashMap<Uuid, Running>,
    /// The calls in flight on each container, by instance id.
    on_instance: HashMap<String, Vec<Uuid>>,
}

impl State {
    fn unbind(&mut self, id: Uuid, instance: &str) {
        if let Some(calls) = self.on_instance.get_mut(instance) {
            calls.retain(|c| *c != id);
            if calls.is_empty() {
                self.on_instance.remove(instance);
            }
        }
    }
}

/// The registry of sync calls in flight. Share it in an `Arc`.
#[derive(Debug, Default)]
pub(crate) struct RunningCalls {
    state: Mutex<State>,
}

impl RunningCalls {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Registers call `id` until the returned guard is dropped.
    pub(crate) fn register(
        self: &Arc<Self>,
        id: Uuid,
        function: &str,
        deadline: Instant,
        depth: u32,
    ) -> CallGuard {
        let stop = CancellationToken::new();
        let reason = Arc::new(OnceLock::new());
        self.state().calls.insert(
            id,
            Running {
                function: function.to_string(),
                deadline,
                depth,
                instance: None,
                stop: stop.clone(),
                reason: reason.clone(),
            },
        );
        CallGuard {
            registry: self.clone(),
            id,
            function: function.to_string(),
            stop,
            reason,
        }
    }

    /// How many calls are in flight.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.state().calls.len()
    }

    /// Stops every call of `function`; returns how many there were.
    pub(crate) fn stop_function(&self, function: &str, reason: StopReason) -> usize {
        let state = self.state();
        let mut stopped = 0;
        for call in state.calls.values().filter(|c| c.function == function) {
            stop(call, reason);
            stopped += 1;
        }
        stopped
    }

    /// Stops every call; returns how many there were.
    pub(crate) fn stop_all(&self, reason: StopReason) -> usize {
        let state = self.state();
        for call in state.calls.values() {
            stop(call, reason);
        }
        state.calls.len()
    }

    /// The call a request from container `instance` belongs to. `hint`, a call id the
    /// request carried (`X-Skiff-Call-Id`, passed on by the function), picks one when it is
    /// in flight on that container; otherwise, of the calls in flight there (an `http`
    /// instance may serve several), the deepest one, with the latest deadline among them.
    /// `None` when the container serves no call now.
    pub(crate) fn parent(&self, instance: &str, hint: Option<Uuid>) -> Option<Parent> {
        let state = self.state();
        let ids = state.on_instance.get(instance)?;
        let of = |id: &Uuid| {
            state.calls.get(id).map(|c| Parent {
                call: *id,
                deadline: c.deadline,
                depth: c.depth,
            })
        };
        if let Some(parent) = hint.filter(|h| ids.contains(h)).and_then(|h| of(&h)) {
            return Some(parent);
        }
        let candidates: Vec<Parent> = ids.iter().filter_map(of).collect();
        let deepest = candidates.iter().max_by_key(|p| (p.depth, p.deadline))?;
        let latest = candidates.iter().map(|p| p.deadline).max()?;
        Some(Parent {
            deadline: latest,
            ..*deepest
        })
    }
}

fn stop(call: &Running, reason: StopReason) {
    // The first reason given is the one the call ends with.
    let _ = call.reason.set(reason);
    call.stop.cancel();
}

/// One call's registration; dropping it takes the call out of the registry.
#[derive(Debug)]
pub(crate) struct CallGuard {
    registry: Arc<RunningCalls>,
    id: Uuid,
    function: String,
    stop: CancellationToken,
    reason: Arc<OnceLock<StopReason>>,
}

impl CallGuard {
    /// The call's id.
    pub(crate) fn id(&self) -> Uuid {
        self.id
    }

    /// The call's function.
    pub(crate) fn function(&self) -> &str {
        &self.function
    }

    /// Ties the call to the container serving it (instance id), so that requests from
    /// that container are known to come from this call, and sets the deadline the call got
    /// when its code received it (its callees inherit it).
    pub(crate) fn bind(&self, instance: &str, deadline: Instant) {
        let mut state = self.registry.state();
        let previous = match state.calls.get_mut(&self.id) {
            Some(call) => {
                call.deadline = deadline;
                call.instance.replace(instance.to_string())
            }
            None => return,
        };
        if let Some(previous) = previous {
            state.unbind(self.id, &previous);
        }
        state
            .on_instance
            .entry(instance.to_string())
            .or_default()
            .push(self.id);
    }

    /// Stops this call.
    pub(crate) fn stop(&self, reason: StopReason) {
        let _ = self.reason.set(reason);
        self.stop.cancel();
    }

    /// Resolves once the call is stopped.
    pub(crate) fn stopped(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.stop.cancelled()
    }

    /// Whether the call has been stopped.
    pub(crate) fn is_stopped(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Why the call was stopped, if it was.
    pub(crate) fn reason(&self) -> Option<StopReason> {
        self.reason.get().copied()
    }

    /// The container serving the call, once bound.
    pub(crate) fn instance(&self) -> Option<String> {
        self.registry
            .state()
            .calls
            .get(&self.id)
            .and_then(|c| c.instance.clone())
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        let mut state = self.registry.state();
        if let Some(call) = state.calls.remove(&self.id) {
            if let Some(instance) = call.instance {
                state.unbind(self.id, &instance);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> Instant {
        Instant::now() + Duration::from_secs(secs)
    }

    #[test]
    fn a_request_from_a_container_belongs_to_the_call_it_serves() {
        let running = Arc::new(RunningCalls::default());
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let deadline = at(10);
        // The deadline given at registration holds until the call reaches its container.
        let ga = running.register(a, "f", at(100), 2);
        let _gb = running.register(b, "g", at(20), 0);
        assert_eq!(running.parent("c1", None), None, "not bound yet");
        ga.bind("c1", deadline);
        assert_eq!(
            running.parent("c1", None),
            Some(Parent {
                call: a,
                deadline,
                depth: 2
            })
        );
        assert_eq!(running.parent("c2", None), None);
        drop(ga);
        assert_eq!(running.parent("c1", None), None, "the call ended");
        assert_eq!(running.len(), 1);
    }

    #[test]
    fn on_a_shared_instance_the_hint_picks_else_the_deepest_with_the_latest_deadline() {
        let running = Arc::new(RunningCalls::default());
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let (early, late) = (at(5), at(50));
        let ga = running.register(a, "web", late, 0);
        let gb = running.register(b, "web", early, 3);
        let gc = running.register(c, "web", at(7), 1);
        for (g, deadline) in [(&ga, late), (&gb, early), (&gc, at(7))] {
            g.bind("i1", deadline);
        }
        assert_eq!(
            running.parent("i1", None),
            Some(Parent {
                call: b,
                deadline: late,
                depth: 3
            })
        );
        assert_eq!(running.parent("i1", Some(a)).map(|p| p.call), Some(a));
        // A hint naming a call of another container is ignored.
        let other = Uuid::now_v7();
        let _go = running.register(other, "web", at(9), 9);
        assert_eq!(running.parent("i1", Some(other)).map(|p| p.call), Some(b));
    }

    #[test]
    fn rebinding_moves_a_call_to_its_new_container() {
        let running = Arc::new(RunningCalls::default());
        let a = Uuid::now_v7();
        let ga = running.register(a, "f", at(10), 0);
        ga.bind("old", at(10));
        ga.bind("new", at(10));
        assert_eq!(running.parent("old", None), None);
        assert_eq!(running.parent("new", None).map(|p| p.call), Some(a));
    }

    #[test]
    fn stopping_a_function_stops_its_calls_with_the_first_reason() {
        let running = Arc::new(RunningCalls::default());
        let ga = running.register(Uuid::now_v7(), "f", at(10), 0);
        let gb = running.register(Uuid::now_v7(), "g", at(10), 0);
        assert_eq!(running.stop_function("f", StopReason::FunctionDeleted), 1);
        assert_eq!(ga.reason(), Some(StopReason::FunctionDeleted));
        assert_eq!(gb.reason(), None);
        assert_eq!(running.stop_all(StopReason::ShuttingDown), 2);
        assert_eq!(ga.reason(), Some(StopReason::FunctionDeleted));
        assert_eq!(gb.reason(), Some(StopReason::ShuttingDown));
        assert_eq!(
            StopReason::ClientGone.error_type(),
            CallErrorType::ClientDisconnected
        );
    }

    #[tokio::test]
    async fn a_stopped_call_wakes_its_watcher() {
        let running = Arc::new(RunningCalls::default());
        let g = running.register(Uuid::now_v7(), "f", at(10), 0);
        g.stop(StopReason::ClientGone);
        g.stopped().await;
        assert_eq!(g.reason(), Some(StopReason::ClientGone));
    }
}
