//! `skiff`: the daemon (`skiff serve`) and the command-line client, in one binary.
//!
//! This file only parses arguments and dispatches: the daemon is assembled in [`serve`]
//! from the library crates, and the client commands in [`commands`] talk to a daemon
//! through its public HTTP API.

mod access;
mod cli_config;
mod client;
mod commands;
mod heap;
mod output;
mod security;
mod serve;

use clap::{CommandFactory, Parser, Subcommand};
use std::process::ExitCode;

/// skiff runs functions packaged as container images on demand, on a Docker engine.
#[derive(Debug, Parser)]
#[command(name = "skiff", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    global: commands::GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon: management API, public routes, scheduler and store.
    Serve(Box<serve::ServeArgs>),
    /// On a Swarm node: write skiff-init into DIR (a volume exec tasks mount), then wait
    /// until stopped. skiff runs it as a global service; not for people.
    #[command(hide = true)]
    InitCarrier {
        /// Where to write it.
        dir: std::path::PathBuf,
    },
    #[command(flatten)]
    Client(commands::ClientCommand),
}

fn main() -> ExitCode {
    skiff_invoker::tls::install_default_provider();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(err),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(*args).await,
            Command::InitCarrier { dir } => serve::init_carrier(&dir).await,
            Command::Client(command) => commands::run(command, &cli.global, Cli::command).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Help and version go out as clap writes them; a usage error is one line and exit code 2.
fn usage_error(err: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = err.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            ExitCode::from(2)
        }
        _ => {
            let text = err.to_string();
            let line = text.lines().next().unwrap_or("error: invalid arguments");
            eprintln!("{line}");
            ExitCode::from(2)
        }
    }
}
