//! `skiff triggers`: cron schedules and NATS subscriptions that start calls of a function.

use crate::client::ApiClient;
use crate::output::{self, Table};
use skiff_core::{CronSpec, MissedTicks, NatsSpec, TriggerSpec, TriggerView};
use std::process::ExitCode;

/// Arguments of `skiff triggers`.
#[derive(Debug, clap::Args)]
pub struct TriggersArgs {
    /// List when absent
    #[command(subcommand)]
    pub command: Option<TriggersCommand>,
}

/// Subcommands of `skiff triggers`.
#[derive(Debug, clap::Subcommand)]
pub enum TriggersCommand {
    /// Create or replace a trigger: a cron schedule (--cron) or a NATS subscription (--nats-url)
    #[command(visible_alias = "put")]
    Create(Box<CreateArgs>),
    /// Show one trigger and its state
    Get {
        /// The trigger's name
        name: String,
    },
    /// Remove a trigger
    #[command(visible_alias = "delete")]
    Rm {
        /// The trigger's name
        name: String,
    },
}

/// Arguments of `skiff triggers create`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["cron", "nats_url"])))]
pub struct CreateArgs {
    /// The trigger's name
    pub name: String,
    /// The function to call
    #[arg(long, value_name = "NAME")]
    pub function: String,
    /// A cron schedule: five fields, six with seconds first, or @hourly, @daily, ...
    #[arg(long, value_name = "EXPR")]
    pub cron: Option<String>,
    /// The IANA time zone of the schedule (default UTC)
    #[arg(long, value_name = "TZ", requires = "cron")]
    pub timezone: Option<String>,
    /// Ticks missed while the daemon was down: one call for the latest, or none
    #[arg(long, value_name = "POLICY", requires = "cron", value_parser = ["run_once", "skip"])]
    pub missed: Option<String>,
    /// JSON sent as the body of each cron call
    #[arg(long, value_name = "JSON", requires = "cron", conflicts_with = "body")]
    pub payload: Option<String>,
    /// Text sent as the body of each cron call
    #[arg(long, value_name = "TEXT", requires = "cron")]
    pub body: Option<String>,
    /// The NATS server, nats://host:port
    #[arg(long, value_name = "URL", requires_all = ["stream", "subject"])]
    pub nats_url: Option<String>,
    /// The JetStream stream (created if missing)
    #[arg(long, value_name = "STREAM", requires = "nats_url")]
    pub stream: Option<String>,
    /// A subject to take messages from (repeat for several)
    #[arg(long, value_name = "SUBJECT", requires = "nats_url")]
    pub subject: Vec<String>,
    /// Most deliveries of one message (default 5)
    #[arg(long, value_name = "N", requires = "nats_url")]
    pub max_deliver: Option<u32>,
    /// How long NATS waits for an acknowledgement (default: the function's timeout + 30s)
    #[arg(long, value_name = "DURATION", requires = "nats_url")]
    pub ack_wait: Option<skiff_core::HumanDuration>,
    /// Messages handled at once (default 4)
    #[arg(long, value_name = "N", requires = "nats_url")]
    pub concurrency: Option<u32>,
}

impl CreateArgs {
    /// The spec sent to the daemon (which validates it).
    pub fn spec(&self) -> anyhow::Result<TriggerSpec> {
        let cron_only = self.timezone.is_some()
            || self.missed.is_some()
            || self.payload.is_some()
            || self.body.is_some();
        if self.cron.is_none() && cron_only {
            anyhow::bail!("--timezone, --missed, --payload and --body go with --cron");
        }
        let payload = self
            .payload
            .as_deref()
            .map(serde_json::from_str::<serde_json::Value>)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--payload is not JSON: {e}"))?;
        let missed = self
            .missed
            .as_deref()
            .map(str::parse::<MissedTicks>)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--missed: {}", e.message))?;
        Ok(TriggerSpec {
            function: self.function.clone(),
            cron: self.cron.as_ref().map(|schedule| CronSpec {
                schedule: schedule.clone(),
                timezone: self.timezone.clone(),
                missed,
            }),
            nats: self.nats_url.as_ref().map(|url| NatsSpec {
                url: url.clone(),
                stream: self.stream.clone().unwrap_or_default(),
                subjects: self.subject.clone(),
                max_deliver: self.max_deliver,
                ack_wait: self.ack_wait,
                concurrency: self.concurrency,
            }),
            payload,
            body: self.body.clone(),
        })
    }
}

/// What a trigger listens to, on one line.
fn source_cell(t: &TriggerView) -> String {
    if let Some(cron) = &t.cron {
        format!(
            "{} ({})",
            cron.schedule,
            cron.timezone.as_deref().unwrap_or("UTC")
        )
    } else if let Some(nats) = &t.nats {
        format!("{} {} {}", nats.url, nats.stream, nats.subjects.join(","))
    } else {
        String::new()
    }
}

/// The table `skiff triggers` prints.
pub fn triggers_table(triggers: &[TriggerView]) -> Table {
    let mut table = Table::new(["NAME", "KIND", "FUNCTION", "SOURCE", "STATE", "NEXT"]);
    for t in triggers {
        table.push(vec![
            t.name.clone(),
            t.kind.as_str().to_string(),
            t.function.clone(),
            source_cell(t),
            t.state.as_str().to_string(),
            t.next_tick
                .as_ref()
                .map_or_else(|| "-".to_string(), output::local_time),
        ]);
    }
    table
}

/// One trigger as `key: value` lines.
pub fn trigger_details(t: &TriggerView) -> String {
    let mut pairs: Vec<(&str, String)> = vec![
        ("name", t.name.clone()),
        ("kind", t.kind.as_str().to_string()),
        ("function", t.function.clone()),
        ("state", t.state.as_str().to_string()),
    ];
    if let Some(cron) = &t.cron {
        pairs.push(("schedule", cron.schedule.clone()));
        pairs.push((
            "timezone",
            cron.timezone.clone().unwrap_or_else(|| "UTC".into()),
        ));
        pairs.push((
            "missed",
            cron.missed.unwrap_or_default().as_str().to_string(),
        ));
    }
    if let Some(nats) = &t.nats {
        pairs.push(("url", nats.url.clone()));
        pairs.push(("stream", nats.stream.clone()));
        pairs.push(("subjects", nats.subjects.join(", ")));
        pairs.push(("max deliver", nats.max_deliver().to_string()));
    }
    if let Some(payload) = &t.payload {
        pairs.push(("payload", payload.to_string()));
    }
    if let Some(body) = &t.body {
        pairs.push(("body", body.clone()));
    }
    pairs.push(("created", output::local_time(&t.created_at)));
    if let Some(tick) = &t.last_tick {
        pairs.push(("last tick", output::local_time(tick)));
    }
    if let Some(tick) = &t.next_tick {
        pairs.push(("next tick", output::local_time(tick)));
    }
    if let Some(error) = &t.last_error {
        pairs.push(("last error", error.clone()));
    }
    output::key_values(&pairs)
}

/// Runs `skiff triggers` and its subcommands.
pub async fn run(client: &ApiClient, args: TriggersArgs, json: bool) -> anyhow::Result<ExitCode> {
    match args.command {
        None => {
            let triggers = client.list_triggers().await?;
            if json {
                output::print_json(&triggers)?;
            } else if triggers.is_empty() {
                output::print_line("no triggers")?;
            } else {
                output::print_text(&triggers_table(&triggers).render())?;
            }
        }
        Some(TriggersCommand::Create(args)) => {
            let (trigger, created) = client.put_trigger(&args.name, &args.spec()?).await?;
            if json {
                output::print_json(&trigger)?;
            } else {
                let verb = if created { "created" } else { "replaced" };
                output::print_line(&format!(
                    "{verb} trigger {} ({} -> {})",
                    trigger.name,
                    source_cell(&trigger),
                    trigger.function
                ))?;
            }
        }
        Some(TriggersCommand::Get { name }) => {
            let trigger = client.get_trigger(&name).await?;
            if json {
                output::print_json(&trigger)?;
            } else {
                output::print_text(&trigger_details(&trigger))?;
            }
        }
        Some(TriggersCommand::Rm { name }) => {
            client.delete_trigger(&name).await?;
            if json {
                output::print_json(&serde_json::json!({ "name": name, "removed": true }))?;
            } else {
                output::print_line(&format!("removed trigger {name}"))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: TriggersArgs,
    }

    fn create(argv: &[&str]) -> Result<TriggerSpec, String> {
        let mut full = vec!["triggers", "create"];
        full.extend_from_slice(argv);
        let cli = Cli::try_parse_from(full).map_err(|e| e.to_string())?;
        match cli.args.command {
            Some(TriggersCommand::Create(args)) => args.spec().map_err(|e| e.to_string()),
            other => Err(format!("{other:?}")),
        }
    }

    #[test]
    fn create_builds_a_cron_or_a_nats_spec() {
        let spec = create(&[
            "nightly",
            "--function",
            "hello",
            "--cron",
            "0 3 * * *",
            "--timezone",
            "Europe/Paris",
            "--missed",
            "skip",
            "--payload",
            r#"{"name":"Ann"}"#,
        ])
        .expect("cron");
        let cron = spec.cron.expect("cron");
        assert_eq!(cron.schedule, "0 3 * * *");
        assert_eq!(cron.timezone.as_deref(), Some("Europe/Paris"));
        assert_eq!(cron.missed, Some(MissedTicks::Skip));
        assert_eq!(spec.payload, Some(serde_json::json!({"name": "Ann"})));
        assert!(spec.nats.is_none());

        let spec = create(&[
            "votes",
            "--function",
            "worker",
            "--nats-url",
            "nats://127.0.0.1:4222",
            "--stream",
            "VOTES",
            "--subject",
            "votes.>",
            "--max-deliver",
            "3",
        ])
        .expect("nats");
        let nats = spec.nats.expect("nats");
        assert_eq!(nats.subjects, vec!["votes.>".to_string()]);
        assert_eq!(nats.max_deliver, Some(3));
        assert!(spec.cron.is_none());
    }

    #[test]
    fn create_refuses_mixed_or_missing_sources() {
        assert!(create(&["t", "--function", "f"]).is_err(), "no source");
        assert!(create(&[
            "t",
            "--function",
            "f",
            "--cron",
            "* * * * *",
            "--nats-url",
            "nats://h:1",
            "--stream",
            "S",
            "--subject",
            "a"
        ])
        .is_err());
        assert!(
            create(&["t", "--function", "f", "--nats-url", "nats://h:1"]).is_err(),
            "no stream"
        );
        assert!(create(&[
            "t",
            "--function",
            "f",
            "--cron",
            "* * * * *",
            "--payload",
            "{nope"
        ])
        .is_err());
        assert!(create(&[
            "t",
            "--function",
            "f",
            "--cron",
            "* * * * *",
            "--missed",
            "all"
        ])
        .is_err());
        assert!(create(&[
            "t",
            "--function",
            "f",
            "--timezone",
            "UTC",
            "--nats-url",
            "nats://h:1",
            "--stream",
            "S",
            "--subject",
            "a"
        ])
        .is_err());
    }
}
