//! skiff-store: skiff's state, in SQLite (embedded, the default) or PostgreSQL (which
//! several daemons can share).
//!
//! - the data directory ([`DataDir`]): private to its owner, as are the store's files;
//! - the daemon's identity ([`Store::daemon_id`]): in the `meta` table on SQLite, one row
//!   of `daemons` per host and data directory on PostgreSQL;
//! - deployed functions ([`Store::put_function`], ...), their configuration as JSON;
//! - call records and their logs ([`Store::write_calls`], [`Store::list_calls`], ...);
//! - the durable queue of async calls ([`Store::enqueue`], [`Store::claim_within`], ...),
//!   and the pruning of calls past the retention ([`Store::prune_calls`]);
//! - what instances write ([`Store::write_instance_logs`], [`Store::instance_logs`]), bounded;
//! - the samples the stats of calls are counted from ([`Store::call_samples`]);
//! - triggers and the firing of cron ticks ([`Store::put_trigger`], [`Store::fire_tick`]);
//! - secrets at rest ([`Store::use_keys`], [`Store::rotate_secret_key`]): function secrets
//!   and the secrets of the Lambda API's access keys ([`Store::create_access_key`]) are
//!   sealed with XChaCha20-Poly1305 ([`keys`]) before they reach the database.
//! - credentials (hashed), the audit log and namespace quotas ([`Store::credential_by_hash`],
//!   [`Store::write_audit`], [`Store::put_quota`]).
//!
//! Timestamps are stored as unix milliseconds (sub-millisecond precision is dropped), enums
//! by their `as_str()` names, call ids as hyphenated lowercase UUIDv7 text (so they sort by
//! time). A row that does not decode is reported as [`StoreError::Corrupt`]. Each backend
//! has its embedded migrations, run on open; statements are written once for both (see
//! `backend.rs`).

mod access;
mod access_keys;
mod backend;
mod calls;
mod changes;
mod claim;
mod codec;
mod credential_cache;
mod daemons;
pub mod data_dir;
mod error;
mod functions;
mod instance_logs;
pub mod keys;
mod queue;
mod retention;
mod samples;
mod secrets;
mod triggers;

#[cfg(test)]
mod testing;

pub use access::{AuditFilter, Credential, CredentialKind, DEFAULT_AUDIT_LIMIT, MAX_AUDIT_LIMIT};
pub use access_keys::AccessKeyRecord;
pub use backend::Backend;
pub use calls::{CallFilter, CallWrite, DEFAULT_CALL_LIMIT, INTERRUPTED_MESSAGE, MAX_CALL_LIMIT};
pub use changes::{Change, Changes};
pub use daemons::{Beat, DaemonRecord, DaemonState, Recovered};
pub use data_dir::{DataDir, DataDirError};
pub use error::StoreError;
pub use instance_logs::{
    InstanceLogFilter, ALL_INSTANCE_LOG_LINES, DEFAULT_INSTANCE_LOG_LIMIT, INSTANCE_LOG_LINES,
    MAX_INSTANCE_LOG_LIMIT,
};
pub use keys::{KeyError, KeySource, SecretKeys};
pub use queue::{Claimed, Payload, PendingCallback, StoredResult};
pub use secrets::{KeysInUse, Rotation};
pub use triggers::TickOutcome;

use backend::{on_pool, on_tx, Pool};
use error::query;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// How long a statement waits for a lock held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections of a file-backed store: one. SQLite lets one connection write at a time;
/// with several, writers wait for each other in SQLite's busy handler, which sleeps and
/// retries (unfairly, for up to [`BUSY_TIMEOUT`]), and a loaded daemon's writes failed with
/// "database is locked" (a queued call's result lost, an async call refused). With one,
/// statements wait their turn in the pool's queue, first come first served, and reads and
/// writes on two cores lose little: the work is the CPU's either way.
const MAX_CONNECTIONS: u32 = 1;
/// Connections to a PostgreSQL server, per daemon.
const MAX_PG_CONNECTIONS: u32 = 8;
/// How long a daemon waits for a PostgreSQL connection (at start, or from a busy pool).
const PG_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server lets one of a daemon's transactions sit idle before it ends the
/// session. A transaction of the store waits on nothing but the server between statements,
/// so an idle one belongs to a daemon that stopped running (paused, partitioned): ending
/// it frees the rows it locked, which a takeover of that daemon must update.
const PG_IDLE_IN_TRANSACTION: Duration = Duration::from_secs(5);
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

/// The name of this host, as the kernel knows it.
fn host_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// skiff's database. Cheap to clone: clones share one connection pool.
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
    /// This daemon's id and home, shared by clones: read (SQLite) or drawn (PostgreSQL) at
    /// open, and set again when the id is bound ([`Store::bind_daemon_id`]). Calls this
    /// store claims or records carry the id.
    me: Arc<parking_lot::Mutex<daemons::Me>>,
    /// The keys secrets at rest are opened with ([`Store::use_keys`]); until a daemon gives
    /// its own, one made for this process.
    keys: Arc<parking_lot::RwLock<SecretKeys>>,
    /// Credentials looked up by hash, kept for the next request: on SQLite only, where
    /// every change to them goes through this store.
    credentials: Option<Arc<credential_cache::CredentialCache<Credential>>>,
    /// The Lambda API's access keys (namespace, secret) by id, likewise.
    access_keys: Option<Arc<credential_cache::CredentialCache<(String, String)>>>,
}

impl Store {
    /// Opens the store a URL names: `postgres://` (or `postgresql://`) for a PostgreSQL
    /// server, `sqlite:PATH` (or `sqlite://PATH`) for a SQLite file (as [`Store::open`]).
    /// A password in the URL never shows in an error.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Store::connect_postgres(url).await;
        }
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .filter(|p| !p.is_empty())
        {
            return Store::open(Path::new(path)).await;
        }
        Err(StoreError::UnsupportedUrl {
            url: backend::redact(url),
        })
    }

    async fn connect_postgres(url: &str) -> Result<Store, StoreError> {
        let connect_error = |source| StoreError::Connect {
            url: backend::redact(url),
            source,
        };
        let options = PgConnectOptions::from_str(url)
            .map_err(connect_error)?
            .options([(
                "idle_in_transaction_session_timeout",
                format!("{}ms", PG_IDLE_IN_TRANSACTION.as_millis()),
            )]);
        let pool = PgPoolOptions::new()
            .max_connections(MAX_PG_CONNECTIONS)
            .acquire_timeout(PG_ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(connect_error)?;
        Store::init(Pool::Postgres(pool)).await
    }

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
            .busy_timeout(BUSY_TIMEOUT)
            // Deleted content is overwritten where its page is written anyway ("fast": a
            // secret replaced is gone from the file, without the extra page writes of "on",
            // under which every call record's upsert cost so much that warm calls went from
            // 6.3k to 3.9k a second, see BENCHMARKS.md).
            .pragma("secure_delete", "fast");
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(open_error)?;
        Store::init(Pool::Sqlite(pool)).await
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
        Store::init(Pool::Sqlite(pool)).await
    }

    async fn init(pool: Pool) -> Result<Store, StoreError> {
        pool.migrate().await?;
        let sqlite = pool.backend() == Backend::Sqlite;
        let store = Store {
            pool,
            me: Arc::new(parking_lot::Mutex::new(daemons::Me {
                id: new_daemon_id(),
                home: String::new(),
            })),
            keys: Arc::new(parking_lot::RwLock::new(SecretKeys::ephemeral()?)),
            credentials: sqlite.then(Arc::default),
            access_keys: sqlite.then(Arc::default),
        };
        if store.backend() == Backend::Sqlite {
            store.ensure_daemon_id().await?;
            let id = store.sqlite_daemon_id().await?;
            store.me.lock().id = id;
        }
        Ok(store)
    }

    /// The database the store is on.
    pub fn backend(&self) -> Backend {
        self.pool.backend()
    }

    /// SQLite: creates the daemon id unless the database already has one.
    async fn ensure_daemon_id(&self) -> Result<(), StoreError> {
        on_pool!(&self.pool, |pool, DB| sqlx::query(
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING"
        )
        .bind(DAEMON_ID_KEY)
        .bind(new_daemon_id())
        .execute(pool)
        .await
        .map(|_| ()))
        .map_err(query("create the daemon id"))
    }

    /// Binds the daemon id to `home`, the identity of the data directory the daemon runs
    /// from ([`DataDir::identity`]), so that a copy of the directory never passes for the
    /// original: a daemon removes the containers labelled with its id.
    ///
    /// On SQLite, whose file is in that directory: when the store was bound to another
    /// directory (it was copied, or moved), a new id is drawn and the one it replaces is
    /// returned. A store not bound yet (made before ids were bound) keeps its id.
    ///
    /// On PostgreSQL, which several daemons share: each host and data directory has an id
    /// of its own in the `daemons` table, drawn the first time and found again after a
    /// restart. Nothing is ever replaced.
    pub async fn bind_daemon_id(&self, home: &str) -> Result<Option<String>, StoreError> {
        match &self.pool {
            Pool::Sqlite(_) => {
                let replaced = self.bind_sqlite_daemon_id(home).await?;
                let id = self.sqlite_daemon_id().await?;
                *self.me.lock() = daemons::Me {
                    id,
                    home: home.to_string(),
                };
                Ok(replaced)
            }
            Pool::Postgres(pool) => {
                let home = format!("{} {home}", host_name());
                let id = daemons::register(pool, &home, new_daemon_id()).await?;
                *self.me.lock() = daemons::Me { id, home };
                Ok(None)
            }
        }
    }

    async fn bind_sqlite_daemon_id(&self, home: &str) -> Result<Option<String>, StoreError> {
        let what = "bind the daemon id to its data directory";
        let mut tx = self.pool.begin().await.map_err(query(what))?;
        let bound: Option<String> = on_tx!(&mut tx, |conn, DB| sqlx::query_scalar(
            "SELECT value FROM meta WHERE key = $1"
        )
        .bind(DAEMON_HOME_KEY)
        .fetch_optional(&mut *conn)
        .await)
        .map_err(query(what))?;
        if bound.as_deref() == Some(home) {
            return Ok(None);
        }
        let replaced = on_tx!(&mut tx, |conn, DB| {
            let previous = match bound {
                None => None,
                Some(_) => {
                    let previous: Option<String> =
                        sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
                            .bind(DAEMON_ID_KEY)
                            .fetch_optional(&mut *conn)
                            .await
                            .map_err(query(what))?;
                    sqlx::query(
                        "INSERT INTO meta (key, value) VALUES ($1, $2) \
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    )
                    .bind(DAEMON_ID_KEY)
                    .bind(new_daemon_id())
                    .execute(&mut *conn)
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
            .execute(&mut *conn)
            .await
            .map_err(query(what))?;
            previous
        });
        tx.commit().await.map_err(query(what))?;
        Ok(replaced)
    }

    /// This daemon's id (12 lowercase hex digits). On SQLite: a stable id for the database,
    /// created at first open, and drawn again when the store is found in a copy of its data
    /// directory. On PostgreSQL: the id of the data directory it is bound to (until then,
    /// one drawn at connect).
    pub async fn daemon_id(&self) -> Result<String, StoreError> {
        Ok(self.me.lock().id.clone())
    }

    /// The id cached by this store (see [`Store::daemon_id`]).
    pub(crate) fn my_id(&self) -> String {
        self.me.lock().id.clone()
    }

    /// SQLite: the daemon id stored in `meta`.
    async fn sqlite_daemon_id(&self) -> Result<String, StoreError> {
        let id: Option<String> = on_pool!(&self.pool, |pool, DB| sqlx::query_scalar(
            "SELECT value FROM meta WHERE key = $1"
        )
        .bind(DAEMON_ID_KEY)
        .fetch_optional(pool)
        .await)
        .map_err(query("read the daemon id"))?;
        id.ok_or_else(|| error::corrupt("meta", "the daemon id is missing"))
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
    async fn a_store_with_the_instance_logs_numbered_0008_opens_and_gains_the_daemons_table() {
        // The SQLite migrations as an earlier skiff had them: no 0008_daemons, the instance
        // logs as 0008.
        let sources = tempfile::tempdir().expect("tempdir");
        let ours = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
        for entry in std::fs::read_dir(&ours).expect("migrations") {
            let name = entry
                .expect("entry")
                .file_name()
                .into_string()
                .expect("name");
            let target = match name.as_str() {
                "0008_daemons.sql" => continue,
                "0009_instance_logs.sql" => "0008_instance_logs.sql".to_string(),
                other => other.to_string(),
            };
            std::fs::copy(ours.join(&name), sources.path().join(target)).expect("copy");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("skiff.db");
        {
            let pool = SqlitePoolOptions::new()
                .connect_with(
                    SqliteConnectOptions::new()
                        .filename(&path)
                        .create_if_missing(true),
                )
                .await
                .expect("pool");
            sqlx::migrate::Migrator::new(sources.path())
                .await
                .expect("migrator")
                .run(&pool)
                .await
                .expect("earlier migrations");
            pool.close().await;
        }
        let store = Store::open(&path).await.expect("open");
        store
            .write_instance_logs(&[skiff_core::api::LogLine {
                at: Utc::now(),
                function: "f".into(),
                call: None,
                instance: Some("i".into()),
                stream: skiff_core::api::LogStream::Stdout,
                line: "kept".into(),
            }])
            .await
            .expect("instance logs");
        let Pool::Sqlite(pool) = &store.pool else {
            panic!("a SQLite store");
        };
        let versions: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
                .fetch_all(pool)
                .await
                .expect("versions");
        let embedded: Vec<i64> = backend::SQLITE_MIGRATIONS
            .iter()
            .map(|m| m.version)
            .collect();
        assert_eq!(versions, embedded);
        assert_eq!(versions, (1..=12).collect::<Vec<i64>>());
        let daemon_column: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pragma_table_info('calls') WHERE name = 'daemon'",
        )
        .fetch_one(pool)
        .await
        .expect("columns");
        assert_eq!(daemon_column, 1, "0008_daemons was applied");
    }

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
        let Pool::Sqlite(pool) = &store.pool else {
            panic!("a file is a SQLite store")
        };
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(pool)
            .await
            .expect("pragma");
        assert_eq!(journal, "wal");
        let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(pool)
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

    crate::testing::backend_tests! {
    async fn a_daemon_finds_its_functions_and_its_id_again_after_a_restart(kit) {
        let store = kit.shared_store().await;
        let function = skiff_core::Function {
            name: FunctionName::parse("kept").expect("name"),
            config: FunctionSpec {
                image: "kept:1".into(),
                ..FunctionSpec::default()
            }
            .validate()
            .expect("valid"),
            image_digest: "sha256:kept".into(),
            version: 3,
            created_at: DateTime::from_timestamp_millis(1).expect("time"),
            updated_at: DateTime::from_timestamp_millis(2).expect("time"),
        };
        store.put_function(&function).await.expect("put");
        assert_eq!(store.bind_daemon_id("/srv/a").await.expect("bind"), None);
        let id = store.daemon_id().await.expect("id");
        assert_eq!(id.len(), 12, "{id}");
        store.close().await;

        // The same data directory, restarted: the same id, the same functions.
        let again = kit.reopen().await;
        assert_eq!(again.bind_daemon_id("/srv/a").await.expect("bind"), None);
        assert_eq!(again.daemon_id().await.expect("id"), id);
        assert_eq!(
            again.get_function("kept").await.expect("get"),
            Some(function.clone())
        );
        if kit.backend() == Backend::Sqlite {
            return; // one daemon per SQLite file: its data directory is locked
        }
        // Another daemon (another data directory) on the same database: an id of its
        // own, and every function.
        let other = kit.reopen().await;
        assert_eq!(other.bind_daemon_id("/srv/b").await.expect("bind"), None);
        assert_ne!(other.daemon_id().await.expect("id"), id);
        assert_eq!(other.list_functions().await.expect("list"), vec![function]);
    }
    }

    #[tokio::test]
    async fn store_urls_name_their_backend_and_hide_passwords() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("by-url.db");
        let store = Store::connect(&format!("sqlite:{}", path.display()))
            .await
            .expect("a sqlite URL");
        assert_eq!(store.backend(), Backend::Sqlite);
        assert!(path.exists());
        let err = Store::connect("mysql://root:hunter2@db/skiff")
            .await
            .expect_err("not supported");
        assert!(matches!(err, StoreError::UnsupportedUrl { .. }), "{err:?}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        // Nothing listens on port 1: the error names the server, not the password.
        let err = Store::connect("postgres://skiff:hunter2@127.0.0.1:1/skiff")
            .await
            .expect_err("no server");
        assert!(matches!(err, StoreError::Connect { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains("127.0.0.1:1"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[tokio::test]
    async fn a_moved_sqlite_store_still_recovers_the_calls_of_its_previous_id() {
        let store = Store::open_in_memory().await.expect("open");
        store.bind_daemon_id("/srv/a").await.expect("bind");
        let queued = CallRecord::new(
            Uuid::now_v7(),
            "f",
            Trigger::Async,
            CallStatus::Queued,
            Utc::now(),
        );
        let payload = Payload::default();
        store.enqueue(&queued, &payload).await.expect("enqueue");
        assert_eq!(store.claim(Utc::now(), 10).await.expect("claim").len(), 1);
        let sync = CallRecord::new(
            Uuid::now_v7(),
            "f",
            Trigger::Http,
            CallStatus::Running,
            Utc::now(),
        );
        store
            .write_calls(&[CallWrite {
                record: sync.clone(),
                logs: None,
            }])
            .await
            .expect("write");
        // Moved: a new id; the calls run under the old one are still this file's.
        assert!(store
            .bind_daemon_id("/srv/b")
            .await
            .expect("bind")
            .is_some());
        assert_eq!(store.requeue_interrupted().await.expect("requeue"), 1);
        assert_eq!(
            store
                .interrupt_unfinished_calls(Utc::now())
                .await
                .expect("interrupt"),
            1
        );
    }
}
