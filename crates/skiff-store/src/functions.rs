//! Deployed functions: name, configuration (as JSON), pinned image, version and times.

use crate::codec::{int, millis, RowReader};
use crate::error::{corrupt, query};
use crate::{Store, StoreError};
use skiff_core::{Function, FunctionConfig, FunctionName};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

impl Store {
    /// Inserts `f`, or replaces every column of the function of that name.
    pub async fn put_function(&self, f: &Function) -> Result<(), StoreError> {
        let config = serde_json::to_string(&f.config).map_err(|e| {
            corrupt(
                format!("function {}", f.name),
                format!("cannot encode the configuration: {e}"),
            )
        })?;
        sqlx::query(
            "INSERT INTO functions (name, config, image_digest, version, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (name) DO UPDATE SET
                config = excluded.config,
                image_digest = excluded.image_digest,
                version = excluded.version,
                created_at = excluded.created_at,
                updated_at = excluded.updated_at",
        )
        .bind(f.name.as_str())
        .bind(config)
        .bind(&f.image_digest)
        .bind(int(f.version))
        .bind(millis(f.created_at))
        .bind(millis(f.updated_at))
        .execute(&self.pool)
        .await
        .map_err(query("store a function"))?;
        Ok(())
    }

    /// The function called `name`, if there is one.
    pub async fn get_function(&self, name: &str) -> Result<Option<Function>, StoreError> {
        let row = sqlx::query(
            "SELECT name, config, image_digest, version, created_at, updated_at
             FROM functions WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(query("get a function"))?;
        row.as_ref().map(decode).transpose()
    }

    /// Every function, sorted by name.
    pub async fn list_functions(&self) -> Result<Vec<Function>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, config, image_digest, version, created_at, updated_at
             FROM functions ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query("list functions"))?;
        rows.iter().map(decode).collect()
    }

    /// Deletes the function called `name`; true if it existed. Its call records stay.
    pub async fn delete_function(&self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM functions WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(query("delete a function"))?;
        Ok(done.rows_affected() > 0)
    }
}

fn decode(row: &SqliteRow) -> Result<Function, StoreError> {
    let name: String = row
        .try_get("name")
        .map_err(|e| corrupt("function", format!("name: {e}")))?;
    let r = RowReader {
        row,
        what: format!("function {name}"),
    };
    let name = FunctionName::parse(&name).map_err(|e| corrupt(r.what.clone(), e.to_string()))?;
    let config: FunctionConfig = r.json("config")?;
    Ok(Function {
        name,
        config,
        image_digest: r.get("image_digest")?,
        version: r.unsigned("version")?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
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

    #[tokio::test]
    async fn functions_round_trip_every_field() {
        let store = Store::open_in_memory().await.expect("store");
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

    #[tokio::test]
    async fn a_function_with_bad_json_is_corrupt() {
        let store = Store::open_in_memory().await.expect("store");
        sqlx::query(
            "INSERT INTO functions (name, config, image_digest, version, created_at, updated_at)
             VALUES ('broken', '{not json', 'sha256:x', 1, 0, 0)",
        )
        .execute(&store.pool)
        .await
        .expect("raw insert");
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
