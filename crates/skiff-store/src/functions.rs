//! Deployed functions: name, configuration (as JSON), pinned image, version and times.
//! Their secrets are not in the configuration's JSON: they are sealed apart (`secrets.rs`),
//! beside the id of the key that sealed them.

use crate::backend::{on_pool, on_tx, Columns};
use crate::changes::{announce, Change};
use crate::codec::{int, millis, RowReader};
use crate::error::{corrupt, query};
use crate::keys::Sealed;
use crate::secrets::{encode_config, function_context};
use crate::{Store, StoreError};
use skiff_core::{Function, FunctionConfig, FunctionName};

impl Store {
    /// Inserts `f`, or replaces every column of the function of that name.
    pub async fn put_function(&self, f: &Function) -> Result<(), StoreError> {
        let mut config = f.config.clone();
        let secrets = std::mem::take(&mut config.secrets);
        let (config, plain) = encode_config(f.name.as_str(), &config, &secrets)?;
        let what = "store a function";
        let mut tx = self.pool.begin().await.map_err(query(what))?;
        let sealed = match secrets.is_empty() {
            true => None,
            false => Some(
                self.seal_in(&mut tx, &function_context(f.name.as_str()), &plain)
                    .await?,
            ),
        };
        on_tx!(&mut tx, |conn, DB| sqlx::query(
            "INSERT INTO functions (name, config, image_digest, version, created_at, updated_at,
                secrets, secrets_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (name) DO UPDATE SET
                config = excluded.config,
                image_digest = excluded.image_digest,
                version = excluded.version,
                created_at = excluded.created_at,
                updated_at = excluded.updated_at,
                secrets = excluded.secrets,
                secrets_key = excluded.secrets_key",
        )
        .bind(f.name.as_str())
        .bind(&config)
        .bind(&f.image_digest)
        .bind(int(f.version))
        .bind(millis(f.created_at))
        .bind(millis(f.updated_at))
        .bind(sealed.as_ref().map(|s| s.text.as_str()))
        .bind(sealed.as_ref().map(|s| s.key.as_str()))
        .execute(&mut *conn)
        .await
        .map(|_| ()))
        .map_err(query(what))?;
        announce(&mut tx, &Change::Function(f.name.to_string())).await?;
        tx.commit().await.map_err(query(what))
    }

    /// The function called `name`, if there is one.
    pub async fn get_function(&self, name: &str) -> Result<Option<Function>, StoreError> {
        on_pool!(&self.pool, |pool, DB| {
            let row = sqlx::query(
                "SELECT name, config, image_digest, version, created_at, updated_at,
                    secrets, secrets_key
                 FROM functions WHERE name = $1",
            )
            .bind(name)
            .fetch_optional(pool)
            .await
            .map_err(query("get a function"))?;
            row.as_ref().map(|r| self.decode(r)).transpose()
        })
    }

    /// Every function, sorted by name.
    pub async fn list_functions(&self) -> Result<Vec<Function>, StoreError> {
        on_pool!(&self.pool, |pool, DB| {
            let rows = sqlx::query(
                "SELECT name, config, image_digest, version, created_at, updated_at,
                    secrets, secrets_key
                 FROM functions ORDER BY name",
            )
            .fetch_all(pool)
            .await
            .map_err(query("list functions"))?;
            rows.iter().map(|r| self.decode(r)).collect()
        })
    }

    /// Deletes the function called `name`; true if it existed. Its call records stay.
    pub async fn delete_function(&self, name: &str) -> Result<bool, StoreError> {
        let what = "delete a function";
        let mut tx = self.pool.begin().await.map_err(query(what))?;
        let done = on_tx!(&mut tx, |conn, DB| sqlx::query(
            "DELETE FROM functions WHERE name = $1"
        )
        .bind(name)
        .execute(&mut *conn)
        .await
        .map(|done| done.rows_affected() > 0))
        .map_err(query(what))?;
        announce(&mut tx, &Change::Function(name.to_string())).await?;
        tx.commit().await.map_err(query(what))?;
        Ok(done)
    }
}

impl Store {
    /// A function's row, its secrets opened (those in the configuration's JSON, as an older
    /// skiff stored them, are kept until they are sealed at start).
    fn decode(&self, row: &dyn Columns) -> Result<Function, StoreError> {
        let name = row
            .text("name")
            .map_err(|e| corrupt("function", format!("name: {e}")))?
            .unwrap_or_default();
        let r = RowReader {
            row,
            what: format!("function {name}"),
        };
        let mut config: FunctionConfig = r.json("config")?;
        if let (Some(text), Some(key)) = (r.text_opt("secrets")?, r.text_opt("secrets_key")?) {
            let plain = self.unseal(&Sealed { key, text }, &function_context(&name), &r.what)?;
            config.secrets = serde_json::from_slice(&plain)
                .map_err(|e| corrupt(r.what.clone(), format!("secrets: {e}")))?;
        }
        let name =
            FunctionName::parse(&name).map_err(|e| corrupt(r.what.clone(), e.to_string()))?;
        Ok(Function {
            name,
            config,
            image_digest: r.text("image_digest")?,
            version: r.unsigned("version")?,
            created_at: r.time("created_at")?,
            updated_at: r.time("updated_at")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use skiff_core::FunctionSpec;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).expect("valid time")
    }

    fn function(name: &str, image: &str, version: u64) -> Function {
        let spec: FunctionSpec = serde_json::from_value(serde_json::json!({
            "image": image,
            "memory": "128Mi",
            "cpus": 0.5,
            "pids": 64,
            "tmp_size": "16Mi",
            "timeout": "10s",
            "env": {"GREETING": "hi", "EMPTY": ""},
            "secrets": {"TOKEN": "s3cret"},
        }))
        .expect("spec parses");
        Function {
            name: FunctionName::parse(name).expect("name"),
            config: spec.validate().expect("valid spec"),
            image_digest: format!("sha256:{name}{version}"),
            version,
            created_at: at(1_700_000_000_123),
            updated_at: at(1_700_000_000_123 + i64::try_from(version).expect("small")),
        }
    }

    crate::testing::backend_tests! {
    async fn functions_round_trip_every_field(kit) {
        let store = kit.store().await;
        assert_eq!(store.get_function("hello").await.expect("get"), None);

        let hello = function("hello", "hello:1", 1);
        store.put_function(&hello).await.expect("put");
        assert_eq!(
            store.get_function("hello").await.expect("get"),
            Some(hello.clone())
        );

        // An update replaces every column.
        let mut updated = function("hello", "hello:2", 2);
        updated.config.env.insert("NEW".into(), "value".into());
        updated.config.secrets.clear();
        store.put_function(&updated).await.expect("update");
        assert_eq!(
            store.get_function("hello").await.expect("get"),
            Some(updated.clone())
        );

        let zeta = function("zeta", "zeta:1", 1);
        let alpha = function("alpha", "alpha:1", 7);
        store.put_function(&zeta).await.expect("put");
        store.put_function(&alpha).await.expect("put");
        let listed = store.list_functions().await.expect("list");
        assert_eq!(listed, vec![alpha.clone(), updated.clone(), zeta.clone()]);

        assert!(store.delete_function("hello").await.expect("delete"));
        assert!(!store.delete_function("hello").await.expect("delete again"));
        assert_eq!(store.get_function("hello").await.expect("get"), None);
        let names: Vec<String> = store
            .list_functions()
            .await
            .expect("list")
            .into_iter()
            .map(|f| f.name.to_string())
            .collect();
        assert_eq!(names, ["alpha", "zeta"]);
    }

    async fn a_function_with_bad_json_is_corrupt(kit) {
        let store = kit.store().await;
        crate::testing::execute(
            &store,
            "INSERT INTO functions (name, config, image_digest, version, created_at, updated_at)
             VALUES ('broken', '{not json', 'sha256:x', 1, 0, 0)",
            &[],
        )
        .await;
        let err = store.get_function("broken").await.expect_err("corrupt");
        assert!(
            matches!(&err, StoreError::Corrupt { what, .. } if what == "function broken"),
            "{err:?}"
        );
        assert!(matches!(
            store.list_functions().await,
            Err(StoreError::Corrupt { .. })
        ));
    }
    }
}
