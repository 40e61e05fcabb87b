//! Call records and their logs.

use crate::backend::{on_pool, on_tx, Columns, Tx};
use crate::codec::{int, millis, text, RowReader};
use crate::error::{corrupt, query};
use crate::{Store, StoreError};
use chrono::{DateTime, Utc};
use skiff_core::{CallErrorType, CallRecord, CallStatus, Trigger};
use sqlx::QueryBuilder;
use std::collections::HashMap;
use uuid::Uuid;

/// The message of calls found in flight at start-up.
pub const INTERRUPTED_MESSAGE: &str = "the daemon stopped while the call was in flight";

/// How many calls [`Store::list_calls`] returns when the filter's limit is 0.
pub const DEFAULT_CALL_LIMIT: u32 = 100;
/// The most calls [`Store::list_calls`] returns at once.
pub const MAX_CALL_LIMIT: u32 = 1000;

/// One call to store: its record, and optionally its logs.
#[derive(Debug, Clone)]
pub struct CallWrite {
    /// The record; replaces every column of the stored record with the same id.
    pub record: CallRecord,
    /// When `Some`, replaces the call's logs; when `None`, leaves them as they are.
    pub logs: Option<Vec<u8>>,
}

/// Which calls [`Store::list_calls`] returns. Every condition set must hold.
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    /// Only calls of this function.
    pub function: Option<String>,
    /// Only calls in this status.
    pub status: Option<CallStatus>,
    /// Only calls started by this trigger.
    pub trigger: Option<Trigger>,
    /// Only calls with an id strictly less than this one (cursor paging, newest first).
    pub before: Option<Uuid>,
    /// Only calls received at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// At most this many (0 means [`DEFAULT_CALL_LIMIT`]; capped at [`MAX_CALL_LIMIT`]).
    pub limit: u32,
    /// Only calls of the functions of this namespace.
    pub namespace: Option<String>,
}

impl CallFilter {
    /// The limit actually applied.
    pub fn effective_limit(&self) -> u32 {
        match self.limit {
            0 => DEFAULT_CALL_LIMIT,
            n => n.min(MAX_CALL_LIMIT),
        }
    }
}

/// `SELECT <every column> FROM calls`, as a literal for `concat!`.
macro_rules! call_columns {
    () => {
        "id, function, trigger, status, attempt, received_at, started_at, finished_at, \
         cold, instance, exit_code, error_type, error_message, request_size, response_size, \
         duration_ms, wait_ms, start_ms, caller, parent, depth"
    };
}
pub(crate) use call_columns;

macro_rules! select_calls {
    () => {
        "SELECT id, function, trigger, status, attempt, received_at, started_at, finished_at, \
         cold, instance, exit_code, error_type, error_message, request_size, response_size, \
         duration_ms, wait_ms, start_ms, caller, parent, depth FROM calls"
    };
}

/// Rows per multi-row statement (23 parameters each: well under SQLite's limit, and
/// PostgreSQL's 65535).
const ROWS_PER_STATEMENT: usize = 500;

const UPSERT_CALL_CONFLICT: &str = " ON CONFLICT (id) DO UPDATE SET
        function = excluded.function,
        trigger = excluded.trigger,
        status = excluded.status,
        attempt = excluded.attempt,
        received_at = excluded.received_at,
        started_at = excluded.started_at,
        finished_at = excluded.finished_at,
        cold = excluded.cold,
        instance = excluded.instance,
        exit_code = excluded.exit_code,
        error_type = excluded.error_type,
        error_message = excluded.error_message,
        request_size = excluded.request_size,
        response_size = excluded.response_size,
        duration_ms = excluded.duration_ms,
        wait_ms = excluded.wait_ms,
        daemon = excluded.daemon,
        start_ms = excluded.start_ms,
        caller = COALESCE(excluded.caller, calls.caller),
        parent = COALESCE(excluded.parent, calls.parent),
        depth = CASE WHEN excluded.depth > calls.depth THEN excluded.depth ELSE calls.depth END
     WHERE calls.daemon IS NULL OR calls.daemon = excluded.daemon";

impl Store {
    /// Writes a batch in one transaction: each record replaces the stored one with the
    /// same id (or is inserted), and logs given as `Some` replace the call's logs. When a
    /// batch holds several writes of one call, the last record and the last logs win. Rows
    /// go in multi-row statements, so a batch costs a few statements, not one per call.
    /// A record written as `succeeded` deletes its call's queue payload in the same
    /// transaction (see [`crate::queue`]).
    ///
    /// Fenced: a stored record is replaced only by the daemon it belongs to (or when it
    /// belongs to none). A daemon taken over past its lease hands its calls to the daemon
    /// that took it over, so, should it come back, what it writes of them is dropped: the
    /// call queued again, or ended `interrupted`, stays as the takeover left it.
    pub async fn write_calls(&self, batch: &[CallWrite]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        // The last write of each call, in first-seen order.
        let mut order: Vec<Uuid> = Vec::with_capacity(batch.len());
        let mut records: HashMap<Uuid, &CallRecord> = HashMap::with_capacity(batch.len());
        let mut logs: HashMap<Uuid, &[u8]> = HashMap::new();
        for write in batch {
            let id = write.record.id;
            if records.insert(id, &write.record).is_none() {
                order.push(id);
            }
            if let Some(l) = &write.logs {
                logs.insert(id, l.as_slice());
            }
        }
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query("begin a transaction"))?;
        write_rows(&mut tx, &self.my_id(), &order, &records, &logs).await?;
        tx.commit()
            .await
            .map_err(query("commit a batch of calls"))?;
        Ok(())
    }

    /// [`Store::write_calls`] inside a transaction of the caller's.
    pub(crate) async fn write_calls_in(
        &self,
        tx: &mut Tx,
        batch: &[CallWrite],
    ) -> Result<(), StoreError> {
        let mut order = Vec::new();
        let mut records = HashMap::new();
        let mut logs: HashMap<Uuid, &[u8]> = HashMap::new();
        for write in batch {
            if records.insert(write.record.id, &write.record).is_none() {
                order.push(write.record.id);
            }
            if let Some(l) = &write.logs {
                logs.insert(write.record.id, l.as_slice());
            }
        }
        write_rows(tx, &self.my_id(), &order, &records, &logs).await
    }
}

/// Writes the records (and logs) of `order` in multi-row statements, as calls of daemon
/// `daemon`.
async fn write_rows(
    tx: &mut Tx,
    daemon: &str,
    order: &[Uuid],
    records: &HashMap<Uuid, &CallRecord>,
    logs: &HashMap<Uuid, &[u8]>,
) -> Result<(), StoreError> {
    on_tx!(tx, |conn, DB| {
        for chunk in order.chunks(ROWS_PER_STATEMENT) {
            let mut insert = QueryBuilder::<DB>::new(concat!(
                "INSERT INTO calls (",
                call_columns!(),
                ", daemon) "
            ));
            insert.push_values(
                chunk.iter().filter_map(|id| records.get(id)),
                |mut row, r| {
                    row.push_bind(r.id.hyphenated().to_string())
                        .push_bind(r.function.clone())
                        .push_bind(r.trigger.as_str())
                        .push_bind(r.status.as_str())
                        .push_bind(i64::from(r.attempt))
                        .push_bind(millis(r.received_at))
                        .push_bind(r.started_at.map(millis))
                        .push_bind(r.finished_at.map(millis))
                        .push_bind(r.cold)
                        .push_bind(r.instance.clone())
                        .push_bind(r.exit_code)
                        .push_bind(r.error_type.map(CallErrorType::as_str))
                        .push_bind(r.error_message.as_deref().map(text))
                        .push_bind(int(r.request_size))
                        .push_bind(r.response_size.map(int))
                        .push_bind(r.duration_ms.map(int))
                        .push_bind(r.wait_ms.map(int))
                        .push_bind(r.start_ms.map(int))
                        .push_bind(r.caller.clone())
                        .push_bind(r.parent.map(|p| p.hyphenated().to_string()))
                        .push_bind(i64::from(r.depth))
                        .push_bind(daemon);
                },
            );
            insert.push(UPSERT_CALL_CONFLICT);
            insert
                .build()
                .execute(&mut *conn)
                .await
                .map_err(query("store calls"))?;
        }
        let with_logs: Vec<Uuid> = order
            .iter()
            .copied()
            .filter(|id| logs.contains_key(id))
            .collect();
        for chunk in with_logs.chunks(ROWS_PER_STATEMENT) {
            // Only for the calls this daemon may write (the fence, as for their records).
            let mut insert = QueryBuilder::<DB>::new(
                "INSERT INTO call_logs (call_id, logs) SELECT v.column1, v.column2 FROM (",
            );
            insert.push_values(chunk, |mut row, id| {
                row.push_bind(id.hyphenated().to_string())
                    .push_bind(logs.get(id).copied().unwrap_or_default().to_vec());
            });
            insert
                .push(
                    ") AS v JOIN calls c ON c.id = v.column1 WHERE c.daemon IS NULL OR c.daemon = ",
                )
                .push_bind(daemon)
                .push(" ON CONFLICT (call_id) DO UPDATE SET logs = excluded.logs");
            insert
                .build()
                .execute(&mut *conn)
                .await
                .map_err(query("store the logs of calls"))?;
        }
        Ok::<_, StoreError>(())
    })?;
    let succeeded: Vec<Uuid> = order
        .iter()
        .copied()
        .filter(|id| {
            records
                .get(id)
                .is_some_and(|r| r.status == CallStatus::Succeeded)
        })
        .collect();
    if !succeeded.is_empty() {
        crate::queue::release_payloads(tx, &succeeded).await?;
    }
    Ok(())
}

impl Store {
    /// The record of call `id`, if there is one.
    pub async fn get_call(&self, id: Uuid) -> Result<Option<CallRecord>, StoreError> {
        on_pool!(&self.pool, |pool, DB| {
            let row = sqlx::query(concat!(select_calls!(), " WHERE id = $1"))
                .bind(id.hyphenated().to_string())
                .fetch_optional(pool)
                .await
                .map_err(query("get a call"))?;
            row.as_ref().map(|r| decode(r)).transpose()
        })
    }

    /// The calls that match `filter`, newest first.
    pub async fn list_calls(&self, filter: &CallFilter) -> Result<Vec<CallRecord>, StoreError> {
        on_pool!(&self.pool, |pool, DB| {
            let mut qb = QueryBuilder::<DB>::new(select_calls!());
            qb.push(" WHERE 1 = 1");
            if let Some(function) = &filter.function {
                qb.push(" AND function = ").push_bind(function.clone());
            }
            if let Some(namespace) = &filter.namespace {
                // Full names: `NAME` in the default namespace, `NS.NAME` in the others
                // (namespace names hold no LIKE wildcard).
                if namespace == skiff_core::access::DEFAULT_NAMESPACE {
                    qb.push(" AND function NOT LIKE '%.%'");
                } else {
                    qb.push(" AND function LIKE ")
                        .push_bind(format!("{namespace}.%"));
                }
            }
            if let Some(status) = filter.status {
                qb.push(" AND status = ").push_bind(status.as_str());
            }
            if let Some(trigger) = filter.trigger {
                qb.push(" AND trigger = ").push_bind(trigger.as_str());
            }
            if let Some(before) = filter.before {
                qb.push(" AND id < ")
                    .push_bind(before.hyphenated().to_string());
            }
            if let Some(since) = filter.since {
                qb.push(" AND received_at >= ").push_bind(millis(since));
            }
            qb.push(" ORDER BY id DESC LIMIT ")
                .push_bind(i64::from(filter.effective_limit()));
            let rows = qb
                .build()
                .fetch_all(pool)
                .await
                .map_err(query("list calls"))?;
            rows.iter().map(|r| decode(r)).collect()
        })
    }

    /// The logs of call `id`: `None` if there is no such call, empty if it has no logs.
    pub async fn call_logs(&self, id: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        on_pool!(&self.pool, |pool, DB| {
            let row = sqlx::query(
                "SELECT l.logs FROM calls c LEFT JOIN call_logs l ON l.call_id = c.id \
                 WHERE c.id = $1",
            )
            .bind(id.hyphenated().to_string())
            .fetch_optional(pool)
            .await
            .map_err(query("get the logs of a call"))?;
            match row {
                None => Ok(None),
                Some(row) => {
                    let logs = Columns::bytes(&row, "logs")
                        .map_err(|e| corrupt(format!("logs of call {id}"), e.to_string()))?;
                    Ok(Some(logs.unwrap_or_default()))
                }
            }
        })
    }

    /// Marks every call of this daemon still `queued` or `running` that did not come
    /// through the durable queue as `failed` with error type `interrupted`, finished at
    /// `now` (its duration set from its receipt), and returns how many. Queued calls (async,
    /// cron, ...) are left for their queue to resume; other daemons' calls are left alone.
    pub async fn interrupt_unfinished_calls(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let what = "interrupt unfinished calls";
        let mut tx = self.pool.begin().await.map_err(query(what))?;
        let me = self.my_id();
        let done = interrupt_calls(&mut tx, self.own_calls(&me), &me, now).await?;
        tx.commit().await.map_err(query(what))?;
        Ok(done)
    }
}

/// Whose calls a recovery touches.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Whose<'a> {
    /// Those of daemon `id` only (taken over).
    Of(&'a str),
    /// Those of daemon `id`, and those no daemon is recorded for (written before calls
    /// named theirs): a daemon's own, on a shared store.
    Mine(&'a str),
    /// Every call: on SQLite, whose file one daemon uses (its id may have changed, when
    /// its data directory was moved).
    Any,
}

impl Whose<'_> {
    /// The parameters of `(daemon = $a OR ($b AND daemon IS NULL) OR $c)`.
    pub(crate) fn binds(self) -> (String, bool, bool) {
        match self {
            Whose::Of(id) => (id.to_string(), false, false),
            Whose::Mine(id) => (id.to_string(), true, false),
            Whose::Any => (String::new(), true, true),
        }
    }
}

impl Store {
    /// Whose calls this daemon recovers as its own: all of them on SQLite.
    pub(crate) fn own_calls<'a>(&self, me: &'a str) -> Whose<'a> {
        match self.backend() {
            crate::Backend::Sqlite => Whose::Any,
            crate::Backend::Postgres => Whose::Mine(me),
        }
    }
}

/// Marks the sync calls (those without a queue payload) still `queued` or `running` of
/// `whose` as `interrupted`, finished at `now`, and hands their records to daemon `to`
/// (the fence: the daemon that ran them can no longer write them); returns how many.
pub(crate) async fn interrupt_calls(
    tx: &mut Tx,
    whose: Whose<'_>,
    to: &str,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let (owner, unowned, any) = whose.binds();
    on_tx!(tx, |conn, DB| sqlx::query(
        "UPDATE calls SET
            status = $1,
            error_type = $2,
            error_message = $3,
            finished_at = $4,
            duration_ms = CASE WHEN $4 > received_at THEN $4 - received_at ELSE 0 END,
            daemon = $10
         WHERE status IN ($5, $6) AND id NOT IN (SELECT call_id FROM call_payloads)
            AND (daemon = $7 OR ($8 AND daemon IS NULL) OR $9)",
    )
    .bind(CallStatus::Failed.as_str())
    .bind(CallErrorType::Interrupted.as_str())
    .bind(INTERRUPTED_MESSAGE)
    .bind(millis(now))
    .bind(CallStatus::Queued.as_str())
    .bind(CallStatus::Running.as_str())
    .bind(&owner)
    .bind(unowned)
    .bind(any)
    .bind(to)
    .execute(&mut *conn)
    .await
    .map(|done| done.rows_affected()))
    .map_err(query("interrupt unfinished calls"))
}

pub(crate) fn decode(row: &dyn Columns) -> Result<CallRecord, StoreError> {
    let id = row
        .text("id")
        .map_err(|e| corrupt("call", format!("id: {e}")))?
        .unwrap_or_default();
    let r = RowReader {
        row,
        what: format!("call {id}"),
    };
    Ok(CallRecord {
        id: r.parse("id")?,
        function: r.text("function")?,
        trigger: r.parse("trigger")?,
        status: r.parse("status")?,
        attempt: r.unsigned("attempt")?,
        received_at: r.time("received_at")?,
        started_at: r.time_opt("started_at")?,
        finished_at: r.time_opt("finished_at")?,
        cold: r.bool_opt("cold")?,
        instance: r.text_opt("instance")?,
        exit_code: r.int_opt("exit_code")?,
        error_type: r.parse_opt("error_type")?,
        error_message: r.text_opt("error_message")?,
        request_size: r.unsigned("request_size")?,
        response_size: r.unsigned_opt("response_size")?,
        duration_ms: r.unsigned_opt("duration_ms")?,
        wait_ms: r.unsigned_opt("wait_ms")?,
        start_ms: r.unsigned_opt("start_ms")?,
        caller: r.text_opt("caller")?,
        parent: r.parse_opt("parent")?,
        depth: r.unsigned("depth")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).expect("valid time")
    }

    const T0: i64 = 1_700_000_000_000;

    /// A queued call received at `T0 + offset_ms`, with a fresh (increasing) id.
    fn call(function: &str, trigger: Trigger, offset_ms: i64) -> CallRecord {
        CallRecord {
            id: Uuid::now_v7(),
            function: function.to_string(),
            trigger,
            status: CallStatus::Queued,
            attempt: 1,
            received_at: at(T0 + offset_ms),
            started_at: None,
            finished_at: None,
            cold: None,
            instance: None,
            exit_code: None,
            error_type: None,
            error_message: None,
            request_size: 0,
            response_size: None,
            duration_ms: None,
            wait_ms: None,
            start_ms: None,
            caller: None,
            parent: None,
            depth: 0,
        }
    }

    fn write(record: &CallRecord, logs: Option<&[u8]>) -> CallWrite {
        CallWrite {
            record: record.clone(),
            logs: logs.map(<[u8]>::to_vec),
        }
    }

    fn ids(records: &[CallRecord]) -> Vec<Uuid> {
        records.iter().map(|r| r.id).collect()
    }

    crate::testing::backend_tests! {
    async fn writes_upsert_records_and_logs(kit) {
        let store = kit.store().await;
        let mut record = call("hello", Trigger::Http, 0);
        record.status = CallStatus::Running;
        record.started_at = Some(at(T0 + 3));
        record.cold = Some(true);
        record.instance = Some("skiff-hello-1".into());
        record.request_size = 42;
        store
            .write_calls(&[write(&record, None)])
            .await
            .expect("write running");
        assert_eq!(
            store.get_call(record.id).await.expect("get"),
            Some(record.clone())
        );

        let mut done = record.clone();
        done.status = CallStatus::Succeeded;
        done.finished_at = Some(at(T0 + 250));
        done.exit_code = Some(0);
        done.response_size = Some(7);
        done.duration_ms = Some(250);
        done.wait_ms = Some(4);
        done.start_ms = Some(180);
        done.instance = None;
        let logs: &[u8] = b"line 1\n\x00\xff\xfe binary\n";
        store
            .write_calls(&[write(&done, Some(logs))])
            .await
            .expect("write succeeded");
        assert_eq!(
            store.get_call(record.id).await.expect("get"),
            Some(done.clone())
        );
        assert_eq!(
            store.call_logs(record.id).await.expect("logs"),
            Some(logs.to_vec())
        );

        // `None` leaves the logs; `Some` replaces them.
        store
            .write_calls(&[write(&done, None)])
            .await
            .expect("rewrite");
        assert_eq!(
            store.call_logs(record.id).await.expect("logs"),
            Some(logs.to_vec())
        );
        store
            .write_calls(&[write(&done, Some(b"new"))])
            .await
            .expect("rewrite logs");
        assert_eq!(
            store.call_logs(record.id).await.expect("logs"),
            Some(b"new".to_vec())
        );

        // A failed call keeps its error type and message.
        let mut failed = call("hello", Trigger::Api, 1);
        failed.status = CallStatus::Failed;
        failed.error_type = Some(CallErrorType::OutOfMemory);
        failed.error_message = Some("killed: out of memory".into());
        failed.exit_code = Some(-9);
        failed.cold = Some(false);
        failed.attempt = 3;
        store
            .write_calls(&[write(&failed, None)])
            .await
            .expect("write");
        assert_eq!(store.get_call(failed.id).await.expect("get"), Some(failed));

        store.write_calls(&[]).await.expect("empty batch");
        assert_eq!(store.get_call(Uuid::now_v7()).await.expect("get"), None);
    }
    }

    crate::testing::backend_tests! {
    async fn a_batch_is_one_transaction(kit) {
        let store = kit.store().await;
        let a = call("hello", Trigger::Http, 0);
        let b = call("hello", Trigger::Http, 1);
        let c = call("hello", Trigger::Http, 2);
        store
            .write_calls(&[write(&a, Some(b"a")), write(&b, None), write(&c, Some(b""))])
            .await
            .expect("batch");
        let listed = store
            .list_calls(&CallFilter::default())
            .await
            .expect("list");
        assert_eq!(ids(&listed), vec![c.id, b.id, a.id]);
        assert_eq!(
            store.call_logs(a.id).await.expect("logs"),
            Some(b"a".to_vec())
        );
        assert_eq!(store.call_logs(c.id).await.expect("logs"), Some(Vec::new()));

        // When one write of a batch fails, none of the batch is stored.
        match kit.backend() {
            crate::Backend::Sqlite => {
                crate::testing::execute(
                    &store,
                    "CREATE TRIGGER refuse BEFORE INSERT ON calls WHEN NEW.function = 'refused'
                     BEGIN SELECT RAISE(ABORT, 'refused'); END",
                    &[],
                )
                .await
            }
            crate::Backend::Postgres => {
                crate::testing::execute(
                    &store,
                    "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
                     BEGIN
                         IF NEW.function = 'refused' THEN RAISE EXCEPTION 'refused'; END IF;
                         RETURN NEW;
                     END $$",
                    &[],
                )
                .await;
                crate::testing::execute(
                    &store,
                    "CREATE TRIGGER refuse BEFORE INSERT ON calls
                     FOR EACH ROW EXECUTE FUNCTION refuse()",
                    &[],
                )
                .await
            }
        }
        let mut a2 = a.clone();
        a2.status = CallStatus::Running;
        let d = call("hello", Trigger::Http, 3);
        let refused = call("refused", Trigger::Http, 4);
        let err = store
            .write_calls(&[
                write(&a2, Some(b"a2")),
                write(&d, None),
                write(&refused, None),
            ])
            .await
            .expect_err("refused");
        assert!(matches!(err, StoreError::Query { .. }), "{err:?}");
        assert_eq!(store.get_call(a.id).await.expect("get"), Some(a.clone()));
        assert_eq!(
            store.call_logs(a.id).await.expect("logs"),
            Some(b"a".to_vec())
        );
        assert_eq!(store.get_call(d.id).await.expect("get"), None);
    }
    }

    crate::testing::backend_tests! {
    async fn logs_of_a_missing_call_are_none_of_a_silent_call_empty(kit) {
        let store = kit.store().await;
        let silent = call("hello", Trigger::Http, 0);
        store
            .write_calls(&[write(&silent, None)])
            .await
            .expect("write");
        assert_eq!(
            store.call_logs(silent.id).await.expect("logs"),
            Some(Vec::new())
        );
        assert_eq!(store.call_logs(Uuid::now_v7()).await.expect("logs"), None);
    }
    }

    crate::testing::backend_tests! {
    async fn list_calls_keeps_to_a_namespace(kit) {
        let store = kit.store().await;
        let records: Vec<CallRecord> = ["f", "team-a.f", "team-a.g", "team-b.f"]
            .iter()
            .enumerate()
            .map(|(i, f)| call(f, Trigger::Http, i as i64 * 1000))
            .collect();
        let batch: Vec<CallWrite> = records.iter().map(|r| write(r, None)).collect();
        store.write_calls(&batch).await.expect("write");
        let of = |namespace: &str| {
            let store = store.clone();
            let filter = CallFilter {
                namespace: Some(namespace.to_string()),
                ..CallFilter::default()
            };
            async move {
                let mut functions: Vec<String> = store
                    .list_calls(&filter)
                    .await
                    .expect("list")
                    .into_iter()
                    .map(|r| r.function)
                    .collect();
                functions.sort();
                functions
            }
        };
        assert_eq!(of("default").await, ["f"]);
        assert_eq!(of("team-a").await, ["team-a.f", "team-a.g"]);
        assert_eq!(of("team-b").await, ["team-b.f"]);
        assert!(of("team").await.is_empty());
    }

    async fn list_calls_filters_pages_and_sorts_newest_first(kit) {
        let store = kit.store().await;
        let mut all = Vec::new();
        for i in 0..10 {
            let function = if i % 2 == 0 { "even" } else { "odd" };
            let trigger = if i % 3 == 0 {
                Trigger::Async
            } else {
                Trigger::Http
            };
            let mut r = call(function, trigger, i * 1000);
            if i >= 7 {
                r.status = CallStatus::Succeeded;
            }
            all.push(r);
        }
        let batch: Vec<CallWrite> = all.iter().map(|r| write(r, None)).collect();
        store.write_calls(&batch).await.expect("write");
        let newest_first: Vec<Uuid> = all.iter().rev().map(|r| r.id).collect();

        let everything = store
            .list_calls(&CallFilter::default())
            .await
            .expect("list");
        assert_eq!(ids(&everything), newest_first);
        assert_eq!(everything[0], all[9]);

        let filter = |f: CallFilter| {
            let store = store.clone();
            async move { ids(&store.list_calls(&f).await.expect("list")) }
        };
        let expect = |pred: &dyn Fn(usize, &CallRecord) -> bool| -> Vec<Uuid> {
            all.iter()
                .enumerate()
                .rev()
                .filter(|(i, r)| pred(*i, r))
                .map(|(_, r)| r.id)
                .collect()
        };

        let got = filter(CallFilter {
            function: Some("odd".into()),
            ..CallFilter::default()
        })
        .await;
        assert_eq!(got, expect(&|i, _| i % 2 == 1));

        let got = filter(CallFilter {
            status: Some(CallStatus::Succeeded),
            ..CallFilter::default()
        })
        .await;
        assert_eq!(got, expect(&|i, _| i >= 7));

        let got = filter(CallFilter {
            trigger: Some(Trigger::Async),
            ..CallFilter::default()
        })
        .await;
        assert_eq!(got, expect(&|i, _| i % 3 == 0));

        let got = filter(CallFilter {
            before: Some(all[5].id),
            ..CallFilter::default()
        })
        .await;
        assert_eq!(got, expect(&|i, _| i < 5));

        let got = filter(CallFilter {
            since: Some(at(T0 + 6000)),
            ..CallFilter::default()
        })
        .await;
        assert_eq!(got, expect(&|i, _| i >= 6));

        let got = filter(CallFilter {
            function: Some("even".into()),
            trigger: Some(Trigger::Http),
            since: Some(at(T0 + 1)),
            before: Some(all[8].id),
            ..CallFilter::default()
        })
        .await;
        assert_eq!(
            got,
            expect(&|i, _| i % 2 == 0 && i % 3 != 0 && (1..8).contains(&i))
        );

        let got = filter(CallFilter {
            function: Some("nobody".into()),
            ..CallFilter::default()
        })
        .await;
        assert!(got.is_empty());

        // Limit, and paging with the cursor.
        let page1 = filter(CallFilter {
            limit: 4,
            ..CallFilter::default()
        })
        .await;
        assert_eq!(page1, newest_first[..4]);
        let page2 = filter(CallFilter {
            limit: 4,
            before: page1.last().copied(),
            ..CallFilter::default()
        })
        .await;
        assert_eq!(page2, newest_first[4..8]);
        let page3 = filter(CallFilter {
            limit: 4,
            before: page2.last().copied(),
            ..CallFilter::default()
        })
        .await;
        assert_eq!(page3, newest_first[8..]);
    }
    }

    #[test]
    fn the_limit_defaults_to_100_and_is_capped() {
        let limit = |limit| {
            CallFilter {
                limit,
                ..CallFilter::default()
            }
            .effective_limit()
        };
        assert_eq!(limit(0), 100);
        assert_eq!(limit(1), 1);
        assert_eq!(limit(1000), 1000);
        assert_eq!(limit(5000), 1000);
    }

    crate::testing::backend_tests! {
    async fn the_default_limit_applies(kit) {
        let store = kit.store().await;
        let batch: Vec<CallWrite> = (0..105)
            .map(|i| write(&call("hello", Trigger::Http, i), None))
            .collect();
        store.write_calls(&batch).await.expect("write");
        let listed = store
            .list_calls(&CallFilter::default())
            .await
            .expect("list");
        assert_eq!(listed.len(), 100);
        assert_eq!(listed[0].id, batch[104].record.id);
    }
    }

    crate::testing::backend_tests! {
    async fn interrupting_fails_only_calls_in_flight_that_did_not_come_through_the_queue(kit) {
        let store = kit.store().await;
        let queued = call("hello", Trigger::Http, 0);
        let mut running = call("hello", Trigger::Api, 10);
        running.status = CallStatus::Running;
        running.started_at = Some(at(T0 + 20));
        let mut running_async = call("hello", Trigger::Async, 20);
        running_async.status = CallStatus::Running;
        let queued_async = call("hello", Trigger::Async, 30);
        let mut succeeded = call("hello", Trigger::Http, 40);
        succeeded.status = CallStatus::Succeeded;
        succeeded.finished_at = Some(at(T0 + 45));
        let mut timed_out = call("hello", Trigger::Cron, 50);
        timed_out.status = CallStatus::TimedOut;
        timed_out.error_type = Some(CallErrorType::Timeout);
        let all = [
            &queued,
            &running,
            &running_async,
            &queued_async,
            &succeeded,
            &timed_out,
        ];
        let batch: Vec<CallWrite> = all.iter().map(|r| write(r, None)).collect();
        store.write_calls(&batch).await.expect("write");
        // The async calls came through the durable queue: they have payloads.
        let payload = crate::Payload::default();
        store
            .enqueue_all(&[
                (running_async.clone(), payload.clone()),
                (queued_async.clone(), payload),
            ])
            .await
            .expect("enqueue");

        let now = at(T0 + 1000);
        let n = store
            .interrupt_unfinished_calls(now)
            .await
            .expect("interrupt");
        assert_eq!(n, 2);

        for (before, offset) in [(&queued, 0), (&running, 10)] {
            let after = store
                .get_call(before.id)
                .await
                .expect("get")
                .expect("exists");
            let mut expected = before.clone();
            expected.status = CallStatus::Failed;
            expected.error_type = Some(CallErrorType::Interrupted);
            expected.error_message = Some(INTERRUPTED_MESSAGE.into());
            expected.finished_at = Some(now);
            expected.duration_ms = Some(1000 - offset);
            assert_eq!(after, expected);
        }
        for untouched in [&running_async, &queued_async, &succeeded, &timed_out] {
            assert_eq!(
                store.get_call(untouched.id).await.expect("get").as_ref(),
                Some(untouched)
            );
        }
        assert_eq!(
            store.interrupt_unfinished_calls(now).await.expect("again"),
            0
        );
    }
    }

    crate::testing::backend_tests! {
    async fn a_corrupt_row_is_an_error_not_a_panic(kit) {
        let store = kit.store().await;
        let good = call("hello", Trigger::Http, 0);
        let bad = call("hello", Trigger::Http, 1);
        store
            .write_calls(&[write(&good, None), write(&bad, None)])
            .await
            .expect("write");
        crate::testing::execute(
            &store,
            "UPDATE calls SET status = 'bogus' WHERE id = $1",
            &[&bad.id.to_string()],
        )
        .await;

        let err = store.get_call(bad.id).await.expect_err("corrupt");
        match &err {
            StoreError::Corrupt { what, message } => {
                assert_eq!(what, &format!("call {}", bad.id));
                assert!(message.contains("bogus"), "{message}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        assert!(err.to_string().contains("bogus"), "{err}");
        assert!(matches!(
            store.list_calls(&CallFilter::default()).await,
            Err(StoreError::Corrupt { .. })
        ));
        assert_eq!(
            store
                .get_call(good.id)
                .await
                .expect("the good row still reads"),
            Some(good.clone())
        );

        // Other kinds of damage: an unknown trigger, a negative size, a text timestamp
        // (which only SQLite's loose typing lets in).
        let mut damages = vec![
            "UPDATE calls SET trigger = 'carrier_pigeon' WHERE id = $1",
            "UPDATE calls SET request_size = -1 WHERE id = $1",
            "UPDATE calls SET error_type = 'gremlins' WHERE id = $1",
        ];
        if kit.backend() == crate::Backend::Sqlite {
            damages.push("UPDATE calls SET received_at = 'yesterday' WHERE id = $1");
        }
        for damage in damages {
            let store = kit.store().await;
            store
                .write_calls(&[write(&good, None)])
                .await
                .expect("write");
            crate::testing::execute(&store, damage, &[&good.id.to_string()]).await;
            assert!(
                matches!(
                    store.get_call(good.id).await,
                    Err(StoreError::Corrupt { .. })
                ),
                "{damage}"
            );
        }
    }
    }
}

#[cfg(test)]
mod batch_tests {
    use super::*;
    use chrono::Utc;
    use skiff_core::{CallStatus, Trigger};

    fn record(id: Uuid, status: CallStatus) -> CallRecord {
        CallRecord {
            id,
            function: "f".into(),
            trigger: Trigger::Http,
            status,
            attempt: 1,
            received_at: Utc::now(),
            started_at: None,
            finished_at: None,
            cold: None,
            instance: None,
            exit_code: None,
            error_type: None,
            error_message: None,
            request_size: 0,
            response_size: None,
            duration_ms: None,
            wait_ms: None,
            start_ms: None,
            caller: None,
            parent: None,
            depth: 0,
        }
    }

    crate::testing::backend_tests! {
    async fn several_writes_of_one_call_in_a_batch_keep_the_last(kit) {
        let store = kit.store().await;
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let batch: Vec<CallWrite> = vec![
            CallWrite {
                record: record(a, CallStatus::Running),
                logs: None,
            },
            CallWrite {
                record: record(b, CallStatus::Running),
                logs: Some(b"first".to_vec()),
            },
            CallWrite {
                record: record(a, CallStatus::Succeeded),
                logs: Some(b"a log".to_vec()),
            },
            CallWrite {
                record: record(b, CallStatus::Failed),
                logs: None,
            },
        ];
        store.write_calls(&batch).await.expect("write");
        let got = |id| store.get_call(id);
        assert_eq!(
            got(a).await.expect("get").map(|r| r.status),
            Some(CallStatus::Succeeded)
        );
        assert_eq!(
            got(b).await.expect("get").map(|r| r.status),
            Some(CallStatus::Failed)
        );
        assert_eq!(
            store.call_logs(a).await.expect("logs"),
            Some(b"a log".to_vec())
        );
        assert_eq!(
            store.call_logs(b).await.expect("logs"),
            Some(b"first".to_vec())
        );
    }
    }

    crate::testing::backend_tests! {
    async fn batches_larger_than_one_statement_are_written_whole(kit) {
        let store = kit.store().await;
        let batch: Vec<CallWrite> = (0..1234)
            .map(|_| CallWrite {
                record: record(Uuid::now_v7(), CallStatus::Succeeded),
                logs: Some(vec![1, 2]),
            })
            .collect();
        store.write_calls(&batch).await.expect("write");
        let all = store
            .list_calls(&CallFilter {
                limit: 1000,
                ..Default::default()
            })
            .await
            .expect("list");
        assert_eq!(all.len(), 1000);
        for w in &batch[..10] {
            assert_eq!(
                store.call_logs(w.record.id).await.expect("logs"),
                Some(vec![1, 2])
            );
        }
    }
    }
}
