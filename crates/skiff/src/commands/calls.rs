//! `skiff calls` (list, or `calls get ID`): the record of calls.

use crate::client::ApiClient;
use crate::output::{self, Table};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use skiff_core::api::{CallPage, CallQuery};
use skiff_core::{BodyEncoding, CallOutput, CallRecord, CallStatus, Trigger};
use std::process::ExitCode;
use uuid::Uuid;

/// Names of the triggers, as the API writes them.
const TRIGGERS: [&str; 6] = ["http", "api", "async", "cron", "queue", "lambda_api"];

/// Arguments of `skiff calls`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CallsArgs {
    /// Show one call instead of a list
    #[command(subcommand)]
    pub command: Option<CallsCommand>,
    /// Filters of the list.
    #[command(flatten)]
    pub filter: CallsFilter,
}

/// Subcommands of `skiff calls`.
#[derive(Debug, clap::Subcommand)]
pub enum CallsCommand {
    /// Show one call
    Get {
        /// The call's id
        id: Uuid,
    },
    /// Put a dead async call back in the queue for a new round of attempts
    Redrive {
        /// The call's id
        id: Uuid,
    },
}

/// Filters of `skiff calls`.
#[derive(Debug, clap::Args)]
pub struct CallsFilter {
    /// Only calls of this function
    #[arg(long, value_name = "NAME")]
    pub function: Option<String>,
    /// Only calls in this status
    #[arg(long, value_name = "STATUS", value_parser = status_parser())]
    pub status: Option<CallStatus>,
    /// Only calls started by this trigger
    #[arg(long, value_name = "TRIGGER", value_parser = trigger_parser())]
    pub trigger: Option<Trigger>,
    /// Show at most this many calls
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
    /// Only calls older than this one (to page on)
    #[arg(long, value_name = "CALL_ID")]
    pub before: Option<Uuid>,
}

fn status_parser() -> impl TypedValueParser<Value = CallStatus> {
    PossibleValuesParser::new(CallStatus::ALL.map(CallStatus::as_str))
        .try_map(|s| s.parse::<CallStatus>())
}

fn trigger_parser() -> impl TypedValueParser<Value = Trigger> {
    PossibleValuesParser::new(TRIGGERS).try_map(|s| s.parse::<Trigger>())
}

impl CallsFilter {
    fn query(&self) -> CallQuery {
        CallQuery {
            function: self.function.clone(),
            status: self.status,
            trigger: self.trigger,
            before: self.before,
            limit: Some(self.limit),
            since: None,
        }
    }
}

/// The table `skiff calls` prints. An ERROR column is added when a call failed.
pub fn calls_table(calls: &[CallRecord]) -> Table {
    let with_errors = calls.iter().any(|c| c.error_type.is_some());
    let mut headers = vec![
        "ID", "FUNCTION", "STATUS", "TRIGGER", "COLD", "DURATION", "RECEIVED",
    ];
    if with_errors {
        headers.push("ERROR");
    }
    let mut table = Table::new(headers);
    for call in calls {
        let mut row = vec![
            call.id.to_string(),
            call.function.clone(),
            call.status.to_string(),
            call.trigger.as_str().to_string(),
            yes_no(call.cold),
            call.duration_ms
                .map_or_else(|| "-".to_string(), output::format_duration_ms),
            output::local_time(&call.received_at),
        ];
        if with_errors {
            row.push(call.error_type.map_or_else(String::new, |e| e.to_string()));
        }
        table.push(row);
    }
    table
}

fn yes_no(flag: Option<bool>) -> String {
    match flag {
        Some(true) => "yes",
        Some(false) => "no",
        None => "-",
    }
    .to_string()
}

/// One call as `key: value` lines.
pub fn call_details(call: &CallRecord) -> String {
    let mut pairs: Vec<(&str, String)> = vec![
        ("id", call.id.to_string()),
        ("function", call.function.clone()),
        ("status", call.status.to_string()),
        ("trigger", call.trigger.as_str().to_string()),
        ("attempt", call.attempt.to_string()),
        ("received", output::local_time(&call.received_at)),
    ];
    if let Some(caller) = &call.caller {
        pairs.push(("caller", caller.clone()));
    }
    if let Some(parent) = &call.parent {
        pairs.push(("parent", parent.to_string()));
    }
    if call.depth > 0 {
        pairs.push(("depth", call.depth.to_string()));
    }
    if let Some(started) = &call.started_at {
        pairs.push(("started", output::local_time(started)));
    }
    if let Some(finished) = &call.finished_at {
        pairs.push(("finished", output::local_time(finished)));
    }
    if let Some(ms) = call.duration_ms {
        pairs.push(("duration", output::format_duration_ms(ms)));
    }
    if let Some(ms) = call.wait_ms.filter(|ms| *ms > 0) {
        pairs.push(("waited", output::format_duration_ms(ms)));
    }
    if let Some(ms) = call.start_ms.filter(|ms| *ms > 0) {
        pairs.push(("cold start", output::format_duration_ms(ms)));
    }
    if call.cold.is_some() {
        pairs.push(("cold", yes_no(call.cold)));
    }
    if let Some(instance) = &call.instance {
        pairs.push(("instance", instance.clone()));
    }
    if let Some(code) = call.exit_code {
        pairs.push(("exit code", code.to_string()));
    }
    pairs.push(("request", format!("{} bytes", call.request_size)));
    if let Some(size) = call.response_size {
        pairs.push(("response", format!("{size} bytes")));
    }
    if let Some(kind) = call.error_type {
        pairs.push(("error", kind.to_string()));
    }
    if let Some(message) = &call.error_message {
        pairs.push(("message", message.trim_end().to_string()));
    }
    output::key_values(&pairs)
}

/// An async call's result: a `result:` line, then its body when it is text.
pub fn result_details(result: &CallOutput) -> String {
    let mut line = format!("result: {}", result.status_code);
    if let Some(content_type) = &result.content_type {
        line.push_str(&format!(" {content_type}"));
    }
    line.push_str(&format!(", {} bytes", result.size));
    if result.truncated {
        line.push_str(&format!(" (first {} kept)", result.bytes().len()));
    }
    line.push('\n');
    if result.encoding == BodyEncoding::Utf8 && !result.body.is_empty() {
        line.push('\n');
        line.push_str(&result.body);
        if !result.body.ends_with('\n') {
            line.push('\n');
        }
    }
    line
}

/// Runs `skiff calls` and `skiff calls get`.
pub async fn run(client: &ApiClient, args: CallsArgs, json: bool) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(CallsCommand::Redrive { id }) => {
            let call = client.redrive(id).await?;
            if json {
                output::print_json(&call)?;
            } else {
                output::print_text(&format!("redriven {id}: {}\n", call.status))?;
            }
        }
        Some(CallsCommand::Get { id }) => {
            let call = client.get_call(id).await?;
            if json {
                output::print_json(&call)?;
            } else {
                output::print_text(&call_details(&call.record))?;
                if let Some(result) = &call.result {
                    output::print_text(&result_details(result))?;
                }
            }
        }
        None => {
            let page: CallPage = client.list_calls(&args.filter.query()).await?;
            if json {
                output::print_json(&page)?;
            } else if page.calls.is_empty() {
                output::print_line("no calls")?;
            } else {
                output::print_text(&calls_table(&page.calls).render())?;
                if let Some(next) = page.next {
                    eprintln!("more: skiff calls --before {next}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use clap::Parser;
    use skiff_core::CallErrorType;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: CallsArgs,
    }

    fn record(n: u128, error: Option<CallErrorType>) -> CallRecord {
        let time = Utc
            .with_ymd_and_hms(2026, 11, 22, 11, 4, 5)
            .single()
            .expect("time");
        CallRecord {
            id: Uuid::from_u128(n),
            function: "hello".into(),
            trigger: Trigger::Api,
            status: if error.is_some() {
                CallStatus::Failed
            } else {
                CallStatus::Succeeded
            },
            attempt: 1,
            received_at: time,
            started_at: Some(time),
            finished_at: Some(time),
            cold: Some(n == 1),
            instance: None,
            exit_code: Some(if error.is_some() { 1 } else { 0 }),
            error_type: error,
            error_message: error
                .map(|_| "the function exited with status 1: boom\nat line 3".into()),
            request_size: 5,
            response_size: Some(12),
            duration_ms: Some(1_234),
            wait_ms: None,
            start_ms: None,
            caller: None,
            parent: None,
            depth: 0,
        }
    }

    #[test]
    fn every_trigger_name_parses() {
        for name in TRIGGERS {
            assert_eq!(name.parse::<Trigger>().map(Trigger::as_str), Ok(name));
        }
    }

    #[test]
    fn filters_parse() {
        let cli = Cli::try_parse_from([
            "calls",
            "--function",
            "hello",
            "--status",
            "timed_out",
            "--trigger",
            "api",
        ])
        .expect("parses");
        let query = cli.args.filter.query();
        assert_eq!(query.function.as_deref(), Some("hello"));
        assert_eq!(query.status, Some(CallStatus::TimedOut));
        assert_eq!(query.trigger, Some(Trigger::Api));
        assert_eq!(query.limit, Some(20));
        assert!(Cli::try_parse_from(["calls", "--status", "sleeping"]).is_err());
        assert!(Cli::try_parse_from(["calls", "--limit", "0"]).is_err());
        let cli = Cli::try_parse_from(["calls", "get", "00000000-0000-0000-0000-000000000001"])
            .expect("get");
        assert!(matches!(cli.args.command, Some(CallsCommand::Get { .. })));
        assert!(Cli::try_parse_from(["calls", "get", "not-an-id"]).is_err());
    }

    #[test]
    fn calls_list_as_a_table_with_errors_when_any() {
        let text = calls_table(&[record(1, None)]).render();
        assert!(!text.contains("ERROR"), "{text}");
        let text = calls_table(&[
            record(2, Some(CallErrorType::FunctionError)),
            record(1, None),
        ])
        .render();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("ID"), "{text}");
        assert!(lines[0].ends_with("ERROR"), "{text}");
        assert!(
            lines[1].starts_with("00000000-0000-0000-0000-000000000002   hello      failed      api       no     1.2s       "),
            "{text}"
        );
        assert!(lines[1].ends_with("function_error"), "{text}");
        assert!(lines[2].contains("succeeded   api       yes"), "{text}");
    }

    #[test]
    fn one_call_shows_as_key_values() {
        let text = call_details(&record(2, Some(CallErrorType::FunctionError)));
        assert!(
            text.starts_with("id:         00000000-0000-0000-0000-000000000002\n"),
            "{text}"
        );
        assert!(text.contains("\nerror:      function_error\n"), "{text}");
        assert!(
            text.ends_with(
                "message:    the function exited with status 1: boom\n            at line 3\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_result_shows_its_status_size_and_text() {
        let text = result_details(&CallOutput::new(
            200,
            Some("text/plain".into()),
            b"hello",
            5,
        ));
        assert_eq!(text, "result: 200 text/plain, 5 bytes\n\nhello\n");
        let cut = result_details(&CallOutput::new(200, None, b"0123", 10));
        assert!(
            cut.starts_with("result: 200, 10 bytes (first 4 kept)\n"),
            "{cut}"
        );
        let binary = result_details(&CallOutput::new(200, None, &[0xff, 0xfe], 2));
        assert_eq!(
            binary, "result: 200, 2 bytes\n",
            "binary bodies are not printed"
        );
    }
}
