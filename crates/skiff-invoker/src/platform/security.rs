//! Secrets at rest and the Lambda API's credentials: rotating the key secrets are encrypted
//! with, and making, listing, revoking and looking up access keys.

use super::Platform;
use crate::error::PlatformError;
use base64::Engine;
use chrono::Utc;
use skiff_core::api::{AccessKeyCreated, AccessKeyRequest, AccessKeyView, KeyRotation};
use skiff_store::{AccessKeyRecord, KeySource, StoreError};

/// The namespace of an access key made without one.
pub const DEFAULT_NAMESPACE: &str = "default";
/// Longest description of an access key.
const MAX_DESCRIPTION: usize = 256;
/// The letters of access key ids after their prefix (base32's, as AWS's ids).
const ID_LETTERS: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// An access key, found for a request it signed.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKey {
    /// The namespace its requests act in.
    pub namespace: String,
    /// The secret access key.
    pub secret: String,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// A new access key id (`AKIA` and 16 letters) and secret (40 characters of base64).
fn new_access_key() -> Result<(String, String), PlatformError> {
    let mut random = [0u8; 46];
    getrandom::fill(&mut random).map_err(|e| PlatformError::Internal {
        message: format!("cannot draw a random access key: {e}"),
    })?;
    let (id_bytes, secret_bytes) = random.split_at(16);
    let id: String = id_bytes
        .iter()
        .map(|b| char::from(ID_LETTERS[usize::from(b % 32)]))
        .collect();
    let secret = base64::engine::general_purpose::STANDARD.encode(secret_bytes);
    Ok((format!("AKIA{id}"), secret))
}

fn conflict_or_store(err: StoreError) -> PlatformError {
    match err {
        err @ (StoreError::KeyNotEverywhere { .. } | StoreError::KeysMissing { .. }) => {
            PlatformError::Conflict {
                message: err.to_string(),
            }
        }
        other => other.into(),
    }
}

impl Platform {
    /// Rotates the key secrets at rest are encrypted with (see
    /// [`skiff_store::Store::rotate_secret_key`]).
    pub async fn rotate_secret_key(&self) -> Result<KeyRotation, PlatformError> {
        let _serial = self.deploys.lock().await;
        let rotation = self
            .store
            .rotate_secret_key()
            .await
            .map_err(conflict_or_store)?;
        let source = match self.store.secret_keys().source() {
            KeySource::Env => "env",
            KeySource::File(_) | KeySource::Ephemeral => "file",
        };
        tracing::info!(
            key = rotation.key,
            previous = rotation.previous,
            reencrypted = rotation.resealed,
            "rotated the key of secrets at rest"
        );
        Ok(KeyRotation {
            key: rotation.key,
            previous: rotation.previous,
            reencrypted: rotation.resealed,
            retired: rotation.retired,
            source: source.to_string(),
        })
    }

    /// Makes an access key of the Lambda API; its secret is in the answer and nowhere
    /// else in the clear.
    pub async fn create_access_key(
        &self,
        request: &AccessKeyRequest,
    ) -> Result<AccessKeyCreated, PlatformError> {
        let namespace = request
            .namespace
            .clone()
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
        skiff_core::access::check_namespace(&namespace, false).map_err(|message| {
            PlatformError::BadRequest {
                message: format!("namespace: {message}"),
            }
        })?;
        let description = request.description.clone().unwrap_or_default();
        if description.chars().count() > MAX_DESCRIPTION
            || description.chars().any(char::is_control)
        {
            return Err(PlatformError::BadRequest {
                message: format!(
                    "description: at most {MAX_DESCRIPTION} characters, none of them control characters"
                ),
            });
        }
        let (id, secret) = new_access_key()?;
        let record = AccessKeyRecord {
            id,
            namespace,
            description,
            created_at: Utc::now(),
        };
        self.store
            .create_access_key(&record, &secret)
            .await
            .map_err(conflict_or_store)?;
        tracing::info!(
            id = record.id,
            namespace = record.namespace,
            "access key created"
        );
        Ok(AccessKeyCreated {
            key: view(record),
            secret,
        })
    }

    /// Every access key, without secrets.
    pub async fn list_access_keys(&self) -> Result<Vec<AccessKeyView>, PlatformError> {
        Ok(self
            .store
            .list_access_keys()
            .await?
            .into_iter()
            .map(view)
            .collect())
    }

    /// Revokes access key `id`: requests it signs are refused from now on.
    pub async fn revoke_access_key(&self, id: &str) -> Result<(), PlatformError> {
        if self.store.delete_access_key(id).await? {
            tracing::info!(id, "access key revoked");
            Ok(())
        } else {
            Err(PlatformError::AccessKeyNotFound { id: id.to_string() })
        }
    }

    /// The access key `id`, for checking a signature; `None` when there is none.
    pub async fn access_key(&self, id: &str) -> Result<Option<AccessKey>, PlatformError> {
        Ok(self
            .store
            .access_key_secret(id)
            .await?
            .map(|(namespace, secret)| AccessKey { namespace, secret }))
    }
}

fn view(record: AccessKeyRecord) -> AccessKeyView {
    AccessKeyView {
        id: record.id,
        namespace: record.namespace,
        description: record.description,
        created_at: record.created_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_keys_look_like_aws_ones_and_differ() {
        let (id, secret) = new_access_key().expect("key");
        assert_eq!(id.len(), 20, "{id}");
        assert!(id.starts_with("AKIA"), "{id}");
        assert!(id
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
        assert_eq!(secret.len(), 40, "{secret}");
        assert_ne!(new_access_key().expect("another").0, id);
        let key = AccessKey {
            namespace: "default".into(),
            secret: secret.clone(),
        };
        assert!(!format!("{key:?}").contains(&secret));
    }
}
