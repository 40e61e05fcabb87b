//! Secrets at rest: which key seals, which keys each daemon holds, moving the store to a new
//! key (rotation), and sealing the secrets an older skiff stored in plain text.
//!
//! The store names its sealing key in `meta` (`secret_key`): every daemon seals with that
//! key, whichever key it would pick itself, so daemons sharing a database agree. A daemon
//! records the ids of the keys it holds in `daemon_keys` when it starts; the store is only
//! moved to a key that every daemon listed in `daemons` holds, so no daemon ever meets a
//! secret it cannot open. Rotation names the new key, then re-seals every secret under
//! another key, pass after pass until none is left (a daemon that read the old name just
//! before the change may still write one under it).

use crate::backend::{on_pool, on_tx, Tx};
use crate::codec::millis;
use crate::error::{corrupt, query};
use crate::keys::{KeySource, OpenError, Sealed, SecretKeys};
use crate::{Backend, Store, StoreError};
use chrono::Utc;
use skiff_core::FunctionConfig;
use std::collections::BTreeMap;

/// The `meta` key of the store's sealing key.
const SEALING_KEY: &str = "secret_key";
/// Most passes of a rotation over rows sealed under other keys.
const ROTATION_PASSES: usize = 8;

/// The associated data of a function's secrets.
pub(crate) fn function_context(name: &str) -> String {
    format!("skiff function secrets\0{name}")
}

/// The associated data of an access key's secret.
pub(crate) fn access_key_context(id: &str) -> String {
    format!("skiff access key\0{id}")
}

/// What [`Store::use_keys`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeysInUse {
    /// The key the store seals with.
    pub sealing: String,
    /// Functions whose secrets were found in plain text, and sealed.
    pub sealed_plaintext: u64,
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The key the store seals with now.
    pub key: String,
    /// The key it sealed with before.
    pub previous: String,
    /// Secrets re-sealed (function secrets and access keys' secrets).
    pub resealed: u64,
    /// Keys no secret is sealed with any more (dropped from the key file if they were in it).
    pub retired: Vec<String>,
}

impl Store {
    /// The keys this store opens secrets with.
    pub fn secret_keys(&self) -> SecretKeys {
        self.keys.read().clone()
    }

    /// Uses `keys` from now on: records them as this daemon's (bind the daemon id first),
    /// names the store's sealing key when it has none (the first of `keys`), checks that
    /// every sealed secret opens, and seals the secrets stored in plain text. Fails, naming
    /// the keys, when this daemon lacks one the store uses.
    pub async fn use_keys(&self, keys: SecretKeys) -> Result<KeysInUse, StoreError> {
        *self.keys.write() = keys.clone();
        self.record_keys(&keys).await?;
        let sealing = self.sealing_key_or(keys.first()).await?;
        let used = self.keys_used().await?;
        let missing: Vec<String> = std::iter::once(sealing.clone())
            .chain(used)
            .filter(|id| !keys.holds(id))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if !missing.is_empty() {
            return Err(StoreError::KeysMissing {
                missing,
                held: keys.ids(),
                source_name: keys.source().to_string(),
            });
        }
        let sealed_plaintext = self.seal_plaintext().await?;
        Ok(KeysInUse {
            sealing,
            sealed_plaintext,
        })
    }

    /// Records the ids of `keys` as held by this daemon.
    async fn record_keys(&self, keys: &SecretKeys) -> Result<(), StoreError> {
        let what = "record the keys this daemon holds";
        let me = self.my_id();
        let now = millis(Utc::now());
        let mut tx = self.pool.begin().await.map_err(query(what))?;
        on_tx!(&mut tx, |conn, DB| {
            sqlx::query("DELETE FROM daemon_keys WHERE daemon = $1")
                .bind(&me)
                .execute(&mut *conn)
                .await
                .map_err(query(what))?;
            for id in keys.ids() {
                sqlx::query(
                    "INSERT INTO daemon_keys (daemon, key_id, seen_at) VALUES ($1, $2, $3)",
                )
                .bind(&me)
                .bind(&id)
                .bind(now)
                .execute(&mut *conn)
                .await
                .map_err(query(what))?;
            }
            Ok::<(), StoreError>(())
        })?;
        tx.commit().await.map_err(query(what))
    }

    /// The store's sealing key; `proposed` becomes it when it has none.
    async fn sealing_key_or(&self, proposed: &str) -> Result<String, StoreError> {
        let what = "read the key that seals secrets";
        on_pool!(&self.pool, |pool, DB| {
            sqlx::query(
                "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            )
            .bind(SEALING_KEY)
            .bind(proposed)
            .execute(pool)
            .await
            .map_err(query(what))?;
            sqlx::query_scalar::<DB, String>("SELECT value FROM meta WHERE key = $1")
                .bind(SEALING_KEY)
                .fetch_one(pool)
                .await
                .map_err(query(what))
        })
    }

    /// The ids of the keys secrets are sealed with.
    async fn keys_used(&self) -> Result<Vec<String>, StoreError> {
        on_pool!(&self.pool, |pool, DB| sqlx::query_scalar::<DB, String>(
            "SELECT secrets_key FROM functions WHERE secrets_key IS NOT NULL
             UNION SELECT secret_key FROM access_keys"
        )
        .fetch_all(pool)
        .await)
        .map_err(query("list the keys secrets are sealed with"))
    }

    /// Seals `plaintext` for `context` with the store's sealing key, read in `tx`: call it
    /// first in the transaction.
    pub(crate) async fn seal_in(
        &self,
        tx: &mut Tx,
        context: &str,
        plaintext: &[u8],
    ) -> Result<Sealed, StoreError> {
        let what = "read the key that seals secrets";
        // A write that reads: SQLite takes the write lock at once (a transaction that read
        // first could not write after another connection did), and PostgreSQL locks the
        // row, so a rotation's change of key waits for this transaction, and the
        // transactions after it see the new key.
        let sealing: Option<String> = on_tx!(tx, |conn, DB| sqlx::query_scalar(
            "UPDATE meta SET value = value WHERE key = $1 RETURNING value"
        )
        .bind(SEALING_KEY)
        .fetch_optional(&mut *conn)
        .await)
        .map_err(query(what))?;
        let keys = self.keys.read().clone();
        // A store no daemon named a key for yet (a test's, say) seals with this one's first.
        let sealing = sealing.unwrap_or_else(|| keys.first().to_string());
        if sealing.is_empty() || !keys.holds(&sealing) {
            return Err(StoreError::KeysMissing {
                missing: vec![sealing],
                held: keys.ids(),
                source_name: keys.source().to_string(),
            });
        }
        keys.seal(&sealing, context, plaintext)
            .ok_or_else(|| corrupt("secret", "cannot be encrypted"))
    }

    /// Opens a sealed value of `what`.
    pub(crate) fn unseal(
        &self,
        sealed: &Sealed,
        context: &str,
        what: &str,
    ) -> Result<Vec<u8>, StoreError> {
        let keys = self.keys.read().clone();
        keys.open(sealed, context).map_err(|err| match err {
            OpenError::UnknownKey(key) => StoreError::KeysMissing {
                missing: vec![key],
                held: keys.ids(),
                source_name: keys.source().to_string(),
            },
            other => corrupt(what.to_string(), format!("secrets: {other}")),
        })
    }

    /// Seals the secrets of functions stored by a skiff that kept them in plain text in
    /// the configuration's JSON; how many functions had some. On SQLite, deleted content
    /// is overwritten (`secure_delete`) and the write-ahead log emptied after, so the
    /// plain text is gone from the files.
    async fn seal_plaintext(&self) -> Result<u64, StoreError> {
        let what = "seal the secrets stored in plain text";
        let rows: Vec<(String, String)> = on_pool!(&self.pool, |pool, DB| sqlx::query_as(
            "SELECT name, config FROM functions WHERE secrets IS NULL"
        )
        .fetch_all(pool)
        .await)
        .map_err(query(what))?;
        let mut sealed = 0;
        for (name, config) in rows {
            let mut config: FunctionConfig = serde_json::from_str(&config)
                .map_err(|e| corrupt(format!("function {name}"), format!("config: {e}")))?;
            if config.secrets.is_empty() {
                continue;
            }
            let secrets = std::mem::take(&mut config.secrets);
            let (config, plain) = encode_config(&name, &config, &secrets)?;
            let mut tx = self.pool.begin().await.map_err(query(what))?;
            let lock = self
                .seal_in(&mut tx, &function_context(&name), &plain)
                .await?;
            on_tx!(&mut tx, |conn, DB| sqlx::query(
                "UPDATE functions SET config = $1, secrets = $2, secrets_key = $3
                 WHERE name = $4 AND secrets IS NULL"
            )
            .bind(&config)
            .bind(&lock.text)
            .bind(&lock.key)
            .bind(&name)
            .execute(&mut *conn)
            .await
            .map(|_| ()))
            .map_err(query(what))?;
            tx.commit().await.map_err(query(what))?;
            sealed += 1;
        }
        if sealed > 0 && self.backend() == Backend::Sqlite {
            self.checkpoint().await?;
        }
        Ok(sealed)
    }

    /// SQLite: copies the write-ahead log into the database and empties it.
    async fn checkpoint(&self) -> Result<(), StoreError> {
        on_pool!(&self.pool, |pool, DB| sqlx::query(
            "PRAGMA wal_checkpoint(TRUNCATE)"
        )
        .execute(pool)
        .await
        .map(|_| ()))
        .map_err(query("checkpoint the write-ahead log"))
    }

    /// Moves the store to the key `target`, which this daemon must hold: checks that every
    /// other daemon of the store holds it, names it the sealing key, and re-seals every
    /// secret sealed with another. Fails with [`StoreError::KeyNotEverywhere`] (nothing
    /// changed) when a daemon lacks it.
    pub async fn rotate_secrets(&self, target: &str) -> Result<Rotation, StoreError> {
        let keys = self.keys.read().clone();
        if !keys.holds(target) {
            return Err(StoreError::KeysMissing {
                missing: vec![target.to_string()],
                held: keys.ids(),
                source_name: keys.source().to_string(),
            });
        }
        let lacking = self.daemons_lacking(target).await?;
        if !lacking.is_empty() {
            return Err(StoreError::KeyNotEverywhere {
                key: target.to_string(),
                daemons: lacking,
            });
        }
        let previous = self.sealing_key_or(target).await?;
        let what = "name the key that seals secrets";
        on_pool!(&self.pool, |pool, DB| sqlx::query(
            "UPDATE meta SET value = $1 WHERE key = $2"
        )
        .bind(target)
        .bind(SEALING_KEY)
        .execute(pool)
        .await
        .map(|_| ()))
        .map_err(query(what))?;
        let mut resealed = 0;
        for _ in 0..ROTATION_PASSES {
            let done = self.reseal_pass(target).await?;
            resealed += done;
            if done == 0 {
                break;
            }
        }
        let used = self.keys_used().await?;
        let retired = keys
            .ids()
            .into_iter()
            .filter(|id| id != target && !used.contains(id))
            .collect();
        if self.backend() == Backend::Sqlite {
            self.checkpoint().await?;
        }
        Ok(Rotation {
            key: target.to_string(),
            previous,
            resealed,
            retired,
        })
    }

    /// Rotates the key of secrets at rest. With keys from the key file: a new key is drawn
    /// and written to the file, the store moved to it, and the keys no secret uses any
    /// more are dropped from the file. With keys from `SKIFF_SECRET_KEY`: the store is moved
    /// to the first key given there (which every daemon must hold already); the keys it
    /// no longer uses are listed, for the operator to drop.
    pub async fn rotate_secret_key(&self) -> Result<Rotation, StoreError> {
        let mut keys = self.secret_keys();
        let target = match keys.source() {
            KeySource::Env => keys.first().to_string(),
            KeySource::File(_) | KeySource::Ephemeral => {
                let held = keys.ids();
                let new = keys.add_new_key()?;
                *self.keys.write() = keys.clone();
                if let Err(err) = self.record_keys(&keys).await {
                    keys.retain(&held)?;
                    *self.keys.write() = keys;
                    return Err(err);
                }
                new
            }
        };
        let rotation = match self.rotate_secrets(&target).await {
            Ok(rotation) => rotation,
            Err(err) => {
                if !matches!(keys.source(), KeySource::Env) {
                    // Nothing was moved: the new key goes again.
                    let held: Vec<String> =
                        keys.ids().into_iter().filter(|id| *id != target).collect();
                    keys.retain(&held)?;
                    *self.keys.write() = keys.clone();
                    self.record_keys(&keys).await?;
                }
                return Err(err);
            }
        };
        if !matches!(keys.source(), KeySource::Env) {
            let keep: Vec<String> = keys
                .ids()
                .into_iter()
                .filter(|id| !rotation.retired.contains(id))
                .collect();
            keys.retain(&keep)?;
            *self.keys.write() = keys.clone();
            self.record_keys(&keys).await?;
        }
        Ok(rotation)
    }

    /// The other daemons of the store that have not said they hold `key`.
    async fn daemons_lacking(&self, key: &str) -> Result<Vec<String>, StoreError> {
        let me = self.my_id();
        let daemons = self.daemons().await?;
        let holders: Vec<String> = on_pool!(&self.pool, |pool, DB| sqlx::query_scalar(
            "SELECT daemon FROM daemon_keys WHERE key_id = $1"
        )
        .bind(key)
        .fetch_all(pool)
        .await)
        .map_err(query("list the daemons holding a key"))?;
        Ok(daemons
            .into_iter()
            .map(|d| d.id)
            .filter(|id| *id != me && !holders.contains(id))
            .collect())
    }

    /// Re-seals with `target` what is sealed with another key; how many.
    async fn reseal_pass(&self, target: &str) -> Result<u64, StoreError> {
        let what = "re-seal secrets";
        let functions: Vec<(String, String, String)> =
            on_pool!(&self.pool, |pool, DB| sqlx::query_as(
                "SELECT name, secrets, secrets_key FROM functions
                 WHERE secrets_key IS NOT NULL AND secrets_key <> $1"
            )
            .bind(target)
            .fetch_all(pool)
            .await)
            .map_err(query(what))?;
        let access_keys: Vec<(String, String, String)> =
            on_pool!(&self.pool, |pool, DB| sqlx::query_as(
                "SELECT id, secret, secret_key FROM access_keys WHERE secret_key <> $1"
            )
            .bind(target)
            .fetch_all(pool)
            .await)
            .map_err(query(what))?;
        let keys = self.keys.read().clone();
        let mut done = 0;
        let tables = [
            (
                functions,
                "UPDATE functions SET secrets = $1, secrets_key = $2 WHERE name = $3 AND secrets_key = $4",
                true,
            ),
            (
                access_keys,
                "UPDATE access_keys SET secret = $1, secret_key = $2 WHERE id = $3 AND secret_key = $4",
                false,
            ),
        ];
        for (rows, statement, is_function) in tables {
            for (id, text, key) in rows {
                let context = if is_function {
                    function_context(&id)
                } else {
                    access_key_context(&id)
                };
                let old = Sealed { key, text };
                let plain = self.unseal(&old, &context, &id)?;
                let new = keys
                    .seal(target, &context, &plain)
                    .ok_or_else(|| corrupt("secret", "cannot be encrypted"))?;
                let changed = on_pool!(&self.pool, |pool, DB| sqlx::query(statement)
                    .bind(&new.text)
                    .bind(&new.key)
                    .bind(&id)
                    .bind(&old.key)
                    .execute(pool)
                    .await
                    .map(|done| done.rows_affected()))
                .map_err(query(what))?;
                done += changed;
            }
        }
        Ok(done)
    }
}

/// A function's configuration as stored (its secrets left out), and its secrets as the
/// JSON that is sealed.
pub(crate) fn encode_config(
    name: &str,
    config: &FunctionConfig,
    secrets: &BTreeMap<String, String>,
) -> Result<(String, Vec<u8>), StoreError> {
    let bad = |e: serde_json::Error| {
        corrupt(
            format!("function {name}"),
            format!("cannot encode the configuration: {e}"),
        )
    };
    let config = serde_json::to_string(config).map_err(bad)?;
    let secrets = serde_json::to_vec(secrets).map_err(bad)?;
    Ok((config, secrets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use skiff_core::{Function, FunctionName, FunctionSpec};

    const VALUE: &str = "hunter2-at-rest-5c1d";

    fn function(name: &str) -> Function {
        let spec: FunctionSpec = serde_json::from_value(serde_json::json!({
            "image": "x:1", "env": {"PLAIN": "visible"}, "secrets": {"TOKEN": VALUE},
        }))
        .expect("spec");
        Function {
            name: FunctionName::parse(name).expect("name"),
            config: spec.validate().expect("valid"),
            image_digest: "sha256:x".into(),
            version: 1,
            created_at: DateTime::from_timestamp_millis(1).expect("time"),
            updated_at: DateTime::from_timestamp_millis(2).expect("time"),
        }
    }

    fn keys(text: &str) -> SecretKeys {
        SecretKeys::parse(text, KeySource::Env).expect("keys")
    }

    /// Every text column of `functions`, as stored.
    async fn stored(store: &Store) -> String {
        let rows: Vec<(String, Option<String>)> = on_pool!(&store.pool, |pool, DB| {
            sqlx::query_as("SELECT config, secrets FROM functions")
                .fetch_all(pool)
                .await
        })
        .expect("rows");
        format!("{rows:?}")
    }

    crate::testing::backend_tests! {
    async fn secrets_are_sealed_and_rotation_moves_every_one_to_the_new_key(kit) {
        let (a, a_id) = SecretKeys::new_key().expect("a");
        let (b, b_id) = SecretKeys::new_key().expect("b");
        let store = kit.store().await;
        store.bind_daemon_id("/srv/one").await.expect("bind");
        let found = store.use_keys(keys(&a)).await.expect("keys");
        assert_eq!(found, KeysInUse { sealing: a_id.clone(), sealed_plaintext: 0 });
        let f = function("sealed");
        store.put_function(&f).await.expect("put");
        let text = stored(&store).await;
        assert!(!text.contains(VALUE), "{text}");
        assert!(text.contains("visible"), "{text}");
        assert_eq!(store.get_function("sealed").await.expect("get"), Some(f.clone()));

        // A daemon holding b first still seals with the store's key, a.
        store.use_keys(keys(&format!("{b},{a}"))).await.expect("both");
        store.put_function(&function("second")).await.expect("put");
        assert_eq!(store.keys_used().await.expect("used"), vec![a_id.clone()]);
        let rotation = store.rotate_secrets(&b_id).await.expect("rotate");
        assert_eq!(rotation.key, b_id);
        assert_eq!(rotation.previous, a_id);
        assert_eq!(rotation.resealed, 2);
        assert_eq!(rotation.retired, vec![a_id.clone()]);
        assert_eq!(store.keys_used().await.expect("used"), vec![b_id.clone()]);

        // b alone opens everything now; a alone is refused, naming the key it lacks.
        store.use_keys(keys(&b)).await.expect("b alone");
        assert_eq!(store.get_function("sealed").await.expect("get"), Some(f));
        let err = store.use_keys(keys(&a)).await.expect_err("a alone");
        assert!(
            matches!(&err, StoreError::KeysMissing { missing, .. } if *missing == vec![b_id.clone()]),
            "{err:?}"
        );
        assert!(!err.to_string().contains(&a), "{err}");
    }

    async fn rotating_a_key_file_draws_a_new_key_and_drops_the_old_one(kit) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = kit.store().await;
        store.bind_daemon_id("/srv/one").await.expect("bind");
        let first = SecretKeys::load(None, dir.path()).expect("file");
        store.use_keys(first.clone()).await.expect("keys");
        store.put_function(&function("f")).await.expect("put");
        let rotation = store.rotate_secret_key().await.expect("rotate");
        assert_eq!(rotation.previous, first.first());
        assert_eq!(rotation.retired, first.ids());
        assert_eq!(rotation.resealed, 1);
        let file = SecretKeys::load(None, dir.path()).expect("file");
        assert_eq!(file.ids(), vec![rotation.key.clone()]);
        store.use_keys(file).await.expect("the file alone opens all");
        assert_eq!(store.get_function("f").await.expect("get"), Some(function("f")));
    }

    async fn a_rotation_waits_for_every_daemon_to_hold_the_key(kit) {
        let (a, _) = SecretKeys::new_key().expect("a");
        let (b, b_id) = SecretKeys::new_key().expect("b");
        let store = kit.store().await;
        store.bind_daemon_id("/srv/one").await.expect("bind");
        store.use_keys(keys(&format!("{a},{b}"))).await.expect("keys");
        store.heartbeat(None, Utc::now()).await.expect("beat");
        // Another daemon, holding a only.
        crate::testing::execute(
            &store,
            "INSERT INTO daemons (id, home, state, started_at, heartbeat_at)
             VALUES ('other', 'elsewhere', 'alive', 0, 0)",
            &[],
        )
        .await;
        crate::testing::execute(
            &store,
            "INSERT INTO daemon_keys (daemon, key_id, seen_at) VALUES ('other', 'x', 0)",
            &[],
        )
        .await;
        if store.backend() == Backend::Sqlite {
            // One daemon per SQLite file: the row is not one of its daemons.
            store.rotate_secrets(&b_id).await.expect("rotate");
            return;
        }
        let err = store.rotate_secrets(&b_id).await.expect_err("other lacks b");
        assert!(
            matches!(&err, StoreError::KeyNotEverywhere { daemons, .. } if *daemons == vec!["other".to_string()]),
            "{err:?}"
        );
    }

    async fn secrets_stored_in_plain_text_are_sealed_at_start(kit) {
        let store = kit.store().await;
        let f = function("old");
        let config = serde_json::to_string(&f.config).expect("json");
        assert!(config.contains(VALUE));
        crate::testing::execute(
            &store,
            "INSERT INTO functions (name, config, image_digest, version, created_at, updated_at)
             VALUES ('old', $1, 'sha256:x', 1, 1, 2)",
            &[&config],
        )
        .await;
        // Readable as it is, before.
        assert_eq!(store.get_function("old").await.expect("get"), Some(f.clone()));
        let (a, _) = SecretKeys::new_key().expect("a");
        let found = store.use_keys(keys(&a)).await.expect("keys");
        assert_eq!(found.sealed_plaintext, 1);
        let text = stored(&store).await;
        assert!(!text.contains(VALUE), "{text}");
        assert_eq!(store.get_function("old").await.expect("get"), Some(f));
        assert_eq!(store.use_keys(keys(&a)).await.expect("again").sealed_plaintext, 0);
    }
    }
}
