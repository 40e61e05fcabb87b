//! Triggers: cron schedules and broker subscriptions that start calls by themselves.
//!
//! - The **cron runner** is one task on the platform's tracker. It sleeps until the earliest
//!   next tick of all cron triggers (at most a minute), woken early when a trigger changes,
//!   and fires each due tick as an async call through the durable queue (`Trigger::Cron`),
//!   so retries and dead letters apply. A tick fires in one store transaction that queues
//!   the call (its id derived from the trigger's generation and the tick) and advances the
//!   trigger's last tick: neither a crash nor a restart fires a tick twice or loses one.
//!   Ticks missed while the daemon was down follow the trigger's policy
//!   ([`skiff_core::MissedTicks`]): one call for the latest, or none.
//! - Each **broker trigger** runs as a supervised subscription ([`source`]): it connects
//!   (again and again while the broker is down), calls the function synchronously for each
//!   message (`Trigger::Queue`), and acknowledges only after a success.
//!
//! Deleting a function deletes its triggers.

mod nats;
pub mod source;

use crate::error::PlatformError;
use crate::invoke::Invoker;
use crate::metrics::Metrics;
use crate::queue::AsyncPolicy;
use chrono::{DateTime, Utc};
use skiff_core::api::headers::{SCHEDULED_AT_HEADER, TRIGGER_HEADER};
use skiff_core::trigger::{plan_tick, tick_call_id, TickPlan};
use skiff_core::{
    CallRecord, CallStatus, Schedule, Trigger, TriggerKind, TriggerRecord, TriggerSpec,
    TriggerState, TriggerView,
};
use skiff_store::{Payload, Store, TickOutcome};
use source::{SourceStatus, Subscription, Supervisor};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

/// The longest the cron runner sleeps without looking at its triggers again.
const MAX_CRON_SLEEP: Duration = Duration::from_secs(60);
/// How soon the cron runner tries again after the store failed.
const CRON_RETRY: Duration = Duration::from_secs(1);

/// A trigger as the platform runs it.
#[derive(Debug, Clone)]
struct Live {
    record: TriggerRecord,
    status: Arc<SourceStatus>,
    /// Stops a broker trigger's subscription.
    stop: Option<CancellationToken>,
    /// Set when a broker trigger is deleted, so that its subscription cleans up after itself.
    removed: Arc<AtomicBool>,
}

/// The platform's triggers: the live ones, the cron runner, the broker subscriptions. They
/// start calls through the narrow [`Invoker`] interface and the durable queue.
#[derive(Debug)]
pub(crate) struct Triggers {
    /// When this daemon started: cron ticks at or before it were missed while it was down.
    boot: DateTime<Utc>,
    live: parking_lot::RwLock<BTreeMap<String, Live>>,
    /// Wakes the cron runner when a cron trigger is created, replaced or deleted.
    changed: Notify,
    store: Store,
    policy: AsyncPolicy,
    metrics: Arc<Metrics>,
    /// Wakes the async dispatcher when a tick has queued a call.
    queued: Arc<Notify>,
    /// Owns the cron runner and the subscriptions.
    tracker: TaskTracker,
    /// Stops them all at shutdown.
    cancel: CancellationToken,
}

impl Triggers {
    pub(crate) fn new(
        store: Store,
        policy: AsyncPolicy,
        metrics: Arc<Metrics>,
        queued: Arc<Notify>,
        tracker: TaskTracker,
        cancel: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Triggers {
            boot: Utc::now(),
            live: parking_lot::RwLock::new(BTreeMap::new()),
            changed: Notify::new(),
            store,
            policy,
            metrics,
            queued,
            tracker,
            cancel,
        })
    }

    fn read(&self) -> parking_lot::RwLockReadGuard<'_, BTreeMap<String, Live>> {
        self.live.read()
    }

    fn write(&self) -> parking_lot::RwLockWriteGuard<'_, BTreeMap<String, Live>> {
        self.live.write()
    }

    /// Removes a trigger and stops it; `deleted` tells its subscription to clean up.
    fn remove(&self, name: &str, deleted: bool) -> Option<Live> {
        let removed = self.write().remove(name);
        if let Some(live) = &removed {
            live.removed.store(deleted, Ordering::Release);
            if let Some(stop) = &live.stop {
                stop.cancel();
            }
            if live.record.spec.kind() == TriggerKind::Cron {
                self.changed.notify_one();
            }
        }
        removed
    }

    /// Records that `tick` was handled, if the trigger is still of `generation`.
    fn advanced(&self, name: &str, generation: Uuid, tick: DateTime<Utc>) {
        if let Some(live) = self.write().get_mut(name) {
            if live.record.generation == generation {
                live.record.last_tick = Some(tick);
            }
        }
    }

    fn view(live: &Live) -> TriggerView {
        let (state, error) = live.status.get();
        TriggerView::new(&live.record, state, error)
    }
}

impl Triggers {
    /// Creates or replaces trigger `name` (its spec validated, its function deployed: the
    /// caller holds the deploy lock); returns it and whether it was created. Replacing
    /// starts afresh: a new generation, a cron schedule that counts from now, a broker
    /// subscription that reconnects.
    pub(crate) async fn put(
        self: &Arc<Self>,
        invoker: Arc<dyn Invoker>,
        name: String,
        spec: TriggerSpec,
    ) -> Result<(TriggerView, bool), PlatformError> {
        let now = Utc::now();
        let record = TriggerRecord {
            name: name.clone(),
            generation: Uuid::new_v4(),
            created_at: now,
            last_tick: (spec.kind() == TriggerKind::Cron).then_some(now),
            spec,
        };
        self.store.put_trigger(&record).await?;
        let previous = self.remove(&name, false);
        let live = self.run_trigger(&invoker, record);
        let view = Triggers::view(&live);
        Ok((view, previous.is_none()))
    }

    /// One trigger.
    pub(crate) fn get(&self, name: &str) -> Result<TriggerView, PlatformError> {
        self.read()
            .get(name)
            .map(Triggers::view)
            .ok_or_else(|| PlatformError::TriggerNotFound {
                name: name.to_string(),
            })
    }

    /// All triggers, by name.
    pub(crate) fn list(&self) -> Vec<TriggerView> {
        self.read().values().map(Triggers::view).collect()
    }

    /// Deletes a trigger (the caller holds the deploy lock): no further call starts from
    /// it (calls already queued run).
    pub(crate) async fn delete(&self, name: &str) -> Result<(), PlatformError> {
        if !self.store.delete_trigger(name).await? {
            return Err(PlatformError::TriggerNotFound {
                name: name.to_string(),
            });
        }
        self.remove(name, true);
        Ok(())
    }

    /// Deletes the triggers of a function being deleted (the caller holds the deploy lock).
    pub(crate) async fn delete_of(&self, function: &str) -> Result<(), PlatformError> {
        for name in self.store.delete_triggers_of(function).await? {
            tracing::info!(trigger = %name, %function, "trigger deleted with its function");
            self.remove(&name, true);
        }
        Ok(())
    }

    /// Brings trigger `name` in line with the store, after a change made through another
    /// daemon: a new generation replaces the live trigger (a broker subscription
    /// reconnects), a trigger gone from the store stops here (its subscription is cleaned up
    /// by the daemon that deleted it).
    pub(crate) async fn reload(
        &self,
        invoker: Arc<dyn Invoker>,
        name: &str,
    ) -> Result<(), PlatformError> {
        let stored = self.store.get_trigger(name).await?;
        let live = self.read().get(name).map(|l| l.record.generation);
        match (stored, live) {
            (None, None) => {}
            (None, Some(_)) => {
                tracing::info!(trigger = name, "deleted through another daemon");
                self.remove(name, false);
            }
            (Some(stored), Some(generation)) if stored.generation == generation => {
                if let Some(tick) = stored.last_tick {
                    self.advanced(name, generation, tick);
                }
            }
            (Some(stored), _) => {
                tracing::info!(trigger = name, "created or replaced through another daemon");
                self.remove(name, false);
                self.run_trigger(&invoker, stored);
            }
        }
        Ok(())
    }

    /// [`Triggers::reload`] for every trigger, stored or live.
    pub(crate) async fn reload_all(&self, invoker: Arc<dyn Invoker>) -> Result<(), PlatformError> {
        let mut names: Vec<String> = self
            .store
            .list_triggers()
            .await?
            .into_iter()
            .map(|t| t.name)
            .collect();
        names.extend(self.read().keys().cloned());
        names.sort();
        names.dedup();
        for name in names {
            self.reload(invoker.clone(), &name).await?;
        }
        Ok(())
    }

    /// Loads the stored triggers, starts the broker subscriptions and the cron runner.
    pub(crate) async fn start(
        self: &Arc<Self>,
        invoker: Arc<dyn Invoker>,
    ) -> Result<(), PlatformError> {
        for record in self.store.list_triggers().await? {
            self.run_trigger(&invoker, record);
        }
        self.spawn_cron_runner(invoker);
        Ok(())
    }

    /// Registers a trigger and, for a broker trigger, starts its subscription.
    fn run_trigger(&self, invoker: &Arc<dyn Invoker>, record: TriggerRecord) -> Live {
        let kind = record.spec.kind();
        let status = Arc::new(SourceStatus::new(match kind {
            TriggerKind::Cron => TriggerState::Scheduled,
            TriggerKind::Nats => TriggerState::Connecting,
        }));
        let removed = Arc::new(AtomicBool::new(false));
        let mut stop = None;
        if let Some(nats) = &record.spec.nats {
            let timeout = invoker
                .function(&record.spec.function)
                .map(|f| f.config.timeout())
                .unwrap_or(skiff_core::spec::DEFAULT_TIMEOUT);
            let token = self.cancel.child_token();
            let concurrency = nats.concurrency();
            let supervisor = Supervisor {
                invoker: invoker.clone(),
                metrics: self.metrics.clone(),
                tracker: self.tracker.clone(),
            };
            supervisor.spawn(Subscription {
                trigger: record.name.clone(),
                function: record.spec.function.clone(),
                max_deliver: nats.max_deliver(),
                concurrency,
                connector: Box::new(nats::NatsConnector {
                    url: nats.url.clone(),
                    stream: nats.stream.clone(),
                    subjects: nats.subjects.clone(),
                    // NATS consumer names hold no `.`: a namespace's trigger
                    // (`NS.NAME`) becomes `skiff-NS__NAME`.
                    consumer: format!("skiff-{}", record.name.replace('.', "__")),
                    max_deliver: nats.max_deliver(),
                    ack_wait: nats.ack_wait(timeout),
                    max_ack_pending: concurrency.saturating_mul(4),
                }),
                status: status.clone(),
                stop: token.clone(),
                removed: removed.clone(),
            });
            stop = Some(token);
        }
        let live = Live {
            record,
            status,
            stop,
            removed,
        };
        self.write().insert(live.record.name.clone(), live.clone());
        if kind == TriggerKind::Cron {
            self.changed.notify_one();
        }
        live
    }

    /// Runs the cron runner until shutdown.
    fn spawn_cron_runner(self: &Arc<Self>, invoker: Arc<dyn Invoker>) {
        let triggers = self.clone();
        self.tracker.spawn(async move {
            loop {
                let changed = triggers.changed.notified();
                let wait = triggers.cron_round(&*invoker).await;
                tokio::select! {
                    _ = triggers.cancel.cancelled() => return,
                    _ = changed => {}
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        });
    }

    /// Handles every due tick once; returns how long to sleep before the next one.
    async fn cron_round(&self, invoker: &dyn Invoker) -> Duration {
        let crons: Vec<Live> = self
            .read()
            .values()
            .filter(|live| live.record.spec.kind() == TriggerKind::Cron)
            .cloned()
            .collect();
        let mut wait = MAX_CRON_SLEEP;
        for live in crons {
            let record = &live.record;
            let Some(cron) = &record.spec.cron else {
                continue;
            };
            let schedule = match Schedule::parse(cron) {
                Ok(schedule) => schedule,
                Err(err) => {
                    live.status.set(TriggerState::Error, Some(err.to_string()));
                    continue;
                }
            };
            let now = Utc::now();
            let last = record.last_tick.unwrap_or(record.created_at);
            let (tick, fire) = match plan_tick(&schedule, last, self.boot, now) {
                TickPlan::Fire(tick) => (tick, true),
                TickPlan::Skip(tick) => (tick, false),
                TickPlan::WaitUntil(next) => {
                    let until = (next - now).to_std().unwrap_or_default();
                    wait = wait.min(until);
                    continue;
                }
                TickPlan::Never => {
                    live.status.set(
                        TriggerState::Error,
                        Some("the schedule has no further tick".into()),
                    );
                    continue;
                }
            };
            match self.fire_tick(invoker, record, tick, fire).await {
                Ok(()) => {
                    live.status.set(TriggerState::Scheduled, None);
                    // Look again at once: the next tick of this trigger is computed then.
                    wait = Duration::ZERO;
                }
                Err(err) => {
                    tracing::error!(trigger = %record.name, %err, "cannot fire a cron tick");
                    live.status.set(TriggerState::Error, Some(err.to_string()));
                    wait = wait.min(CRON_RETRY);
                }
            }
        }
        wait
    }

    /// Fires (or, with `fire` false, skips) one tick in one store transaction.
    async fn fire_tick(
        &self,
        invoker: &dyn Invoker,
        record: &TriggerRecord,
        tick: DateTime<Utc>,
        fire: bool,
    ) -> Result<(), PlatformError> {
        let function = invoker.function(&record.spec.function);
        let call = function.filter(|_| fire).map(|function| {
            let (call, mut payload) = tick_call(record, tick);
            payload.expires_at = Some(call.received_at + self.policy.max_event_age(&function));
            (call, payload)
        });
        let outcome = self
            .store
            .fire_tick(
                &record.name,
                record.generation,
                record.last_tick,
                tick,
                call.as_ref().map(|(r, p)| (r, p)),
            )
            .await?;
        match outcome {
            TickOutcome::Fired | TickOutcome::AlreadyFired => {
                self.advanced(&record.name, record.generation, tick);
                if call.is_some() && outcome == TickOutcome::Fired {
                    tracing::debug!(trigger = %record.name, %tick, "cron tick fired");
                    self.metrics.trigger_fired(&record.name, "fired");
                    self.queued.notify_one();
                } else if fire {
                    tracing::info!(trigger = %record.name, %tick, "cron tick not fired");
                } else {
                    tracing::info!(trigger = %record.name, %tick, "ticks missed while the daemon was down are skipped");
                    self.metrics.trigger_fired(&record.name, "skipped");
                }
            }
            TickOutcome::Stale => {
                // Fired by another daemon sharing the store, replaced or deleted meanwhile,
                // or written by an earlier round: read it again.
                match self.store.get_trigger(&record.name).await? {
                    Some(stored) if stored.generation == record.generation => {
                        if let Some(tick) = stored.last_tick {
                            self.advanced(&stored.name, stored.generation, tick);
                        }
                    }
                    // Replaced through another daemon: run the new one's schedule (a broker
                    // trigger is replaced when the change is heard).
                    Some(stored) => {
                        if let Some(live) = self.write().get_mut(&record.name) {
                            if live.record.spec.kind() == TriggerKind::Cron {
                                live.record = stored;
                            }
                        }
                    }
                    None => {
                        self.remove(&record.name, false);
                    }
                }
            }
        }
        Ok(())
    }
}

/// The queued call and payload of one tick.
fn tick_call(record: &TriggerRecord, tick: DateTime<Utc>) -> (CallRecord, Payload) {
    let id = tick_call_id(&record.name, record.generation, tick);
    let (content_type, body) = record.spec.cron_body();
    let mut headers = vec![
        (TRIGGER_HEADER.to_string(), record.name.clone()),
        (SCHEDULED_AT_HEADER.to_string(), tick.to_rfc3339()),
    ];
    if let Some(content_type) = content_type {
        headers.push(("content-type".to_string(), content_type.to_string()));
    }
    let call = CallRecord {
        request_size: body.len() as u64,
        ..CallRecord::new(
            id,
            record.spec.function.as_str(),
            Trigger::Cron,
            CallStatus::Queued,
            Utc::now(),
        )
    };
    let payload = Payload {
        method: "POST".to_string(),
        path: "/".to_string(),
        query: String::new(),
        headers,
        body,
        expires_at: None,
        callback_url: None,
    };
    (call, payload)
}
