//! skiff-store: skiff's state in SQLite.
//!
//! - the data directory ([`DataDir`]): private to its owner, as are the store's files;
//! - the daemon's identity ([`Store::daemon_id`]), in the `meta` table;
//! - deployed functions ([`Store::put_function`], ...), their configuration as JSON;
//! - call records and their logs ([`Store::write_calls`], [`Store::list_calls`], ...);
//! - what instances write ([`Store::write_instance_logs`], [`Store::instance_logs`]), bounded;
//! - the samples the stats of calls are counted from ([`Store::call_samples`]);
//! - triggers and the firing of cron ticks ([`Store::put_trigger`], [`Store::fire_tick`]).
//!
//! Timestamps are stored as unix milliseconds (sub-millisecond precision is dropped), enums
//! by their `as_str()` names, call ids as hyphenated lowercase UUIDv7 text (so they sort by
//! time). A row that does not decode is reported as [`StoreError::Corrupt`]. The schema is
//! embedded and migrated on open; SQL uses `$n` placeholders so it can serve PostgreSQL too.

mod calls;
mod codec;
pub mod data_dir;
mod error;
mod functions;
mod instance_logs;
mod queue;
mod retention;
mod samples;
mod triggers;

pub use calls::{CallFilter, CallWrite, DEFAULT_CALL_LIMIT, INTERRUPTED_MESSAGE, MAX_CALL_LIMIT};
pub use data_dir::{DataDir, DataDirError};
pub use error::StoreError;
pub use instance_logs::{
    InstanceLogFilter, ALL_INSTANCE_LOG_LINES, DEFAULT_INSTANCE_LOG_LIMIT, INSTANCE_LOG_LINES,
    MAX_INSTANCE_LOG_LIMIT,
};
pub use queue::{Claimed, Payload, PendingCallback, StoredResult};
pub use triggers::TickOutcome;

use error::query;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Row;
use std::path::Path;
use std::time::Duration;
use uuid::Uuid;

/// The embedded schema migrations.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// How long a statement waits for a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections of a file-backed store.
const MAX_CONNECTIONS: u32 = 4;
/// The `meta` key of the daemon id.
const DAEMON_ID_KEY: &str = "daemon_id";
/// The `meta` key of the identity of the data directory the daemon id belongs to.
const DAEMON_HOME_KEY: &str = "daemon_home";

/// A new daemon id: 12 lowercase hex digits, 48 random bits.
fn new_daemon_id() -> String {
    // Every bit of a v7 uuid built without a counter is random but the timestamp,
    // version and variant; its last 12 hex digits are 48 random bits.
    let random = Uuid::new_v7(uuid::Timestamp::from_unix_time(0, 0, 0, 0));
    let simple = random.simple().to_string();
    simple
        .get(simple.len() - 12..)
        .unwrap_or(&simple)
        .to_string()
}

/// skiff's database. Cheap to clone: clones share one connection pool.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Opens the database at `path`, creating the file and its parent directories if needed,
    /// and migrates it: WAL journal, `synchronous=NORMAL`, foreign keys on, 5s busy timeout.
    /// The file, and SQLite's `-wal` and `-shm` beside it, are readable by their owner only
    /// (mode 0600): existing ones are tightened, and SQLite gives new ones the file's mode.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        let open_error = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| open_error(sqlx::Error::Io(e)))?;
        }
        data_dir::private_file(path).map_err(|e| open_error(sqlx::Error::Io(e)))?;
        for suffix in ["-wal", "-shm", "-journal"] {
            let mut beside = path.as_os_str().to_owned();
            beside.push(suffix);
            data_dir::private_if_present(Path::new(&beside))
                .map_err(|e| open_error(sqlx::Error::Io(e)))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(open_error)?;
        Store::init(pool).await
    }

    /// A private in-memory database, for tests. Its pool holds a single connection that is
    /// never recycled, so every query sees the same database; it lives as long as the store.
    pub async fn open_in_memory() -> Result<Store, StoreError> {
        let options = SqliteConnectOptions::new()
            .in_memory(true)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                path: ":memory:".into(),
                source,
            })?;
        Store::init(pool).await
    }

    async fn init(pool: SqlitePool) -> Result<Store, StoreError> {
        MIGRATOR.run(&pool).await?;
        let store = Store { pool };
        store.ensure_daemon_id().await?;
        Ok(store)
    }

    /// Creates the daemon id unless the database already has one.
    async fn ensure_daemon_id(&self) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(DAEMON_ID_KEY)
            .bind(new_daemon_id())
            .execute(&self.pool)
            .await
            .map_err(query("create the daemon id"))?;
        Ok(())
    }

    /// Binds the daemon id to `home`, the identity of the data directory the store is in
    /// ([`DataDir::identity`]), so that a copy of the directory never passes for the
    /// original: a daemon removes the containers labelled with its id. When the store was
    /// bound to another directory (it was copied, or moved), a new id is drawn and the one
    /// it replaces is returned. A store not bound yet (made before ids were bound) keeps its
    /// id.
    pub async fn bind_daemon_id(&self, home: &str) -> Result<Option<String>, StoreError> {
        let what = "bind the daemon id to its data directory";
        let mut tx = self.pool.begin().await.map_err(query(what))?;
        let bound: Option<String> = sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(DAEMON_HOME_KEY)
            .fetch_optional(&mut *tx)
            .await
            .map_err(query(what))?;
        if bound.as_deref() == Some(home) {
            return Ok(None);
        }
        let replaced = match bound {
            None => None,
            Some(_) => {
                let previous: Option<String> =
                    sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
                        .bind(DAEMON_ID_KEY)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(query(what))?;
                sqlx::query(
                    "INSERT INTO meta (key, value) VALUES ($1, $2) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                )
                .bind(DAEMON_ID_KEY)
                .bind(new_daemon_id())
                .execute(&mut *tx)
                .await
                .map_err(query(what))?;
                previous
            }
        };
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(DAEMON_HOME_KEY)
        .bind(home)
        .execute(&mut *tx)
        .await
        .map_err(query(what))?;
        tx.commit().await.map_err(query(what))?;
        Ok(replaced)
    }

    /// A stable id for this database (12 lowercase hex digits), created at first open, and
    /// drawn again when the store is found in a copy of its data directory.
    pub async fn daemon_id(&self) -> Result<String, StoreError> {
        let row = sqlx::query("SELECT value FROM meta WHERE key = $1")
            .bind(DAEMON_ID_KEY)
            .fetch_optional(&self.pool)
            .await
            .map_err(query("read the daemon id"))?;
        let Some(row) = row else {
            return Err(error::corrupt("meta", "the daemon id is missing"));
        };
        row.try_get("value")
            .map_err(|e| error::corrupt("meta", format!("daemon id: {e}")))
    }

    /// Closes every connection, waiting for queries in flight. Later queries fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use skiff_core::{CallRecord, CallStatus, FunctionName, FunctionSpec, Trigger};

    #[tokio::test]
    async fn the_daemon_id_is_stable_and_data_persists_across_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested/dirs/skiff.db");

        let store = Store::open(&path).await.expect("open");
        let id = store.daemon_id().await.expect("daemon id");
        assert_eq!(id.len(), 12, "{id}");
        assert!(
            id.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
            "{id}"
        );
        assert_eq!(store.daemon_id().await.expect("again"), id);
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&store.pool)
            .await
            .expect("pragma");
        assert_eq!(journal, "wal");
        let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&store.pool)
            .await
            .expect("pragma");
        assert_eq!(foreign_keys, 1);

        let function = skiff_core::Function {
            name: FunctionName::parse("hello").expect("name"),
            config: FunctionSpec {
                image: "hello:1".into(),
                ..FunctionSpec::default()
            }
            .validate()
            .expect("valid"),
            image_digest: "sha256:abc".into(),
            version: 1,
            created_at: DateTime::from_timestamp_millis(1_700_000_000_000).expect("time"),
            updated_at: DateTime::from_timestamp_millis(1_700_000_000_001).expect("time"),
        };
        store.put_function(&function).await.expect("put");
        let record = CallRecord {
            id: Uuid::now_v7(),
            function: "hello".into(),
            trigger: Trigger::Http,
            status: CallStatus::Succeeded,
            attempt: 1,
            received_at: DateTime::from_timestamp_millis(Utc::now().timestamp_millis())
                .expect("time"),
            started_at: None,
            finished_at: None,
            cold: Some(true),
            instance: None,
            exit_code: Some(0),
            error_type: None,
            error_message: None,
            request_size: 5,
            response_size: Some(5),
            duration_ms: Some(12),
            wait_ms: Some(1),
            start_ms: Some(2),
            caller: None,
            parent: None,
            depth: 0,
        };
        store
            .write_calls(&[CallWrite {
                record: record.clone(),
                logs: Some(b"hi\n".to_vec()),
            }])
            .await
            .expect("write");
        store.close().await;
        drop(store);
        assert!(path.exists());

        let reopened = Store::open(&path).await.expect("reopen");
        assert_eq!(reopened.daemon_id().await.expect("daemon id"), id);
        assert_eq!(
            reopened.get_function("hello").await.expect("get"),
            Some(function)
        );
        assert_eq!(
            reopened.get_call(record.id).await.expect("get"),
            Some(record.clone())
        );
        assert_eq!(
            reopened.call_logs(record.id).await.expect("logs"),
            Some(b"hi\n".to_vec())
        );

        // Another database gets another id.
        let other = Store::open(&dir.path().join("other.db"))
            .await
            .expect("open other");
        assert_ne!(other.daemon_id().await.expect("daemon id"), id);
    }

    #[tokio::test]
    async fn the_daemon_id_follows_the_data_directory_it_was_drawn_for() {
        let store = Store::open_in_memory().await.expect("open");
        let id = store.daemon_id().await.expect("id");
        // A store made before ids were bound keeps its id.
        assert_eq!(
            store
                .bind_daemon_id("/srv/a (device 1, inode 2)")
                .await
                .expect("bind"),
            None
        );
        assert_eq!(store.daemon_id().await.expect("id"), id);
        assert_eq!(
            store
                .bind_daemon_id("/srv/a (device 1, inode 2)")
                .await
                .expect("again"),
            None
        );
        assert_eq!(store.daemon_id().await.expect("id"), id);
        // Found elsewhere: a copy, with an id of its own.
        let replaced = store
            .bind_daemon_id("/srv/b (device 1, inode 3)")
            .await
            .expect("copy");
        assert_eq!(replaced.as_deref(), Some(id.as_str()));
        let new = store.daemon_id().await.expect("id");
        assert_ne!(new, id);
        assert_eq!(new.len(), 12, "{new}");
        assert_eq!(
            store
                .bind_daemon_id("/srv/b (device 1, inode 3)")
                .await
                .expect("stable"),
            None
        );
        assert_eq!(store.daemon_id().await.expect("id"), new);
    }

    #[tokio::test]
    async fn the_store_files_are_readable_by_their_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("skiff.db");
        let files = ["skiff.db", "skiff.db-wal", "skiff.db-shm"].map(|f| dir.path().join(f));
        let mode = |p: &Path| {
            std::fs::metadata(p)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
                .permissions()
                .mode()
                & 0o777
        };
        let store = Store::open(&path).await.expect("open");
        store.daemon_id().await.expect("a read");
        for file in &files {
            assert_eq!(mode(file), 0o600, "{}", file.display());
        }
        // Files an older skiff left readable by all are tightened on the next open.
        for file in &files {
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        }
        let again = Store::open(&path).await.expect("reopen");
        again.daemon_id().await.expect("a read");
        for file in &files {
            assert_eq!(mode(file), 0o600, "{}", file.display());
        }
    }

    #[tokio::test]
    async fn in_memory_stores_are_private_and_shared_by_clones() {
        let a = Store::open_in_memory().await.expect("a");
        let b = Store::open_in_memory().await.expect("b");
        assert_ne!(
            a.daemon_id().await.expect("id"),
            b.daemon_id().await.expect("id")
        );
        let function = skiff_core::Function {
            name: FunctionName::parse("x").expect("name"),
            config: FunctionSpec {
                image: "x:1".into(),
                ..FunctionSpec::default()
            }
            .validate()
            .expect("valid"),
            image_digest: "sha256:x".into(),
            version: 1,
            created_at: DateTime::from_timestamp_millis(0).expect("time"),
            updated_at: DateTime::from_timestamp_millis(0).expect("time"),
        };
        a.clone().put_function(&function).await.expect("put");
        assert!(a.get_function("x").await.expect("get").is_some());
        assert!(b.get_function("x").await.expect("get").is_none());
    }

    #[tokio::test]
    async fn opening_a_path_that_cannot_be_a_database_fails_with_its_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = Store::open(dir.path()).await.expect_err("a directory");
        match err {
            StoreError::Open { path, .. } => assert_eq!(path, dir.path()),
            other => panic!("expected Open, got {other:?}"),
        }
    }
}
