//! Retention: calls that ended long enough ago are deleted with their logs, payloads and
//! results (the foreign keys cascade), in small batches so that no write waits long on
//! them. Queued and running calls are never pruned, whatever their age.

use crate::backend::on_pool;
use crate::codec::millis;
use crate::error::query;
use crate::{Store, StoreError};
use chrono::{DateTime, Utc};
use skiff_core::CallStatus;

/// Calls deleted per statement.
const PRUNE_BATCH: i64 = 2000;

/// The least call id of a call made at `at` or later: call ids (UUIDv7, and the v8 ids of
/// cron ticks) start with their unix time in milliseconds, so they sort by time.
fn first_id_at(at: DateTime<Utc>) -> String {
    let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    format!(
        "{:08x}-{:04x}-0000-0000-000000000000",
        ms >> 16,
        ms & 0xffff
    )
}

impl Store {
    /// Deletes the calls that ended before `cutoff` (and were received before it), with
    /// their logs, payloads and results; returns how many went.
    pub async fn prune_calls(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let below = first_id_at(cutoff);
        let mut pruned = 0;
        loop {
            let done = on_pool!(&self.pool, |pool, DB| sqlx::query(
                "DELETE FROM calls WHERE id IN (
                    SELECT id FROM calls WHERE id < $1
                        AND status NOT IN ($2, $3)
                        AND COALESCE(finished_at, received_at) < $4
                    ORDER BY id LIMIT $5)",
            )
            .bind(&below)
            .bind(CallStatus::Queued.as_str())
            .bind(CallStatus::Running.as_str())
            .bind(millis(cutoff))
            .bind(PRUNE_BATCH)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))
            .map_err(query("prune old calls"))?;
            pruned += done;
            if done < PRUNE_BATCH as u64 {
                return Ok(pruned);
            }
            tokio::task::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CallWrite, Payload};
    use chrono::Duration;
    use skiff_core::{CallRecord, Trigger};
    use uuid::Uuid;

    /// A call received `age` ago with `status`, finished `finished` ago if given.
    fn record(age: Duration, status: CallStatus, finished: Option<Duration>) -> CallRecord {
        let received = Utc::now() - age;
        let ms = u64::try_from(received.timestamp_millis()).expect("ms");
        let id = Uuid::new_v7(uuid::Timestamp::from_unix_time(
            ms / 1000,
            (ms % 1000) as u32 * 1_000_000,
            0,
            0,
        ));
        CallRecord {
            finished_at: finished.map(|f| Utc::now() - f),
            ..CallRecord::new(id, "f", Trigger::Async, status, received)
        }
    }

    #[test]
    fn the_first_id_of_a_time_sorts_between_the_ids_before_and_after_it() {
        let at = Utc::now();
        let first = first_id_at(at);
        let before = Uuid::new_v7(uuid::Timestamp::from_unix_time(
            u64::try_from((at - Duration::milliseconds(1)).timestamp()).expect("s"),
            (at - Duration::milliseconds(1)).timestamp_subsec_nanos(),
            0,
            0,
        ))
        .hyphenated()
        .to_string();
        let after = Uuid::now_v7().hyphenated().to_string();
        assert!(before < first, "{before} < {first}");
        assert!(first <= after, "{first} <= {after}");
    }

    crate::testing::backend_tests! {
    async fn old_ended_calls_go_with_their_data_and_the_rest_stay(kit) {
        let store = kit.store().await;
        let week = Duration::days(7);
        let old_done = record(week * 2, CallStatus::Succeeded, Some(week * 2));
        // Dead a day ago though received long ago: still within retention, redrivable.
        let recently_dead = record(week * 2, CallStatus::Failed, Some(Duration::days(1)));
        let old_queued = record(week * 2, CallStatus::Queued, None);
        let new_done = record(
            Duration::hours(1),
            CallStatus::Succeeded,
            Some(Duration::hours(1)),
        );
        let payload = Payload {
            body: b"x".to_vec(),
            ..Payload::default()
        };
        store.enqueue(&old_queued, &payload).await.expect("enqueue");
        // Dead long ago, with the payload kept for redrive and an answer kept.
        let old_dead = record(week * 2, CallStatus::Dead, Some(week * 2));
        let mut old_dead_queued = old_dead.clone();
        old_dead_queued.status = CallStatus::Queued;
        old_dead_queued.finished_at = None;
        store
            .enqueue(&old_dead_queued, &payload)
            .await
            .expect("enqueue");
        store
            .put_result(
                old_dead.id,
                &crate::StoredResult {
                    status_code: 500,
                    content_type: None,
                    size: 1,
                    body: b"x".to_vec(),
                },
            )
            .await
            .expect("result");
        let writes: Vec<CallWrite> = [&old_done, &old_dead, &recently_dead, &new_done]
            .into_iter()
            .map(|r| CallWrite {
                record: r.clone(),
                logs: Some(b"log".to_vec()),
            })
            .collect();
        store.write_calls(&writes).await.expect("write");
        let pruned = store.prune_calls(Utc::now() - week).await.expect("prune");
        assert_eq!(pruned, 2);
        for gone in [&old_done, &old_dead] {
            assert_eq!(store.get_call(gone.id).await.expect("get"), None);
            assert_eq!(store.call_logs(gone.id).await.expect("logs"), None);
        }
        assert_eq!(store.payload(old_dead.id).await.expect("payload"), None);
        assert_eq!(store.get_result(old_dead.id).await.expect("result"), None);
        assert!(store.payload(old_queued.id).await.expect("payload").is_some());
        for kept in [&recently_dead, &old_queued, &new_done] {
            assert!(store.get_call(kept.id).await.expect("get").is_some());
        }
        assert_eq!(
            store.call_logs(new_done.id).await.expect("logs"),
            Some(b"log".to_vec())
        );
    }
    }
}
