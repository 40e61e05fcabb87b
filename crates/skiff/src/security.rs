//! The daemon's side of secrets at rest and of the Lambda API's credentials, at start:
//! the keys secrets are encrypted with, and the access key made at the first start.

use anyhow::{Context, Result};
use skiff_core::api::AccessKeyRequest;
use skiff_invoker::Platform;
use skiff_store::keys::KEY_ENV;
use skiff_store::{DataDir, SecretKeys, Store};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

/// The file, in the data directory, with the access key made at the first start, in the
/// AWS shared credentials format (profile `skiff`).
pub const CREDENTIALS_FILE: &str = "aws-credentials";
/// The profile of that file.
pub const PROFILE: &str = "skiff";

/// The variable naming a file that holds what `SKIFF_SECRET_KEY` would (a Docker secret).
const KEY_FILE_ENV: &str = "SKIFF_SECRET_KEY_FILE";

/// Gives the store the keys of secrets at rest: `SKIFF_SECRET_KEY`, or the file
/// `SKIFF_SECRET_KEY_FILE` names, or else the key file of the data directory (made at the
/// first start). Secrets an older skiff kept in plain text are encrypted now.
pub async fn use_keys(store: &Store, data_dir: &DataDir) -> Result<()> {
    let env = match std::env::var(KEY_ENV).ok() {
        Some(keys) => Some(keys),
        None => match std::env::var_os(KEY_FILE_ENV).filter(|p| !p.is_empty()) {
            Some(path) => Some(
                std::fs::read_to_string(&path)
                    .with_context(|| {
                        format!("cannot read {KEY_FILE_ENV} ({})", path.to_string_lossy())
                    })?
                    .trim()
                    .to_string(),
            ),
            None => None,
        },
    };
    let keys = SecretKeys::load(env.as_deref(), data_dir.path())?;
    let source = keys.source().to_string();
    let found = store.use_keys(keys).await?;
    tracing::info!(
        key = found.sealing,
        from = source,
        "secrets at rest are encrypted"
    );
    if found.sealed_plaintext > 0 {
        tracing::info!(
            functions = found.sealed_plaintext,
            "encrypted the secrets that were stored in plain text"
        );
    }
    Ok(())
}

/// At the first start (no credentials file in the data directory yet): makes an access key
/// for the Lambda API and writes it there, mode 0600, for AWS clients to use.
pub async fn first_access_key(platform: &Platform, data_dir: &DataDir) -> Result<()> {
    let path: PathBuf = data_dir.path().join(CREDENTIALS_FILE);
    if path.exists() {
        return Ok(());
    }
    let created = platform
        .create_access_key(&AccessKeyRequest {
            namespace: None,
            description: Some("made at the first start".into()),
        })
        .await
        .context("cannot make the first access key of the Lambda API")?;
    let text = format!(
        "# The Lambda API's access key made at skiff's first start. AWS clients use it with\n\
         # AWS_SHARED_CREDENTIALS_FILE={} AWS_PROFILE={PROFILE}\n\
         [{PROFILE}]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
        path.display(),
        created.key.id,
        created.secret
    );
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()
    };
    write().with_context(|| format!("cannot write {}", path.display()))?;
    tracing::info!(
        id = created.key.id,
        file = %path.display(),
        "made an access key for the Lambda API"
    );
    Ok(())
}
