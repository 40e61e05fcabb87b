//! Access keys of the Lambda API: an AWS access key id, the namespace it acts in, and its
//! secret access key, sealed at rest (SigV4 needs the secret itself to check a signature,
//! so it cannot be stored as a hash).

use crate::backend::{on_pool, on_tx};
use crate::codec::{millis, RowReader};
use crate::error::query;
use crate::keys::Sealed;
use crate::secrets::access_key_context;
use crate::{Store, StoreError};
use chrono::{DateTime, Utc};

/// An access key as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKeyRecord {
    /// The access key id (`AKIA...`).
    pub id: String,
    /// The namespace it acts in.
    pub namespace: String,
    /// What it is for, as its maker said.
    pub description: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

impl Store {
    /// Stores a new access key with its secret, sealed.
    pub async fn create_access_key(
        &self,
        record: &AccessKeyRecord,
        secret: &str,
    ) -> Result<(), StoreError> {
        let what = "store an access key";
        let mut tx = self.pool.begin().await.map_err(query(what))?;
        let sealed = self
            .seal_in(&mut tx, &access_key_context(&record.id), secret.as_bytes())
            .await?;
        on_tx!(&mut tx, |conn, DB| sqlx::query(
            "INSERT INTO access_keys (id, namespace, description, secret, secret_key, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)"
        )
        .bind(&record.id)
        .bind(&record.namespace)
        .bind(&record.description)
        .bind(&sealed.text)
        .bind(&sealed.key)
        .bind(millis(record.created_at))
        .execute(&mut *conn)
        .await
        .map(|_| ()))
        .map_err(query(what))?;
        tx.commit().await.map_err(query(what))
    }

    /// Every access key, oldest first, without secrets.
    pub async fn list_access_keys(&self) -> Result<Vec<AccessKeyRecord>, StoreError> {
        on_pool!(&self.pool, |pool, DB| {
            let rows = sqlx::query(
                "SELECT id, namespace, description, created_at FROM access_keys
                 ORDER BY created_at, id",
            )
            .fetch_all(pool)
            .await
            .map_err(query("list access keys"))?;
            rows.iter()
                .map(|row| {
                    let r = RowReader {
                        row,
                        what: "access key".into(),
                    };
                    Ok(AccessKeyRecord {
                        id: r.text("id")?,
                        namespace: r.text("namespace")?,
                        description: r.text("description")?,
                        created_at: r.time("created_at")?,
                    })
                })
                .collect()
        })
    }

    /// The namespace and the secret of access key `id`, if it exists. On SQLite, one found
    /// is kept in memory until an access key is deleted through this store (see
    /// `credential_cache`).
    pub async fn access_key_secret(
        &self,
        id: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        crate::credential_cache::read_through(
            self.access_keys.as_deref(),
            id,
            self.read_access_key_secret(id),
        )
        .await
    }

    async fn read_access_key_secret(
        &self,
        id: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        let row: Option<(String, String, String)> =
            on_pool!(&self.pool, |pool, DB| sqlx::query_as(
                "SELECT namespace, secret, secret_key FROM access_keys WHERE id = $1"
            )
            .bind(id)
            .fetch_optional(pool)
            .await)
            .map_err(query("read an access key"))?;
        let Some((namespace, text, key)) = row else {
            return Ok(None);
        };
        let what = format!("access key {id}");
        let plain = self.unseal(&Sealed { key, text }, &access_key_context(id), &what)?;
        let secret = String::from_utf8(plain)
            .map_err(|_| crate::error::corrupt(what, "the secret is not text"))?;
        Ok(Some((namespace, secret)))
    }

    /// Deletes access key `id`; true if it existed. Requests it signs fail from now on.
    pub async fn delete_access_key(&self, id: &str) -> Result<bool, StoreError> {
        let deleted = on_pool!(&self.pool, |pool, DB| sqlx::query(
            "DELETE FROM access_keys WHERE id = $1"
        )
        .bind(id)
        .execute(pool)
        .await
        .map(|done| done.rows_affected() > 0))
        .map_err(query("delete an access key"));
        if let Some(cache) = &self.access_keys {
            cache.changed();
        }
        deleted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::testing::backend_tests! {
    async fn access_keys_keep_their_secret_sealed_and_go_when_revoked(kit) {
        let store = kit.store().await;
        let record = AccessKeyRecord {
            id: "AKIATEST0000000001".into(),
            namespace: "default".into(),
            description: "ci".into(),
            created_at: DateTime::from_timestamp_millis(1_700_000_000_000).expect("time"),
        };
        const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY";
        store.create_access_key(&record, SECRET).await.expect("create");
        assert_eq!(store.list_access_keys().await.expect("list"), vec![record.clone()]);
        assert_eq!(
            store.access_key_secret(&record.id).await.expect("secret"),
            Some(("default".to_string(), SECRET.to_string()))
        );
        let stored: Vec<(String,)> = on_pool!(&store.pool, |pool, DB| {
            sqlx::query_as("SELECT secret FROM access_keys").fetch_all(pool).await
        })
        .expect("rows");
        assert!(!format!("{stored:?}").contains(SECRET));
        assert!(store.create_access_key(&record, SECRET).await.is_err(), "ids are unique");
        // Looked up again (on SQLite, from memory) until it is deleted.
        assert!(store.access_key_secret(&record.id).await.expect("secret").is_some());
        assert!(store.delete_access_key(&record.id).await.expect("delete"));
        assert!(!store.delete_access_key(&record.id).await.expect("again"));
        assert_eq!(store.access_key_secret(&record.id).await.expect("gone"), None);
    }
    }
}
