//! Every transition of the pools, with injected time. Plans are compared as short lines
//! (`grant w0 i1 cold`, `start web`, `stop i1 Idle`): waiters are numbered from 0 in the
//! order they asked, instances from 1 in the order they became ready.

use super::*;
use skiff_core::InstanceState::{Busy, Idle, Paused, Ready, Starting};
use skiff_core::{Contract, HttpSettings, InstanceState, Resources, Scaling};
use std::net::{IpAddr, Ipv4Addr};

fn scaling(concurrency: u32, min: u32, max: u32) -> Scaling {
    Scaling {
        concurrency,
        min_instances: min,
        max_instances: max,
        idle_timeout_ms: 1000,
        window_ms: Some(1000),
        target_utilization: 0.7,
    }
}

fn target(function: &str, version: u64, scaling: Scaling) -> Arc<InstanceTarget> {
    Arc::new(InstanceTarget {
        function: function.into(),
        version,
        image: format!("{function}:{version}"),
        image_reference: "skiff/test:latest".to_string(),
        env: Vec::new(),
        resources: Resources {
            memory_bytes: 1 << 26,
            cpus: 1.0,
            pids: 64,
            tmp_bytes: 1 << 20,
        },
        http: HttpSettings {
            port: 8080,
            readiness_path: None,
            startup_timeout_ms: 5000,
        },
        scaling,
        contract: Contract::Http,
        cmd: None,
        volumes: Vec::new(),
    })
}

fn rules() -> Rules {
    Rules {
        max_queued: 10,
        keep_paused: true,
        paused_ttl: Duration::from_secs(5),
        autoscale_window: Duration::from_secs(60),
    }
}

/// A plan as short lines.
fn d(plan: &[Action]) -> Vec<String> {
    plan.iter()
        .map(|action| match action {
            Action::Grant { waiter, lease } => format!(
                "grant w{} {}{}",
                waiter.0,
                lease.instance,
                if lease.cold { " cold" } else { "" }
            ),
            Action::Fail { waiter, error } => format!("fail w{}: {error}", waiter.0),
            Action::Start { function } => format!("start {function}"),
            Action::Resume { instance, .. } => format!("resume {instance}"),
            Action::Pause { instance, .. } => format!("pause {instance}"),
            Action::Stop {
                instance, reason, ..
            } => format!("stop {instance} {reason:?}"),
            Action::Kill { container } => format!("kill {container}"),
            Action::Wake { function, .. } => format!("wake {function}"),
        })
        .collect()
}

const NONE: [&str; 0] = [];

/// The state machine of one function, `web`, with a clock in milliseconds.
struct Pools {
    state: PoolState,
    t0: Instant,
    waiters: u64,
    instances: u32,
}

impl Pools {
    fn new() -> Self {
        Pools::with(rules())
    }

    fn with(rules: Rules) -> Self {
        Pools {
            state: PoolState::new(rules),
            t0: Instant::now(),
            waiters: 0,
            instances: 0,
        }
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn on(&mut self, ms: u64, event: Event) -> Vec<Action> {
        self.state.handle(self.at(ms), event)
    }

    fn deploy(&mut self, ms: u64, version: u64, scaling: Scaling) -> Vec<String> {
        d(&self.on(ms, Event::Deployed(target("web", version, scaling))))
    }

    fn scaling(&mut self, ms: u64, scaling: Scaling) -> Vec<String> {
        d(&self.on(
            ms,
            Event::ScalingChanged {
                function: "web".into(),
                scaling,
            },
        ))
    }

    fn acquire(&mut self, ms: u64) -> Vec<Action> {
        let waiter = WaiterId(self.waiters);
        self.waiters += 1;
        self.on(
            ms,
            Event::Acquire {
                function: "web".into(),
                waiter,
            },
        )
    }

    fn gave_up(&mut self, ms: u64, waiter: u64) -> Vec<String> {
        d(&self.on(
            ms,
            Event::GaveUp {
                function: "web".into(),
                waiter: WaiterId(waiter),
            },
        ))
    }

    fn release(&mut self, ms: u64, instance: &str, broken: bool) -> Vec<String> {
        d(&self.on(
            ms,
            Event::Released {
                function: "web".into(),
                instance: instance.into(),
                broken,
            },
        ))
    }

    fn started(&mut self, ms: u64, version: u64) -> Vec<Action> {
        self.instances += 1;
        let n = self.instances;
        let instance = NewInstance {
            id: format!("i{n}"),
            container: format!("c{n}"),
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8000 + n as u16),
            version,
            ready_at: self.at(ms),
            output: Output::default(),
        };
        self.on(
            ms,
            Event::Started {
                function: "web".into(),
                instance,
            },
        )
    }

    fn start_failed(&mut self, ms: u64, message: &str) -> Vec<String> {
        d(&self.on(
            ms,
            Event::StartFailed {
                function: "web".into(),
                message: message.into(),
            },
        ))
    }

    fn tick(&mut self, ms: u64) -> Vec<String> {
        d(&self.on(ms, Event::Tick))
    }

    fn exited(&mut self, ms: u64, container: &str, output: &str) -> Vec<Action> {
        self.on(
            ms,
            Event::Exited {
                function: "web".into(),
                container: container.into(),
                output: output.into(),
            },
        )
    }

    fn retry(&mut self, ms: u64) -> Vec<String> {
        d(&self.on(
            ms,
            Event::Retry {
                function: "web".into(),
            },
        ))
    }

    /// When a wake-up in `plan` is asked for, in ms from the start.
    fn wake_at(&self, plan: &[Action]) -> Option<u128> {
        plan.iter().find_map(|action| match action {
            Action::Wake { at, .. } => Some(at.duration_since(self.t0).as_millis()),
            _ => None,
        })
    }

    /// Each instance: id, state and calls in flight.
    fn states(&self) -> Vec<(String, InstanceState, u32)> {
        self.state
            .instances("web", self.t0)
            .into_iter()
            .map(|i| (i.id, i.state, i.in_flight))
            .collect()
    }

    fn state_of(&self, id: &str) -> Option<InstanceState> {
        self.states()
            .into_iter()
            .find(|(i, _, _)| i == id)
            .map(|(_, state, _)| state)
    }

    /// `count` ready instances of version 1, from `min_instances` (no call waiting).
    fn ready(&mut self, ms: u64, concurrency: u32, count: u32, max: u32) {
        let starts = self.deploy(ms, 1, scaling(concurrency, count, max));
        assert_eq!(starts.len(), count as usize);
        for _ in 0..count {
            assert_eq!(d(&self.started(ms, 1)), NONE);
        }
    }
}

fn s(lines: &[&str]) -> Vec<String> {
    lines.iter().map(|l| l.to_string()).collect()
}

// --- Deployed ---

#[test]
fn a_deploy_starts_the_minimum() {
    let mut p = Pools::new();
    assert_eq!(
        p.deploy(0, 1, scaling(1, 2, 3)),
        s(&["start web", "start web"])
    );
    assert_eq!(p.state.starting("web"), 2);
    let mut p = Pools::new();
    assert_eq!(p.deploy(0, 1, scaling(1, 0, 3)), NONE);
    assert_eq!(p.state.target("web").map(|t| t.version), Some(1));
}

#[test]
fn a_redeploy_drains_old_instances_idle_now_and_busy_ones_when_released() {
    let mut p = Pools::new();
    p.ready(0, 1, 2, 3);
    assert_eq!(d(&p.acquire(10)), s(&["grant w0 i1"]));
    assert_eq!(
        p.deploy(100, 2, scaling(1, 2, 3)),
        s(&["stop i2 Drained", "start web", "start web"])
    );
    // The old version takes no new call: this one waits for the new version's starts.
    assert_eq!(d(&p.acquire(110)), NONE);
    assert_eq!(p.release(120, "i1", false), s(&["stop i1 Drained"]));
    assert_eq!(d(&p.started(130, 2)), s(&["grant w1 i3 cold"]));
}

// --- ScalingChanged ---

#[test]
fn a_scaling_change_applies_at_once() {
    let mut p = Pools::new();
    assert_eq!(p.deploy(0, 1, scaling(1, 0, 3)), NONE);
    assert_eq!(p.scaling(10, scaling(1, 1, 3)), s(&["start web"]));
    assert_eq!(
        p.state.target("web").map(|t| t.scaling.min_instances),
        Some(1)
    );
    let other = p.on(
        20,
        Event::ScalingChanged {
            function: "api".into(),
            scaling: scaling(1, 1, 3),
        },
    );
    assert_eq!(d(&other), NONE);
}

// --- Removed ---

#[test]
fn removing_a_function_fails_its_waiting_calls_and_stops_every_instance() {
    let mut p = Pools::new();
    p.ready(0, 1, 1, 1);
    assert_eq!(d(&p.acquire(10)), s(&["grant w0 i1"]));
    assert_eq!(d(&p.acquire(20)), NONE);
    let plan = p.on(
        30,
        Event::Removed {
            function: "web".into(),
        },
    );
    assert_eq!(
        d(&plan),
        s(&["fail w1: the function was deleted", "stop i1 Deleted"])
    );
    assert_eq!(
        d(&p.acquire(40)),
        s(&["fail w2: function `web` has no instances"])
    );
    // The lease still held finds nothing to give back.
    assert_eq!(p.release(50, "i1", false), NONE);
}

// --- Acquire ---

#[test]
fn a_call_takes_the_least_busy_instance_with_room() {
    let mut p = Pools::new();
    p.ready(0, 2, 2, 3);
    let leases: Vec<String> = (0..4).flat_map(|_| d(&p.acquire(10))).collect();
    assert_eq!(
        leases,
        s(&["grant w0 i1", "grant w1 i2", "grant w2 i1", "grant w3 i2"])
    );
    assert_eq!(p.states()[0].1, Busy);
    // Both full: a fifth call waits, and one more instance starts for it.
    assert_eq!(d(&p.acquire(20)), s(&["start web"]));
}

#[test]
fn a_warm_call_is_not_cold_and_did_not_wait() {
    let mut p = Pools::new();
    p.ready(0, 1, 1, 1);
    let plan = p.acquire(10);
    let [Action::Grant { lease, .. }] = &plan[..] else {
        panic!("no lease: {:?}", d(&plan));
    };
    assert!(!lease.cold);
    assert_eq!(lease.waited, Duration::ZERO);
    assert_eq!(lease.function, "web");
    assert_eq!(lease.addr.port(), 8001);
}

#[test]
fn cold_means_the_instance_became_ready_once_the_call_was_waiting() {
    let mut p = Pools::new();
    p.ready(10, 1, 1, 2);
    // Asking the very instant it became ready counts as waiting for it.
    assert_eq!(d(&p.acquire(10)), s(&["grant w0 i1 cold"]));
    // Found ready at 15, before this call asked at 20, but joined the pool after it.
    assert_eq!(d(&p.acquire(20)), s(&["start web"]));
    let instance = NewInstance {
        id: "i2".into(),
        container: "c2".into(),
        addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8002),
        version: 1,
        ready_at: p.at(15),
        output: Output::default(),
    };
    let plan = p.on(
        30,
        Event::Started {
            function: "web".into(),
            instance,
        },
    );
    assert_eq!(d(&plan), s(&["grant w1 i2"]));
}

#[test]
fn a_call_with_no_room_waits_for_a_start_and_is_cold() {
    let mut p = Pools::new();
    assert_eq!(p.deploy(0, 1, scaling(1, 0, 3)), NONE);
    assert_eq!(d(&p.acquire(10)), s(&["start web"]));
    assert_eq!(p.state.queued("web"), 1);
    let plan = p.started(250, 1);
    let [Action::Grant { lease, .. }] = &plan[..] else {
        panic!("no lease: {:?}", d(&plan));
    };
    assert!(lease.cold);
    assert_eq!(lease.waited, Duration::from_millis(240));
    assert_eq!(p.state.queued("web"), 0);
    assert_eq!(p.state.starting("web"), 0);
}

#[test]
fn waiting_calls_start_as_many_instances_as_their_concurrency_needs() {
    let mut p = Pools::new();
    assert_eq!(p.deploy(0, 1, scaling(2, 0, 5)), NONE);
    let plans: Vec<Vec<String>> = (0..5).map(|_| d(&p.acquire(10))).collect();
    let one = s(&["start web"]);
    assert_eq!(plans, [one.clone(), s(&[]), one.clone(), s(&[]), one]);
    assert_eq!(p.state.starting("web"), 3);
    assert_eq!(
        d(&p.started(20, 1)),
        s(&["grant w0 i1 cold", "grant w1 i1 cold"])
    );
}

#[test]
fn starts_stay_within_max_instances() {
    let mut p = Pools::new();
    assert_eq!(p.deploy(0, 1, scaling(1, 0, 1)), NONE);
    assert_eq!(d(&p.acquire(10)), s(&["start web"]));
    assert_eq!(d(&p.acquire(10)), NONE);
    assert_eq!(d(&p.acquire(10)), NONE);
    assert_eq!(p.state.starting("web"), 1);
    assert_eq!(d(&p.started(20, 1)), s(&["grant w0 i1 cold"]));
    // The instance counts against the bound too.
    assert_eq!(d(&p.acquire(30)), NONE);
    assert_eq!(p.state.starting("web"), 0);
}

#[test]
fn a_full_queue_refuses_the_call() {
    let mut p = Pools::with(Rules {
        max_queued: 2,
        ..rules()
    });
    assert_eq!(p.deploy(0, 1, scaling(1, 0, 1)), NONE);
    assert_eq!(d(&p.acquire(10)), s(&["start web"]));
    assert_eq!(d(&p.acquire(10)), NONE);
    assert_eq!(
        d(&p.acquire(10)),
        s(&["fail w2: all 0 instances are busy and 2 calls are waiting"])
    );
    assert_eq!(p.state.queued("web"), 2);
}

#[test]
fn a_call_resumes_a_paused_instance_rather_than_start_one() {
    let mut p = Pools::new();
    p.ready(0, 1, 1, 3);
    assert_eq!(p.scaling(10, scaling(1, 0, 3)), NONE);
    assert_eq!(p.tick(1100), s(&["pause i1"]));
    assert_eq!(d(&p.acquire(1200)), s(&["resume i1"]));
    assert_eq!(p.state_of("i1"), Some(Starting));
    // A resuming instance is no room yet: the next call counts both waiting calls, and the
    // resuming instance against max_instances.
    assert_eq!(d(&p.acquire(1200)), s(&["start web", "start web"]));
}

// --- GaveUp ---

#[test]
fn a_call_that_gave_up_keeps_its_place_until_reached_then_is_skipped() {
    let mut p = Pools::new();
    assert_eq!(p.deploy(0, 1, scaling(1, 0, 1)), NONE);
    assert_eq!(d(&p.acquire(10)), s(&["start web"]));
    assert_eq!(d(&p.acquire(20)), NONE);
    assert_eq!(p.gave_up(30, 0), NONE);
    assert_eq!(p.state.queued("web"), 2);
    assert_eq!(p.state.totals().1, 2);
    assert_eq!(d(&p.started(40, 1)), s(&["grant w1 i1 cold"]));
    assert_eq!(p.state.queued("web"), 0);
    // Giving up once answered changes nothing.
    assert_eq!(p.gave_up(50, 1), NONE);
    assert_eq!(p.states(), [("i1".to_string(), Busy, 1)]);
}

#[test]
fn a_call_that_gave_up_is_not_told_of_a_failed_start() {
    let mut p = Pools::new();
    assert_eq!(p.deploy(0, 1, scaling(1, 0, 1)), NONE);
    assert_eq!(d(&p.acquire(10)), s(&["start web"]));
    assert_eq!(d(&p.acquire(20)), NONE);
    assert_eq!(p.gave_up(30, 0), NONE);
    assert_eq!(p.start_failed(40, "boom"), s(&["fail w1: boom"]));
    assert_eq!(p.state.queued("web"), 0);
}

// --- Released ---

#[test]
fn a_released_slot_goes_to_the_longest_waiting_call() {
    let mut p = Pools::new();
    p.ready(0, 1, 1, 1);
    assert_eq!(d(&p.acquire(10)), s(&["grant w0 i1"]));
    assert_eq!(d(&p.acquire(20)), NONE);
    assert_eq!(d(&p.acquire(30)), NONE);
    let plan = p.on(
        100,
        Event::Released {
            function: "web".into(),
            instance: "i1".into(),
            broken: false,
        },
    );
    let [Action::Grant { waiter, lease }] = &plan[..] else {
        panic!("no lease: {:?}", d(&plan));
    };
    assert_eq!(*waiter, WaiterId(1));
    // The instance was ready before the call waited: not cold, but it waited.
    assert!(!lease.cold);
    assert_eq!(lease.waited, Duration::from_millis(80));
    assert_eq!(p.release(110, "i1", false), s(&["grant w2 i1"]));
    assert_eq!(p.states(), [("i1".to_string(), Busy, 1)]);
}

#[test]
fn the_last_release_leaves_the_instance_idle_since_then() {
    let mut p = Pools::new();
    p.ready(0, 2, 1, 1);
    assert_eq!(d(&p.acquire(10)), s(&["grant w0 i1"]));
    assert_eq!(d(&p.acquire(10)), s(&["grant w1 i1"]));
    assert_eq!(p.release(100, "i1", false), NONE);
    assert_eq!(p.states(), [("i1".to_string(), Busy, 1)]);
    assert_eq!(p.release(500, "i1", false), NONE);
    assert_eq!(p.states(), [("i1".to_string(), Idle, 0)]);
    let view = &p.state.instances("web", p.at(2600))[0];
    assert_eq!(view.idle_seconds, 2);
}

#[test]
fn a_broken_instance_is_stopped_and_replaced_for_the_waiting_calls() {
    let mut p = Pools::new();
    p.ready(0, 1, 1, 1);
    assert_eq!(d(&p.acquire(10)), s(&["grant w0 i1"]));
    assert_eq!(d(&p.acquire(20)), NONE);
    assert_eq!(
        p.release(30, "i1", true),
        s(&["stop i1 Broken", "start web"])
    );
    assert_eq!(p.states(), []);
    assert_eq!(d(&p.started(40, 1)), s(&["grant w1 i2 cold"]));
}

#[test]
fn a_broken_instance_goes_even_with_other_calls_on_it() {
    let mut p = Pools::new();
    p.ready(0, 2, 1, 1);
    assert_eq!(d(&p.acquire(10)), s(&["grant w0 i1"]));
    assert_eq!(d(&p.acquire(10)), s(&["grant w1 i1"]));
    assert_eq!(p.release(20, "i1", true), s(&["stop i1 Broken"]));
    // No call waits, so nothing starts; the other call's release finds nothing.
    assert_eq!(p.release(30, "i1", false), NONE);
    assert_eq!(p.states(), []);
}

// --- Started ---

#[test]
fn a_ready_instance_serves_waiting_calls_in_arrival_order() {
    let mut p = Pools::new();
    assert_eq!(p.deploy(0, 1, scaling(2, 0, 1)), NONE);
    assert_eq!(d(&p.acquire(10)), s(&["start web"]));
    assert_eq!(d(&p.acquire(11)), NONE);
    assert_eq!(d(&p.acquire(12)), NONE);
    assert_eq!(
        d(&p.started(20, 1)),
        s(&["grant w0 i1 cold", "grant w1 i1 cold"])
    );
    assert_eq!(p.state.queued("web"), 1);
    assert_eq!(p.release(30, "i1", false), s(&["grant w2 i1 cold"]));
}

#[test]
fn a_start_of_an_older_version_is_stopped() {
    let mut p = Pools::new();
    assert_eq!(p.deploy(0, 1, scaling(1, 0, 3)), NONE);
    assert_eq!(d(&p.acquire(10)), s(&["start web"]));
    // The start under way counts for the new version's one waiting call.
    assert_eq!(p.deploy(2000, 2, scaling(1, 0, 3)), NONE);
    assert_eq!(d(&p.started(2100, 1)), s(&["stop i1 Discarded"]));
    assert_eq!(p.state.starting("web"), 0);
    assert_eq!(p.states(), []);
}

#[test]
fn a_start_that_ends_after_the_function_went_is_stopped() {
    let mut p = Pools::new();
    assert_eq!(p.deploy(0, 1, scaling(1, 0, 3)), NONE);
    assert_eq!(d(&p.acquire(10)), s(&["start web"]));
    let plan = p.on(
        20,
        Event::Removed {
            function: "web".into(),
        },
    );
    assert_eq!(d(&plan), s(&["fail w0: the function was deleted"]));
    assert_eq!(d(&p.started(30, 1)), s(&["stop i1 Discarded"]));
    assert_eq!(p.start_failed(40, "late"), NONE);
}

#[test]
fn once_closing_a_ready_instance_is_stopped() {
    let mut p = Pools::new();
    assert_eq!(p.deploy(0, 1, scaling(1, 1, 3)), s(&["start web"]));
    assert_eq!(d(&p.on(10, Event::Closing)), NONE);
    assert_eq!(d(&p.started(20, 1)), s(&["stop i1 Discarded"]));
    assert_eq!(p.state.starting("web"), 0);
    assert_eq!(p.states(), []);
}

// --- StartFailed ---

#[test]
fn calls_waiting_only_for_failed_starts_get_the_failure() {
    let mut p = Pools::new();
    assert_eq!(p.deploy(0, 1, scaling(1, 0, 2)), NONE);
    assert_eq!(d(&p.acquire(10)), s(&["start web"]));
    assert_eq!(d(&p.acquire(10)), s(&["start web"]));
    // Another start is under way: the calls keep waiting.
    assert_eq!(p.start_failed(20, "boom"), NONE);
    assert_eq!(
        p.state.timeout_error("web"),
        AcquireError::StartFailed("boom".into())
    );
    // (Two failures in a row: the next start waits a second.)
    assert_eq!(
        p.start_failed(30, "bang"),
        s(&["wake web", "fail w0: bang", "fail w1: bang"])
    );
    assert_eq!(p.state.queued("web"), 0);
    // A start that succeeds clears the failure.
    assert_eq!(d(&p.acquire(1030)), s(&["start web"]));
    assert_eq!(d(&p.started(1050, 1)), s(&["grant w2 i1 cold"]));
    assert_eq!(p.state.timeout_error("web"), AcquireError::Timeout);
}

#[test]
fn a_failed_start_leaves_waiting_calls_to_a_serving_instance() {
    let mut p = Pools::new();
    p.ready(0, 1, 1, 2);
    assert_eq!(d(&p.acquire(10)), s(&["grant w0 i1"]));
    assert_eq!(d(&p.acquire(20)), s(&["start web"]));
    assert_eq!(p.start_failed(30, "boom"), NONE);
    assert_eq!(p.state.queued("web"), 1);
    assert_eq!(p.release(40, "i1", false), s(&["grant w1 i1"]));
}

// --- Paused, PauseFailed ---

#[test]
fn the_last_idle_instance_is_paused_once_idle_long_enough() {
    let mut p = Pools::new();
    assert_eq!(p.deploy(0, 1, scaling(1, 0, 3)), NONE);
    assert_eq!(d(&p.acquire(10)), s(&["start web"]));
    assert_eq!(d(&p.started(20, 1)), s(&["grant w0 i1 cold"]));
    assert_eq!(p.release(30, "i1", false), NONE);
    assert_eq!(p.tick(1000), NONE, "idle for 970ms of 1000ms");
    assert_eq!(p.tick(1030), s(&["pause i1"]));
    assert_eq!(p.state_of("i1"), Some(Paused));
    // The engine's answer changes nothing: it counted as paused from the decision.
    let plan = p.on(
        1040,
        Event::Paused {
            function: "web".into(),
            instance: "i1".into(),
        },
    );
    assert_eq!(d(&plan), NONE);
    assert_eq!(p.state_of("i1"), Some(Paused));
    assert_eq!(p.state.totals().0.get(&Paused), Some(&1));
}

#[test]
fn an_instance_that_cannot_be_paused_is_stopped() {
    let mut p = Pools::new();
    p.ready(0, 1, 1, 3);
    assert_eq!(p.scaling(10, scaling(1, 0, 3)), NONE);
    assert_eq!(p.tick(1100), s(&["pause i1"]));
    let plan = p.on(
        1110,
        Event::PauseFailed {
            function: "web".into(),
            instance: "i1".into(),
            container: "c1".into(),
        },
    );
    assert_eq!(d(&plan), s(&["stop i1 PauseFailed"]));
    assert_eq!(p.states(), []);
}

#[test]
fn without_keep_paused_the_last_idle_instance_is_stopped() {
    let mut p = Pools::with(Rules {
        keep_paused: false,
        ..rules()
    });
    p.ready(0, 1, 1, 3);
    assert_eq!(p.scaling(10, scaling(1, 0, 3)), NONE);
    assert_eq!(p.tick(1100), s(&["stop i1 Idle"]));
    assert_eq!(p.states(), []);
}

#[test]
fn scale_down_stops_the_oldest_idle_instances_beyond_the_wanted_count() {
    let mut p = Pools::new();
    assert_eq!(p.deploy(0, 1, scaling(1, 0, 3)), NONE);
    assert_eq!(p.scaling(5, scaling(1, 3, 3)).len(), 3);
    for ms in [10, 20, 30] {
        assert_eq!(d(&p.started(ms, 1)), NONE);
    }
    assert_eq!(d(&p.acquire(40)), s(&["grant w0 i1"]));
    assert_eq!(p.release(50, "i1", false), NONE);
    // Down to one: nothing has been idle for a second yet.
    assert_eq!(p.scaling(100, scaling(1, 1, 3)), NONE);
    // All three have now; i1 was used last, so it stays.
    assert_eq!(p.tick(1100), s(&["stop i2 Idle", "stop i3 Idle"]));
    assert_eq!(p.states(), [("i1".to_string(), Idle, 0)]);
}

#[test]
fn the_autoscaler_stops_nothing_while_it_panics() {
    let mut p = Pools::new();
    let mut quick = scaling(1, 0, 2);
    quick.idle_timeout_ms = 100;
    assert_eq!(p.deploy(0, 1, quick), NONE);
    assert_eq!(d(&p.acquire(10)), s(&["start web"]));
    assert_eq!(d(&p.acquire(10)), s(&["start web"]));
    assert_eq!(d(&p.acquire(10)), NONE);
    assert_eq!(d(&p.acquire(10)), NONE);
    assert_eq!(d(&p.started(20, 1)), s(&["grant w0 i1 cold"]));
    assert_eq!(d(&p.started(20, 1)), s(&["grant w1 i2 cold"]));
    // Four calls on two instances of one: a burst.
    assert_eq!(p.tick(200), NONE);
    assert_eq!(p.release(300, "i1", false), s(&["grant w2 i1 cold"]));
    assert_eq!(p.release(310, "i2", false), s(&["grant w3 i2 cold"]));
    assert_eq!(p.release(320, "i1", false), NONE);
    assert_eq!(p.release(330, "i2", false), NONE);
    assert_eq!(d(&p.acquire(400)), s(&["grant w4 i1"]));
    // Down to one instance at most: i2 has been idle long enough, but not while
    // panicking...
    let mut one = quick;
    one.max_instances = 1;
    assert_eq!(p.scaling(500, one), NONE);
    assert_eq!(p.states().len(), 2);
    // ...but once a stable window has passed.
    assert_eq!(p.tick(1300), s(&["stop i2 Idle"]));
}

#[test]
fn a_paused_instance_unused_past_the_ttl_is_stopped() {
    let mut p = Pools::new();
    p.ready(0, 1, 1, 3);
    assert_eq!(p.scaling(10, scaling(1, 0, 3)), NONE);
    assert_eq!(p.tick(1100), s(&["pause i1"]));
    assert_eq!(p.tick(4999), NONE);
    assert_eq!(p.tick(5000), s(&["stop i1 Expired"]));
    assert_eq!(p.states(), []);
}

// --- Resumed, ResumeFailed ---

#[test]
fn a_resumed_instance_serves_its_waiting_call_cold() {
    let mut p = Pools::new();
    p.ready(0, 1, 1, 3);
    assert_eq!(p.scaling(10, scaling(1, 0, 3)), NONE);
    assert_eq!(p.tick(1100), s(&["pause i1"]));
    assert_eq!(d(&p.acquire(1200)), s(&["resume i1"]));
    let plan = p.on(
        1210,
        Event::Resumed {
            function: "web".into(),
            instance: "i1".into(),
        },
    );
    let [Action::Grant { lease, .. }] = &plan[..] else {
        panic!("no lease: {:?}", d(&plan));
    };
    assert!(lease.cold);
    assert_eq!(lease.waited, Duration::from_millis(10));
    assert_eq!(p.states(), [("i1".to_string(), Busy, 1)]);
}

#[test]
fn a_resumed_instance_with_no_call_waiting_is_ready() {
    let mut p = Pools::new();
    p.ready(0, 1, 1, 3);
    assert_eq!(p.scaling(10, scaling(1, 0, 3)), NONE);
    assert_eq!(p.tick(1100), s(&["pause i1"]));
    // The minimum goes back up: the paused instance is resumed, not a new one started.
    assert_eq!(
        p.scaling(1200, scaling(1, 2, 3)),
        s(&["resume i1", "start web"])
    );
    assert_eq!(p.state_of("i1"), Some(Starting));
    let plan = p.on(
        1210,
        Event::Resumed {
            function: "web".into(),
            instance: "i1".into(),
        },
    );
    assert_eq!(d(&plan), NONE);
    assert_eq!(p.state_of("i1"), Some(Ready));
}

#[test]
fn an_instance_that_cannot_be_resumed_is_stopped_and_replaced() {
    let mut p = Pools::new();
    p.ready(0, 1, 1, 3);
    assert_eq!(p.scaling(10, scaling(1, 0, 3)), NONE);
    assert_eq!(p.tick(1100), s(&["pause i1"]));
    assert_eq!(d(&p.acquire(1200)), s(&["resume i1"]));
    let plan = p.on(
        1210,
        Event::ResumeFailed {
            function: "web".into(),
            instance: "i1".into(),
            container: "c1".into(),
        },
    );
    assert_eq!(d(&plan), s(&["stop i1 ResumeFailed", "start web"]));
    assert_eq!(p.states(), []);
    assert_eq!(d(&p.started(1300, 1)), s(&["grant w0 i2 cold"]));
}

// --- Exited ---

#[test]
fn an_instance_that_exits_is_removed_and_replaced_for_waiting_calls() {
    let mut p = Pools::new();
    p.ready(0, 1, 1, 1);
    assert_eq!(d(&p.acquire(10)), s(&["grant w0 i1"]));
    assert_eq!(d(&p.acquire(20)), NONE);
    let exited = |container: &str| Event::Exited {
        function: "web".into(),
        container: container.into(),
        output: String::new(),
    };
    assert_eq!(
        d(&p.on(30, exited("c1"))),
        s(&["stop i1 Exited", "start web"])
    );
    assert_eq!(p.states(), []);
    // Its call fails on its connection; giving the lease back changes nothing.
    assert_eq!(p.release(40, "i1", true), NONE);
    // A container no pool knows (a start that failed) changes nothing either.
    assert_eq!(d(&p.on(50, exited("c9"))), NONE);
    assert_eq!(p.state.starting("web"), 1);
}

// --- HealthChecked ---

#[test]
fn an_instance_failing_three_health_checks_in_a_row_is_replaced() {
    let mut p = Pools::new();
    p.ready(0, 1, 1, 3);
    let probes = p.state.probes();
    assert_eq!(probes.len(), 1);
    assert_eq!(
        (probes[0].instance.as_str(), probes[0].addr.port()),
        ("i1", 8001)
    );
    let round = |healthy: bool| {
        Event::HealthChecked(vec![HealthResult {
            function: "web".into(),
            instance: "i1".into(),
            healthy,
        }])
    };
    assert_eq!(d(&p.on(100, round(false))), NONE);
    assert_eq!(d(&p.on(200, round(false))), NONE);
    // A success resets the count.
    assert_eq!(d(&p.on(300, round(true))), NONE);
    assert_eq!(d(&p.on(400, round(false))), NONE);
    assert_eq!(d(&p.on(500, round(false))), NONE);
    // The third in a row: stopped, and the minimum restored.
    assert_eq!(
        d(&p.on(600, round(false))),
        s(&["stop i1 Unhealthy", "start web"])
    );
    assert_eq!(p.states(), []);
    // A result for an instance that is gone is ignored.
    assert_eq!(d(&p.on(700, round(false))), NONE);
}

#[test]
fn health_checks_probe_serving_http_instances_only() {
    let mut p = Pools::new();
    p.ready(0, 1, 1, 3);
    assert_eq!(p.scaling(10, scaling(1, 0, 3)), NONE);
    assert_eq!(p.tick(1100), s(&["pause i1"]));
    assert_eq!(p.state.probes(), [], "paused");
    assert_eq!(d(&p.acquire(1200)), s(&["resume i1"]));
    assert_eq!(p.state.probes(), [], "resuming");
    let resumed = Event::Resumed {
        function: "web".into(),
        instance: "i1".into(),
    };
    assert_eq!(d(&p.on(1210, resumed)), s(&["grant w0 i1 cold"]));
    let probes: Vec<String> = p.state.probes().into_iter().map(|p| p.instance).collect();
    assert_eq!(probes, ["i1"], "busy");
    let mut lambda = (*target("fn", 1, scaling(1, 1, 1))).clone();
    lambda.contract = Contract::Lambda;
    assert_eq!(
        d(&p.on(1200, Event::Deployed(Arc::new(lambda)))),
        s(&["start fn"])
    );
    let instance = NewInstance {
        id: "l1".into(),
        container: "lc1".into(),
        addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9001),
        version: 1,
        ready_at: p.at(1300),
        output: Output::default(),
    };
    let plan = p.on(
        1300,
        Event::Started {
            function: "fn".into(),
            instance,
        },
    );
    assert_eq!(d(&plan), NONE);
    assert_eq!(p.state.instances("fn", p.at(1300)).len(), 1);
    assert_eq!(p.state.probes().len(), 1, "lambda instances are not probed");
}

// --- Tick ---

#[test]
fn a_tick_starts_instances_ahead_of_demand() {
    let mut p = Pools::with(Rules {
        max_queued: 100,
        ..rules()
    });
    assert_eq!(p.deploy(0, 1, scaling(10, 0, 5)), NONE);
    let starts: usize = (0..20).map(|_| p.acquire(10).len()).sum();
    assert_eq!(starts, 2, "grow starts for the calls waiting");
    // 20 calls at 70% of 10 per instance: three instances.
    assert_eq!(p.tick(2000), s(&["start web"]));
    assert_eq!(p.state.starting("web"), 3);
}

#[test]
fn a_tick_scales_every_function() {
    let mut p = Pools::new();
    let plan = p.on(0, Event::Deployed(target("a", 1, scaling(1, 0, 3))));
    assert_eq!(d(&plan), NONE);
    let plan = p.on(0, Event::Deployed(target("b", 1, scaling(1, 0, 3))));
    assert_eq!(d(&plan), NONE);
    for function in ["a", "b"] {
        let (a, b) = (target(function, 1, scaling(1, 1, 3)), function.to_string());
        p.state.pools.get_mut(&b).expect("pool").target = a;
    }
    let mut plan = d(&p.on(10, Event::Tick));
    plan.sort();
    assert_eq!(plan, s(&["start a", "start b"]));
}

// --- Shutdown, and what the manager reads ---

#[test]
fn shutdown_fails_waiting_calls_and_kills_every_instance() {
    let mut p = Pools::new();
    p.ready(0, 1, 1, 1);
    assert_eq!(d(&p.acquire(10)), s(&["grant w0 i1"]));
    assert_eq!(d(&p.acquire(20)), NONE);
    assert_eq!(
        d(&p.on(30, Event::Shutdown)),
        s(&["fail w1: skiff is shutting down", "kill c1"])
    );
    assert_eq!(p.state.totals(), (HashMap::new(), 0));
    assert_eq!(p.state.target("web"), None);
}

#[test]
fn totals_count_instances_by_state_with_starts_and_waiting_calls() {
    let mut p = Pools::new();
    assert_eq!(p.deploy(0, 1, scaling(1, 2, 3)).len(), 2);
    assert_eq!(d(&p.started(10, 1)), NONE);
    assert_eq!(d(&p.acquire(20)), s(&["grant w0 i1"]));
    assert_eq!(d(&p.acquire(30)), NONE, "the start under way is enough");
    let (by_state, waiting) = p.state.totals();
    assert_eq!(by_state, HashMap::from([(Busy, 1), (Starting, 1)]));
    assert_eq!(waiting, 1);
    let view = &p.state.instances("web", p.at(3020))[0];
    assert_eq!(
        (view.id.as_str(), view.container.as_str(), view.version),
        ("i1", "c1", 1)
    );
    assert_eq!(
        (view.state, view.in_flight, view.idle_seconds),
        (Busy, 1, 3)
    );
    assert_eq!(p.state.instances("api", p.at(0)), []);
}

// --- Instances that keep failing ---

/// The failure a call gets, as `d` shows it.
fn refused(waiter: u64, failures: u32, wait_s: u64, last: &str) -> String {
    format!(
        "fail w{waiter}: instances of `web` keep failing ({failures} times in a row); the next start is in {wait_s}s. The last failure: {last}"
    )
}

#[test]
fn starts_that_keep_failing_wait_longer_each_time_and_calls_fail_at_once() {
    let mut p = Pools::new();
    assert_eq!(p.deploy(0, 1, scaling(1, 1, 1)), s(&["start web"]));
    // The first failure: the next start may come at once.
    assert_eq!(p.start_failed(100, "boom 1"), NONE);
    assert_eq!(p.tick(200), s(&["start web"]));
    // The second: one second's wait, with a wake-up at its end.
    let plan = p.on(
        300,
        Event::StartFailed {
            function: "web".into(),
            message: "boom 2".into(),
        },
    );
    assert_eq!(d(&plan), s(&["wake web"]));
    assert_eq!(p.wake_at(&plan), Some(1300));
    // Meanwhile calls fail now with the last error, and nothing starts.
    assert_eq!(d(&p.acquire(400)), [refused(0, 2, 1, "boom 2")]);
    assert_eq!(p.state.queued("web"), 0, "the call did not wait");
    assert_eq!(p.tick(500), NONE);
    let standing = p.state.standing("web", p.at(500)).expect("a pool");
    assert_eq!(standing.failures, 2);
    assert_eq!(standing.last_error.as_deref(), Some("boom 2"));
    assert_eq!(standing.retry_at, Some(p.at(1300)));
    assert_eq!(standing.serving + standing.starting, 0);
    // The wait over, the minimum starts again; its failure doubles the wait.
    assert_eq!(p.retry(1300), s(&["start web"]));
    assert_eq!(
        p.state.standing("web", p.at(1300)).and_then(|s| s.retry_at),
        None
    );
    let plan = p.on(
        1400,
        Event::StartFailed {
            function: "web".into(),
            message: "boom 3".into(),
        },
    );
    assert_eq!(p.wake_at(&plan), Some(3400));
    assert_eq!(d(&p.acquire(3300)), [refused(1, 3, 1, "boom 3")]);
    // After the wait, a call starts an instance and waits for it.
    assert_eq!(d(&p.acquire(3400)), s(&["start web"]));
}

#[test]
fn an_instance_that_exits_soon_after_it_became_ready_counts_as_a_failure() {
    let mut p = Pools::new();
    p.ready(0, 1, 1, 1);
    // It crashes half a second in: replaced at once, the first time.
    assert_eq!(
        d(&p.exited(500, "c1", "panic: boom")),
        s(&["stop i1 Exited"])
    );
    assert_eq!(p.tick(600), s(&["start web"]));
    assert_eq!(d(&p.started(700, 1)), NONE);
    // Its replacement crashes too: a wait begins.
    let plan = p.exited(900, "c2", "panic: boom");
    assert_eq!(d(&plan), s(&["stop i2 Exited", "wake web"]));
    assert_eq!(p.wake_at(&plan), Some(1900));
    let error =
        "the instance exited 0.2s after it became ready; its output ended with: panic: boom";
    assert_eq!(d(&p.acquire(1000)), [refused(0, 2, 1, error)]);
    assert_eq!(p.tick(1500), NONE);
    assert_eq!(p.retry(1900), s(&["start web"]));
}

#[test]
fn calls_waiting_when_a_wait_begins_fail_with_the_error() {
    let mut p = Pools::new();
    p.ready(0, 1, 1, 1);
    assert_eq!(d(&p.acquire(10)), s(&["grant w0 i1"]));
    assert_eq!(d(&p.acquire(20)), NONE);
    // A first crash: the waiting call gets a replacement.
    assert_eq!(
        d(&p.exited(30, "c1", "")),
        s(&["stop i1 Exited", "start web"])
    );
    assert_eq!(d(&p.started(40, 1)), s(&["grant w1 i2 cold"]));
    assert_eq!(d(&p.acquire(50)), NONE);
    // A second one: the function backs off, and the waiting call is told so.
    assert_eq!(
        d(&p.exited(60, "c2", "")),
        s(&[
            "stop i2 Exited",
            "wake web",
            &refused(2, 2, 1, "the instance exited 0.0s after it became ready"),
        ])
    );
}

#[test]
fn an_instance_ready_for_a_minute_ends_the_run_of_failures() {
    let mut p = Pools::new();
    assert_eq!(p.deploy(0, 1, scaling(1, 1, 1)), s(&["start web"]));
    assert_eq!(p.start_failed(100, "boom"), NONE);
    assert_eq!(p.tick(200), s(&["start web"]));
    assert_eq!(d(&p.started(300, 1)), NONE);
    let standing = |p: &Pools, ms| p.state.standing("web", p.at(ms)).expect("pool");
    assert_eq!(standing(&p, 300).failures, 1);
    assert_eq!(standing(&p, 300).serving, 1);
    p.tick(60_299);
    assert_eq!(standing(&p, 60_299).failures, 1, "not a minute yet");
    p.tick(60_300);
    assert_eq!(standing(&p, 60_300).failures, 0);
    assert_eq!(standing(&p, 60_300).last_error, None);
    // An instance that exits after a minute of service is no failure: replaced at once,
    // even twice in a row.
    assert_eq!(d(&p.exited(61_000, "c1", "")), s(&["stop i1 Exited"]));
    assert_eq!(p.tick(61_100), s(&["start web"]));
    assert_eq!(standing(&p, 61_100).failures, 0);
}

#[test]
fn a_new_version_starts_afresh() {
    let mut p = Pools::new();
    assert_eq!(p.deploy(0, 1, scaling(1, 1, 1)), s(&["start web"]));
    p.start_failed(100, "boom");
    p.tick(200);
    assert_eq!(p.start_failed(300, "boom"), s(&["wake web"]));
    assert_eq!(p.deploy(400, 2, scaling(1, 1, 1)), s(&["start web"]));
    assert_eq!(
        p.state.standing("web", p.at(400)).map(|s| s.failures),
        Some(0)
    );
}

// --- The idle timeout ---

#[test]
fn the_idle_timeout_decides_even_while_the_window_remembers_demand() {
    let mut p = Pools::new();
    let mut scale = scaling(1, 0, 2);
    scale.window_ms = None; // the daemon's 60s window
    assert_eq!(p.deploy(0, 1, scale), NONE);
    assert_eq!(d(&p.acquire(0)), s(&["start web"]));
    assert_eq!(d(&p.started(100, 1)), s(&["grant w0 i1 cold"]));
    assert_eq!(p.tick(200), NONE, "busy");
    assert_eq!(p.release(300, "i1", false), NONE);
    // The window still holds the call's demand, but no call came for the idle timeout
    // (1s): the instance goes (paused, as the last one).
    assert_eq!(p.tick(1200), NONE, "idle for 0.9s only");
    assert_eq!(p.tick(1300), s(&["pause i1"]));
}
