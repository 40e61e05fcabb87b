//! The two databases behind [`crate::Store`]: SQLite (embedded, the default) and
//! PostgreSQL (shared by several daemons).
//!
//! Each statement is written once: [`on_pool!`] and [`on_tx!`] expand a body for the
//! concrete pool (or transaction) of either backend, so it is type-checked against both,
//! and rows are read through [`Columns`], whatever the backend. The few places where the
//! dialects differ pick their SQL by [`Backend`]:
//! - claiming queued calls locks the rows it takes, skipping those another daemon is
//!   taking (`FOR UPDATE SKIP LOCKED`, PostgreSQL only: SQLite has one writer at a time);
//! - everything else is SQL both accept: `$n` placeholders, `ON CONFLICT`, `RETURNING`,
//!   `IS NOT DISTINCT FROM`, lists as `IN ($1, $2, ...)`.
//!
//! Integers are bound and read as `i64` (BIGINT columns on PostgreSQL), JSON as text, bytes
//! as BLOB/BYTEA, `cold` as a boolean.

use sqlx::postgres::{PgPool, PgRow};
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{Postgres, Row, Sqlite};

/// The embedded migrations of each backend. Their versions line up: after version N, both
/// hold the same tables and columns.
pub(crate) static SQLITE_MIGRATIONS: sqlx::migrate::Migrator =
    sqlx::migrate!("./migrations/sqlite");
pub(crate) static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator =
    sqlx::migrate!("./migrations/postgres");

/// Which database a store is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file (or memory, in tests).
    Sqlite,
    /// A PostgreSQL server, which several daemons may share.
    Postgres,
}

impl Backend {
    /// Its name, as in logs: `sqlite` or `postgres`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A connection pool of either backend.
#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Pool {
    pub(crate) fn backend(&self) -> Backend {
        match self {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Starts a transaction.
    pub(crate) async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Pool::Sqlite(pool) => Tx::Sqlite(pool.begin().await?),
            Pool::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Begins a transaction that will write after it reads. On SQLite it takes the write lock
    /// at once (`BEGIN IMMEDIATE`), waiting for it under the busy timeout: a transaction that
    /// reads first and writes later would otherwise fail with "database is locked" when
    /// another connection wrote meanwhile, without waiting.
    pub(crate) async fn begin_write(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Pool::Sqlite(pool) => Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Pool::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Closes every connection, waiting for queries in flight.
    pub(crate) async fn close(&self) {
        match self {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }

    /// Runs the backend's migrations.
    pub(crate) async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        match self {
            Pool::Sqlite(pool) => {
                renumber_instance_logs(pool)
                    .await
                    .map_err(sqlx::migrate::MigrateError::Execute)?;
                SQLITE_MIGRATIONS.run(pool).await
            }
            Pool::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await,
        }
    }
}

/// A SQLite store migrated by a skiff that numbered the instance logs' migration 0008 (now
/// the daemons', the instance logs' being 0009) has that row of `_sqlx_migrations` take its
/// new number, so that the daemons' migration is applied and the instance logs' is not
/// applied again (its text, and so its checksum, are unchanged).
async fn renumber_instance_logs(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    let migrated: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_optional(pool)
    .await?;
    if migrated.is_some() {
        sqlx::query(
            "UPDATE _sqlx_migrations SET version = 9
             WHERE version = 8 AND description = 'instance logs'
                AND NOT EXISTS (SELECT 1 FROM _sqlx_migrations WHERE version = 9)",
        )
        .execute(pool)
        .await?;
    }
    Ok(())
}

/// A transaction of either backend. Dropped without [`Tx::commit`], it rolls back.
#[derive(Debug)]
pub(crate) enum Tx {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl Tx {
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await,
            Tx::Postgres(tx) => tx.commit().await,
        }
    }

    pub(crate) async fn rollback(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(tx) => tx.rollback().await,
            Tx::Postgres(tx) => tx.rollback().await,
        }
    }
}

/// `on_pool!(pool, |p, DB| body)`: `body` once per backend, with `p` the concrete pool
/// (`&SqlitePool` or `&PgPool`) and `DB` the `sqlx::Database` type.
macro_rules! on_pool {
    ($pool:expr, |$p:ident, $db:ident| $body:expr) => {
        match $pool {
            $crate::backend::Pool::Sqlite($p) => {
                #[allow(dead_code)]
                type $db = sqlx::Sqlite;
                $body
            }
            $crate::backend::Pool::Postgres($p) => {
                #[allow(dead_code)]
                type $db = sqlx::Postgres;
                $body
            }
        }
    };
}
pub(crate) use on_pool;

/// `on_tx!(tx, |conn, DB| body)`: `body` once per backend, with `conn` the transaction's
/// connection (use it as `&mut *conn`) and `DB` the `sqlx::Database` type.
macro_rules! on_tx {
    ($tx:expr, |$c:ident, $db:ident| $body:expr) => {
        match $tx {
            $crate::backend::Tx::Sqlite(tx) => {
                #[allow(dead_code)]
                type $db = sqlx::Sqlite;
                let $c: &mut sqlx::SqliteConnection = &mut *tx;
                $body
            }
            $crate::backend::Tx::Postgres(tx) => {
                #[allow(dead_code)]
                type $db = sqlx::Postgres;
                let $c: &mut sqlx::PgConnection = &mut *tx;
                $body
            }
        }
    };
}
pub(crate) use on_tx;

/// The columns of a row, read the same way whatever its backend.
pub(crate) trait Columns {
    fn int(&self, column: &str) -> Result<Option<i64>, sqlx::Error>;
    fn text(&self, column: &str) -> Result<Option<String>, sqlx::Error>;
    fn boolean(&self, column: &str) -> Result<Option<bool>, sqlx::Error>;
    fn bytes(&self, column: &str) -> Result<Option<Vec<u8>>, sqlx::Error>;
}

macro_rules! columns_of {
    ($row:ty) => {
        impl Columns for $row {
            fn int(&self, column: &str) -> Result<Option<i64>, sqlx::Error> {
                self.try_get(column)
            }
            fn text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
                self.try_get(column)
            }
            fn boolean(&self, column: &str) -> Result<Option<bool>, sqlx::Error> {
                self.try_get(column)
            }
            fn bytes(&self, column: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
                self.try_get(column)
            }
        }
    };
}
columns_of!(SqliteRow);
columns_of!(PgRow);

/// `url` with its password, if any, replaced by `***`, for messages and logs.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    // A password given as a query parameter: keep the address, drop the parameters.
    let tail = match tail.split_once('?') {
        Some((path, query)) if query.contains("password=") => format!("{path}?***"),
        _ => tail.to_string(),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show_in_a_redacted_url() {
        assert_eq!(
            redact("postgres://skiff:s3cret@db:5432/skiff?sslmode=disable"),
            "postgres://skiff:***@db:5432/skiff?sslmode=disable"
        );
        assert_eq!(
            redact("postgres://skiff@db/skiff"),
            "postgres://skiff@db/skiff"
        );
        assert_eq!(redact("postgres:///skiff"), "postgres:///skiff");
        assert!(!redact("postgres://db/skiff?password=s3cret").contains("s3cret"));
    }
}
