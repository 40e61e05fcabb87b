//! Triggers (cron schedules, broker subscriptions) and the firing of cron ticks.
//!
//! A tick fires in one transaction that both advances the trigger's `last_tick` (only if it
//! is still the generation and last tick the runner read) and inserts the queued call and
//! its payload if no call has that id yet. The call id is derived from the trigger's
//! generation and the tick, so a crash at any point can neither fire a tick twice nor lose
//! it: either both writes happened, or neither did.

use crate::backend::{on_pool, on_tx, Columns};
use crate::changes::{announce, Change};
use crate::codec::{millis, RowReader};
use crate::error::{corrupt, query};
use crate::queue::Payload;
use crate::{Store, StoreError};
use chrono::{DateTime, Utc};
use skiff_core::{CallRecord, TriggerRecord, TriggerSpec};
use uuid::Uuid;

/// What became of a tick handed to [`Store::fire_tick`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickOutcome {
    /// The call was queued and the trigger's last tick advanced.
    Fired,
    /// The last tick advanced, but a call with that id was already there (not queued again).
    AlreadyFired,
    /// The trigger was replaced, deleted or advanced by someone else: nothing was written.
    Stale,
}

impl Store {
    /// Inserts a trigger, or replaces every column of the trigger of that name.
    pub async fn put_trigger(&self, t: &TriggerRecord) -> Result<(), StoreError> {
        let spec = serde_json::to_string(&t.spec).map_err(|e| {
            corrupt(
                format!("trigger {}", t.name),
                format!("cannot encode the spec: {e}"),
            )
        })?;
        let what = "store a trigger";
        let mut tx = self.pool.begin().await.map_err(query(what))?;
        on_tx!(&mut tx, |conn, DB| sqlx::query(
            "INSERT INTO triggers (name, function, kind, spec, generation, created_at, last_tick)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (name) DO UPDATE SET
                function = excluded.function,
                kind = excluded.kind,
                spec = excluded.spec,
                generation = excluded.generation,
                created_at = excluded.created_at,
                last_tick = excluded.last_tick",
        )
        .bind(&t.name)
        .bind(&t.spec.function)
        .bind(t.spec.kind().as_str())
        .bind(&spec)
        .bind(t.generation.hyphenated().to_string())
        .bind(millis(t.created_at))
        .bind(t.last_tick.map(millis))
        .execute(&mut *conn)
        .await
        .map(|_| ()))
        .map_err(query(what))?;
        announce(&mut tx, &Change::Trigger(t.name.clone())).await?;
        tx.commit().await.map_err(query(what))
    }

    /// The trigger called `name`, if there is one.
    pub async fn get_trigger(&self, name: &str) -> Result<Option<TriggerRecord>, StoreError> {
        on_pool!(&self.pool, |pool, DB| {
            let row = sqlx::query(
                "SELECT name, spec, generation, created_at, last_tick FROM triggers \
                 WHERE name = $1",
            )
            .bind(name)
            .fetch_optional(pool)
            .await
            .map_err(query("get a trigger"))?;
            row.as_ref().map(|r| decode(r)).transpose()
        })
    }

    /// Every trigger, sorted by name.
    pub async fn list_triggers(&self) -> Result<Vec<TriggerRecord>, StoreError> {
        on_pool!(&self.pool, |pool, DB| {
            let rows = sqlx::query(
                "SELECT name, spec, generation, created_at, last_tick FROM triggers ORDER BY name",
            )
            .fetch_all(pool)
            .await
            .map_err(query("list triggers"))?;
            rows.iter().map(|r| decode(r)).collect()
        })
    }

    /// Deletes the trigger called `name`; true if it existed.
    pub async fn delete_trigger(&self, name: &str) -> Result<bool, StoreError> {
        let what = "delete a trigger";
        let mut tx = self.pool.begin().await.map_err(query(what))?;
        let done = on_tx!(&mut tx, |conn, DB| sqlx::query(
            "DELETE FROM triggers WHERE name = $1"
        )
        .bind(name)
        .execute(&mut *conn)
        .await
        .map(|done| done.rows_affected() > 0))
        .map_err(query(what))?;
        announce(&mut tx, &Change::Trigger(name.to_string())).await?;
        tx.commit().await.map_err(query(what))?;
        Ok(done)
    }

    /// Deletes every trigger of function `function`; returns their names.
    pub async fn delete_triggers_of(&self, function: &str) -> Result<Vec<String>, StoreError> {
        let what = "delete the triggers of a function";
        let mut tx = self.pool.begin().await.map_err(query(what))?;
        let mut names: Vec<String> = on_tx!(&mut tx, |conn, DB| sqlx::query_scalar(
            "DELETE FROM triggers WHERE function = $1 RETURNING name"
        )
        .bind(function)
        .fetch_all(&mut *conn)
        .await)
        .map_err(query(what))?;
        for name in &names {
            announce(&mut tx, &Change::Trigger(name.clone())).await?;
        }
        tx.commit().await.map_err(query(what))?;
        names.sort();
        Ok(names)
    }

    /// Fires one tick of trigger `name`, in one transaction: advances its `last_tick` from
    /// `previous` to `tick` (only if its generation is still `generation` and its last tick
    /// still `previous`), and, when `call` is given, inserts that `queued` call and its
    /// payload unless a call with that id exists. With `call` `None` the tick is skipped.
    ///
    /// The conditional update is what makes a tick fire once across daemons sharing a
    /// store: of several runners that read the same last tick, one advances it and the
    /// others find it moved (`Stale`), and write nothing.
    pub async fn fire_tick(
        &self,
        name: &str,
        generation: Uuid,
        previous: Option<DateTime<Utc>>,
        tick: DateTime<Utc>,
        call: Option<(&CallRecord, &Payload)>,
    ) -> Result<TickOutcome, StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query("begin a transaction"))?;
        let advanced = on_tx!(&mut tx, |conn, DB| sqlx::query(
            "UPDATE triggers SET last_tick = $1
             WHERE name = $2 AND generation = $3 AND last_tick IS NOT DISTINCT FROM $4",
        )
        .bind(millis(tick))
        .bind(name)
        .bind(generation.hyphenated().to_string())
        .bind(previous.map(millis))
        .execute(&mut *conn)
        .await
        .map(|done| done.rows_affected()))
        .map_err(query("advance a trigger's last tick"))?;
        if advanced != 1 {
            tx.rollback()
                .await
                .map_err(query("roll back a stale tick"))?;
            return Ok(TickOutcome::Stale);
        }
        let mut outcome = TickOutcome::Fired;
        if let Some((record, payload)) = call {
            let id = record.id.hyphenated().to_string();
            let inserted = on_tx!(&mut tx, |conn, DB| sqlx::query(
                "INSERT INTO calls (id, function, trigger, status, attempt, received_at,
                    request_size)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(&id)
            .bind(&record.function)
            .bind(record.trigger.as_str())
            .bind(record.status.as_str())
            .bind(i64::from(record.attempt))
            .bind(millis(record.received_at))
            .bind(i64::try_from(record.request_size).unwrap_or(i64::MAX))
            .execute(&mut *conn)
            .await
            .map(|done| done.rows_affected()))
            .map_err(query("queue a tick's call"))?;
            if inserted == 1 {
                let headers =
                    serde_json::to_string(&payload.headers).unwrap_or_else(|_| "[]".into());
                on_tx!(&mut tx, |conn, DB| sqlx::query(
                    "INSERT INTO call_payloads (call_id, method, path, query, headers, body)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (call_id) DO NOTHING",
                )
                .bind(&id)
                .bind(&payload.method)
                .bind(&payload.path)
                .bind(&payload.query)
                .bind(&headers)
                .bind(&payload.body)
                .execute(&mut *conn)
                .await
                .map(|_| ()))
                .map_err(query("store a tick's payload"))?;
            } else {
                outcome = TickOutcome::AlreadyFired;
            }
        }
        tx.commit().await.map_err(query("commit a tick"))?;
        Ok(outcome)
    }
}

fn decode(row: &dyn Columns) -> Result<TriggerRecord, StoreError> {
    let name = row
        .text("name")
        .map_err(|e| corrupt("trigger", format!("name: {e}")))?
        .unwrap_or_default();
    let r = RowReader {
        row,
        what: format!("trigger {name}"),
    };
    let spec: TriggerSpec = r.json("spec")?;
    Ok(TriggerRecord {
        name,
        spec,
        generation: r.parse("generation")?,
        created_at: r.time("created_at")?,
        last_tick: r.time_opt("last_tick")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_core::{CallStatus, CronSpec, Trigger};

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).expect("valid time")
    }

    fn trigger(name: &str, function: &str, generation: u128) -> TriggerRecord {
        TriggerRecord {
            name: name.into(),
            spec: TriggerSpec {
                function: function.into(),
                cron: Some(CronSpec {
                    schedule: "* * * * * *".into(),
                    timezone: Some("UTC".into()),
                    missed: None,
                }),
                nats: None,
                payload: Some(serde_json::json!({"n": 1})),
                body: None,
            },
            generation: Uuid::from_u128(generation),
            created_at: at(1_000),
            last_tick: Some(at(1_000)),
        }
    }

    fn payload() -> Payload {
        Payload {
            headers: vec![("content-type".into(), "application/json".into())],
            body: br#"{"n":1}"#.to_vec(),
            ..Payload::default()
        }
    }

    fn queued(id: Uuid, tick: DateTime<Utc>) -> CallRecord {
        CallRecord {
            request_size: 7,
            ..CallRecord::new(id, "f", Trigger::Cron, CallStatus::Queued, tick)
        }
    }

    crate::testing::backend_tests! {
    async fn a_queued_tick_survives_the_start_up_interruption_of_sync_calls(kit) {
        let store = kit.store().await;
        let t = trigger("t", "f", 1);
        store.put_trigger(&t).await.expect("put");
        let tick = at(2_000);
        let id = skiff_core::trigger::tick_call_id(&t.name, t.generation, tick);
        store
            .fire_tick(
                &t.name,
                t.generation,
                t.last_tick,
                tick,
                Some((&queued(id, tick), &payload())),
            )
            .await
            .expect("fire");
        let sync = CallRecord::new(Uuid::now_v7(), "f", Trigger::Http, CallStatus::Queued, tick);
        store
            .write_calls(&[crate::CallWrite {
                record: sync.clone(),
                logs: None,
            }])
            .await
            .expect("write");
        assert_eq!(
            store
                .interrupt_unfinished_calls(Utc::now())
                .await
                .expect("interrupt"),
            1
        );
        assert_eq!(
            store.get_call(id).await.expect("get").map(|r| r.status),
            Some(CallStatus::Queued)
        );
        assert_eq!(
            store
                .get_call(sync.id)
                .await
                .expect("get")
                .map(|r| r.status),
            Some(CallStatus::Failed)
        );
    }
    }

    crate::testing::backend_tests! {
    async fn triggers_round_trip_and_go_with_their_function(kit) {
        let store = kit.store().await;
        let a = trigger("a", "f", 1);
        let b = trigger("b", "g", 2);
        store.put_trigger(&b).await.expect("put");
        store.put_trigger(&a).await.expect("put");
        assert_eq!(store.get_trigger("a").await.expect("get"), Some(a.clone()));
        assert_eq!(
            store.list_triggers().await.expect("list"),
            vec![a.clone(), b.clone()]
        );
        let mut replaced = trigger("a", "g", 3);
        replaced.last_tick = None;
        store.put_trigger(&replaced).await.expect("replace");
        assert_eq!(store.get_trigger("a").await.expect("get"), Some(replaced));
        assert_eq!(
            store.delete_triggers_of("g").await.expect("delete"),
            vec!["a".to_string(), "b".to_string()]
        );
        assert!(store.list_triggers().await.expect("list").is_empty());
        assert!(!store.delete_trigger("a").await.expect("delete"));
    }
    }

    crate::testing::backend_tests! {
    async fn a_tick_fires_once_and_a_stale_runner_writes_nothing(kit) {
        let store = kit.store().await;
        let t = trigger("every-second", "f", 1);
        store.put_trigger(&t).await.expect("put");
        let tick = at(2_000);
        let id = skiff_core::trigger::tick_call_id(&t.name, t.generation, tick);
        let record = queued(id, tick);
        let outcome = store
            .fire_tick(
                &t.name,
                t.generation,
                t.last_tick,
                tick,
                Some((&record, &payload())),
            )
            .await
            .expect("fire");
        assert_eq!(outcome, TickOutcome::Fired);
        let stored = store.get_call(id).await.expect("get").expect("queued");
        assert_eq!(stored.status, CallStatus::Queued);
        assert_eq!(stored.trigger, Trigger::Cron);
        // The same tick again, from the last tick read before: refused, nothing written.
        assert_eq!(
            store
                .fire_tick(
                    &t.name,
                    t.generation,
                    t.last_tick,
                    tick,
                    Some((&record, &payload()))
                )
                .await
                .expect("again"),
            TickOutcome::Stale
        );
        // A runner of an older generation cannot fire either.
        assert_eq!(
            store
                .fire_tick(
                    &t.name,
                    Uuid::from_u128(99),
                    Some(tick),
                    at(3_000),
                    Some((&record, &payload()))
                )
                .await
                .expect("old generation"),
            TickOutcome::Stale
        );
        // Had the call been written already (by the same tick), it is not queued twice.
        let claimed = store.claim(Utc::now(), 10).await.expect("claim");
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].payload, payload());
        assert_eq!(
            store
                .fire_tick(
                    &t.name,
                    t.generation,
                    Some(tick),
                    at(2_500),
                    Some((&record, &payload()))
                )
                .await
                .expect("same id"),
            TickOutcome::AlreadyFired
        );
        assert_eq!(
            store.get_call(id).await.expect("get").map(|r| r.status),
            Some(CallStatus::Running),
            "the running call was not reset to queued"
        );
        // A skipped tick only advances.
        assert_eq!(
            store
                .fire_tick(&t.name, t.generation, Some(at(2_500)), at(9_000), None)
                .await
                .expect("skip"),
            TickOutcome::Fired
        );
        assert_eq!(
            store
                .get_trigger(&t.name)
                .await
                .expect("get")
                .and_then(|t| t.last_tick),
            Some(at(9_000))
        );
    }
    }

    crate::testing::backend_tests! {
    async fn each_tick_fires_once_across_daemons_firing_at_once(kit) {
        let first = kit.shared_store().await;
        let mut daemons = vec![first.clone()];
        for _ in 0..3 {
            daemons.push(kit.reopen().await);
        }
        let t = trigger("shared", "f", 7);
        first.put_trigger(&t).await.expect("put");
        let mut previous = t.last_tick;
        for n in 1..=5 {
            let tick = at(1_000 + n * 1_000);
            let id = skiff_core::trigger::tick_call_id(&t.name, t.generation, tick);
            // Every daemon read the same last tick, and fires the same tick.
            let firings = daemons.iter().cloned().map(|store| {
                let name = t.name.clone();
                let generation = t.generation;
                tokio::spawn(async move {
                    let record = queued(id, tick);
                    store
                        .fire_tick(&name, generation, previous, tick, Some((&record, &payload())))
                        .await
                        .expect("fire")
                })
            });
            let mut outcomes = Vec::new();
            for firing in firings.collect::<Vec<_>>() {
                outcomes.push(firing.await.expect("firing"));
            }
            let fired = outcomes.iter().filter(|o| **o == TickOutcome::Fired).count();
            let stale = outcomes.iter().filter(|o| **o == TickOutcome::Stale).count();
            assert_eq!((fired, stale), (1, 3), "tick {n}: {outcomes:?}");
            assert_eq!(
                first.get_trigger(&t.name).await.expect("get").and_then(|t| t.last_tick),
                Some(tick)
            );
            previous = Some(tick);
        }
        let calls = first
            .list_calls(&crate::CallFilter {
                trigger: Some(Trigger::Cron),
                ..Default::default()
            })
            .await
            .expect("list");
        assert_eq!(calls.len(), 5, "one call per tick");
    }
    }
}
