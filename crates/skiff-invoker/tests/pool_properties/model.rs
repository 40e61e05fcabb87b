//! The pool's invariants on its state machine, with a simulated async layer: every action
//! of a plan becomes a later event (a start ends `start_ms` later, a lease is given back
//! after its call's hold), in simulated milliseconds.

use proptest::prelude::*;
use skiff_core::{Contract, HttpSettings, Resources, Scaling};
use skiff_invoker::pool::events::{Action, Event, InstanceTarget, NewInstance, WaiterId};
use skiff_invoker::pool::state::{PoolState, Rules};
use skiff_invoker::pool::Output;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

const FUNCTION: &str = "web";
/// Ticks of the autoscaler, in ms.
const TICK: u64 = 10;
/// When the daemon stops, in ms.
const HORIZON: u64 = 3000;

#[derive(Debug, Clone)]
struct Call {
    arrives: u64,
    holds: u64,
    /// Stops waiting after this long without a lease.
    patience: Option<u64>,
    /// Finds its instance broken.
    breaks: bool,
}

#[derive(Debug, Clone)]
struct Setup {
    concurrency: u32,
    max: u32,
    min: u32,
    idle_ms: u64,
    keep_paused: bool,
    /// How long each start takes, in turn.
    start_ms: Vec<u64>,
    /// When an instance (the first listed) crashes.
    crashes: Vec<u64>,
    calls: Vec<Call>,
}

#[derive(Debug)]
enum Ev {
    Arrive(usize),
    GiveUp(usize),
    Release(usize),
    Started,
    Resumed(String),
    Paused(String),
    Exited(String),
    Crash,
    /// The wait of a function whose instances keep failing is over.
    Retry,
    Tick,
    /// The daemon stops.
    Shutdown,
}

struct Sim {
    setup: Setup,
    state: PoolState,
    t0: Instant,
    now: u64,
    seq: u64,
    events: BTreeMap<(u64, u64), Ev>,
    starts: usize,
    /// Starts under way.
    pending: usize,
    /// Containers of instances, as the engine has them.
    containers: HashSet<String>,
    next_instance: u32,
    /// Per call: the instance of its lease, once given.
    leases: Vec<Option<String>>,
    gave_up: Vec<bool>,
    /// Per call: failed at once because the function was backing off after crashes.
    refused: Vec<bool>,
    /// Calls holding a lease, per instance.
    holding: HashMap<String, u32>,
}

impl Sim {
    fn new(setup: Setup) -> Self {
        let calls = setup.calls.len();
        let state = PoolState::new(Rules {
            max_queued: 10_000,
            keep_paused: setup.keep_paused,
            paused_ttl: Duration::from_millis(200),
            autoscale_window: Duration::from_secs(60),
        });
        Sim {
            setup,
            state,
            t0: Instant::now(),
            now: 0,
            seq: 0,
            events: BTreeMap::new(),
            starts: 0,
            pending: 0,
            containers: HashSet::new(),
            next_instance: 0,
            leases: vec![None; calls],
            gave_up: vec![false; calls],
            refused: vec![false; calls],
            holding: HashMap::new(),
        }
    }

    fn at(&mut self, ms: u64, ev: Ev) {
        self.seq += 1;
        self.events.insert((ms, self.seq), ev);
    }

    fn target(&self) -> Arc<InstanceTarget> {
        Arc::new(InstanceTarget {
            function: FUNCTION.into(),
            version: 1,
            image: "web:1".into(),
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
            scaling: Scaling {
                concurrency: self.setup.concurrency,
                min_instances: self.setup.min,
                max_instances: self.setup.max,
                idle_timeout_ms: self.setup.idle_ms,
                window_ms: Some(1000),
                target_utilization: 0.7,
            },
            contract: Contract::Http,
            cmd: None,
            volumes: Vec::new(),
        })
    }

    fn apply(&mut self, event: Event) -> Result<(), TestCaseError> {
        let now = self.t0 + Duration::from_millis(self.now);
        for action in self.state.handle(now, event) {
            self.carry_out(action)?;
        }
        self.check()
    }

    fn carry_out(&mut self, action: Action) -> Result<(), TestCaseError> {
        match action {
            Action::Grant { waiter, lease } => {
                let call = waiter.0 as usize;
                prop_assert!(self.leases[call].is_none(), "call {call} answered twice");
                prop_assert!(!self.refused[call], "call {call} answered twice");
                prop_assert!(!self.gave_up[call], "call {call} answered after it gave up");
                let held = self.holding.entry(lease.instance.clone()).or_insert(0);
                *held += 1;
                prop_assert!(
                    *held <= self.setup.concurrency,
                    "{} calls at once on {} with concurrency {}",
                    held,
                    lease.instance,
                    self.setup.concurrency
                );
                self.leases[call] = Some(lease.instance);
                let release = self.now + self.setup.calls[call].holds;
                self.at(release, Ev::Release(call));
            }
            Action::Fail { waiter, error } => {
                // Starts never fail here; only instances that keep crashing make a call
                // fail (the function backs off).
                let call = waiter.0 as usize;
                prop_assert!(
                    error.to_string().contains("keep failing"),
                    "call {call} failed: {error}"
                );
                prop_assert!(self.leases[call].is_none(), "call {call} answered twice");
                prop_assert!(!self.refused[call], "call {call} answered twice");
                self.refused[call] = true;
            }
            Action::Wake { at, .. } => {
                let ms = u64::try_from(at.duration_since(self.t0).as_millis()).unwrap_or(u64::MAX);
                prop_assert!(ms > self.now, "a wake-up in the future");
                self.at(ms, Ev::Retry);
            }
            Action::Start { .. } => {
                let takes = self.setup.start_ms[self.starts % self.setup.start_ms.len()];
                self.starts += 1;
                self.pending += 1;
                self.at(self.now + takes, Ev::Started);
            }
            Action::Resume { instance, .. } => self.at(self.now + 2, Ev::Resumed(instance)),
            Action::Pause { instance, .. } => self.at(self.now + 2, Ev::Paused(instance)),
            Action::Stop { container, .. } => {
                prop_assert!(
                    self.containers.remove(&container),
                    "{container} stopped twice"
                );
                // Its watcher sees the output end once it is gone.
                self.at(self.now + 1, Ev::Exited(container));
            }
            Action::Kill { container } => {
                prop_assert!(
                    self.containers.remove(&container),
                    "{container} killed twice"
                );
            }
        }
        Ok(())
    }

    /// The pool and the simulated engine agree, within the bounds.
    fn check(&self) -> Result<(), TestCaseError> {
        let instances = self.state.instances(FUNCTION, self.t0);
        let running = self.containers.len() + self.pending;
        prop_assert!(
            running <= self.setup.max as usize,
            "{running} instances with max {}",
            self.setup.max
        );
        if self.state.target(FUNCTION).is_some() {
            prop_assert_eq!(self.state.starting(FUNCTION), self.pending);
        }
        let known: HashSet<String> = instances.iter().map(|i| i.container.clone()).collect();
        prop_assert_eq!(
            &known,
            &self.containers,
            "every container forgotten is stopped"
        );
        for i in &instances {
            let held = self.holding.get(&i.id).copied().unwrap_or(0);
            prop_assert_eq!(i.in_flight, held, "calls in flight on {}", i.id);
        }
        Ok(())
    }

    fn run(mut self) -> Result<(), TestCaseError> {
        self.apply(Event::Deployed(self.target()))?;
        for call in 0..self.setup.calls.len() {
            let Call {
                arrives, patience, ..
            } = self.setup.calls[call];
            self.at(arrives, Ev::Arrive(call));
            if let Some(patience) = patience {
                self.at(arrives + patience, Ev::GiveUp(call));
            }
        }
        for crash in self.setup.crashes.clone() {
            self.at(crash, Ev::Crash);
        }
        for tick in 1..HORIZON / TICK {
            self.at(tick * TICK, Ev::Tick);
        }
        self.at(HORIZON, Ev::Shutdown);
        while let Some(((ms, _), ev)) = self.events.pop_first() {
            self.now = ms;
            self.step(ev)?;
        }
        prop_assert!(self.containers.is_empty(), "left: {:?}", self.containers);
        prop_assert_eq!(self.pending, 0);
        Ok(())
    }

    fn step(&mut self, ev: Ev) -> Result<(), TestCaseError> {
        let function = FUNCTION.to_string();
        match ev {
            Ev::Arrive(call) => self.apply(Event::Acquire {
                function,
                waiter: WaiterId(call as u64),
            }),
            Ev::GiveUp(call) => {
                if self.leases[call].is_some() {
                    return Ok(());
                }
                self.gave_up[call] = true;
                self.apply(Event::GaveUp {
                    function,
                    waiter: WaiterId(call as u64),
                })
            }
            Ev::Release(call) => {
                let instance = self.leases[call].clone().unwrap_or_default();
                if let Some(held) = self.holding.get_mut(&instance) {
                    *held -= 1;
                }
                self.apply(Event::Released {
                    function,
                    instance,
                    broken: self.setup.calls[call].breaks,
                })
            }
            Ev::Started => {
                self.pending -= 1;
                self.next_instance += 1;
                let n = self.next_instance;
                let instance = NewInstance {
                    id: format!("i{n}"),
                    container: format!("c{n}"),
                    addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080),
                    version: 1,
                    ready_at: self.t0 + Duration::from_millis(self.now),
                    output: Output::default(),
                };
                self.containers.insert(instance.container.clone());
                self.apply(Event::Started { function, instance })
            }
            Ev::Resumed(instance) => self.apply(Event::Resumed { function, instance }),
            Ev::Paused(instance) => self.apply(Event::Paused { function, instance }),
            Ev::Exited(container) => self.apply(Event::Exited {
                function,
                container,
                output: String::new(),
            }),
            Ev::Retry => self.apply(Event::Retry { function }),
            Ev::Crash => {
                // The first instance's container exits; its watcher reports it.
                match self.state.instances(FUNCTION, self.t0).into_iter().next() {
                    Some(instance) => self.apply(Event::Exited {
                        function,
                        container: instance.container,
                        output: "crashed".into(),
                    }),
                    None => Ok(()),
                }
            }
            Ev::Tick => self.apply(Event::Tick),
            Ev::Shutdown => {
                let answered = self.leases.iter().zip(&self.gave_up);
                for (call, (lease, gave_up)) in answered.enumerate() {
                    prop_assert!(
                        lease.is_some() || *gave_up || self.refused[call],
                        "call {call} got no answer"
                    );
                }
                self.apply(Event::Closing)?;
                self.apply(Event::Shutdown)
            }
        }
    }
}

fn call() -> impl Strategy<Value = Call> {
    (
        0u64..400,
        0u64..15,
        proptest::option::weighted(0.2, 1u64..40),
        proptest::bool::weighted(0.1),
    )
        .prop_map(|(arrives, holds, patience, breaks)| Call {
            arrives,
            holds,
            patience,
            breaks,
        })
}

fn setup() -> impl Strategy<Value = Setup> {
    (1u32..4, 1u32..4, 0u32..2, 5u64..100, any::<bool>())
        .prop_flat_map(|(concurrency, max, min, idle_ms, keep_paused)| {
            (
                Just((concurrency, max, min.min(max), idle_ms, keep_paused)),
                proptest::collection::vec(1u64..40, 1..8),
                proptest::collection::vec(0u64..500, 0..3),
                proptest::collection::vec(call(), 1..40),
            )
        })
        .prop_map(
            |((concurrency, max, min, idle_ms, keep_paused), start_ms, crashes, calls)| Setup {
                concurrency,
                max,
                min,
                idle_ms,
                keep_paused,
                start_ms,
                crashes,
                calls,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_state_machine_keeps_its_bounds_and_answers_every_call_once(setup in setup()) {
        Sim::new(setup).run()?;
    }
}
