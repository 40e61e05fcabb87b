//! The store's errors.

use std::path::PathBuf;

/// An error of the store, with what it was doing when it failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database file could not be created or opened.
    #[error("cannot open the database at {}: {source}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: sqlx::Error,
    },
    /// The PostgreSQL server could not be reached, or refused the connection.
    #[error("cannot connect to the database at {url}: {source}")]
    Connect {
        /// The server's URL, its password hidden.
        url: String,
        /// Why.
        source: sqlx::Error,
    },
    /// A store URL of a kind skiff does not know.
    #[error("unsupported store URL {url}: expected postgres://... (or sqlite:PATH)")]
    UnsupportedUrl {
        /// The URL, its password hidden.
        url: String,
    },
    /// The schema migrations failed (or the database holds a schema newer than this build).
    #[error("cannot migrate the database schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A statement failed.
    #[error("database error while trying to {what}: {source}")]
    Query {
        /// What the store was doing (`"get a function"`, ...).
        what: &'static str,
        /// Why it failed.
        source: sqlx::Error,
    },
    /// A stored row that does not decode: bad JSON, an unknown enum name, an out-of-range number.
    #[error("corrupt {what} in the database: {message}")]
    Corrupt {
        /// The row (`call 0190...`, `function hello`).
        what: String,
        /// What is wrong with it.
        message: String,
    },
    /// The store holds secrets sealed with keys this daemon does not hold.
    #[error("the store's secrets are encrypted with key(s) {} that this daemon lacks (it holds {} from {source_name}): give every daemon the same keys, through SKIFF_SECRET_KEY or a copy of the key file", missing.join(", "), held.join(", "))]
    KeysMissing {
        /// The ids of the keys lacking.
        missing: Vec<String>,
        /// The ids of the keys held.
        held: Vec<String>,
        /// Where the keys held came from.
        source_name: String,
    },
    /// The store cannot move to a key that some of its daemons do not hold.
    #[error("daemon(s) {} do not hold key {key}: give them the key (SKIFF_SECRET_KEY) and restart them first", daemons.join(", "))]
    KeyNotEverywhere {
        /// The key.
        key: String,
        /// The daemons lacking it.
        daemons: Vec<String>,
    },
    /// The keys of secrets at rest cannot be read, made or written.
    #[error(transparent)]
    Keys(#[from] crate::keys::KeyError),
}

/// A closure turning an `sqlx::Error` into a [`StoreError::Query`] about `what`.
pub(crate) fn query(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { what, source }
}

/// A [`StoreError::Corrupt`].
pub(crate) fn corrupt(what: impl Into<String>, message: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        what: what.into(),
        message: message.into(),
    }
}
