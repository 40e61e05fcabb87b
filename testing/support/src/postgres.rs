//! A PostgreSQL database of its own for each test that runs daemons on PostgreSQL, on the
//! server `SKIFF_TEST_POSTGRES` names (`scripts/test.sh` and `.ci/run` start one). Without
//! it a test fails in CI and is skipped elsewhere (see [`crate::needs`]).

use sqlx::{Connection, PgConnection};

/// The variable that names the tests' PostgreSQL server.
pub const POSTGRES_URL_VAR: &str = "SKIFF_TEST_POSTGRES";

/// A database made for one test, dropped (with whatever is connected to it) when this is.
#[derive(Debug)]
pub struct TestDatabase {
    server: String,
    name: String,
    /// The database's URL, for `skiff serve --store`.
    pub url: String,
}

impl TestDatabase {
    /// A new empty database, or `None` when the test is to be skipped (no server outside
    /// CI; in CI a missing server fails the test).
    pub async fn create(prefix: &str) -> Option<TestDatabase> {
        let server = std::env::var(POSTGRES_URL_VAR).unwrap_or_default();
        if !crate::needs(
            !server.is_empty(),
            "a PostgreSQL server",
            "set SKIFF_TEST_POSTGRES to its URL; scripts/postgres.sh start makes one",
        ) {
            return None;
        }
        let name = format!(
            "{prefix}_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        )
        .replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "_");
        admin(&server, &format!("CREATE DATABASE {name}")).await;
        let url = with_database(&server, &name);
        Some(TestDatabase { server, name, url })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // In a runtime of its own: this may run inside the test's runtime.
        let _ = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                runtime.block_on(admin(
                    &server,
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                ));
            }
        })
        .join();
    }
}

/// `server` (a URL) with its database replaced by `name`.
fn with_database(server: &str, name: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (server, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    format!("{base}/{name}{query}")
}

/// Runs one statement on the server's default database.
async fn admin(server: &str, sql: &str) {
    let mut conn = PgConnection::connect(server)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL server: {e}"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let _ = conn.close().await;
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_database_of_a_url_is_replaced() {
        use super::with_database;
        assert_eq!(
            with_database("postgres://u@127.0.0.1:5/postgres", "t1"),
            "postgres://u@127.0.0.1:5/t1"
        );
        assert_eq!(
            with_database("postgres://u@h:5/postgres?sslmode=disable", "t1"),
            "postgres://u@h:5/t1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h", "t1"), "postgres://u@h/t1");
    }
}
