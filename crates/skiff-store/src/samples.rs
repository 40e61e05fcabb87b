//! What the stats of calls need of their records ([`CallSample`]s), read newest first.

use crate::backend::{on_pool, Columns};
use crate::codec::{millis, RowReader};
use crate::error::query;
use crate::{Store, StoreError};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use skiff_core::stats::CallSample;
use sqlx::QueryBuilder;

impl Store {
    /// The calls received at or after `since` (of the `functions` named, or of every
    /// function), newest first, at most `cap` of them. The second value is true when that
    /// is all of them.
    pub async fn call_samples(
        &self,
        functions: Option<&[String]>,
        since: DateTime<Utc>,
        cap: usize,
    ) -> Result<(Vec<CallSample>, bool), StoreError> {
        if functions.is_some_and(<[String]>::is_empty) {
            return Ok((Vec::new(), true));
        }
        let fetch = i64::try_from(cap).unwrap_or(i64::MAX).saturating_add(1);
        on_pool!(&self.pool, |pool, DB| {
            let mut qb = QueryBuilder::<DB>::new(
                "SELECT function, received_at, status, duration_ms, cold, wait_ms, start_ms \
                 FROM calls WHERE received_at >= ",
            );
            qb.push_bind(millis(since));
            if let Some(functions) = functions {
                qb.push(" AND function IN (");
                let mut names = qb.separated(", ");
                for function in functions {
                    names.push_bind(function.clone());
                }
                qb.push(")");
            }
            qb.push(" ORDER BY received_at DESC LIMIT ")
                .push_bind(fetch);
            let query_built = qb.build();
            let mut rows = query_built.fetch(pool);
            let mut samples = Vec::new();
            while let Some(row) = rows.try_next().await.map_err(query("read call samples"))? {
                if samples.len() == cap {
                    return Ok((samples, false));
                }
                samples.push(decode(&row)?);
            }
            Ok((samples, true))
        })
    }
}

/// The sample of one row.
fn decode(row: &dyn Columns) -> Result<CallSample, StoreError> {
    let r = RowReader {
        row,
        what: "call sample".to_string(),
    };
    Ok(CallSample {
        function: r.text("function")?,
        received_at: r.time("received_at")?,
        status: r.parse("status")?,
        duration_ms: r.unsigned_opt("duration_ms")?,
        cold: r.bool_opt("cold")?,
        wait_ms: r.unsigned_opt("wait_ms")?,
        start_ms: r.unsigned_opt("start_ms")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CallWrite;
    use skiff_core::{CallRecord, CallStatus, Trigger};
    use uuid::Uuid;

    crate::testing::backend_tests! {
    async fn samples_are_read_newest_first_up_to_the_cap(kit) {
        let store = kit.store().await;
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let mut writes = Vec::new();
        for (i, function) in ["f", "f", "g", "f", "team.h"].into_iter().enumerate() {
            let mut record = CallRecord::new(
                Uuid::now_v7(),
                function,
                Trigger::Api,
                CallStatus::Succeeded,
                t0 + chrono::Duration::seconds(i as i64),
            );
            record.duration_ms = Some(i as u64);
            record.cold = Some(i == 0);
            writes.push(CallWrite { record, logs: None });
        }
        store.write_calls(&writes).await.expect("write");
        let (all, complete) = store.call_samples(Some(&["f".to_string()]), t0, 10).await.expect("read");
        assert!(complete);
        assert_eq!(
            all.iter().map(|s| s.duration_ms).collect::<Vec<_>>(),
            vec![Some(3), Some(1), Some(0)]
        );
        assert_eq!(all[2].cold, Some(true));
        let (some, complete) = store.call_samples(None, t0, 4).await.expect("read");
        assert!(!complete);
        assert_eq!(some.len(), 4);
        let (some, complete) = store.call_samples(None, t0, 2).await.expect("read");
        assert!(!complete);
        assert_eq!(some.len(), 2);
        let later = t0 + chrono::Duration::seconds(2);
        let (recent, _) = store.call_samples(None, later, 10).await.expect("read");
        assert_eq!(recent.len(), 3);
        // Only the functions named, a namespace's among them; none named, none read.
        let named = ["g".to_string(), "team.h".to_string()];
        let (two, complete) = store.call_samples(Some(&named), t0, 10).await.expect("read");
        assert!(complete);
        assert_eq!(
            two.iter().map(|s| s.function.as_str()).collect::<Vec<_>>(),
            vec!["team.h", "g"]
        );
        let (none, complete) = store.call_samples(Some(&[]), t0, 10).await.expect("read");
        assert!(none.is_empty() && complete);
    }
    }
}
