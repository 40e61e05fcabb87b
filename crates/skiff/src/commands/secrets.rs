//! `skiff secrets rotate-key` (through the daemon) and `skiff secrets new-key` (local): the
//! key secrets at rest are encrypted with.

use crate::client::ApiClient;
use crate::output;
use skiff_store::SecretKeys;
use std::process::ExitCode;

/// Arguments of `skiff secrets`.
#[derive(Debug, clap::Args)]
pub struct SecretsArgs {
    #[command(subcommand)]
    pub command: SecretsCommand,
}

/// The subcommands of `skiff secrets`.
#[derive(Debug, clap::Subcommand)]
pub enum SecretsCommand {
    /// Encrypt every secret at rest with a new key: a new one in the daemon's key file, or
    /// the first of SKIFF_SECRET_KEY when the daemons' keys come from there
    RotateKey,
    /// Print a new key for SKIFF_SECRET_KEY (talks to no daemon)
    NewKey,
}

/// Runs `skiff secrets new-key`, which needs no daemon.
pub fn new_key(json: bool) -> anyhow::Result<ExitCode> {
    let (key, id) = SecretKeys::new_key()?;
    if json {
        output::print_json(&serde_json::json!({"key": key, "id": id}))?;
    } else {
        output::print_text(&format!("{key}\n"))?;
        eprintln!("key id {id}: put it first in SKIFF_SECRET_KEY on every daemon, restart them, then run `skiff secrets rotate-key`");
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `skiff secrets rotate-key`.
pub async fn rotate(client: &ApiClient, json: bool) -> anyhow::Result<ExitCode> {
    let rotation = client.rotate_secret_key().await?;
    if json {
        output::print_json(&rotation)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut text = format!(
        "secrets are encrypted with key {} (was {}); {} re-encrypted\n",
        rotation.key, rotation.previous, rotation.reencrypted
    );
    if !rotation.retired.is_empty() {
        let retired = rotation.retired.join(", ");
        text.push_str(&match rotation.source.as_str() {
            "env" => format!(
                "no secret needs key(s) {retired} any more: remove them from SKIFF_SECRET_KEY\n"
            ),
            _ => format!("key(s) {retired} removed from the key file\n"),
        });
    }
    output::print_text(&text)?;
    Ok(ExitCode::SUCCESS)
}
