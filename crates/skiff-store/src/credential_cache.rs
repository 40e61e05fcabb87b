//! Credentials (API tokens and invoke keys, by the hash of their secret; the Lambda API's
//! access keys, by id) kept in memory for the next request, on SQLite only.
//!
//! A SQLite store is used by one daemon, and every change to a credential (made, revoked,
//! revoked with its function, an access key deleted) goes through that daemon's
//! [`crate::Store`], which drops everything kept once the change is written. So a cached credential is never staler
//! than the store, and a revocation holds from the moment it is answered, as without the
//! cache. On PostgreSQL another daemon may revoke a credential, so every request reads the
//! store there.
//!
//! The generation guards the race between a lookup and a change: a lookup keeps what it
//! read only if no change was written since it began. Entries also expire after [`TTL`]
//! (a guard against edits made behind the daemon's back), and the map is bounded: when it
//! holds [`MAX_ENTRIES`], it is emptied.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a credential is kept.
const TTL: Duration = Duration::from_secs(30);
/// Most credentials kept.
const MAX_ENTRIES: usize = 4096;

struct Inner<V> {
    generation: u64,
    entries: HashMap<String, (V, Instant)>,
}

/// The cache of one kind of credential `V`; one per store, shared by its clones. Its
/// `Debug` shows no entry: they may hold secrets.
pub(crate) struct CredentialCache<V> {
    inner: parking_lot::Mutex<Inner<V>>,
}

impl<V> Default for CredentialCache<V> {
    fn default() -> Self {
        CredentialCache {
            inner: parking_lot::Mutex::new(Inner {
                generation: 0,
                entries: HashMap::new(),
            }),
        }
    }
}

impl<V> std::fmt::Debug for CredentialCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialCache")
            .field("entries", &self.inner.lock().entries.len())
            .finish()
    }
}

impl<V: Clone> CredentialCache<V> {
    /// What is kept under `key`, if it is younger than the TTL at `now`.
    pub(crate) fn get(&self, key: &str, now: Instant) -> Option<V> {
        let inner = self.inner.lock();
        let (value, kept) = inner.entries.get(key)?;
        (now.saturating_duration_since(*kept) < TTL).then(|| value.clone())
    }

    /// The generation to give [`CredentialCache::keep`] for a lookup beginning now.
    pub(crate) fn generation(&self) -> u64 {
        self.inner.lock().generation
    }

    /// Keeps `value` under `key`, read by a lookup that began at `generation`, unless a
    /// change was written since.
    pub(crate) fn keep(&self, generation: u64, key: &str, value: &V, now: Instant) {
        let mut inner = self.inner.lock();
        if inner.generation != generation {
            return;
        }
        if inner.entries.len() >= MAX_ENTRIES {
            inner.entries.clear();
        }
        inner.entries.insert(key.to_string(), (value.clone(), now));
    }

    /// A credential changed: drops everything kept, and what lookups under way read.
    pub(crate) fn changed(&self) {
        let mut inner = self.inner.lock();
        inner.generation += 1;
        inner.entries.clear();
    }
}

/// What `cache` keeps under `key`, else what `read` finds, which it then keeps (unless a
/// change was written while `read` ran); without a cache (PostgreSQL), `read` every time.
/// Nothing is kept of a `read` that finds nothing.
pub(crate) async fn read_through<V: Clone, E>(
    cache: Option<&CredentialCache<V>>,
    key: &str,
    read: impl std::future::Future<Output = Result<Option<V>, E>>,
) -> Result<Option<V>, E> {
    let Some(cache) = cache else {
        return read.await;
    };
    if let Some(kept) = cache.get(key, Instant::now()) {
        return Ok(Some(kept));
    }
    let generation = cache.generation();
    let found = read.await?;
    if let Some(value) = &found {
        cache.keep(generation, key, value, Instant::now());
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Credential, CredentialKind};
    use chrono::Utc;

    fn credential(hash: &str) -> Credential {
        Credential {
            id: format!("tok_{hash}"),
            kind: CredentialKind::Token,
            name: "t".into(),
            hash: hash.into(),
            scopes: Vec::new(),
            namespaces: vec!["default".into()],
            function: None,
            created_at: Utc::now(),
            expires_at: None,
            revoked_at: None,
        }
    }

    #[test]
    fn kept_until_the_ttl_or_a_change() {
        let cache = CredentialCache::<Credential>::default();
        let now = Instant::now();
        assert!(cache.get("a", now).is_none());
        cache.keep(cache.generation(), "a", &credential("a"), now);
        assert_eq!(cache.get("a", now).map(|c| c.id), Some("tok_a".into()));
        assert!(cache.get("a", now + TTL).is_none(), "expired");
        cache.changed();
        assert!(cache.get("a", now).is_none(), "dropped by a change");
    }

    #[test]
    fn a_lookup_overtaken_by_a_change_keeps_nothing() {
        let cache = CredentialCache::<Credential>::default();
        let now = Instant::now();
        let began = cache.generation();
        cache.changed();
        cache.keep(began, "a", &credential("a"), now);
        assert!(cache.get("a", now).is_none());
        cache.keep(cache.generation(), "a", &credential("a"), now);
        assert!(cache.get("a", now).is_some());
    }

    #[test]
    fn bounded() {
        let cache = CredentialCache::<Credential>::default();
        let now = Instant::now();
        for i in 0..=MAX_ENTRIES {
            let key = i.to_string();
            cache.keep(cache.generation(), &key, &credential(&key), now);
        }
        assert!(cache.inner.lock().entries.len() <= MAX_ENTRIES);
        assert!(cache.get(&MAX_ENTRIES.to_string(), now).is_some());
    }
}
