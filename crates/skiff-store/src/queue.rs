//! The durable queue of async calls: a call is enqueued (its record `queued` and its payload)
//! in one transaction before the caller is told it was accepted; a dispatcher claims due
//! calls (they become `running`), and each ends, or goes back to the queue for a later
//! attempt, or dies. A call `running` when the daemon stopped goes back to the queue at the
//! next start: delivery is at least once.

use crate::codec::millis;
use crate::error::query;
use crate::{Store, StoreError};
use chrono::{DateTime, Utc};
use skiff_core::{CallErrorType, CallRecord, CallStatus, Trigger};
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
}

/// A call claimed from the queue.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// Its record (status `running` now).
    pub record: CallRecord,
    /// What it carries.
    pub payload: Payload,
}

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
        for (record, payload) in calls {
            let headers = serde_json::to_string(&payload.headers).unwrap_or_else(|_| "[]".into());
            sqlx::query(
                "INSERT INTO call_payloads (call_id, method, path, query, headers, body)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (call_id) DO UPDATE SET method = excluded.method, path = excluded.path,
                    query = excluded.query, headers = excluded.headers, body = excluded.body",
            )
            .bind(record.id.hyphenated().to_string())
            .bind(&payload.method)
            .bind(&payload.path)
            .bind(&payload.query)
            .bind(headers)
            .bind(&payload.body)
            .execute(&mut *tx)
            .await
            .map_err(query("store a call's payload"))?;
        }
        tx.commit().await.map_err(query("commit enqueued calls"))?;
        Ok(())
    }

    /// Claims up to `limit` due queued calls, oldest first: they become `running`.
    pub async fn claim(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Claimed>, StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query("begin a transaction"))?;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM calls WHERE status = $1 AND (not_before IS NULL OR not_before <= $2)
             ORDER BY id LIMIT $3",
        )
        .bind(CallStatus::Queued.as_str())
        .bind(millis(now))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(query("find due calls"))?;
        let mut claimed = Vec::with_capacity(ids.len());
        for id in ids {
            sqlx::query("UPDATE calls SET status = $1, started_at = $2 WHERE id = $3")
                .bind(CallStatus::Running.as_str())
                .bind(millis(now))
                .bind(&id)
                .execute(&mut *tx)
                .await
                .map_err(query("claim a call"))?;
            let row: Option<(String, String, String, String, Vec<u8>)> = sqlx::query_as(
                "SELECT method, path, query, headers, body FROM call_payloads WHERE call_id = $1",
            )
            .bind(&id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(query("read a call's payload"))?;
            let uuid = Uuid::parse_str(&id)
                .map_err(|e| crate::error::corrupt("call", format!("id {id}: {e}")))?;
            let record = self
                .get_call_in(&mut tx, uuid)
                .await?
                .ok_or_else(|| crate::error::corrupt("call", format!("{id} vanished")))?;
            let payload = match row {
                Some((method, path, query, headers, body)) => Payload {
                    method,
                    path,
                    query,
                    headers: serde_json::from_str(&headers).unwrap_or_default(),
                    body,
                },
                None => Payload {
                    method: "POST".into(),
                    path: "/".into(),
                    query: String::new(),
                    headers: Vec::new(),
                    body: Vec::new(),
                },
            };
            claimed.push(Claimed { record, payload });
        }
        tx.commit().await.map_err(query("commit claimed calls"))?;
        Ok(claimed)
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
            Some((kind, message)) => (Some(kind.as_str()), Some(message)),
            None => (None, None),
        };
        sqlx::query(
            "UPDATE calls SET status = $1, attempt = $2, not_before = $3, error_type = $4,
                error_message = $5, finished_at = NULL WHERE id = $6",
        )
        .bind(CallStatus::Queued.as_str())
        .bind(i64::from(attempt))
        .bind(millis(not_before))
        .bind(error_type)
        .bind(message)
        .bind(id.hyphenated().to_string())
        .execute(&self.pool)
        .await
        .map_err(query("requeue a call"))?;
        Ok(())
    }

    /// Marks a failed call `dead`: no attempt is left.
    pub async fn kill_call(&self, id: Uuid) -> Result<(), StoreError> {
        sqlx::query("UPDATE calls SET status = $1 WHERE id = $2 AND status IN ($3, $4)")
            .bind(CallStatus::Dead.as_str())
            .bind(id.hyphenated().to_string())
            .bind(CallStatus::Failed.as_str())
            .bind(CallStatus::TimedOut.as_str())
            .execute(&self.pool)
            .await
            .map_err(query("mark a call dead"))?;
        Ok(())
    }

    /// Re-queues a `dead` call for a new round of attempts; false if it was not dead.
    pub async fn redrive(&self, id: Uuid) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE calls SET status = $1, attempt = 1, not_before = NULL, finished_at = NULL
             WHERE id = $2 AND status = $3",
        )
        .bind(CallStatus::Queued.as_str())
        .bind(id.hyphenated().to_string())
        .bind(CallStatus::Dead.as_str())
        .execute(&self.pool)
        .await
        .map_err(query("redrive a call"))?;
        Ok(done.rows_affected() == 1)
    }

    /// At start-up: async calls left `running` by a stopped daemon go back to the queue.
    pub async fn requeue_interrupted(&self) -> Result<u64, StoreError> {
        let done = sqlx::query("UPDATE calls SET status = $1 WHERE status = $2 AND trigger = $3")
            .bind(CallStatus::Queued.as_str())
            .bind(CallStatus::Running.as_str())
            .bind(Trigger::Async.as_str())
            .execute(&self.pool)
            .await
            .map_err(query("requeue interrupted calls"))?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

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
        }
    }

    fn payload() -> Payload {
        Payload {
            method: "POST".into(),
            path: "/x".into(),
            query: "a=1".into(),
            headers: vec![("x-h".into(), "v".into())],
            body: b"abc".to_vec(),
        }
    }

    #[tokio::test]
    async fn calls_are_claimed_once_retried_when_due_killed_and_redriven() {
        let store = Store::open_in_memory().await.expect("store");
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
        assert!(store.redrive(a).await.expect("redrive"));
        assert!(
            !store.redrive(a).await.expect("redrive twice"),
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
