//! Tests run on both backends: [`backend_tests!`] makes of each test a `sqlite` and a
//! `postgres` test, each given a [`Kit`] that opens fresh stores of its backend.
//!
//! PostgreSQL stores are made on the server `SKIFF_TEST_POSTGRES` names (a URL; the user
//! must be allowed to create schemas), each in a schema of its own, dropped at the end of
//! the test. Without that variable the PostgreSQL tests fail when `CI=true`, and are skipped
//! with a line on stderr otherwise.

use crate::{Backend, Store};
use uuid::Uuid;

/// The variable that names the PostgreSQL server of the tests.
pub(crate) const POSTGRES_URL_VAR: &str = "SKIFF_TEST_POSTGRES";

/// Fresh stores of one backend, for one test.
#[derive(Debug)]
pub(crate) struct Kit {
    backend: Backend,
    /// PostgreSQL: the server's URL, and the schemas made for this test.
    server: Option<String>,
    schemas: Vec<String>,
    /// SQLite: the directory of the file of [`Kit::shared_store`].
    files: Option<tempfile::TempDir>,
}

impl Kit {
    pub(crate) fn sqlite() -> Kit {
        Kit {
            backend: Backend::Sqlite,
            server: None,
            schemas: Vec::new(),
            files: None,
        }
    }

    /// `None` (the test skipped) when no server is given outside CI.
    pub(crate) fn postgres(test: &str) -> Option<Kit> {
        match std::env::var(POSTGRES_URL_VAR) {
            Ok(url) if !url.is_empty() => Some(Kit {
                backend: Backend::Postgres,
                server: Some(url),
                schemas: Vec::new(),
                files: None,
            }),
            _ => {
                let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
                assert!(
                    !ci,
                    "{POSTGRES_URL_VAR} is not set: the PostgreSQL store tests need a server \
                     (scripts/postgres.sh start makes one)"
                );
                eprintln!("skipped {test} on PostgreSQL: {POSTGRES_URL_VAR} is not set");
                None
            }
        }
    }

    pub(crate) fn backend(&self) -> Backend {
        self.backend
    }

    /// A new, empty, migrated store.
    pub(crate) async fn store(&mut self) -> Store {
        match self.backend {
            Backend::Sqlite => Store::open_in_memory().await.expect("in-memory store"),
            Backend::Postgres => {
                let schema = format!("skiff_test_{}", Uuid::new_v4().simple());
                let server = self.server.clone().unwrap_or_default();
                admin(&server, &format!("CREATE SCHEMA {schema}")).await;
                self.schemas.push(schema.clone());
                let url = self.url_of(&schema);
                Store::connect(&url).await.expect("PostgreSQL store")
            }
        }
    }

    /// A new store that [`Kit::reopen`] can open again: on SQLite, a file rather than
    /// memory.
    pub(crate) async fn shared_store(&mut self) -> Store {
        match self.backend {
            Backend::Postgres => self.store().await,
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let store = Store::open(&dir.path().join("skiff.db"))
                    .await
                    .expect("SQLite store");
                self.files = Some(dir);
                store
            }
        }
    }

    /// Another store on the database of the last store made (on SQLite, the last
    /// [`Kit::shared_store`]), with a pool of its own, as a second daemon (or the same one
    /// restarted) would open it.
    pub(crate) async fn reopen(&mut self) -> Store {
        match self.backend {
            Backend::Postgres => {
                let schema = self.schemas.last().cloned().expect("a store was made");
                Store::connect(&self.url_of(&schema))
                    .await
                    .expect("PostgreSQL store")
            }
            Backend::Sqlite => {
                let dir = self.files.as_ref().expect("a shared store was made");
                Store::open(&dir.path().join("skiff.db"))
                    .await
                    .expect("SQLite store")
            }
        }
    }

    fn url_of(&self, schema: &str) -> String {
        let server = self.server.clone().unwrap_or_default();
        let separator = if server.contains('?') { '&' } else { '?' };
        format!("{server}{separator}options[search_path]={schema}")
    }
}

impl Drop for Kit {
    fn drop(&mut self) {
        let (Some(server), false) = (self.server.clone(), self.schemas.is_empty()) else {
            return;
        };
        let schemas = std::mem::take(&mut self.schemas);
        // Dropped in a runtime of its own: this may run inside the test's runtime.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                for schema in schemas {
                    admin(&server, &format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await;
                }
            });
        })
        .join();
    }
}

/// Runs one statement on the server, outside any test schema.
async fn admin(server: &str, sql: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(server)
        .await
        .expect("connect to the test server");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut conn)
        .await
        .expect(sql);
    let _ = conn.close().await;
}

/// Each `async fn NAME(kit) { ... }` becomes a module `NAME` with two tests, `sqlite` and
/// `postgres`, that run the body with a [`Kit`] of their backend.
macro_rules! backend_tests {
    ($(
        $(#[$meta:meta])*
        async fn $name:ident($kit:ident) $body:block
    )*) => {$(
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                #[allow(unused_mut)]
                let mut $kit = $crate::testing::Kit::sqlite();
                $body
            }

            #[tokio::test]
            async fn postgres() {
                #[allow(unused_mut)]
                let Some(mut $kit) = $crate::testing::Kit::postgres(concat!(
                    module_path!(),
                    "::postgres"
                )) else {
                    return;
                };
                $body
            }
        }
    )*};
}
pub(crate) use backend_tests;

/// Runs `sql` on `store`'s database with text parameters `$1`, `$2`, ...: damage a row,
/// as a test of decoding would.
pub(crate) async fn execute(store: &Store, sql: &'static str, binds: &[&str]) {
    crate::backend::on_pool!(&store.pool, |pool, DB| {
        let mut query = sqlx::query(sql);
        for bind in binds {
            query = query.bind(bind.to_string());
        }
        query.execute(pool).await.expect(sql);
    })
}
