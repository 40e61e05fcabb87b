//! `skiff tokens create --aws`, `skiff tokens ls`, `skiff tokens revoke ID`: the access keys
//! the Lambda API checks SigV4 signatures with.

use crate::client::ApiClient;
use crate::output::{self, Table};
use skiff_core::api::{AccessKeyRequest, AccessKeyView};
use std::process::ExitCode;

/// Arguments of `skiff tokens`.
#[derive(Debug, clap::Args)]
pub struct TokensArgs {
    #[command(subcommand)]
    pub command: TokensCommand,
}

/// The subcommands of `skiff tokens`.
#[derive(Debug, clap::Subcommand)]
pub enum TokensCommand {
    /// Make a credential; its secret is printed once
    Create(CreateArgs),
    /// List the credentials (never their secrets)
    #[command(visible_alias = "list")]
    Ls,
    /// Revoke a credential at once
    Revoke {
        /// Its id (an access key id, for --aws keys)
        id: String,
    },
}

/// Arguments of `skiff tokens create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// An AWS access key (id and secret) for the Lambda API, checked with SigV4
    #[arg(long, required = true)]
    pub aws: bool,
    /// The namespace its requests act in [default: default]
    #[arg(long, value_name = "NAME")]
    pub namespace: Option<String>,
    /// What it is for
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
}

/// The table `skiff tokens ls` prints.
pub fn keys_table(keys: &[AccessKeyView]) -> Table {
    let mut table = Table::new(["ID", "KIND", "NAMESPACE", "CREATED", "DESCRIPTION"]);
    for key in keys {
        table.push(vec![
            key.id.clone(),
            "aws".into(),
            key.namespace.clone(),
            output::local_time(&key.created_at),
            key.description.clone(),
        ]);
    }
    table
}

/// Runs `skiff tokens ...`.
pub async fn run(client: &ApiClient, args: TokensArgs, json: bool) -> anyhow::Result<ExitCode> {
    match args.command {
        TokensCommand::Create(args) => {
            let created = client
                .create_access_key(&AccessKeyRequest {
                    namespace: args.namespace,
                    description: args.description,
                })
                .await?;
            if json {
                output::print_json(&created)?;
            } else {
                output::print_text(&format!(
                    "aws_access_key_id = {}\naws_secret_access_key = {}\n\
                     # namespace {}; the secret is not shown again\n",
                    created.key.id, created.secret, created.key.namespace
                ))?;
            }
        }
        TokensCommand::Ls => {
            let keys = client.list_access_keys().await?;
            if json {
                output::print_json(&keys)?;
            } else {
                output::print_text(&keys_table(&keys).render())?;
            }
        }
        TokensCommand::Revoke { id } => {
            client.revoke_access_key(&id).await?;
            if json {
                output::print_json(&serde_json::json!({"revoked": id}))?;
            } else {
                output::print_text(&format!("revoked {id}\n"))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
