//! Claiming due queued calls: the dispatcher's read of the durable queue.
//!
//! A claim takes the oldest due calls, at most `limit` of them and at most each function's
//! room, and makes them `running`. Its cost follows what it takes, not the queue's length:
//!
//! - the functions with queued calls are found by a skip scan of the `calls_claim` index,
//!   `(status, function, id)`: one index probe per function, whatever the backlog;
//! - each function's oldest due calls, at most its room, are read from the same index, in
//!   id order (UUIDv7: the order they arrived);
//! - the candidates, merged oldest first and cut to `limit`, become `running` in one
//!   statement, which takes only those still `queued`.
//!
//! On PostgreSQL each function's read locks the rows it returns and skips the rows another
//! daemon is claiming at that moment (`FOR UPDATE SKIP LOCKED`): two daemons never claim one
//! call, neither waits for the other, and neither takes more of a function than its room.

use crate::backend::on_tx;
use crate::calls::call_columns;
use crate::codec::millis;
use crate::error::query;
use crate::queue::{payload_columns, payload_of, Claimed, Payload, PayloadRow, PAYLOAD_ROWS};
use crate::{Backend, Store, StoreError};
use chrono::{DateTime, Utc};
use skiff_core::{CallRecord, CallStatus};
use std::collections::HashMap;

/// The functions that have queued calls, by a skip scan of `calls_claim`: each step finds
/// the next function name after the last one, from the index.
const QUEUED_FUNCTIONS: &str = "WITH RECURSIVE fns(function) AS (
        SELECT (SELECT MIN(function) FROM calls WHERE status = $1)
        UNION ALL
        SELECT (SELECT MIN(function) FROM calls WHERE status = $1 AND function > fns.function)
        FROM fns WHERE fns.function IS NOT NULL)
     SELECT function FROM fns WHERE function IS NOT NULL";

/// A function's oldest due queued calls, at most `$4`.
const DUE_OF_FUNCTION_SQLITE: &str = "SELECT id FROM calls
     WHERE status = $1 AND function = $2 AND (not_before IS NULL OR not_before <= $3)
     ORDER BY id LIMIT $4";

/// The same on PostgreSQL, locking the rows and skipping those another daemon holds.
const DUE_OF_FUNCTION_POSTGRES: &str = "SELECT id FROM calls
     WHERE status = $1 AND function = $2 AND (not_before IS NULL OR not_before <= $3)
     ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED";

impl Store {
    /// Claims up to `limit` due queued calls, oldest first: they become `running`. Each
    /// call is claimed once, even by several daemons sharing a PostgreSQL store.
    pub async fn claim(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Claimed>, StoreError> {
        self.claim_within(now, limit, &HashMap::new()).await
    }

    /// Claims up to `limit` due queued calls, oldest first, and at most `rooms[f]` of those
    /// of function `f` (functions not in `rooms` are bounded by `limit` only): they become
    /// `running`. Each call is claimed once, even by several daemons sharing a PostgreSQL
    /// store.
    pub async fn claim_within(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        rooms: &HashMap<String, u32>,
    ) -> Result<Vec<Claimed>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let due_of_function = match self.backend() {
            Backend::Sqlite => DUE_OF_FUNCTION_SQLITE,
            Backend::Postgres => DUE_OF_FUNCTION_POSTGRES,
        };
        let queued = CallStatus::Queued.as_str();
        let me = self.my_id();
        let mut tx = self
            .pool
            .begin_write()
            .await
            .map_err(query("begin a transaction"))?;
        let (mut records, payloads) = on_tx!(&mut tx, |conn, DB| {
            let functions: Vec<String> = sqlx::query_scalar(QUEUED_FUNCTIONS)
                .bind(queued)
                .fetch_all(&mut *conn)
                .await
                .map_err(query("list the functions with queued calls"))?;
            let mut candidates: Vec<String> = Vec::new();
            for function in &functions {
                let room = rooms.get(function).copied().unwrap_or(limit).min(limit);
                if room == 0 {
                    continue;
                }
                let ids: Vec<String> = sqlx::query_scalar(due_of_function)
                    .bind(queued)
                    .bind(function)
                    .bind(millis(now))
                    .bind(i64::from(room))
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(query("read a function's due calls"))?;
                candidates.extend(ids);
            }
            // Hyphenated lowercase UUIDv7s sort by time as strings.
            candidates.sort_unstable();
            candidates.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
            let mut records: Vec<CallRecord> = Vec::with_capacity(candidates.len());
            if !candidates.is_empty() {
                let mut update = sqlx::QueryBuilder::<DB>::new("UPDATE calls SET status = ");
                update
                    .push_bind(CallStatus::Running.as_str())
                    .push(", started_at = ")
                    .push_bind(millis(now))
                    .push(", daemon = ")
                    .push_bind(&me)
                    .push(" WHERE status = ")
                    .push_bind(queued)
                    .push(" AND id IN (");
                let mut ids = update.separated(", ");
                for id in &candidates {
                    ids.push_bind(id);
                }
                update.push(concat!(") RETURNING ", call_columns!()));
                let rows = update
                    .build()
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(query("claim due calls"))?;
                for row in &rows {
                    records.push(crate::calls::decode(row)?);
                }
            }
            let mut payloads: Vec<PayloadRow> = Vec::with_capacity(records.len());
            for chunk in records.chunks(PAYLOAD_ROWS) {
                let mut select = sqlx::QueryBuilder::<DB>::new(concat!(
                    "SELECT ",
                    payload_columns!(),
                    " FROM call_payloads WHERE call_id IN ("
                ));
                let mut ids = select.separated(", ");
                for record in chunk {
                    ids.push_bind(record.id.hyphenated().to_string());
                }
                select.push(")");
                payloads.extend(
                    select
                        .build_query_as::<PayloadRow>()
                        .fetch_all(&mut *conn)
                        .await
                        .map_err(query("read calls' payloads"))?,
                );
            }
            Ok::<_, StoreError>((records, payloads))
        })?;
        tx.commit().await.map_err(query("commit claimed calls"))?;
        records.sort_by_key(|r| r.id);
        let mut payloads: HashMap<String, Payload> = payloads
            .into_iter()
            .map(|row| (row.7.clone(), payload_of(row)))
            .collect();
        Ok(records
            .into_iter()
            .map(|record| {
                let payload = payloads
                    .remove(&record.id.hyphenated().to_string())
                    .unwrap_or_default();
                Claimed { record, payload }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Pool;

    /// What SQLite plans for `sql`, one step a line.
    async fn plan(store: &Store, sql: &str, binds: usize) -> String {
        let Pool::Sqlite(pool) = &store.pool else {
            panic!("a SQLite store");
        };
        let mut query = sqlx::query_as::<_, (i64, i64, i64, String)>(sqlx::AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {sql}"
        )));
        for _ in 0..binds {
            query = query.bind("x");
        }
        let steps = query.fetch_all(pool).await.expect("plan");
        steps
            .into_iter()
            .map(|s| s.3)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A claim's cost follows what it takes, not the backlog: every read of `calls` is a
    /// search of `calls_claim`, never a scan of the table or of a whole status.
    #[tokio::test]
    async fn a_claim_searches_the_claim_index_and_scans_nothing() {
        let store = crate::testing::Kit::sqlite().store().await;
        for (sql, binds) in [(QUEUED_FUNCTIONS, 1), (DUE_OF_FUNCTION_SQLITE, 4)] {
            let plan = plan(&store, sql, binds).await;
            assert!(plan.contains("calls_claim"), "{plan}");
            assert!(!plan.contains("SCAN calls"), "{plan}");
        }
    }
}
