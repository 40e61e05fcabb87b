//! The client commands of `skiff`: each one talks to a daemon only through its public HTTP
//! API ([`crate::client::ApiClient`]).
//!
//! Errors returned from [`run`] have a one-line message; outcomes that need another exit
//! code (a failed invocation) are printed here and returned as an [`ExitCode`].

mod access;
mod calls;
mod cluster;
mod completions;
mod deploy;
mod functions;
mod images;
mod instances;
mod invoke;
mod logs;
mod manifest;
mod secrets;
mod triggers;

use crate::client::{Access, ApiClient};
use std::process::ExitCode;

/// Where the daemon listens unless told otherwise.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// Options every command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// URL of the skiff daemon's API [default: the CLI config's, else http://127.0.0.1:8080]
    #[arg(long, global = true, env = "SKIFF_URL", value_name = "URL")]
    pub url: Option<String>,
    /// API token [default: the CLI config's, ~/.config/skiff/config.toml, for that URL]
    #[arg(
        long,
        global = true,
        env = "SKIFF_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Namespace of the functions, triggers and calls named [default: `default`, or the
    /// token's own namespace when it has one only]
    #[arg(
        short = 'n',
        long,
        global = true,
        env = "SKIFF_NAMESPACE",
        value_name = "NS"
    )]
    pub namespace: Option<String>,
    /// Print machine-readable JSON instead of text
    #[arg(long, global = true)]
    pub json: bool,
    /// A PEM file of CA certificates to trust for an https:// daemon, besides the system's
    #[arg(long, global = true, env = "SKIFF_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<std::path::PathBuf>,
}

/// The client commands.
#[derive(Debug, clap::Subcommand)]
pub enum ClientCommand {
    /// Deploy a function: create it, or update it to a new version
    Deploy(Box<deploy::DeployArgs>),
    /// Call a function and print its response
    Invoke(invoke::InvokeArgs),
    /// Have the daemon pull an image from its registry, with progress
    Pull(images::PullArgs),
    /// Have the daemon push an image of its engine to a registry, with progress
    Push(images::PushArgs),
    /// List the deployed functions
    #[command(visible_alias = "list")]
    Ls,
    /// Remove a function
    #[command(visible_alias = "delete")]
    Rm(functions::RmArgs),
    /// List the running instances of a function (http contract)
    Instances(instances::InstancesArgs),
    /// Change how many instances of a function may run (http contract)
    Scale(instances::ScaleArgs),
    /// List recent calls, newest first, or show one with `calls get ID`
    Calls(calls::CallsArgs),
    /// Print the log (stderr) a call wrote, or follow a function's output with -f NAME
    Logs(logs::LogsArgs),
    /// List the triggers (cron schedules, NATS subscriptions), or manage one
    Triggers(triggers::TriggersArgs),
    /// List the daemons sharing the store, their heartbeats and running calls
    Cluster,
    /// Make, list and revoke API tokens, and AWS access keys for the Lambda API (--aws)
    Tokens(access::TokensArgs),
    /// Make, list and revoke the invoke keys of a function
    Keys(access::KeysArgs),
    /// Show the audit log: who did what, when, with which token, and the result
    Audit(access::AuditArgs),
    /// List the namespaces, or set one's quotas
    Namespaces(access::NamespacesArgs),
    /// Rotate the key that encrypts secrets at rest, or print a new one
    Secrets(secrets::SecretsArgs),
    /// Print shell completions for skiff
    Completions {
        /// The shell to complete for
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Runs a client command against the daemon at `global.url`. `cli` builds the whole
/// command-line definition (for completions).
pub async fn run(
    command: ClientCommand,
    global: &GlobalArgs,
    cli: impl FnOnce() -> clap::Command,
) -> anyhow::Result<ExitCode> {
    if let ClientCommand::Completions { shell } = command {
        completions::run(shell, cli())?;
        return Ok(ExitCode::SUCCESS);
    }
    if let ClientCommand::Secrets(secrets::SecretsArgs {
        command: secrets::SecretsCommand::NewKey,
    }) = command
    {
        return secrets::new_key(global.json);
    }
    let config = crate::cli_config::load()?;
    let url = global
        .url
        .clone()
        .or_else(|| config.url.clone())
        .unwrap_or_else(|| DEFAULT_URL.to_string());
    let token = crate::cli_config::token_for(&url, global.token.as_deref(), &config);
    let client = ApiClient::connect(
        &url,
        &Access {
            ca: global.ca_cert.as_deref(),
            token: token.as_deref(),
            namespace: global.namespace.as_deref(),
        },
    )?;
    match command {
        ClientCommand::Deploy(args) => deploy::run(&client, *args, global.json).await,
        ClientCommand::Invoke(args) => invoke::run(&client, args, global.json).await,
        ClientCommand::Pull(args) => images::pull(&client, args, global.json).await,
        ClientCommand::Push(args) => images::push(&client, args, global.json).await,
        ClientCommand::Ls => functions::list(&client, global.json).await,
        ClientCommand::Rm(args) => functions::remove(&client, args, global.json).await,
        ClientCommand::Instances(args) => instances::list(&client, args, global.json).await,
        ClientCommand::Cluster => cluster::run(&client, global.json).await,
        ClientCommand::Secrets(args) => match args.command {
            secrets::SecretsCommand::RotateKey => secrets::rotate(&client, global.json).await,
            secrets::SecretsCommand::NewKey => secrets::new_key(global.json),
        },
        ClientCommand::Scale(args) => instances::scale(&client, args, global.json).await,
        ClientCommand::Calls(args) => calls::run(&client, args, global.json).await,
        ClientCommand::Logs(args) => logs::run(&client, args, global.json).await,
        ClientCommand::Triggers(args) => triggers::run(&client, args, global.json).await,
        ClientCommand::Tokens(args) => {
            access::tokens(&client, args, global.namespace.as_deref(), global.json).await
        }
        ClientCommand::Keys(args) => access::keys(&client, args, global.json).await,
        ClientCommand::Audit(args) => access::audit(&client, args, global.json).await,
        ClientCommand::Namespaces(args) => access::namespaces(&client, args, global.json).await,
        ClientCommand::Completions { .. } => Ok(ExitCode::SUCCESS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    /// The command line as main.rs builds it (minus `serve`).
    #[derive(Debug, Parser)]
    #[command(name = "skiff")]
    pub(crate) struct TestCli {
        #[command(flatten)]
        pub global: GlobalArgs,
        #[command(subcommand)]
        pub command: ClientCommand,
    }

    #[test]
    fn the_command_line_is_consistent() {
        TestCli::command().debug_assert();
    }

    #[test]
    fn global_options_go_anywhere() {
        let cli = TestCli::try_parse_from(["skiff", "ls", "--json", "--url", "http://h:1"])
            .expect("parses");
        assert!(cli.global.json);
        assert_eq!(cli.global.url.as_deref(), Some("http://h:1"));
        assert!(matches!(cli.command, ClientCommand::Ls));
        let cli = TestCli::try_parse_from(["skiff", "list"]).expect("alias");
        assert!(matches!(cli.command, ClientCommand::Ls));
        let cli = TestCli::try_parse_from(["skiff", "delete", "x"]).expect("alias");
        assert!(matches!(cli.command, ClientCommand::Rm(_)));
        let cli = TestCli::try_parse_from(["skiff", "scale", "web", "--max", "5", "--json"])
            .expect("scale");
        assert!(cli.global.json);
        assert!(matches!(
            cli.command,
            ClientCommand::Scale(instances::ScaleArgs {
                min: None,
                max: Some(5),
                ..
            })
        ));
        let cli = TestCli::try_parse_from(["skiff", "instances", "web"]).expect("instances");
        assert!(matches!(cli.command, ClientCommand::Instances(_)));
    }

    #[test]
    fn completions_cover_the_client_commands() {
        let mut out = Vec::new();
        completions::write(clap_complete::Shell::Bash, TestCli::command(), &mut out)
            .expect("writes");
        let text = String::from_utf8(out).expect("utf-8");
        for word in [
            "deploy",
            "invoke",
            "calls",
            "logs",
            "instances",
            "scale",
            "--url",
        ] {
            assert!(text.contains(word), "{word} missing");
        }
    }
}
