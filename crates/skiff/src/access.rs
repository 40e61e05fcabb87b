//! The daemon's first token: at its first start on a store without tokens, the daemon makes
//! an admin token and writes it, readable by its owner only, to `admin.token` in its data
//! directory and to the command line's config (`~/.config/skiff/config.toml`), so that
//! `skiff` commands work at once. At a later start, the command line's config gets the
//! token of `admin.token` again if it holds no valid token for this daemon.

use crate::cli_config;
use anyhow::{Context, Result};
use skiff_invoker::Platform;
use std::net::SocketAddr;
use std::path::Path;

/// The file in the data directory that holds the first admin token.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// The secret in the operator's admin token file (a Docker secret, say), read before the
/// daemon starts so that a missing file stops nothing half-started.
pub fn read_given(path: Option<&Path>) -> Result<Option<String>> {
    let Some(path) = path else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the admin token file {}", path.display()))?;
    Ok(Some(text.trim().to_string()))
}

/// The URL commands on this host reach the daemon at (`scheme` is `http` or `https`).
fn local_url(scheme: &str, address: SocketAddr) -> String {
    let ip = if address.ip().is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        address.ip()
    };
    format!("{scheme}://{}", SocketAddr::new(ip, address.port()))
}

/// Makes the first admin token if the store has none, and hands it to the command line, for
/// the daemon's URL (`scheme` is `https` when it serves TLS).
/// `given` (the operator's secret, from [`read_given`]) becomes the first token instead of a
/// random one.
pub async fn first_token(
    platform: &Platform,
    data_dir: &Path,
    given: Option<&str>,
    scheme: &str,
    address: SocketAddr,
) -> Result<()> {
    let file = data_dir.join(ADMIN_TOKEN_FILE);
    let token = match platform.bootstrap_admin(given).await? {
        Some(created) => {
            cli_config::write_private(&file, format!("{}\n", created.secret).as_bytes())?;
            tracing::info!(
                id = created.token.id,
                file = %file.display(),
                "made the first admin token"
            );
            created.secret
        }
        None => match std::fs::read_to_string(&file) {
            Ok(text) => text.trim().to_string(),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(err).with_context(|| format!("cannot read {}", file.display())),
        },
    };
    if platform.authenticate(&token).await.is_err() {
        // Revoked since: the command line is not handed a token that no longer works.
        return Ok(());
    }
    let url = local_url(scheme, address);
    let Some(path) = cli_config::path() else {
        return Ok(());
    };
    let config = cli_config::load().unwrap_or_default();
    if let Some(current) = cli_config::token_for(&url, None, &config) {
        if platform.authenticate(&current).await.is_ok() {
            return Ok(());
        }
    }
    match cli_config::save(&path, &url, &token) {
        Ok(()) => tracing::info!(
            file = %path.display(),
            "the command line's config holds the admin token for {url}"
        ),
        Err(err) => tracing::warn!(
            "cannot write the admin token to the command line's config ({err:#}); \
             use SKIFF_TOKEN=$(cat {})",
            file.display()
        ),
    }
    Ok(())
}
