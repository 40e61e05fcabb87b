//! The daemons sharing a store: their ids, heartbeats and leases, and the takeover of a
//! daemon that went silent.
//!
//! On PostgreSQL each daemon has a row of `daemons`, found again by its host and data
//! directory when it restarts. It beats every few seconds (`heartbeat_at`). A daemon whose
//! heartbeat is older than the lease is taken over by another, in one transaction that
//! marks it `recovering` (with a fresh heartbeat, so that a takeover that stalls is taken
//! over in turn), puts its running async calls back in the queue and marks its sync calls
//! `interrupted`; once its containers are removed, its row goes. On SQLite, whose file one
//! daemon uses at a time, a daemon only lists itself and never takes another over.

use crate::backend::{on_pool, on_tx, Columns, Pool};
use crate::codec::{millis, RowReader};
use crate::error::query;
use crate::{Backend, Store, StoreError};
use chrono::{DateTime, Utc};
use sqlx::postgres::PgPool;

/// This daemon, as its store knows it.
#[derive(Debug, Clone)]
pub(crate) struct Me {
    pub(crate) id: String,
    /// The host and data directory the id belongs to (empty until bound).
    pub(crate) home: String,
}

const ALIVE: &str = "alive";
const RECOVERING: &str = "recovering";
const STOPPED: &str = "stopped";

/// Where a daemon is in its life, as the store sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaemonState {
    /// It beats (or did, until its lease runs out).
    Alive,
    /// Its lease ran out: another daemon is taking its calls and containers over.
    Recovering,
    /// It stopped cleanly (not listed; its home keeps its id for its next start).
    Stopped,
}

impl DaemonState {
    /// `alive` or `recovering`.
    pub fn as_str(self) -> &'static str {
        match self {
            DaemonState::Alive => ALIVE,
            DaemonState::Recovering => RECOVERING,
            DaemonState::Stopped => STOPPED,
        }
    }
}

/// One daemon of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonRecord {
    /// Its id (the `skiff.daemon` label of its containers).
    pub id: String,
    /// Where its API listens, as it said in its last heartbeat.
    pub address: Option<String>,
    /// Alive, or being taken over.
    pub state: DaemonState,
    /// When it (last) started.
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat.
    pub heartbeat_at: DateTime<Utc>,
    /// The calls recorded as running on it.
    pub running_calls: u64,
}

/// What a takeover did to the calls of the daemon taken over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Recovered {
    /// Its running async calls (and cron ticks), queued again.
    pub requeued: u64,
    /// Its sync calls, marked `failed` with error type `interrupted`.
    pub interrupted: u64,
}

/// PostgreSQL: the id of the daemon of `home` (host and data directory), registered as
/// alive; `new_id` when it has none yet. A home whose daemon is being taken over gets a new
/// id, so that the takeover never removes the containers of its new start.
pub(crate) async fn register(
    pool: &PgPool,
    home: &str,
    new_id: String,
) -> Result<String, StoreError> {
    let what = "register the daemon";
    let now = millis(Utc::now());
    let mut tx = pool.begin().await.map_err(query(what))?;
    sqlx::query(
        "UPDATE daemons SET home = home || ' (taken over as ' || id || ')'
         WHERE home = $1 AND state = $2",
    )
    .bind(home)
    .bind(RECOVERING)
    .execute(&mut *tx)
    .await
    .map_err(query(what))?;
    let id: String = sqlx::query_scalar(
        "INSERT INTO daemons (id, home, state, started_at, heartbeat_at)
         VALUES ($1, $2, $3, $4, $4)
         ON CONFLICT (home) DO UPDATE SET
            state = excluded.state,
            started_at = excluded.started_at,
            heartbeat_at = excluded.heartbeat_at
         RETURNING id",
    )
    .bind(new_id)
    .bind(home)
    .bind(ALIVE)
    .bind(now)
    .fetch_one(&mut *tx)
    .await
    .map_err(query(what))?;
    tx.commit().await.map_err(query(what))?;
    Ok(id)
}

/// What a heartbeat found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// The daemon is listed alive.
    Alive,
    /// The daemon was not listed, and is now: its first heartbeat, or, later, the end of a
    /// takeover of it (its calls went to other daemons and its containers were removed
    /// while it was silent).
    Listed,
    /// Another daemon is taking its calls and containers over: its lease ran out.
    TakenOver,
}

/// How long a takeover waits for a row another connection holds (see [`Store::take_over`]).
const TAKEOVER_LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '10s'";

impl Store {
    /// Says this daemon is alive at `now`, listening at `address` (see [`Beat`]).
    pub async fn heartbeat(
        &self,
        address: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Beat, StoreError> {
        let me = self.me.lock().clone();
        let home = if me.home.is_empty() {
            format!("daemon {}", me.id)
        } else {
            me.home
        };
        let what = "record a heartbeat";
        on_pool!(&self.pool, |pool, DB| {
            let beat = sqlx::query(
                "UPDATE daemons SET heartbeat_at = $1, address = $2, state = $4
                 WHERE id = $3 AND state <> $5",
            )
            .bind(millis(now))
            .bind(address)
            .bind(&me.id)
            .bind(ALIVE)
            .bind(RECOVERING)
            .execute(pool)
            .await
            .map_err(query(what))?;
            if beat.rows_affected() == 1 {
                return Ok(Beat::Alive);
            }
            // Not there: its first heartbeat (SQLite), or its row was removed after a
            // takeover. There but not alive: being taken over.
            let inserted = sqlx::query(
                "INSERT INTO daemons (id, home, address, state, started_at, heartbeat_at)
                 VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT DO NOTHING",
            )
            .bind(&me.id)
            .bind(&home)
            .bind(address)
            .bind(ALIVE)
            .bind(millis(now))
            .execute(pool)
            .await
            .map_err(query(what))?;
            Ok(if inserted.rows_affected() == 1 {
                Beat::Listed
            } else {
                Beat::TakenOver
            })
        })
    }

    /// The daemons of the store, oldest start first, with the calls running on each. On
    /// SQLite, this daemon only.
    pub async fn daemons(&self) -> Result<Vec<DaemonRecord>, StoreError> {
        let only = match self.backend() {
            Backend::Sqlite => Some(self.my_id()),
            Backend::Postgres => None,
        };
        on_pool!(&self.pool, |pool, DB| {
            let rows = sqlx::query(
                "SELECT d.id, d.address, d.state, d.started_at, d.heartbeat_at,
                    (SELECT COUNT(*) FROM calls c WHERE c.daemon = d.id AND c.status = $1)
                        AS running_calls
                 FROM daemons d WHERE (CAST($2 AS TEXT) IS NULL OR d.id = $2) AND d.state <> $3
                 ORDER BY d.started_at, d.id",
            )
            .bind(skiff_core::CallStatus::Running.as_str())
            .bind(only.as_deref())
            .bind(STOPPED)
            .fetch_all(pool)
            .await
            .map_err(query("list the daemons"))?;
            rows.iter().map(|r| decode(r)).collect()
        })
    }

    /// The other daemons whose last heartbeat is older than `cutoff`: alive ones past
    /// their lease, and takeovers that stalled. Always none on SQLite.
    pub async fn expired_daemons(&self, cutoff: DateTime<Utc>) -> Result<Vec<String>, StoreError> {
        let Pool::Postgres(pool) = &self.pool else {
            return Ok(Vec::new());
        };
        sqlx::query_scalar(
            "SELECT id FROM daemons WHERE heartbeat_at < $1 AND id <> $2 AND state <> $3
             ORDER BY id",
        )
        .bind(millis(cutoff))
        .bind(self.my_id())
        .bind(STOPPED)
        .fetch_all(pool)
        .await
        .map_err(query("find daemons past their lease"))
    }

    /// Takes daemon `dead` over if its last heartbeat is still older than `cutoff`, in one
    /// transaction: marks it `recovering` (heartbeat `now`), queues its running async
    /// calls again and marks its sync calls `interrupted`. `None` when another daemon got
    /// there first, or it came back. The caller then removes its containers and calls
    /// [`Store::forget_daemon`].
    pub async fn take_over(
        &self,
        dead: &str,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<Recovered>, StoreError> {
        let what = "take over a daemon past its lease";
        let mut tx = self.pool.begin().await.map_err(query(what))?;
        // A lock the dead daemon holds is freed when the server ends its idle session; one
        // that outlives that fails this takeover, and the next round tries again, rather
        // than stalling the round.
        if let crate::backend::Tx::Postgres(conn) = &mut tx {
            sqlx::query(TAKEOVER_LOCK_TIMEOUT)
                .execute(&mut **conn)
                .await
                .map_err(query(what))?;
        }
        let taken = on_tx!(&mut tx, |conn, DB| sqlx::query(
            "UPDATE daemons SET state = $1, heartbeat_at = $2
             WHERE id = $3 AND heartbeat_at < $4 AND state <> $5",
        )
        .bind(RECOVERING)
        .bind(millis(now))
        .bind(dead)
        .bind(millis(cutoff))
        .bind(STOPPED)
        .execute(&mut *conn)
        .await
        .map(|done| done.rows_affected()))
        .map_err(query(what))?;
        if taken != 1 {
            tx.rollback().await.map_err(query(what))?;
            return Ok(None);
        }
        // The calls recovered become this daemon's: the dead one, should it come back,
        // can no longer write their records (see `Store::write_calls`).
        let whose = crate::calls::Whose::Of(dead);
        let me = self.my_id();
        let requeued = crate::queue::requeue_running(&mut tx, whose, &me).await?;
        let interrupted = crate::calls::interrupt_calls(&mut tx, whose, &me, now).await?;
        tx.commit().await.map_err(query(what))?;
        Ok(Some(Recovered {
            requeued,
            interrupted,
        }))
    }

    /// Says that the takeover of daemon `dead` goes on (its heartbeat `now`), so that no
    /// other daemon takes it over again meanwhile.
    pub async fn hold_takeover(&self, dead: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        on_pool!(&self.pool, |pool, DB| sqlx::query(
            "UPDATE daemons SET heartbeat_at = $1 WHERE id = $2 AND state = $3"
        )
        .bind(millis(now))
        .bind(dead)
        .bind(RECOVERING)
        .execute(pool)
        .await
        .map(|_| ()))
        .map_err(query("hold a takeover"))
    }

    /// Removes daemon `dead` from the list once its takeover is complete.
    pub async fn forget_daemon(&self, dead: &str) -> Result<(), StoreError> {
        on_pool!(&self.pool, |pool, DB| sqlx::query(
            "DELETE FROM daemons WHERE id = $1 AND state = $2"
        )
        .bind(dead)
        .bind(RECOVERING)
        .execute(pool)
        .await
        .map(|_| ()))
        .map_err(query("forget a daemon taken over"))
    }

    /// At a clean stop: this daemon leaves the list, its calls all final; its home keeps
    /// its id for its next start.
    pub async fn leave(&self) -> Result<(), StoreError> {
        let id = self.my_id();
        on_pool!(&self.pool, |pool, DB| sqlx::query(
            "UPDATE daemons SET state = $2 WHERE id = $1 AND state = $3"
        )
        .bind(&id)
        .bind(STOPPED)
        .bind(ALIVE)
        .execute(pool)
        .await
        .map(|_| ()))
        .map_err(query("remove the daemon from the list"))
    }
}

fn decode(row: &dyn Columns) -> Result<DaemonRecord, StoreError> {
    let id = row
        .text("id")
        .map_err(|e| crate::error::corrupt("daemon", format!("id: {e}")))?
        .unwrap_or_default();
    let r = RowReader {
        row,
        what: format!("daemon {id}"),
    };
    let state = match r.text("state")?.as_str() {
        ALIVE => DaemonState::Alive,
        RECOVERING => DaemonState::Recovering,
        STOPPED => DaemonState::Stopped,
        other => {
            return Err(crate::error::corrupt(
                r.what.clone(),
                format!("state: unknown {other:?}"),
            ))
        }
    };
    Ok(DaemonRecord {
        id,
        address: r.text_opt("address")?,
        state,
        started_at: r.time("started_at")?,
        heartbeat_at: r.time("heartbeat_at")?,
        running_calls: r.unsigned("running_calls")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CallWrite, Payload};
    use chrono::Duration;
    use skiff_core::{CallRecord, CallStatus, Trigger};
    use uuid::Uuid;

    fn call(trigger: Trigger, status: CallStatus) -> CallRecord {
        CallRecord::new(Uuid::now_v7(), "f", trigger, status, Utc::now())
    }

    fn payload() -> Payload {
        Payload {
            body: b"x".to_vec(),
            ..Payload::default()
        }
    }

    async fn status(store: &Store, record: &CallRecord) -> CallStatus {
        store
            .get_call(record.id)
            .await
            .expect("get")
            .expect("a call")
            .status
    }

    crate::testing::backend_tests! {
    async fn a_silent_daemon_is_taken_over_once_and_only_its_calls_are_recovered(kit) {
        let a = kit.shared_store().await;
        a.bind_daemon_id("/srv/a").await.expect("bind a");
        let now = Utc::now();
        let first = a.heartbeat(Some("127.0.0.1:8080"), now).await.expect("beat");
        // Listed at its first beat on SQLite; by `bind_daemon_id` on PostgreSQL.
        assert!(matches!(first, Beat::Alive | Beat::Listed), "{first:?}");
        let listed = a.daemons().await.expect("daemons");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, a.daemon_id().await.expect("id"));
        assert_eq!(listed[0].address.as_deref(), Some("127.0.0.1:8080"));
        assert_eq!(listed[0].state, DaemonState::Alive);
        if kit.backend() == Backend::Sqlite {
            // One daemon per file: nobody to take over.
            assert!(a
                .expired_daemons(now + Duration::hours(1))
                .await
                .expect("expired")
                .is_empty());
            return;
        }
        let b = kit.reopen().await;
        b.bind_daemon_id("/srv/b").await.expect("bind b");
        let c = kit.reopen().await;
        c.bind_daemon_id("/srv/c").await.expect("bind c");
        let (a_id, b_id) = (a.my_id(), b.my_id());
        assert_ne!(a_id, b_id);

        // Each runs an async call and a sync call.
        let (a_async, b_async) = (call(Trigger::Async, CallStatus::Queued), call(Trigger::Async, CallStatus::Queued));
        a.enqueue_all(&[(a_async.clone(), payload()), (b_async.clone(), payload())])
            .await
            .expect("enqueue");
        let a_claimed = a.claim(now, 1).await.expect("claim");
        assert_eq!(a_claimed.len(), 1);
        let a_claimed = a_claimed[0].record.clone();
        assert_eq!(b.claim(now, 1).await.expect("claim").len(), 1);
        let (a_sync, b_sync) = (call(Trigger::Http, CallStatus::Running), call(Trigger::Http, CallStatus::Running));
        a.write_calls(&[CallWrite { record: a_sync.clone(), logs: None }]).await.expect("write");
        b.write_calls(&[CallWrite { record: b_sync.clone(), logs: None }]).await.expect("write");

        // a goes silent; b and c beat.
        assert_eq!(a.heartbeat(None, now - Duration::seconds(60)).await.expect("beat"), Beat::Alive);
        assert_eq!(b.heartbeat(None, now).await.expect("beat"), Beat::Alive);
        assert_eq!(c.heartbeat(None, now).await.expect("beat"), Beat::Alive);
        let cutoff = now - Duration::seconds(15);
        assert_eq!(b.expired_daemons(cutoff).await.expect("expired"), vec![a_id.clone()]);
        assert!(a.expired_daemons(cutoff).await.expect("expired").is_empty(), "not itself");

        // b takes it over; c, a moment later, finds it taken.
        let recovered = b.take_over(&a_id, cutoff, now).await.expect("take over");
        assert_eq!(recovered, Some(Recovered { requeued: 1, interrupted: 1 }));
        assert_eq!(c.take_over(&a_id, cutoff, now).await.expect("again"), None);
        assert_eq!(a.heartbeat(None, now).await.expect("beat"), Beat::TakenOver, "a lost its lease");
        assert_eq!(status(&b, &a_sync).await, CallStatus::Failed);

        // Fenced: a, back, finishes what it was running; its writes are dropped, the
        // requeued call keeps its payload and the sync call stays interrupted.
        let finished = |r: &CallRecord| {
            let mut r = r.clone();
            r.status = CallStatus::Succeeded;
            r.finished_at = Some(now);
            CallWrite { record: r, logs: Some(b"stale".to_vec()) }
        };
        a.write_calls(&[finished(&a_claimed), finished(&a_sync)]).await.expect("write");
        assert_eq!(status(&b, &a_claimed).await, CallStatus::Queued);
        assert!(b.payload(a_claimed.id).await.expect("payload").is_some(), "the payload stays");
        assert_eq!(status(&b, &a_sync).await, CallStatus::Failed);
        assert_ne!(b.call_logs(a_sync.id).await.expect("logs").as_deref(), Some(&b"stale"[..]));

        let requeued = b.claim(now, 10).await.expect("claim");
        assert_eq!(requeued.len(), 1, "a's async call is queued again");
        assert_eq!(requeued[0].record.id, a_claimed.id);
        assert_eq!(requeued[0].payload.body, b"x");
        // Its new runner writes it.
        b.write_calls(&[finished(&requeued[0].record)]).await.expect("write");
        assert_eq!(status(&b, &a_claimed).await, CallStatus::Succeeded);
        assert!(b.payload(a_claimed.id).await.expect("payload").is_none());
        // b's own calls are untouched, and its start-up recovery touches only its own.
        assert_eq!(status(&b, &b_sync).await, CallStatus::Running);
        assert_eq!(c.interrupt_unfinished_calls(now).await.expect("interrupt"), 0);
        assert_eq!(c.requeue_interrupted().await.expect("requeue"), 0);
        assert_eq!(status(&b, &b_sync).await, CallStatus::Running);

        let listed = c.daemons().await.expect("daemons");
        let of = |id: &str| listed.iter().find(|d| d.id == id).cloned().expect("listed");
        assert_eq!(of(&a_id).state, DaemonState::Recovering);
        assert_eq!(of(&b_id).running_calls, 2, "its sync call and its async call");

        // a's data directory started again during the takeover: a new id.
        let again = kit.reopen().await;
        again.bind_daemon_id("/srv/a").await.expect("bind");
        assert_ne!(again.my_id(), a_id);
        b.forget_daemon(&a_id).await.expect("forget");
        let ids: Vec<String> = c.daemons().await.expect("daemons").into_iter().map(|d| d.id).collect();
        assert!(!ids.contains(&a_id), "{ids:?}");
        // a, still running under its old id, stays out: its home has a daemon again.
        assert_eq!(a.heartbeat(None, now).await.expect("beat"), Beat::TakenOver);
        // A clean stop leaves the list, and is never taken over; a restart there keeps
        // the id.
        c.leave().await.expect("leave");
        assert!(!b.daemons().await.expect("daemons").iter().any(|d| d.id == c.my_id()));
        assert!(b
            .expired_daemons(now + Duration::hours(1))
            .await
            .expect("expired")
            .iter()
            .all(|id| *id != c.my_id()));
        let c_again = kit.reopen().await;
        c_again.bind_daemon_id("/srv/c").await.expect("bind");
        assert_eq!(c_again.my_id(), c.my_id());
        assert_eq!(c_again.heartbeat(None, now).await.expect("beat"), Beat::Alive);
        assert!(b.daemons().await.expect("daemons").iter().any(|d| d.id == c.my_id()));
    }

    async fn changes_to_functions_and_triggers_are_heard_by_other_daemons(kit) {
        let a = kit.store().await;
        let Some(mut changes) = a.listen().await.expect("listen") else {
            assert_eq!(kit.backend(), Backend::Sqlite, "only SQLite has none");
            return;
        };
        let b = kit.reopen().await;
        let function = skiff_core::Function {
            name: skiff_core::FunctionName::parse("heard").expect("name"),
            config: skiff_core::FunctionSpec {
                image: "heard:1".into(),
                ..Default::default()
            }
            .validate()
            .expect("valid"),
            image_digest: "sha256:heard".into(),
            version: 1,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        b.put_function(&function).await.expect("put");
        b.delete_function("heard").await.expect("delete");
        // Other tests on the same server announce their own changes: skip them.
        let mut heard = 0;
        while heard < 2 {
            let change = tokio::time::timeout(std::time::Duration::from_secs(10), changes.next())
                .await
                .expect("heard within 10s")
                .expect("a change");
            if change == crate::Change::Function("heard".into()) {
                heard += 1;
            }
        }
    }
    }

    /// A daemon stopped in the middle of a transaction (paused, partitioned) holds the rows
    /// it locked; the server ends its idle session, and the takeover goes through.
    #[tokio::test]
    async fn a_takeover_is_not_held_up_by_a_transaction_the_silent_daemon_left_open() {
        let Some(mut kit) = crate::testing::Kit::postgres("a_takeover_is_not_held_up") else {
            return;
        };
        let a = kit.shared_store().await;
        a.bind_daemon_id("/srv/a").await.expect("bind a");
        let b = kit.reopen().await;
        b.bind_daemon_id("/srv/b").await.expect("bind b");
        let now = Utc::now();
        let queued = call(Trigger::Async, CallStatus::Queued);
        a.enqueue_all(&[(queued.clone(), payload())])
            .await
            .expect("enqueue");
        assert_eq!(a.claim(now, 1).await.expect("claim").len(), 1);
        assert_eq!(
            a.heartbeat(None, now - Duration::seconds(60))
                .await
                .expect("beat"),
            Beat::Alive
        );

        // a stops between two statements of a transaction that locked its call.
        let mut open = a.pool.begin().await.expect("begin");
        let locked: Vec<String> = crate::backend::on_tx!(&mut open, |conn, DB| sqlx::query_scalar(
            "SELECT CAST(id AS TEXT) FROM calls WHERE daemon = $1 FOR UPDATE"
        )
        .bind(a.my_id())
        .fetch_all(&mut *conn)
        .await)
        .expect("lock");
        assert_eq!(locked.len(), 1);

        let cutoff = now - Duration::seconds(15);
        let recovered = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            b.take_over(&a.my_id(), cutoff, now),
        )
        .await;
        // Its session is gone by now; ending the transaction (or finding it ended) first
        // lets the schema be dropped whatever the outcome.
        let _ = open.rollback().await;
        let recovered = recovered
            .expect("the takeover waited on the silent daemon's locks")
            .expect("take over");
        assert_eq!(
            recovered,
            Some(Recovered {
                requeued: 1,
                interrupted: 0
            })
        );
    }
}
