//! Who may do what: credentials (API tokens and functions' invoke keys, kept as hashes of
//! their secrets), the audit log of management actions, and the namespaces' quotas.
//!
//! Every daemon sharing the store reads credentials from it on each request, so a
//! revocation holds on all of them from the moment it is committed.

use crate::backend::{on_pool, Columns};
use crate::codec::{int, millis, RowReader};
use crate::error::{corrupt, query};
use crate::{Store, StoreError};
use chrono::{DateTime, Utc};
use skiff_core::access::Scope;
use skiff_core::api::{AuditEntry, Quota};
use skiff_core::ByteSize;

/// What kind of credential a row holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// An API token (`skt_...`).
    Token,
    /// A function's invoke key (`skk_...`).
    Key,
}

impl CredentialKind {
    fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Token => "token",
            CredentialKind::Key => "key",
        }
    }

    fn parse(text: &str) -> Result<Self, String> {
        match text {
            "token" => Ok(CredentialKind::Token),
            "key" => Ok(CredentialKind::Key),
            other => Err(format!("unknown credential kind `{other}`")),
        }
    }
}

/// A credential as stored: its hash, never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// `tok_...` or `key_...`.
    pub id: String,
    /// Token or key.
    pub kind: CredentialKind,
    /// Its label.
    pub name: String,
    /// Hex SHA-256 of its secret.
    pub hash: String,
    /// What it allows.
    pub scopes: Vec<Scope>,
    /// The namespaces it reaches (`*`: all).
    pub namespaces: Vec<String>,
    /// A key's function (full name).
    pub function: Option<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it stops being valid.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Credential {
    /// Whether it is valid at `now`: not revoked, not expired.
    pub fn is_valid_at(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| at > now)
    }
}

/// `SELECT` of every column of `credentials`, then `$tail`, as one static string.
macro_rules! select_credentials {
    ($tail:literal) => {
        concat!(
            "SELECT id, kind, name, hash, scopes, namespaces, function, created_at, expires_at, \
             revoked_at FROM credentials ",
            $tail
        )
    };
}

fn decode_credential(row: &dyn Columns) -> Result<Credential, StoreError> {
    let r = RowReader {
        row,
        what: "credential".to_string(),
    };
    let id = r.text("id")?;
    let bad = |message: String| corrupt(format!("credential {id}"), message);
    let scopes = r
        .text("scopes")?
        .split(',')
        .filter(|s| !s.is_empty())
        .map(Scope::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    Ok(Credential {
        kind: CredentialKind::parse(&r.text("kind")?).map_err(bad)?,
        name: r.text("name")?,
        hash: r.text("hash")?,
        scopes,
        namespaces: r
            .text("namespaces")?
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        function: r.text_opt("function")?,
        created_at: r.time("created_at")?,
        expires_at: r.time_opt("expires_at")?,
        revoked_at: r.time_opt("revoked_at")?,
        id,
    })
}

fn join<T: AsRef<str>>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|s| s.as_ref().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Most audit entries one query answers.
pub const MAX_AUDIT_LIMIT: u32 = 1000;
/// Audit entries a query answers unless told otherwise.
pub const DEFAULT_AUDIT_LIMIT: u32 = 100;

/// Which audit entries to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only this namespace's.
    pub namespace: Option<String>,
    /// Only those older than this id.
    pub before: Option<String>,
    /// Most entries (0: the default).
    pub limit: u32,
}

impl AuditFilter {
    /// The limit a query applies.
    pub fn effective_limit(&self) -> u32 {
        match self.limit {
            0 => DEFAULT_AUDIT_LIMIT,
            n => n.min(MAX_AUDIT_LIMIT),
        }
    }
}

fn decode_audit(row: &dyn Columns) -> Result<AuditEntry, StoreError> {
    let r = RowReader {
        row,
        what: "audit entry".to_string(),
    };
    Ok(AuditEntry {
        id: r.text("id")?,
        at: r.time("at")?,
        token_id: r.text_opt("token_id")?,
        actor: r.text("actor")?,
        namespace: r.text("namespace")?,
        action: r.text("action")?,
        target: r.text("target")?,
        method: r.text("method")?,
        path: r.text("path")?,
        status: r.unsigned("status")?,
    })
}

/// Audit entries deleted per statement when pruning.
const PRUNE_BATCH: i64 = 2000;

impl Store {
    /// Stores a new credential.
    pub async fn put_credential(&self, c: &Credential) -> Result<(), StoreError> {
        on_pool!(&self.pool, |pool, DB| sqlx::query(
            "INSERT INTO credentials
                (id, kind, name, hash, scopes, namespaces, function, created_at, expires_at, revoked_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&c.id)
        .bind(c.kind.as_str())
        .bind(&c.name)
        .bind(&c.hash)
        .bind(join(c.scopes.iter().map(|s| s.as_str())))
        .bind(join(&c.namespaces))
        .bind(&c.function)
        .bind(millis(c.created_at))
        .bind(c.expires_at.map(millis))
        .bind(c.revoked_at.map(millis))
        .execute(pool)
        .await
        .map(|_| ()))
        .map_err(query("store a credential"))
    }

    /// The credential whose secret hashes to `hash`, valid or not. On SQLite, one found is
    /// kept in memory until a credential changes through this store (see
    /// `credential_cache`); an unknown hash is read again each time.
    pub async fn credential_by_hash(&self, hash: &str) -> Result<Option<Credential>, StoreError> {
        crate::credential_cache::read_through(
            self.credentials.as_deref(),
            hash,
            self.read_credential_by_hash(hash),
        )
        .await
    }

    /// A credential changed: what the cache kept is read again.
    fn credentials_changed(&self) {
        if let Some(cache) = &self.credentials {
            cache.changed();
        }
    }

    async fn read_credential_by_hash(&self, hash: &str) -> Result<Option<Credential>, StoreError> {
        on_pool!(&self.pool, |pool, DB| {
            let row = sqlx::query(select_credentials!("WHERE hash = $1"))
                .bind(hash)
                .fetch_optional(pool)
                .await
                .map_err(query("look a credential up"))?;
            row.as_ref().map(|r| decode_credential(r)).transpose()
        })
    }

    /// The credential with this id.
    pub async fn credential(&self, id: &str) -> Result<Option<Credential>, StoreError> {
        on_pool!(&self.pool, |pool, DB| {
            let row = sqlx::query(select_credentials!("WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await
                .map_err(query("get a credential"))?;
            row.as_ref().map(|r| decode_credential(r)).transpose()
        })
    }

    /// Credentials of `kind` (of function `function` only, if given), newest first.
    pub async fn list_credentials(
        &self,
        kind: CredentialKind,
        function: Option<&str>,
    ) -> Result<Vec<Credential>, StoreError> {
        on_pool!(&self.pool, |pool, DB| {
            let rows = sqlx::query(select_credentials!(
                "WHERE kind = $1 AND ($2 IS NULL OR function = $2)
                 ORDER BY created_at DESC, id DESC"
            ))
            .bind(kind.as_str())
            .bind(function)
            .fetch_all(pool)
            .await
            .map_err(query("list credentials"))?;
            rows.iter().map(|r| decode_credential(r)).collect()
        })
    }

    /// Whether any credential of `kind` was ever made.
    pub async fn has_credentials(&self, kind: CredentialKind) -> Result<bool, StoreError> {
        let found: Option<i64> = on_pool!(&self.pool, |pool, DB| sqlx::query_scalar(
            "SELECT CAST(1 AS BIGINT) FROM credentials WHERE kind = $1 LIMIT 1"
        )
        .bind(kind.as_str())
        .fetch_optional(pool)
        .await)
        .map_err(query("look for credentials"))?;
        Ok(found.is_some())
    }

    /// Revokes a credential at `at`; false if there is none with that id. Revoking it
    /// again keeps the first time.
    pub async fn revoke_credential(&self, id: &str, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let revoked = on_pool!(&self.pool, |pool, DB| sqlx::query(
            "UPDATE credentials SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1"
        )
        .bind(id)
        .bind(millis(at))
        .execute(pool)
        .await
        .map(|done| done.rows_affected() > 0))
        .map_err(query("revoke a credential"));
        self.credentials_changed();
        revoked
    }

    /// Revokes every key of a function (it was deleted: a new function of that name must
    /// not inherit them).
    pub async fn revoke_keys_of(
        &self,
        function: &str,
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let revoked = on_pool!(&self.pool, |pool, DB| sqlx::query(
            "UPDATE credentials SET revoked_at = $2
             WHERE kind = 'key' AND function = $1 AND revoked_at IS NULL"
        )
        .bind(function)
        .bind(millis(at))
        .execute(pool)
        .await
        .map(|done| done.rows_affected()))
        .map_err(query("revoke a function's keys"));
        self.credentials_changed();
        revoked
    }

    /// Writes one entry of the audit log.
    pub async fn write_audit(&self, e: &AuditEntry) -> Result<(), StoreError> {
        on_pool!(&self.pool, |pool, DB| sqlx::query(
            "INSERT INTO audit_log
                (id, at, token_id, actor, namespace, action, target, method, path, status)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&e.id)
        .bind(millis(e.at))
        .bind(&e.token_id)
        .bind(&e.actor)
        .bind(&e.namespace)
        .bind(&e.action)
        .bind(&e.target)
        .bind(&e.method)
        .bind(&e.path)
        .bind(i64::from(e.status))
        .execute(pool)
        .await
        .map(|_| ()))
        .map_err(query("write the audit log"))
    }

    /// Entries of the audit log, newest first.
    pub async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        on_pool!(&self.pool, |pool, DB| {
            let rows = sqlx::query(
                "SELECT id, at, token_id, actor, namespace, action, target, method, path, status
                 FROM audit_log
                 WHERE ($1 IS NULL OR namespace = $1) AND ($2 IS NULL OR id < $2)
                 ORDER BY id DESC LIMIT $3",
            )
            .bind(&filter.namespace)
            .bind(&filter.before)
            .bind(i64::from(filter.effective_limit()))
            .fetch_all(pool)
            .await
            .map_err(query("read the audit log"))?;
            rows.iter().map(|r| decode_audit(r)).collect()
        })
    }

    /// Deletes the audit entries older than `cutoff`; returns how many went.
    pub async fn prune_audit(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut pruned = 0;
        loop {
            let done = on_pool!(&self.pool, |pool, DB| sqlx::query(
                "DELETE FROM audit_log WHERE id IN (
                    SELECT id FROM audit_log WHERE at < $1 ORDER BY id LIMIT $2)",
            )
            .bind(millis(cutoff))
            .bind(PRUNE_BATCH)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))
            .map_err(query("prune the audit log"))?;
            pruned += done;
            if done < PRUNE_BATCH as u64 {
                return Ok(pruned);
            }
            tokio::task::yield_now().await;
        }
    }

    /// Sets a namespace's quotas.
    pub async fn put_quota(&self, namespace: &str, quota: &Quota) -> Result<(), StoreError> {
        on_pool!(&self.pool, |pool, DB| sqlx::query(
            "INSERT INTO namespace_quotas (namespace, max_functions, max_concurrent_calls, max_memory)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (namespace) DO UPDATE SET
                max_functions = excluded.max_functions,
                max_concurrent_calls = excluded.max_concurrent_calls,
                max_memory = excluded.max_memory",
        )
        .bind(namespace)
        .bind(quota.max_functions.map(int))
        .bind(quota.max_concurrent_calls.map(int))
        .bind(quota.max_memory.map(|m| int(m.bytes())))
        .execute(pool)
        .await
        .map(|_| ()))
        .map_err(query("set a namespace's quotas"))
    }

    /// Every namespace's quotas, by namespace.
    pub async fn quotas(&self) -> Result<Vec<(String, Quota)>, StoreError> {
        on_pool!(&self.pool, |pool, DB| {
            let rows = sqlx::query(
                "SELECT namespace, max_functions, max_concurrent_calls, max_memory
                 FROM namespace_quotas ORDER BY namespace",
            )
            .fetch_all(pool)
            .await
            .map_err(query("read the namespaces' quotas"))?;
            rows.iter()
                .map(|row| {
                    let r = RowReader {
                        row,
                        what: "namespace quota".to_string(),
                    };
                    Ok((
                        r.text("namespace")?,
                        Quota {
                            max_functions: r.unsigned_opt("max_functions")?,
                            max_concurrent_calls: r.unsigned_opt("max_concurrent_calls")?,
                            max_memory: r.unsigned_opt::<u64>("max_memory")?.map(ByteSize),
                        },
                    ))
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn token(id: &str, hash: &str) -> Credential {
        Credential {
            id: id.into(),
            kind: CredentialKind::Token,
            name: "ci".into(),
            hash: hash.into(),
            scopes: vec![Scope::Deploy, Scope::Read],
            namespaces: vec!["team-a".into(), "team-b".into()],
            function: None,
            created_at: DateTime::from_timestamp_millis(Utc::now().timestamp_millis())
                .expect("now"),
            expires_at: None,
            revoked_at: None,
        }
    }

    fn entry(id: &str, at: DateTime<Utc>, namespace: &str) -> AuditEntry {
        AuditEntry {
            id: id.into(),
            at: DateTime::from_timestamp_millis(at.timestamp_millis()).expect("at"),
            token_id: Some("tok_1".into()),
            actor: "ci".into(),
            namespace: namespace.into(),
            action: "deploy function".into(),
            target: "hello".into(),
            method: "PUT".into(),
            path: "/v1/functions/hello".into(),
            status: 201,
        }
    }

    crate::testing::backend_tests! {
    async fn credentials_are_found_by_hash_and_revoked(kit) {
        let store = kit.store().await;
        assert!(!store.has_credentials(CredentialKind::Token).await.expect("has"));
        let t = token("tok_1", "aa");
        store.put_credential(&t).await.expect("put");
        assert!(store.has_credentials(CredentialKind::Token).await.expect("has"));
        let found = store.credential_by_hash("aa").await.expect("get").expect("found");
        assert_eq!(found, t);
        assert!(found.is_valid_at(Utc::now()));
        assert!(store.credential_by_hash("bb").await.expect("get").is_none());
        let now = Utc::now();
        assert!(store.revoke_credential("tok_1", now).await.expect("revoke"));
        assert!(!store.revoke_credential("tok_none", now).await.expect("revoke"));
        let found = store.credential_by_hash("aa").await.expect("get").expect("found");
        assert!(!found.is_valid_at(Utc::now()));
        let expired = Credential {
            expires_at: Some(Utc::now() - Duration::seconds(1)),
            ..token("tok_2", "cc")
        };
        assert!(!expired.is_valid_at(Utc::now()));
        let key = Credential {
            kind: CredentialKind::Key,
            function: Some("team-a.f".into()),
            ..token("key_1", "dd")
        };
        store.put_credential(&key).await.expect("put key");
        let keys = store
            .list_credentials(CredentialKind::Key, Some("team-a.f"))
            .await
            .expect("keys");
        assert_eq!(keys, vec![key.clone()]);
        assert_eq!(
            store.list_credentials(CredentialKind::Token, None).await.expect("tokens").len(),
            1
        );
        // Looked up (and, on SQLite, kept in memory) before its function's keys are revoked:
        // read again after.
        assert!(store.credential_by_hash("dd").await.expect("get").expect("key").revoked_at.is_none());
        assert_eq!(store.revoke_keys_of("team-a.f", Utc::now()).await.expect("revoke"), 1);
        assert!(store.credential("key_1").await.expect("get").expect("key").revoked_at.is_some());
        assert!(store.credential_by_hash("dd").await.expect("get").expect("key").revoked_at.is_some());
    }

    async fn the_audit_log_is_read_newest_first_and_pruned(kit) {
        let store = kit.store().await;
        let old = Utc::now() - Duration::days(10);
        store.write_audit(&entry("0001", old, "default")).await.expect("write");
        store.write_audit(&entry("0002", Utc::now(), "team-a")).await.expect("write");
        store.write_audit(&entry("0003", Utc::now(), "default")).await.expect("write");
        let all = store.list_audit(&AuditFilter::default()).await.expect("list");
        let ids: Vec<&str> = all.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["0003", "0002", "0001"]);
        assert_eq!(all[1], entry("0002", all[1].at, "team-a"));
        let of_a = store
            .list_audit(&AuditFilter { namespace: Some("team-a".into()), ..Default::default() })
            .await
            .expect("list");
        assert_eq!(of_a.len(), 1);
        let page = store
            .list_audit(&AuditFilter { before: Some("0003".into()), limit: 1, ..Default::default() })
            .await
            .expect("page");
        assert_eq!(page[0].id, "0002");
        let pruned = store.prune_audit(Utc::now() - Duration::days(7)).await.expect("prune");
        assert_eq!(pruned, 1);
        assert_eq!(store.list_audit(&AuditFilter::default()).await.expect("list").len(), 2);
    }

    async fn quotas_are_set_and_replaced(kit) {
        let store = kit.store().await;
        let quota = Quota {
            max_functions: Some(3),
            max_concurrent_calls: None,
            max_memory: Some(ByteSize(1 << 30)),
        };
        store.put_quota("team-a", &quota).await.expect("put");
        store.put_quota("team-b", &Quota::default()).await.expect("put");
        let replaced = Quota { max_functions: Some(5), ..quota.clone() };
        store.put_quota("team-a", &replaced).await.expect("replace");
        assert_eq!(
            store.quotas().await.expect("quotas"),
            vec![("team-a".to_string(), replaced), ("team-b".to_string(), Quota::default())]
        );
    }
    }
}
