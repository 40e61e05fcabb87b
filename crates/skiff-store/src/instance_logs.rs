//! What the instances of `http` and `lambda` functions write, line by line: written in
//! batches, read by instance and time, and kept bounded (per instance, and in all).

use crate::backend::{on_pool, on_tx, Columns};
use crate::codec::{int, millis, text, RowReader};
use crate::error::query;
use crate::{Store, StoreError};
use chrono::{DateTime, Utc};
use skiff_core::api::{LogLine, LogStream};
use sqlx::QueryBuilder;

/// The most lines kept of one instance: older ones are deleted as new ones come.
pub const INSTANCE_LOG_LINES: u64 = 10_000;
/// The most lines kept of every instance together.
pub const ALL_INSTANCE_LOG_LINES: u64 = 500_000;
/// The most lines [`Store::instance_logs`] returns at once.
pub const MAX_INSTANCE_LOG_LIMIT: u32 = 10_000;
/// What [`Store::instance_logs`] returns when no limit is given.
pub const DEFAULT_INSTANCE_LOG_LIMIT: u32 = 1000;

/// Which lines [`Store::instance_logs`] returns. Every condition set must hold.
#[derive(Debug, Clone, Default)]
pub struct InstanceLogFilter {
    /// Only lines of this function.
    pub function: Option<String>,
    /// Only lines of this instance.
    pub instance: Option<String>,
    /// Only lines read at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only lines read before this time.
    pub until: Option<DateTime<Utc>>,
    /// At most this many (0 means the default; capped).
    pub limit: u32,
    /// The last `limit` lines that match rather than the first (still returned oldest
    /// first).
    pub latest: bool,
}

impl Store {
    /// Stores instance lines in one transaction, then deletes the oldest lines of each
    /// instance written to beyond [`INSTANCE_LOG_LINES`], and the lines older than the last
    /// [`ALL_INSTANCE_LOG_LINES`] written.
    pub async fn write_instance_logs(&self, lines: &[LogLine]) -> Result<(), StoreError> {
        let lines: Vec<&LogLine> = lines.iter().filter(|l| l.instance.is_some()).collect();
        if lines.is_empty() {
            return Ok(());
        }
        let mut instances: Vec<&str> = lines.iter().filter_map(|l| l.instance.as_deref()).collect();
        instances.sort_unstable();
        instances.dedup();
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query("begin a transaction"))?;
        on_tx!(&mut tx, |conn, DB| {
            // Five parameters a row: well under either backend's limit.
            for chunk in lines.chunks(500) {
                let mut insert = QueryBuilder::<DB>::new(
                    "INSERT INTO instance_logs (function, instance, at, stream, line) ",
                );
                insert.push_values(chunk, |mut row, l| {
                    row.push_bind(l.function.clone())
                        .push_bind(l.instance.clone().unwrap_or_default())
                        .push_bind(millis(l.at))
                        .push_bind(l.stream.as_str())
                        .push_bind(text(&l.line));
                });
                insert
                    .build()
                    .execute(&mut *conn)
                    .await
                    .map_err(query("store instance logs"))?;
            }
            for instance in &instances {
                sqlx::query(
                    "DELETE FROM instance_logs WHERE instance = $1 AND seq <= (
                        SELECT seq FROM instance_logs WHERE instance = $1
                        ORDER BY seq DESC LIMIT 1 OFFSET $2)",
                )
                .bind(*instance)
                .bind(int(INSTANCE_LOG_LINES))
                .execute(&mut *conn)
                .await
                .map_err(query("trim the logs of an instance"))?;
            }
            // `seq` only grows: the lines older than the last N written are those at or
            // below the highest `seq` less N (found from the end of the key, without a
            // scan).
            sqlx::query(
                "DELETE FROM instance_logs WHERE seq <= (SELECT MAX(seq) FROM instance_logs) - $1",
            )
            .bind(int(ALL_INSTANCE_LOG_LINES))
            .execute(&mut *conn)
            .await
            .map_err(query("trim the instance logs"))?;
            Ok::<_, StoreError>(())
        })?;
        tx.commit().await.map_err(query("commit instance logs"))?;
        Ok(())
    }

    /// The lines that match `filter`, oldest first.
    pub async fn instance_logs(
        &self,
        filter: &InstanceLogFilter,
    ) -> Result<Vec<LogLine>, StoreError> {
        let limit = match filter.limit {
            0 => DEFAULT_INSTANCE_LOG_LIMIT,
            n => n.min(MAX_INSTANCE_LOG_LIMIT),
        };
        let mut lines = on_pool!(&self.pool, |pool, DB| {
            let mut qb = QueryBuilder::<DB>::new(
                "SELECT function, instance, at, stream, line FROM instance_logs WHERE 1 = 1",
            );
            if let Some(function) = &filter.function {
                qb.push(" AND function = ").push_bind(function.clone());
            }
            if let Some(instance) = &filter.instance {
                qb.push(" AND instance = ").push_bind(instance.clone());
            }
            if let Some(since) = filter.since {
                qb.push(" AND at >= ").push_bind(millis(since));
            }
            if let Some(until) = filter.until {
                qb.push(" AND at < ").push_bind(millis(until));
            }
            qb.push(if filter.latest {
                " ORDER BY seq DESC LIMIT "
            } else {
                " ORDER BY seq LIMIT "
            })
            .push_bind(i64::from(limit));
            let rows = qb
                .build()
                .fetch_all(pool)
                .await
                .map_err(query("read instance logs"))?;
            rows.iter()
                .map(|row| decode(row))
                .collect::<Result<Vec<LogLine>, StoreError>>()
        })?;
        if filter.latest {
            lines.reverse();
        }
        Ok(lines)
    }
}

/// One line of `instance_logs`.
fn decode(row: &dyn Columns) -> Result<LogLine, StoreError> {
    let r = RowReader {
        row,
        what: "instance log line".to_string(),
    };
    let stream = r.text("stream")?;
    Ok(LogLine {
        at: r.time("at")?,
        function: r.text("function")?,
        call: None,
        instance: Some(r.text("instance")?),
        stream: LogStream::parse(&stream).unwrap_or(LogStream::Stdout),
        line: r.text("line")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(instance: &str, secs: i64, text: &str) -> LogLine {
        LogLine {
            at: DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap_or_default(),
            function: "web".into(),
            call: None,
            instance: Some(instance.into()),
            stream: LogStream::Stderr,
            line: text.into(),
        }
    }

    crate::testing::backend_tests! {
    async fn lines_are_read_by_instance_and_time(kit) {
        let store = kit.store().await;
        store
            .write_instance_logs(&[
                line("a", 0, "one"),
                line("b", 1, "other"),
                line("a", 2, "two"),
            ])
            .await
            .expect("write");
        let of_a = store
            .instance_logs(&InstanceLogFilter {
                instance: Some("a".into()),
                ..Default::default()
            })
            .await
            .expect("read");
        assert_eq!(
            of_a.iter().map(|l| l.line.as_str()).collect::<Vec<_>>(),
            ["one", "two"]
        );
        assert_eq!(of_a[0].stream, LogStream::Stderr);
        assert_eq!(of_a[0].instance.as_deref(), Some("a"));
        let later = store
            .instance_logs(&InstanceLogFilter {
                instance: Some("a".into()),
                since: Some(line("a", 1, "").at),
                ..Default::default()
            })
            .await
            .expect("read");
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].line, "two");
        let earlier = store
            .instance_logs(&InstanceLogFilter {
                until: Some(line("a", 1, "").at),
                ..Default::default()
            })
            .await
            .expect("read");
        assert_eq!(earlier.len(), 1);
        assert_eq!(earlier[0].line, "one");
        let last = store
            .instance_logs(&InstanceLogFilter {
                instance: Some("a".into()),
                limit: 1,
                latest: true,
                ..Default::default()
            })
            .await
            .expect("read");
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].line, "two");
    }

    async fn an_instance_keeps_its_latest_lines(kit) {
        let store = kit.store().await;
        let many: Vec<LogLine> = (0..INSTANCE_LOG_LINES + 5)
            .map(|i| line("a", 0, &format!("line {i}")))
            .collect();
        store.write_instance_logs(&many).await.expect("write");
        store
            .write_instance_logs(&[line("b", 0, "b")])
            .await
            .expect("write");
        let kept = store
            .instance_logs(&InstanceLogFilter {
                instance: Some("a".into()),
                limit: MAX_INSTANCE_LOG_LIMIT,
                ..Default::default()
            })
            .await
            .expect("read");
        assert_eq!(kept.len() as u64, INSTANCE_LOG_LINES);
        assert_eq!(kept[0].line, "line 5");
    }
    }
}
