//! The durable queue of async calls: a call is enqueued (its record `queued` and its payload)
//! in one transaction before the caller is told it was accepted; a dispatcher claims due
//! calls (they become `running`), and each ends, or goes back to the queue for a later
//! attempt, or dies. A call `running` when the daemon stopped goes back to the queue at the
//! next start: delivery is at least once.
//!
//! A payload is kept while its call may still run: until the call succeeds. It is deleted
//! in the transaction that records the call as `succeeded` (or, when the call has a
//! callback still to send, once that callback is sent or given up). A `dead` call keeps its
//! payload, since it can be redriven.

use crate::backend::{on_pool, on_tx, Tx};
use crate::codec::{millis, text};
use crate::error::query;
use crate::{Store, StoreError};
use chrono::{DateTime, Utc};
use skiff_core::{CallErrorType, CallRecord, CallStatus};
use std::collections::HashMap;
use uuid::Uuid;

/// What a queued call carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// HTTP method.
    pub method: String,
    /// Path below the function's route.
    pub path: String,
    /// Query string.
    pub query: String,
    /// Request headers, as (name, value) pairs.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Vec<u8>,
    /// Past this time the call is not attempted again (its function's `max_event_age`).
    pub expires_at: Option<DateTime<Utc>>,
    /// Where the call's result is sent once it is final.
    pub callback_url: Option<String>,
}

/// An empty `POST` to the function's root: what a claimed call whose payload is gone runs
/// with.
impl Default for Payload {
    fn default() -> Self {
        Payload {
            method: "POST".into(),
            path: "/".into(),
            query: String::new(),
            headers: Vec::new(),
            body: Vec::new(),
            expires_at: None,
            callback_url: None,
        }
    }
}

/// A call claimed from the queue.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// Its record (status `running` now).
    pub record: CallRecord,
    /// What it carries.
    pub payload: Payload,
}

/// A result to send to a call's callback URL.
#[derive(Debug, Clone)]
pub struct PendingCallback {
    /// The call's final record.
    pub record: CallRecord,
    /// Where to send it.
    pub url: String,
    /// What the call answered, if it answered.
    pub result: Option<StoredResult>,
}

/// What an async call answered, as stored (the body capped by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResult {
    /// Response status.
    pub status_code: u16,
    /// Response content type.
    pub content_type: Option<String>,
    /// Size of the whole response body.
    pub size: u64,
    /// The kept part of the body.
    pub body: Vec<u8>,
}

/// A `call_payloads` row, in `PAYLOAD_COLUMNS` order.
pub(crate) type PayloadRow = (
    String,
    String,
    String,
    String,
    Vec<u8>,
    Option<i64>,
    Option<String>,
    String,
);

pub(crate) fn payload_of(row: PayloadRow) -> Payload {
    let (method, path, query, headers, body, expires_at, callback_url, _) = row;
    Payload {
        method,
        path,
        query,
        headers: serde_json::from_str(&headers).unwrap_or_default(),
        body,
        expires_at: expires_at.and_then(DateTime::from_timestamp_millis),
        callback_url,
    }
}

const CALLBACK_PENDING: &str = "pending";
const CALLBACK_SENT: &str = "sent";
const CALLBACK_FAILED: &str = "failed";

/// Payload rows per multi-row statement (9 parameters each).
pub(crate) const PAYLOAD_ROWS: usize = 1000;

macro_rules! payload_columns {
    () => {
        "method, path, query, headers, body, expires_at, callback_url, call_id"
    };
}
pub(crate) use payload_columns;

impl Store {
    /// Stores a `queued` call and its payload in one transaction: once this returns, the
    /// call survives any crash of the daemon.
    pub async fn enqueue(&self, record: &CallRecord, payload: &Payload) -> Result<(), StoreError> {
        self.enqueue_all(&[(record.clone(), payload.clone())]).await
    }

    /// Stores several `queued` calls and their payloads in one transaction (group commit):
    /// once this returns, all of them survive a crash; on error, none was stored.
    pub async fn enqueue_all(&self, calls: &[(CallRecord, Payload)]) -> Result<(), StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query("begin a transaction"))?;
        let writes: Vec<crate::CallWrite> = calls
            .iter()
            .map(|(record, _)| crate::CallWrite {
                record: record.clone(),
                logs: None,
            })
            .collect();
        self.write_calls_in(&mut tx, &writes).await?;
        on_tx!(&mut tx, |conn, DB| {
            for chunk in calls.chunks(PAYLOAD_ROWS) {
                let mut insert = sqlx::QueryBuilder::<DB>::new(concat!(
                    "INSERT INTO call_payloads (",
                    payload_columns!(),
                    ", callback_state) "
                ));
                insert.push_values(chunk, |mut row, (record, payload)| {
                    let headers =
                        serde_json::to_string(&payload.headers).unwrap_or_else(|_| "[]".into());
                    row.push_bind(payload.method.clone())
                        .push_bind(payload.path.clone())
                        .push_bind(payload.query.clone())
                        .push_bind(headers)
                        .push_bind(payload.body.clone())
                        .push_bind(payload.expires_at.map(millis))
                        .push_bind(payload.callback_url.clone())
                        .push_bind(record.id.hyphenated().to_string())
                        .push_bind(payload.callback_url.as_ref().map(|_| CALLBACK_PENDING));
                });
                insert.push(
                    " ON CONFLICT (call_id) DO UPDATE SET method = excluded.method, \
                     path = excluded.path, query = excluded.query, headers = excluded.headers, \
                     body = excluded.body, expires_at = excluded.expires_at, \
                     callback_url = excluded.callback_url, \
                     callback_state = excluded.callback_state",
                );
                insert
                    .build()
                    .execute(&mut *conn)
                    .await
                    .map_err(query("store calls' payloads"))?;
            }
            Ok::<_, StoreError>(())
        })?;
        tx.commit().await.map_err(query("commit enqueued calls"))?;
        Ok(())
    }

    /// Puts a call back in the queue for attempt `attempt`, not before `not_before`, keeping
    /// the last error on its record.
    pub async fn requeue(
        &self,
        id: Uuid,
        attempt: u32,
        not_before: DateTime<Utc>,
        error: Option<(CallErrorType, String)>,
    ) -> Result<(), StoreError> {
        let (error_type, message) = match error {
            Some((kind, message)) => (Some(kind.as_str()), Some(text(&message))),
            None => (None, None),
        };
        on_pool!(&self.pool, |pool, DB| sqlx::query(
            "UPDATE calls SET status = $1, attempt = $2, not_before = $3, error_type = $4,
                error_message = $5, finished_at = NULL WHERE id = $6",
        )
        .bind(CallStatus::Queued.as_str())
        .bind(i64::from(attempt))
        .bind(millis(not_before))
        .bind(error_type)
        .bind(&message)
        .bind(id.hyphenated().to_string())
        .execute(pool)
        .await
        .map(|_| ()))
        .map_err(query("requeue a call"))
    }

    /// Marks a failed call `dead`: no attempt is left.
    pub async fn kill_call(&self, id: Uuid) -> Result<(), StoreError> {
        on_pool!(&self.pool, |pool, DB| sqlx::query(
            "UPDATE calls SET status = $1 WHERE id = $2 AND status IN ($3, $4)"
        )
        .bind(CallStatus::Dead.as_str())
        .bind(id.hyphenated().to_string())
        .bind(CallStatus::Failed.as_str())
        .bind(CallStatus::TimedOut.as_str())
        .execute(pool)
        .await
        .map(|_| ()))
        .map_err(query("mark a call dead"))
    }

    /// Re-queues a `dead` call for a new round of attempts, to expire at `expires_at`
    /// (its callback, if any, is sent again at the end); false if it was not dead.
    pub async fn redrive(
        &self,
        id: Uuid,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query("begin a transaction"))?;
        let done = on_tx!(&mut tx, |conn, DB| {
            let done = sqlx::query(
                "UPDATE calls SET status = $1, attempt = 1, not_before = NULL, finished_at = NULL
                 WHERE id = $2 AND status = $3",
            )
            .bind(CallStatus::Queued.as_str())
            .bind(id.hyphenated().to_string())
            .bind(CallStatus::Dead.as_str())
            .execute(&mut *conn)
            .await
            .map_err(query("redrive a call"))?;
            sqlx::query(
                "UPDATE call_payloads SET expires_at = $1,
                    callback_state = CASE WHEN callback_url IS NULL THEN NULL ELSE $2 END
                 WHERE call_id = $3",
            )
            .bind(expires_at.map(millis))
            .bind(CALLBACK_PENDING)
            .bind(id.hyphenated().to_string())
            .execute(&mut *conn)
            .await
            .map_err(query("redrive a call"))?;
            done.rows_affected() == 1
        });
        tx.commit().await.map_err(query("commit a redrive"))?;
        Ok(done)
    }

    /// At start-up: calls of this daemon that came through the queue (async, cron, ...)
    /// and were left `running` when it stopped go back to the queue.
    pub async fn requeue_interrupted(&self) -> Result<u64, StoreError> {
        let what = "requeue interrupted calls";
        let mut tx = self.pool.begin().await.map_err(query(what))?;
        let me = self.my_id();
        let done = requeue_running(&mut tx, self.own_calls(&me), &me).await?;
        tx.commit().await.map_err(query(what))?;
        Ok(done)
    }

    /// Keeps what call `id` answered (replacing an earlier attempt's).
    pub async fn put_result(&self, id: Uuid, result: &StoredResult) -> Result<(), StoreError> {
        self.put_results(&[(id, result.clone())]).await
    }

    /// Keeps what each call answered (replacing an earlier attempt's), in one transaction.
    pub async fn put_results(&self, results: &[(Uuid, StoredResult)]) -> Result<(), StoreError> {
        // One row per call, its last result: a statement may not upsert a row twice.
        let mut last: HashMap<Uuid, usize> = HashMap::with_capacity(results.len());
        for (i, (id, _)) in results.iter().enumerate() {
            last.insert(*id, i);
        }
        let rows: Vec<&(Uuid, StoredResult)> = results
            .iter()
            .enumerate()
            .filter(|(i, (id, _))| last.get(id) == Some(i))
            .map(|(_, row)| row)
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query("begin a transaction"))?;
        on_tx!(&mut tx, |conn, DB| {
            for chunk in rows.chunks(PAYLOAD_ROWS) {
                let mut insert = sqlx::QueryBuilder::<DB>::new(
                    "INSERT INTO call_results (call_id, status_code, content_type, size, body) ",
                );
                insert.push_values(chunk, |mut row, (id, result)| {
                    row.push_bind(id.hyphenated().to_string())
                        .push_bind(i64::from(result.status_code))
                        .push_bind(result.content_type.as_deref())
                        .push_bind(crate::codec::int(result.size))
                        .push_bind(result.body.as_slice());
                });
                insert.push(
                    " ON CONFLICT (call_id) DO UPDATE SET status_code = excluded.status_code, \
                     content_type = excluded.content_type, size = excluded.size, \
                     body = excluded.body",
                );
                insert
                    .build()
                    .execute(&mut *conn)
                    .await
                    .map_err(query("store calls' results"))?;
            }
            Ok::<_, StoreError>(())
        })?;
        tx.commit().await.map_err(query("commit calls' results"))?;
        Ok(())
    }

    /// What an async call answered, if it answered.
    pub async fn get_result(&self, id: Uuid) -> Result<Option<StoredResult>, StoreError> {
        let row: Option<(i64, Option<String>, i64, Vec<u8>)> =
            on_pool!(&self.pool, |pool, DB| sqlx::query_as(
                "SELECT status_code, content_type, size, body FROM call_results \
                 WHERE call_id = $1",
            )
            .bind(id.hyphenated().to_string())
            .fetch_optional(pool)
            .await)
            .map_err(query("read a call's result"))?;
        Ok(row.map(|(status, content_type, size, body)| StoredResult {
            status_code: u16::try_from(status).unwrap_or(0),
            content_type,
            size: u64::try_from(size).unwrap_or(0),
            body,
        }))
    }

    /// Callbacks still to send for calls that reached a final status (`succeeded`, `dead`):
    /// those of `id` only, or all of them (at start-up, after a crash).
    pub async fn pending_callbacks(
        &self,
        id: Option<Uuid>,
    ) -> Result<Vec<PendingCallback>, StoreError> {
        let rows: Vec<(String, String)> = on_pool!(&self.pool, |pool, DB| {
            sqlx::query_as(
            "SELECT p.call_id, p.callback_url FROM call_payloads p JOIN calls c ON c.id = p.call_id
             WHERE p.callback_state = $1 AND c.status IN ($2, $3)
                AND (CAST($4 AS TEXT) IS NULL OR p.call_id = $4)
             ORDER BY p.call_id",
        )
        .bind(CALLBACK_PENDING)
        .bind(CallStatus::Succeeded.as_str())
        .bind(CallStatus::Dead.as_str())
        .bind(id.map(|id| id.hyphenated().to_string()))
        .fetch_all(pool)
        .await
        })
        .map_err(query("find pending callbacks"))?;
        let mut pending = Vec::with_capacity(rows.len());
        for (id, url) in rows {
            let id = Uuid::parse_str(&id)
                .map_err(|e| crate::error::corrupt("call", format!("id {id}: {e}")))?;
            if let Some(record) = self.get_call(id).await? {
                let result = self.get_result(id).await?;
                pending.push(PendingCallback {
                    record,
                    url,
                    result,
                });
            }
        }
        Ok(pending)
    }

    /// Records how a call's callback ended: sent, or given up after its attempts. The
    /// payload of a succeeded call, kept for its callback, goes then.
    pub async fn finish_callback(&self, id: Uuid, sent: bool) -> Result<(), StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query("begin a transaction"))?;
        on_tx!(&mut tx, |conn, DB| {
            sqlx::query("UPDATE call_payloads SET callback_state = $1 WHERE call_id = $2")
                .bind(if sent { CALLBACK_SENT } else { CALLBACK_FAILED })
                .bind(id.hyphenated().to_string())
                .execute(&mut *conn)
                .await
                .map_err(query("record a callback"))?;
            sqlx::query(
                "DELETE FROM call_payloads WHERE call_id = $1
                    AND EXISTS (SELECT 1 FROM calls WHERE id = $1 AND status = $2)",
            )
            .bind(id.hyphenated().to_string())
            .bind(CallStatus::Succeeded.as_str())
            .execute(&mut *conn)
            .await
            .map_err(query("delete a succeeded call's payload"))?;
            Ok::<_, StoreError>(())
        })?;
        tx.commit().await.map_err(query("commit a callback"))?;
        Ok(())
    }

    /// The payload of call `id`, while it is kept (see the module's documentation).
    pub async fn payload(&self, id: Uuid) -> Result<Option<Payload>, StoreError> {
        let row: Option<PayloadRow> = on_pool!(&self.pool, |pool, DB| sqlx::query_as(concat!(
            "SELECT ",
            payload_columns!(),
            " FROM call_payloads WHERE call_id = $1"
        ))
        .bind(id.hyphenated().to_string())
        .fetch_optional(pool)
        .await)
        .map_err(query("read a call's payload"))?;
        Ok(row.map(payload_of))
    }
}

/// Puts the calls of `whose` that came through the queue and are `running` back in the
/// queue, as daemon `to`'s until one claims them (the fence: the daemon that ran them can
/// no longer write their records); returns how many.
pub(crate) async fn requeue_running(
    tx: &mut Tx,
    whose: crate::calls::Whose<'_>,
    to: &str,
) -> Result<u64, StoreError> {
    let (owner, unowned, any) = whose.binds();
    on_tx!(tx, |conn, DB| sqlx::query(
        "UPDATE calls SET status = $1, daemon = $6
         WHERE status = $2 AND id IN (SELECT call_id FROM call_payloads)
            AND (daemon = $3 OR ($4 AND daemon IS NULL) OR $5)",
    )
    .bind(CallStatus::Queued.as_str())
    .bind(CallStatus::Running.as_str())
    .bind(&owner)
    .bind(unowned)
    .bind(any)
    .bind(to)
    .execute(&mut *conn)
    .await
    .map(|done| done.rows_affected()))
    .map_err(query("requeue interrupted calls"))
}

/// Inside the transaction that records calls `ids` as `succeeded`: deletes their payloads,
/// as a succeeded call never runs again, except those whose callback is still to be sent
/// (they go once it is, in [`Store::finish_callback`]) and those whose record was not
/// written (fenced: a daemon taken over wrote it, and the call is queued again).
pub(crate) async fn release_payloads(tx: &mut Tx, ids: &[Uuid]) -> Result<(), StoreError> {
    on_tx!(tx, |conn, DB| {
        for chunk in ids.chunks(PAYLOAD_ROWS) {
            let mut delete =
                sqlx::QueryBuilder::<DB>::new("DELETE FROM call_payloads WHERE call_id IN (");
            let mut list = delete.separated(", ");
            for id in chunk {
                list.push_bind(id.hyphenated().to_string());
            }
            delete
                .push(") AND callback_state IS DISTINCT FROM ")
                .push_bind(CALLBACK_PENDING)
                .push(" AND call_id IN (SELECT id FROM calls WHERE status = ")
                .push_bind(CallStatus::Succeeded.as_str())
                .push(")");
            delete
                .build()
                .execute(&mut *conn)
                .await
                .map_err(query("delete succeeded calls' payloads"))?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use skiff_core::Trigger;

    fn queued(id: Uuid) -> CallRecord {
        CallRecord {
            id,
            function: "f".into(),
            trigger: Trigger::Async,
            status: CallStatus::Queued,
            attempt: 1,
            received_at: Utc::now(),
            started_at: None,
            finished_at: None,
            cold: None,
            instance: None,
            exit_code: None,
            error_type: None,
            error_message: None,
            request_size: 3,
            response_size: None,
            duration_ms: None,
            wait_ms: None,
            start_ms: None,
            caller: None,
            parent: None,
            depth: 0,
        }
    }

    fn payload() -> Payload {
        Payload {
            method: "POST".into(),
            path: "/x".into(),
            query: "a=1".into(),
            headers: vec![("x-h".into(), "v".into())],
            body: b"abc".to_vec(),
            expires_at: None,
            callback_url: None,
        }
    }

    crate::testing::backend_tests! {
    async fn a_claim_takes_no_more_of_a_function_than_its_room(kit) {
        let store = kit.store().await;
        let mut ids = Vec::new();
        for function in ["narrow", "narrow", "narrow", "wide", "wide", "full"] {
            let mut record = queued(Uuid::now_v7());
            record.function = function.into();
            ids.push(record.id);
            store.enqueue(&record, &payload()).await.expect("enqueue");
        }
        let rooms = [("narrow".to_string(), 2), ("full".to_string(), 0)].into();
        let claimed = store
            .claim_within(Utc::now(), 10, &rooms)
            .await
            .expect("claim");
        let names: Vec<&str> = claimed.iter().map(|c| c.record.function.as_str()).collect();
        assert_eq!(
            names,
            ["narrow", "narrow", "wide", "wide"],
            "oldest first, within rooms"
        );
        // What was left is still queued, for a later claim with room.
        let rest = store.claim(Utc::now(), 10).await.expect("claim");
        assert_eq!(
            rest.iter().map(|c| c.record.id).collect::<Vec<_>>(),
            vec![ids[2], ids[5]]
        );
    }

    async fn a_claim_takes_the_oldest_due_across_functions_up_to_its_limit(kit) {
        let store = kit.store().await;
        let later = Utc::now() + Duration::hours(1);
        let mut due = Vec::new();
        for (i, function) in ["b", "a", "c", "a", "b", "c", "a"].into_iter().enumerate() {
            let mut record = queued(Uuid::now_v7());
            record.function = function.into();
            store.enqueue(&record, &payload()).await.expect("enqueue");
            if i == 1 {
                // Retried later: `a`'s oldest call is not due, and the claim passes over it.
                store.requeue(record.id, 2, later, None).await.expect("requeue");
            } else {
                due.push(record.id);
            }
        }
        let claimed = store.claim(Utc::now(), 4).await.expect("claim");
        assert_eq!(
            claimed.iter().map(|c| c.record.id).collect::<Vec<_>>(),
            due[..4].to_vec(),
            "the four oldest due calls, whatever their function"
        );
        let rest = store.claim(Utc::now(), 10).await.expect("claim");
        assert_eq!(
            rest.iter().map(|c| c.record.id).collect::<Vec<_>>(),
            due[4..].to_vec()
        );
        assert!(store.claim(Utc::now(), 10).await.expect("claim").is_empty());
        let when_due = store.claim(later, 10).await.expect("claim");
        assert_eq!(when_due.len(), 1, "the retried call, once due");
        assert_eq!(when_due[0].record.function, "a");
    }

    async fn calls_are_claimed_once_retried_when_due_killed_and_redriven(kit) {
        let store = kit.store().await;
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        store
            .enqueue(&queued(a), &payload())
            .await
            .expect("enqueue a");
        store
            .enqueue(&queued(b), &payload())
            .await
            .expect("enqueue b");
        let now = Utc::now();
        let first = store.claim(now, 1).await.expect("claim");
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].record.id, a, "oldest first");
        assert_eq!(first[0].record.status, CallStatus::Running);
        assert_eq!(first[0].payload, payload());
        let second = store.claim(now, 10).await.expect("claim");
        assert_eq!(
            second.iter().map(|c| c.record.id).collect::<Vec<_>>(),
            vec![b],
            "a is not claimed twice"
        );

        store
            .requeue(
                a,
                2,
                now + Duration::seconds(60),
                Some((CallErrorType::FunctionError, "boom".into())),
            )
            .await
            .expect("requeue");
        assert!(
            store.claim(now, 10).await.expect("claim").is_empty(),
            "not due yet"
        );
        let again = store
            .claim(now + Duration::seconds(61), 10)
            .await
            .expect("claim");
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].record.attempt, 2);
        assert_eq!(again[0].record.error_message.as_deref(), Some("boom"));

        let mut failed = again[0].record.clone();
        failed.status = CallStatus::Failed;
        store
            .write_calls(&[crate::CallWrite {
                record: failed,
                logs: None,
            }])
            .await
            .expect("write");
        store.kill_call(a).await.expect("kill");
        assert_eq!(
            store.get_call(a).await.expect("get").map(|r| r.status),
            Some(CallStatus::Dead)
        );
        assert!(store.redrive(a, None).await.expect("redrive"));
        assert!(
            !store.redrive(a, None).await.expect("redrive twice"),
            "only dead calls are redriven"
        );
        assert_eq!(
            store.get_call(a).await.expect("get").map(|r| r.status),
            Some(CallStatus::Queued)
        );

        // b was left running, as by a daemon killed mid-call: it goes back to the queue.
        assert_eq!(store.requeue_interrupted().await.expect("requeue"), 1);
        let resumed = store.claim(Utc::now(), 10).await.expect("claim");
        let mut ids: Vec<Uuid> = resumed.iter().map(|c| c.record.id).collect();
        ids.sort();
        let mut expected = vec![a, b];
        expected.sort();
        assert_eq!(ids, expected);
    }
    }

    async fn set_status(store: &Store, id: Uuid, status: CallStatus) {
        let mut record = store.get_call(id).await.expect("get").expect("a call");
        record.status = status;
        store
            .write_calls(&[crate::CallWrite { record, logs: None }])
            .await
            .expect("write");
    }

    crate::testing::backend_tests! {
    async fn a_payload_goes_once_its_call_succeeded_and_stays_while_it_can_be_redriven(kit) {
        let store = kit.store().await;
        let (ok, dead, hooked) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let mut with_callback = payload();
        with_callback.callback_url = Some("http://127.0.0.1:1/hook".into());
        store
            .enqueue_all(&[
                (queued(ok), payload()),
                (queued(dead), payload()),
                (queued(hooked), with_callback.clone()),
            ])
            .await
            .expect("enqueue");
        assert_eq!(store.claim(Utc::now(), 10).await.expect("claim").len(), 3);

        // Succeeded: it never runs again, so its payload is gone with that very write.
        set_status(&store, ok, CallStatus::Succeeded).await;
        assert_eq!(store.payload(ok).await.expect("payload"), None);
        assert!(store.redrive(ok, None).await.is_ok_and(|done| !done));

        // Dead: it can be redriven, so its payload stays, and the redriven call carries it.
        set_status(&store, dead, CallStatus::Failed).await;
        store.kill_call(dead).await.expect("kill");
        assert_eq!(store.payload(dead).await.expect("payload"), Some(payload()));
        assert!(store.redrive(dead, None).await.expect("redrive"));
        let again = store.claim(Utc::now(), 10).await.expect("claim");
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].record.id, dead);
        assert_eq!(again[0].payload, payload());
        // Then it succeeds: its payload goes too.
        set_status(&store, dead, CallStatus::Succeeded).await;
        assert_eq!(store.payload(dead).await.expect("payload"), None);

        // Succeeded with a callback to send: the payload (which holds the URL) stays until
        // the callback is done.
        set_status(&store, hooked, CallStatus::Succeeded).await;
        assert!(store.payload(hooked).await.expect("payload").is_some());
        assert_eq!(
            store
                .pending_callbacks(Some(hooked))
                .await
                .expect("pending")
                .len(),
            1
        );
        store.finish_callback(hooked, false).await.expect("finish");
        assert_eq!(store.payload(hooked).await.expect("payload"), None);
        assert!(store
            .pending_callbacks(None)
            .await
            .expect("pending")
            .is_empty());
        // The records themselves stay.
        for id in [ok, dead, hooked] {
            assert!(store.get_call(id).await.expect("get").is_some());
        }
    }
    }

    crate::testing::backend_tests! {
    async fn results_committed_together_are_each_kept_the_last_one_winning(kit) {
        let store = kit.store().await;
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        for id in &ids {
            store.enqueue(&queued(*id), &payload()).await.expect("enqueue");
        }
        let answer = |status_code: u16, body: &str| StoredResult {
            status_code,
            content_type: Some("text/plain".into()),
            size: body.len() as u64,
            body: body.as_bytes().to_vec(),
        };
        store
            .put_results(&[
                (ids[0], answer(200, "a")),
                (ids[1], answer(500, "first")),
                (ids[1], answer(201, "second")),
                (ids[2], answer(202, "")),
            ])
            .await
            .expect("results");
        // A later attempt's result replaces the earlier one.
        store.put_result(ids[0], &answer(203, "again")).await.expect("result");
        let kept = |i: usize| {
            let store = store.clone();
            let id = ids[i];
            async move { store.get_result(id).await.expect("get").expect("kept") }
        };
        assert_eq!(kept(0).await, answer(203, "again"));
        assert_eq!(kept(1).await, answer(201, "second"));
        assert_eq!(kept(2).await, answer(202, ""));
        store.put_results(&[]).await.expect("nothing to keep");
    }

    async fn payload_settings_results_and_callbacks_are_kept(kit) {
        let store = kit.store().await;
        let (a, b, sync) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let expires = Utc::now() + Duration::seconds(30);
        let mut with_callback = payload();
        with_callback.expires_at = Some(expires);
        with_callback.callback_url = Some("http://127.0.0.1:1/hook".into());
        let mut cron = queued(b);
        cron.trigger = Trigger::Cron;
        store
            .enqueue_all(&[(queued(a), with_callback.clone()), (cron, payload())])
            .await
            .expect("enqueue");
        let mut running = queued(sync);
        running.trigger = Trigger::Http;
        running.status = CallStatus::Running;
        store
            .write_calls(&[crate::CallWrite {
                record: running,
                logs: None,
            }])
            .await
            .expect("write");

        let claimed = store.claim(Utc::now(), 10).await.expect("claim");
        assert_eq!(claimed.len(), 2);
        let first = claimed.iter().find(|c| c.record.id == a).expect("a");
        assert_eq!(
            first.payload.expires_at.map(|t| t.timestamp_millis()),
            Some(expires.timestamp_millis())
        );
        assert_eq!(first.payload.callback_url, with_callback.callback_url);

        // Every call that came through the queue goes back to it after a crash, whatever
        // its trigger; a sync call does not.
        assert_eq!(store.requeue_interrupted().await.expect("requeue"), 2);
        assert_eq!(
            store.get_call(sync).await.expect("get").map(|r| r.status),
            Some(CallStatus::Running)
        );

        // A callback is pending until its call is final, then until it is sent.
        assert!(store
            .pending_callbacks(None)
            .await
            .expect("pending")
            .is_empty());
        let result = StoredResult {
            status_code: 200,
            content_type: Some("text/plain".into()),
            size: 10,
            body: b"0123".to_vec(),
        };
        store.put_result(a, &result).await.expect("result");
        assert_eq!(
            store.get_result(a).await.expect("get"),
            Some(result.clone())
        );
        let mut done = queued(a);
        done.status = CallStatus::Succeeded;
        store
            .write_calls(&[crate::CallWrite {
                record: done,
                logs: None,
            }])
            .await
            .expect("write");
        let pending = store.pending_callbacks(None).await.expect("pending");
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].record.id, a);
        assert_eq!(pending[0].result, Some(result));
        assert_eq!(
            store
                .pending_callbacks(Some(b))
                .await
                .expect("pending")
                .len(),
            0
        );
        store.finish_callback(a, true).await.expect("finish");
        assert!(store
            .pending_callbacks(None)
            .await
            .expect("pending")
            .is_empty());
    }
    }

    crate::testing::backend_tests! {
    async fn daemons_claiming_at_once_never_take_one_call_twice(kit) {
        let first = kit.shared_store().await;
        let mut daemons = vec![first.clone()];
        for _ in 0..3 {
            daemons.push(kit.reopen().await);
        }
        let calls: Vec<(CallRecord, Payload)> = (0..300)
            .map(|_| (queued(Uuid::now_v7()), payload()))
            .collect();
        first.enqueue_all(&calls).await.expect("enqueue");
        let claimers = daemons.into_iter().map(|store| {
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let claimed = store.claim(Utc::now(), 7).await.expect("claim");
                    if claimed.is_empty() {
                        return mine;
                    }
                    for c in claimed {
                        assert_eq!(c.payload, payload(), "{}", c.record.id);
                        mine.push(c.record.id);
                    }
                }
            })
        });
        let mut claimed = Vec::new();
        let mut claimers_with_calls = 0;
        for claimer in claimers.collect::<Vec<_>>() {
            let mine = claimer.await.expect("claimer");
            claimers_with_calls += usize::from(!mine.is_empty());
            claimed.extend(mine);
        }
        claimed.sort();
        let mut expected: Vec<Uuid> = calls.iter().map(|(r, _)| r.id).collect();
        expected.sort();
        assert_eq!(claimed, expected, "each call claimed exactly once");
        assert!(claimers_with_calls >= 1);
        for (record, _) in &calls {
            assert_eq!(
                first.get_call(record.id).await.expect("get").map(|r| r.status),
                Some(CallStatus::Running)
            );
        }
    }

    async fn an_error_message_with_nul_characters_is_kept_readable(kit) {
        let store = kit.store().await;
        let id = Uuid::now_v7();
        store.enqueue(&queued(id), &payload()).await.expect("enqueue");
        store
            .requeue(
                id,
                2,
                Utc::now(),
                Some((CallErrorType::FunctionError, "bad\0byte".into())),
            )
            .await
            .expect("requeue");
        assert_eq!(
            store
                .get_call(id)
                .await
                .expect("get")
                .and_then(|r| r.error_message),
            Some("bad\u{FFFD}byte".to_string())
        );
    }
    }
}
