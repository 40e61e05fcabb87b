//! Changes to functions and triggers, heard by the other daemons of a shared store.
//!
//! On PostgreSQL, each write of a function or trigger sends a notification on channel
//! `skiff_changes` in its own transaction (delivered at commit, in commit order), naming
//! what changed: `function:NAME` or `trigger:NAME`. A daemon listens ([`Store::listen`]) and
//! reads the item again. A listener that lost its connection says so (`Change::Resync`):
//! notifications may have been missed meanwhile, so everything is read again. On SQLite,
//! which one daemon uses at a time, there is nothing to hear.

use crate::backend::{Pool, Tx};
use crate::error::query;
use crate::{Store, StoreError};

/// The channel of change notifications.
const CHANNEL: &str = "skiff_changes";

/// A change another daemon (or this one) made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Function `name` was deployed, scaled or deleted.
    Function(String),
    /// Trigger `name` was created, replaced or deleted.
    Trigger(String),
    /// Changes may have been missed (the listener reconnected): read everything again.
    Resync,
}

impl Change {
    fn payload(&self) -> String {
        match self {
            Change::Function(name) => format!("function:{name}"),
            Change::Trigger(name) => format!("trigger:{name}"),
            Change::Resync => "resync".to_string(),
        }
    }

    fn parse(payload: &str) -> Change {
        match payload.split_once(':') {
            Some(("function", name)) => Change::Function(name.to_string()),
            Some(("trigger", name)) => Change::Trigger(name.to_string()),
            _ => Change::Resync,
        }
    }
}

/// Sends `change` to the other daemons when `tx` commits (PostgreSQL only).
pub(crate) async fn announce(tx: &mut Tx, change: &Change) -> Result<(), StoreError> {
    if let Tx::Postgres(tx) = tx {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(change.payload())
            .execute(&mut **tx)
            .await
            .map_err(query("announce a change"))?;
    }
    Ok(())
}

/// The changes a daemon hears, in commit order.
#[derive(Debug)]
pub struct Changes {
    listener: sqlx::postgres::PgListener,
}

impl Changes {
    /// The next change. A lost connection is `Change::Resync`, once, and the listener
    /// reconnects; an error means it could not.
    pub async fn next(&mut self) -> Result<Change, StoreError> {
        match self
            .listener
            .try_recv()
            .await
            .map_err(query("listen for changes"))?
        {
            Some(notification) => Ok(Change::parse(notification.payload())),
            None => Ok(Change::Resync),
        }
    }
}

impl Store {
    /// Listens for changes to functions and triggers; `None` on SQLite (one daemon).
    pub async fn listen(&self) -> Result<Option<Changes>, StoreError> {
        let Pool::Postgres(pool) = &self.pool else {
            return Ok(None);
        };
        let mut listener = sqlx::postgres::PgListener::connect_with(pool)
            .await
            .map_err(query("listen for changes"))?;
        listener
            .listen(CHANNEL)
            .await
            .map_err(query("listen for changes"))?;
        Ok(Some(Changes { listener }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_what_changed() {
        for change in [
            Change::Function("hello".into()),
            Change::Trigger("every-minute".into()),
            Change::Resync,
        ] {
            assert_eq!(Change::parse(&change.payload()), change);
        }
        assert_eq!(Change::parse("bogus"), Change::Resync);
    }
}
