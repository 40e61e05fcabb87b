//! Who may do what: API tokens and invoke keys (made, listed, revoked, and checked on every
//! request against the store, so that a revocation holds at once on every daemon; on
//! SQLite, one daemon's, the store keeps verified ones until one is revoked), the audit
//! log, and the namespaces' quotas.
//!
//! A secret is 32 random bytes (`getrandom`), base64url, after a prefix that says what it
//! is (`skt_` a token, `skk_` a key). Only its SHA-256 (`sha2`) is stored: secrets are
//! high-entropy, so a plain hash cannot be reversed by guessing, and a lookup by hash
//! needs no comparison of secrets at all.

use super::Platform;
use crate::error::PlatformError;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use skiff_core::access::{
    check_namespace, split, Grant, Scope, ALL_NAMESPACES, DEFAULT_NAMESPACE, KEY_PREFIX,
    TOKEN_PREFIX,
};
use skiff_core::api::{AuditEntry, NamespaceView, Quota, TokenCreated, TokenRequest, TokenView};
use skiff_core::{ByteSize, HumanDuration};
use skiff_store::{AuditFilter, Credential, CredentialKind};
use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

/// Longest label of a token or key.
const MAX_NAME: usize = 64;
/// Most namespaces one token reaches (short of all of them).
const MAX_NAMESPACES: usize = 64;

/// The hex SHA-256 of a secret: what the store keeps.
pub(crate) fn hash_secret(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new secret with `prefix`.
fn new_secret(prefix: &str) -> Result<String, PlatformError> {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| PlatformError::Internal {
        message: format!("cannot draw a random secret: {e}"),
    })?;
    Ok(format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// A new credential id: `tok_` or `key_` and 16 hex digits (not secret).
fn new_id(kind: CredentialKind) -> String {
    let uuid = uuid::Uuid::now_v7().simple().to_string();
    let tail = uuid.get(uuid.len() - 16..).unwrap_or(&uuid);
    match kind {
        CredentialKind::Token => format!("tok_{tail}"),
        CredentialKind::Key => format!("key_{tail}"),
    }
}

/// Shortest part after the prefix of a secret given for the first admin token: a random
/// secret of skiff's own has 43.
const MIN_GIVEN_SECRET: usize = 32;

/// Checks a secret the operator gave for the first admin token.
fn check_given_secret(secret: &str) -> Result<(), PlatformError> {
    let rest = secret.strip_prefix(TOKEN_PREFIX).ok_or_else(|| {
        invalid(
            "admin_token",
            format!("the first admin token must start with `{TOKEN_PREFIX}`"),
        )
    })?;
    if rest.len() < MIN_GIVEN_SECRET || !rest.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(
            "admin_token",
            format!(
                "the first admin token needs at least {MIN_GIVEN_SECRET} printable characters \
                 after `{TOKEN_PREFIX}`"
            ),
        ));
    }
    Ok(())
}

fn invalid(field: &str, message: impl Into<String>) -> PlatformError {
    PlatformError::InvalidToken {
        field: field.to_string(),
        message: message.into(),
    }
}

fn check_name(name: &str) -> Result<(), PlatformError> {
    let ok =
        !name.trim().is_empty() && name.len() <= MAX_NAME && name.chars().all(|c| !c.is_control());
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "name",
            format!("give a label of 1 to {MAX_NAME} printable characters"),
        ))
    }
}

/// A credential as listed: a key's function by its name in its namespace.
pub(crate) fn view(c: &Credential) -> TokenView {
    TokenView {
        id: c.id.clone(),
        name: c.name.clone(),
        scopes: c.scopes.clone(),
        namespaces: c.namespaces.clone(),
        function: c.function.as_deref().map(|f| split(f).1.to_string()),
        created_at: c.created_at,
        expires_at: c.expires_at,
        revoked_at: c.revoked_at,
    }
}

/// A timestamp as the store keeps it (milliseconds), so that what is answered at creation
/// reads back the same.
fn to_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// What a namespace's running calls hold now, on this daemon.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    pub(crate) calls: u64,
    pub(crate) memory: u64,
}

/// The quotas of every namespace and what each uses, on this daemon.
#[derive(Debug, Default)]
pub(crate) struct Quotas {
    limits: parking_lot::RwLock<HashMap<String, Quota>>,
    usage: parking_lot::Mutex<HashMap<String, Usage>>,
}

/// A call's share of its namespace's quotas, given back when dropped.
#[derive(Debug)]
pub(crate) struct QuotaReservation {
    quotas: Option<std::sync::Arc<Quotas>>,
    namespace: String,
    taken: Usage,
}

impl Drop for QuotaReservation {
    fn drop(&mut self) {
        if let Some(quotas) = &self.quotas {
            let mut usage = quotas.usage.lock();
            if let Some(u) = usage.get_mut(&self.namespace) {
                u.calls = u.calls.saturating_sub(self.taken.calls);
                u.memory = u.memory.saturating_sub(self.taken.memory);
                if *u == Usage::default() {
                    usage.remove(&self.namespace);
                }
            }
        }
    }
}

impl Quotas {
    /// The quotas as stored.
    pub(crate) fn set_all(&self, all: Vec<(String, Quota)>) {
        *self.limits.write() = all.into_iter().collect();
    }

    pub(crate) fn set(&self, namespace: &str, quota: Quota) {
        self.limits.write().insert(namespace.to_string(), quota);
    }

    pub(crate) fn get(&self, namespace: &str) -> Quota {
        self.limits
            .read()
            .get(namespace)
            .cloned()
            .unwrap_or_default()
    }

    pub(crate) fn all(&self) -> BTreeMap<String, Quota> {
        self.limits
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub(crate) fn usage(&self, namespace: &str) -> Usage {
        self.usage
            .lock()
            .get(namespace)
            .copied()
            .unwrap_or_default()
    }

    /// Takes one call holding `memory` bytes in `namespace`, or says which quota it is over.
    pub(crate) fn reserve(
        self: &std::sync::Arc<Self>,
        namespace: &str,
        memory: u64,
    ) -> Result<QuotaReservation, PlatformError> {
        let quota = self.get(namespace);
        let mut usage = self.usage.lock();
        let now = usage.get(namespace).copied().unwrap_or_default();
        let over = |what: &'static str, limit: String| PlatformError::QuotaExceeded {
            namespace: namespace.to_string(),
            what,
            limit,
        };
        if let Some(max) = quota.max_concurrent_calls {
            if now.calls + 1 > max {
                return Err(over("concurrent calls", max.to_string()));
            }
        }
        if let Some(max) = quota.max_memory {
            if now.memory.saturating_add(memory) > max.bytes() {
                return Err(over("memory", max.to_string()));
            }
        }
        let taken = Usage { calls: 1, memory };
        let entry = usage.entry(namespace.to_string()).or_default();
        entry.calls += taken.calls;
        entry.memory += taken.memory;
        Ok(QuotaReservation {
            quotas: Some(self.clone()),
            namespace: namespace.to_string(),
            taken,
        })
    }
}

impl Platform {
    /// What the credential with this secret allows. A missing, unknown, revoked or expired
    /// credential is `Unauthorized`, whose message never quotes the secret. Read from the
    /// store every time (on SQLite, from the store's memory of verified credentials, which
    /// a revocation empties), so a revocation holds from its commit on, on every daemon of
    /// the store.
    pub async fn authenticate(&self, secret: &str) -> Result<Grant, PlatformError> {
        let unauthorized = |message: &str| PlatformError::Unauthorized {
            message: message.to_string(),
        };
        let secret = secret.trim();
        if !(secret.starts_with(TOKEN_PREFIX) || secret.starts_with(KEY_PREFIX)) {
            return Err(unauthorized("the token is not a skiff token"));
        }
        let Some(credential) = self.store.credential_by_hash(&hash_secret(secret)).await? else {
            return Err(unauthorized("the token is not valid"));
        };
        if credential.revoked_at.is_some() {
            return Err(unauthorized("the token was revoked"));
        }
        if !credential.is_valid_at(Utc::now()) {
            return Err(unauthorized("the token has expired"));
        }
        Ok(Grant {
            id: credential.id,
            name: credential.name,
            scopes: credential.scopes,
            namespaces: credential.namespaces,
            function: credential.function,
        })
    }

    /// Makes an API token; its secret is in the answer, and nowhere else.
    pub async fn create_token(
        &self,
        request: &TokenRequest,
    ) -> Result<TokenCreated, PlatformError> {
        self.create_token_with(request, None).await
    }

    /// Makes an API token with a random secret, or with `given`.
    async fn create_token_with(
        &self,
        request: &TokenRequest,
        given: Option<&str>,
    ) -> Result<TokenCreated, PlatformError> {
        check_name(&request.name)?;
        if request.scopes.is_empty() {
            return Err(invalid("scopes", "give at least one scope"));
        }
        let mut namespaces = request.namespaces.clone();
        if namespaces.is_empty() {
            namespaces.push(DEFAULT_NAMESPACE.to_string());
        }
        if namespaces.len() > MAX_NAMESPACES {
            return Err(invalid(
                "namespaces",
                format!("at most {MAX_NAMESPACES} namespaces (or `*`, all)"),
            ));
        }
        for (i, ns) in namespaces.iter().enumerate() {
            check_namespace(ns, true).map_err(|m| invalid(&format!("namespaces[{i}]"), m))?;
        }
        namespaces.sort();
        namespaces.dedup();
        if namespaces.iter().any(|n| n == ALL_NAMESPACES) {
            namespaces = vec![ALL_NAMESPACES.to_string()];
        }
        let mut scopes = request.scopes.clone();
        scopes.sort();
        scopes.dedup();
        let now = to_millis(Utc::now());
        let expires_at = match &request.expires_in {
            None => None,
            Some(text) => {
                let d = HumanDuration::from_str(text)
                    .map_err(|e| invalid("expires_in", e.to_string()))?;
                let d = chrono::Duration::from_std(d.0)
                    .map_err(|_| invalid("expires_in", "too long"))?;
                Some(now + d)
            }
        };
        self.store_credential_with(
            Credential {
                id: new_id(CredentialKind::Token),
                kind: CredentialKind::Token,
                name: request.name.trim().to_string(),
                hash: String::new(),
                scopes,
                namespaces,
                function: None,
                created_at: now,
                expires_at,
                revoked_at: None,
            },
            given,
        )
        .await
    }

    /// The first admin token, made when the store has no token yet; `None` when it has one.
    /// With `given` (a secret the operator chose, from a Docker secret say), that secret
    /// becomes the token instead of a random one: it must look like one (`skt_` and at least
    /// 32 characters after it).
    pub async fn bootstrap_admin(
        &self,
        given: Option<&str>,
    ) -> Result<Option<TokenCreated>, PlatformError> {
        if let Some(secret) = given {
            check_given_secret(secret)?;
        }
        if self.store.has_credentials(CredentialKind::Token).await? {
            return Ok(None);
        }
        let created = self
            .create_token_with(
                &TokenRequest {
                    name: "admin".to_string(),
                    scopes: vec![Scope::Admin],
                    namespaces: vec![ALL_NAMESPACES.to_string()],
                    expires_in: None,
                },
                given,
            )
            .await?;
        self.audit(AuditEntry {
            id: uuid::Uuid::now_v7().to_string(),
            at: Utc::now(),
            token_id: None,
            actor: format!("daemon {}", self.daemon_id),
            namespace: DEFAULT_NAMESPACE.to_string(),
            action: "create token".to_string(),
            target: created.token.id.clone(),
            method: "-".to_string(),
            path: "first start".to_string(),
            status: 201,
        })
        .await;
        Ok(Some(created))
    }

    /// Whether function `full` exists and is public.
    pub fn is_public(&self, full: &str) -> bool {
        self.functions
            .get(full)
            .is_some_and(|e| e.function.config.public)
    }

    /// Makes an invoke key of function `full` (a full name); the function must exist.
    pub async fn create_key(&self, full: &str, name: &str) -> Result<TokenCreated, PlatformError> {
        check_name(name)?;
        self.function(full)?;
        self.store_credential(Credential {
            id: new_id(CredentialKind::Key),
            kind: CredentialKind::Key,
            name: name.trim().to_string(),
            hash: String::new(),
            scopes: vec![Scope::Invoke],
            namespaces: vec![split(full).0.to_string()],
            function: Some(full.to_string()),
            created_at: to_millis(Utc::now()),
            expires_at: None,
            revoked_at: None,
        })
        .await
    }

    async fn store_credential(
        &self,
        credential: Credential,
    ) -> Result<TokenCreated, PlatformError> {
        self.store_credential_with(credential, None).await
    }

    /// Stores a credential with a random secret, or with `given`.
    async fn store_credential_with(
        &self,
        mut credential: Credential,
        given: Option<&str>,
    ) -> Result<TokenCreated, PlatformError> {
        let prefix = match credential.kind {
            CredentialKind::Token => TOKEN_PREFIX,
            CredentialKind::Key => KEY_PREFIX,
        };
        let secret = match given {
            Some(secret) => secret.to_string(),
            None => new_secret(prefix)?,
        };
        credential.hash = hash_secret(&secret);
        self.store.put_credential(&credential).await?;
        Ok(TokenCreated {
            secret,
            token: view(&credential),
        })
    }

    /// Every API token, newest first (revoked ones too).
    pub async fn list_tokens(&self) -> Result<Vec<TokenView>, PlatformError> {
        let all = self
            .store
            .list_credentials(CredentialKind::Token, None)
            .await?;
        Ok(all.iter().map(view).collect())
    }

    /// The invoke keys of function `full`, newest first.
    pub async fn list_keys(&self, full: &str) -> Result<Vec<TokenView>, PlatformError> {
        self.function(full)?;
        let keys = self
            .store
            .list_credentials(CredentialKind::Key, Some(full))
            .await?;
        Ok(keys.iter().map(view).collect())
    }

    /// Revokes an API token, with effect from now on every daemon.
    pub async fn revoke_token(&self, id: &str) -> Result<TokenView, PlatformError> {
        self.revoke(id, CredentialKind::Token, None).await
    }

    /// Revokes an invoke key of function `full`.
    pub async fn revoke_key(&self, full: &str, id: &str) -> Result<TokenView, PlatformError> {
        self.revoke(id, CredentialKind::Key, Some(full)).await
    }

    async fn revoke(
        &self,
        id: &str,
        kind: CredentialKind,
        function: Option<&str>,
    ) -> Result<TokenView, PlatformError> {
        let not_found = || PlatformError::TokenNotFound { id: id.to_string() };
        let credential = self.store.credential(id).await?.ok_or_else(not_found)?;
        if credential.kind != kind || credential.function.as_deref() != function {
            return Err(not_found());
        }
        self.store.revoke_credential(id, Utc::now()).await?;
        let credential = self.store.credential(id).await?.ok_or_else(not_found)?;
        Ok(view(&credential))
    }

    /// Writes one entry of the audit log (a failure is logged: the action is done).
    pub async fn audit(&self, entry: AuditEntry) {
        if let Err(err) = self.store.write_audit(&entry).await {
            tracing::error!(%err, action = entry.action, "could not write the audit log");
        }
    }

    /// Entries of the audit log, newest first.
    pub async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, PlatformError> {
        Ok(self.store.list_audit(filter).await?)
    }

    /// Sets a namespace's quotas (taken into account by this daemon at once, by the others
    /// within their next refresh).
    pub async fn set_quota(
        &self,
        namespace: &str,
        quota: Quota,
    ) -> Result<NamespaceView, PlatformError> {
        check_namespace(namespace, false).map_err(|m| invalid("name", m))?;
        self.store.put_quota(namespace, &quota).await?;
        self.quotas.set(namespace, quota);
        Ok(self.namespace_view(namespace))
    }

    /// Reads the quotas from the store again (other daemons may have changed them).
    pub(crate) async fn refresh_quotas(&self) -> Result<(), PlatformError> {
        self.quotas.set_all(self.store.quotas().await?);
        Ok(())
    }

    /// Every namespace with a function or a quota, by name.
    pub fn namespaces(&self) -> Vec<NamespaceView> {
        let mut names: Vec<String> = self.quotas.all().into_keys().collect();
        names.extend(
            self.functions
                .all()
                .iter()
                .map(|e| e.function.name.namespace().to_string()),
        );
        names.sort();
        names.dedup();
        names.iter().map(|n| self.namespace_view(n)).collect()
    }

    /// One namespace: its quotas and what it uses.
    pub fn namespace_view(&self, namespace: &str) -> NamespaceView {
        let usage = self.quotas.usage(namespace);
        NamespaceView {
            name: namespace.to_string(),
            quota: self.quotas.get(namespace),
            functions: self.functions_in(namespace),
            running_calls: usage.calls,
            memory: ByteSize(usage.memory),
        }
    }

    /// How many functions `namespace` has.
    pub(crate) fn functions_in(&self, namespace: &str) -> u64 {
        self.functions
            .all()
            .iter()
            .filter(|e| e.function.name.namespace() == namespace)
            .count() as u64
    }

    /// Refuses a new function in `namespace` past its quota of functions.
    pub(crate) fn admits_function(&self, namespace: &str) -> Result<(), PlatformError> {
        if let Some(max) = self.quotas.get(namespace).max_functions {
            if self.functions_in(namespace) >= max {
                return Err(PlatformError::QuotaExceeded {
                    namespace: namespace.to_string(),
                    what: "functions",
                    limit: max.to_string(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_hashed() {
        let a = new_secret(TOKEN_PREFIX).expect("secret");
        let b = new_secret(TOKEN_PREFIX).expect("secret");
        assert_ne!(a, b);
        assert!(a.starts_with("skt_") && a.len() == 4 + 43, "{a}");
        let hash = hash_secret(&a);
        assert_eq!(hash.len(), 64);
        assert_eq!(hash, hash_secret(&a));
        assert!(!hash.contains(&a[4..]));
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn quotas_bound_calls_and_memory_and_are_given_back() {
        let quotas = std::sync::Arc::new(Quotas::default());
        quotas.set(
            "a",
            Quota {
                max_functions: None,
                max_concurrent_calls: Some(2),
                max_memory: Some(ByteSize(300)),
            },
        );
        let one = quotas.reserve("a", 100).expect("one");
        let two = quotas.reserve("a", 100).expect("two");
        assert!(matches!(
            quotas.reserve("a", 1),
            Err(PlatformError::QuotaExceeded {
                what: "concurrent calls",
                ..
            })
        ));
        drop(two);
        assert!(matches!(
            quotas.reserve("a", 250),
            Err(PlatformError::QuotaExceeded { what: "memory", .. })
        ));
        let _three = quotas.reserve("a", 200).expect("three");
        // Another namespace has no quota.
        let _other = quotas.reserve("b", 1 << 40).expect("unbounded");
        drop(one);
        assert_eq!(
            quotas.usage("a"),
            Usage {
                calls: 1,
                memory: 200
            }
        );
    }
}
