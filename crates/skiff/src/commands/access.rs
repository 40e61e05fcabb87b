//! `skiff tokens`, `skiff keys`, `skiff audit` and `skiff namespaces`: who may do what,
//! what was done, and how much each namespace may use.

use crate::client::ApiClient;
use crate::output::{self, Table};
use skiff_core::access::Scope;
use skiff_core::api::{
    AccessKeyRequest, AccessKeyView, AuditQuery, Quota, TokenCreated, TokenRequest, TokenView,
};
use skiff_core::ByteSize;
use std::process::ExitCode;

/// Arguments of `skiff tokens`.
#[derive(Debug, clap::Args)]
pub struct TokensArgs {
    #[command(subcommand)]
    pub command: TokensCommand,
}

/// What `skiff tokens` does.
#[derive(Debug, clap::Subcommand)]
pub enum TokensCommand {
    /// Make an API token, or an access key with --aws; its secret is printed this once
    Create(CreateTokenArgs),
    /// List the API tokens and access keys (never their secrets)
    #[command(visible_alias = "list")]
    Ls,
    /// Revoke a token or an access key: it stops working at once, on every daemon
    Revoke {
        /// The token's id (`tok_...`), or the access key's (`AKIA...`)
        id: String,
    },
}

/// Arguments of `skiff tokens create`: an API token (`NAME --scope ...`), or with `--aws`
/// an AWS access key for the Lambda API.
#[derive(Debug, clap::Args)]
pub struct CreateTokenArgs {
    /// A label: who or what uses the token (optional with --aws)
    #[arg(required_unless_present = "aws")]
    pub name: Option<String>,
    /// What it allows: admin, deploy, invoke, read (repeatable, or comma-separated)
    #[arg(long = "scope", value_name = "SCOPE", value_delimiter = ',',
          required_unless_present = "aws", conflicts_with = "aws", value_parser = parse_scope)]
    pub scopes: Vec<Scope>,
    /// The namespaces it reaches, `*` for all (comma-separated; one with --aws) [default:
    /// the one of `--namespace`, else `default`]
    #[arg(long, value_name = "NS,...", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// How long it stays valid (`30d`, `12h`) [default: until revoked]
    #[arg(long, value_name = "DURATION", conflicts_with = "aws")]
    pub expires_in: Option<String>,
    /// Make an AWS access key (id and secret) for the Lambda API, checked with SigV4; its
    /// requests act in one namespace
    #[arg(long)]
    pub aws: bool,
    /// What an access key is for [default: NAME]
    #[arg(long, value_name = "TEXT", requires = "aws")]
    pub description: Option<String>,
}

fn parse_scope(text: &str) -> Result<Scope, String> {
    Scope::parse(text)
}

/// Arguments of `skiff keys`.
#[derive(Debug, clap::Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
}

/// What `skiff keys` does.
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Make an invoke key of a function: it calls that function and nothing else
    Create {
        /// The function
        function: String,
        /// A label: who uses the key
        #[arg(long)]
        name: Option<String>,
    },
    /// List a function's invoke keys
    #[command(visible_alias = "list")]
    Ls {
        /// The function
        function: String,
    },
    /// Revoke one of a function's invoke keys
    Revoke {
        /// The function
        function: String,
        /// The key's id (`key_...`)
        id: String,
    },
}

/// Arguments of `skiff audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Only actions in this namespace
    #[arg(long = "in", value_name = "NS")]
    pub namespace: Option<String>,
    /// Only entries older than this entry id (the `next` of a page)
    #[arg(long)]
    pub before: Option<String>,
    /// Most entries [default: 100]
    #[arg(long)]
    pub limit: Option<u32>,
}

/// Arguments of `skiff namespaces`.
#[derive(Debug, clap::Args)]
pub struct NamespacesArgs {
    #[command(subcommand)]
    pub command: Option<NamespacesCommand>,
}

/// What `skiff namespaces` does (lists them without a subcommand).
#[derive(Debug, clap::Subcommand)]
pub enum NamespacesCommand {
    /// Set a namespace's quotas (a quota left out has no limit)
    Quota {
        /// The namespace
        name: String,
        /// Most functions
        #[arg(long)]
        functions: Option<u64>,
        /// Most calls running at once (on each daemon)
        #[arg(long)]
        concurrent_calls: Option<u64>,
        /// Most memory of its running containers (`2Gi`)
        #[arg(long)]
        memory: Option<ByteSize>,
    },
}

fn tokens_table(tokens: &[TokenView]) -> Table {
    let mut table = Table::new([
        "ID",
        "NAME",
        "SCOPES",
        "NAMESPACES",
        "CREATED",
        "EXPIRES",
        "REVOKED",
    ]);
    for t in tokens {
        table.push(vec![
            t.id.clone(),
            t.name.clone(),
            t.scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(","),
            t.namespaces.join(","),
            output::local_time(&t.created_at),
            t.expires_at
                .as_ref()
                .map_or_else(|| "-".to_string(), output::local_time),
            t.revoked_at
                .as_ref()
                .map_or_else(|| "-".to_string(), output::local_time),
        ]);
    }
    table
}

fn print_created(created: &TokenCreated, json: bool) -> anyhow::Result<()> {
    if json {
        return output::print_json(created);
    }
    output::print_line(&format!(
        "made {} ({}); its secret, shown this once:",
        created.token.id, created.token.name
    ))?;
    output::print_line(&created.secret)
}

fn print_tokens(tokens: &[TokenView], json: bool, none: &str) -> anyhow::Result<()> {
    if json {
        output::print_json(tokens)
    } else if tokens.is_empty() {
        output::print_line(none)
    } else {
        output::print_text(&tokens_table(tokens).render())
    }
}

fn print_revoked(token: &TokenView, json: bool) -> anyhow::Result<()> {
    if json {
        output::print_json(token)
    } else {
        output::print_line(&format!("revoked {} ({})", token.id, token.name))
    }
}

/// The access keys' table in `skiff tokens ls`.
fn access_keys_table(keys: &[AccessKeyView]) -> Table {
    let mut table = Table::new(["ACCESS KEY", "NAMESPACE", "CREATED", "DESCRIPTION"]);
    for key in keys {
        table.push(vec![
            key.id.clone(),
            key.namespace.clone(),
            output::local_time(&key.created_at),
            key.description.clone(),
        ]);
    }
    table
}

/// Whether `id` names an AWS access key rather than an API token.
fn is_access_key(id: &str) -> bool {
    id.starts_with("AKIA")
}

/// Makes an AWS access key (`skiff tokens create --aws`).
async fn create_access_key(
    client: &ApiClient,
    args: CreateTokenArgs,
    namespace: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.namespaces.len() <= 1,
        "an access key acts in one namespace: give one to --namespaces"
    );
    let namespace = args
        .namespaces
        .into_iter()
        .next()
        .or_else(|| namespace.map(str::to_string));
    let created = client
        .create_access_key(&AccessKeyRequest {
            namespace,
            description: args.description.or(args.name),
        })
        .await?;
    if json {
        return output::print_json(&created);
    }
    output::print_text(&format!(
        "aws_access_key_id = {}\naws_secret_access_key = {}\n\
         # namespace {}; the secret is not shown again\n",
        created.key.id, created.secret, created.key.namespace
    ))
}

/// Runs `skiff tokens`.
pub async fn tokens(
    client: &ApiClient,
    args: TokensArgs,
    namespace: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    match args.command {
        TokensCommand::Create(args) if args.aws => {
            create_access_key(client, args, namespace, json).await?;
        }
        TokensCommand::Create(args) => {
            let mut namespaces = args.namespaces;
            if namespaces.is_empty() {
                namespaces.extend(namespace.map(str::to_string));
            }
            let request = TokenRequest {
                name: args.name.unwrap_or_default(),
                scopes: args.scopes,
                namespaces,
                expires_in: args.expires_in,
            };
            print_created(&client.create_token(&request).await?, json)?;
        }
        TokensCommand::Ls => {
            let tokens = client.list_tokens().await?;
            let keys = client.list_access_keys().await?;
            if json {
                output::print_json(&serde_json::json!({"tokens": tokens, "access_keys": keys}))?;
            } else {
                print_tokens(&tokens, false, "no tokens")?;
                if !keys.is_empty() {
                    output::print_line("")?;
                    output::print_text(&access_keys_table(&keys).render())?;
                }
            }
        }
        TokensCommand::Revoke { id } if is_access_key(&id) => {
            client.revoke_access_key(&id).await?;
            if json {
                output::print_json(&serde_json::json!({"revoked": id}))?;
            } else {
                output::print_line(&format!("revoked access key {id}"))?;
            }
        }
        TokensCommand::Revoke { id } => print_revoked(&client.revoke_token(&id).await?, json)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `skiff keys`.
pub async fn keys(client: &ApiClient, args: KeysArgs, json: bool) -> anyhow::Result<ExitCode> {
    match args.command {
        KeysCommand::Create { function, name } => {
            print_created(&client.create_key(&function, name.as_deref()).await?, json)?;
        }
        KeysCommand::Ls { function } => {
            print_tokens(&client.list_keys(&function).await?, json, "no keys")?;
        }
        KeysCommand::Revoke { function, id } => {
            print_revoked(&client.revoke_key(&function, &id).await?, json)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `skiff audit`.
pub async fn audit(client: &ApiClient, args: AuditArgs, json: bool) -> anyhow::Result<ExitCode> {
    let page = client
        .audit(&AuditQuery {
            namespace: args.namespace,
            before: args.before,
            limit: args.limit,
        })
        .await?;
    if json {
        output::print_json(&page)?;
        return Ok(ExitCode::SUCCESS);
    }
    if page.entries.is_empty() {
        output::print_line("no entries")?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new([
        "AT",
        "ACTOR",
        "TOKEN",
        "NAMESPACE",
        "ACTION",
        "TARGET",
        "STATUS",
    ]);
    for e in &page.entries {
        table.push(vec![
            output::local_time(&e.at),
            e.actor.clone(),
            e.token_id.clone().unwrap_or_else(|| "-".to_string()),
            e.namespace.clone(),
            e.action.clone(),
            e.target.clone(),
            e.status.to_string(),
        ]);
    }
    output::print_text(&table.render())?;
    if let Some(next) = page.next {
        output::print_line(&format!("more: skiff audit --before {next}"))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `skiff namespaces`.
pub async fn namespaces(
    client: &ApiClient,
    args: NamespacesArgs,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let list = match args.command {
        None => client.namespaces().await?,
        Some(NamespacesCommand::Quota {
            name,
            functions,
            concurrent_calls,
            memory,
        }) => {
            let quota = Quota {
                max_functions: functions,
                max_concurrent_calls: concurrent_calls,
                max_memory: memory,
            };
            vec![client.set_quota(&name, &quota).await?]
        }
    };
    if json {
        output::print_json(&list)?;
        return Ok(ExitCode::SUCCESS);
    }
    let limit = |n: Option<String>| n.unwrap_or_else(|| "-".to_string());
    let mut table = Table::new(["NAME", "FUNCTIONS", "CALLS", "MEMORY"]);
    for ns in &list {
        table.push(vec![
            ns.name.clone(),
            format!(
                "{}/{}",
                ns.functions,
                limit(ns.quota.max_functions.map(|n| n.to_string()))
            ),
            format!(
                "{}/{}",
                ns.running_calls,
                limit(ns.quota.max_concurrent_calls.map(|n| n.to_string()))
            ),
            format!(
                "{}/{}",
                ns.memory,
                limit(ns.quota.max_memory.map(|m| m.to_string()))
            ),
        ]);
    }
    output::print_text(&table.render())?;
    Ok(ExitCode::SUCCESS)
}
