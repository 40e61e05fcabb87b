//! `skiff logs ID`: the log a call wrote; `skiff logs -f NAME`: a function's output, followed
//! as it is written.

use crate::client::ApiClient;
use crate::output;
use futures::StreamExt;
use skiff_core::api::{LogEvent, LogLine};
use std::process::ExitCode;
use uuid::Uuid;

/// Arguments of `skiff logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// The call whose log to print; with --follow, the function whose output to follow
    #[arg(value_name = "CALL_ID|NAME")]
    pub target: String,
    /// Follow a function's output as it is written: the stderr of every call of an exec
    /// function, the output of every instance of an http or lambda function
    #[arg(short = 'f', long)]
    pub follow: bool,
}

/// Runs `skiff logs`.
pub async fn run(client: &ApiClient, args: LogsArgs, json: bool) -> anyhow::Result<ExitCode> {
    if args.follow {
        return follow(client, &args.target, json).await;
    }
    let Ok(call_id) = Uuid::parse_str(&args.target) else {
        anyhow::bail!(
            "`{}` is not a call id; to follow a function's output, use `skiff logs -f NAME`",
            args.target
        );
    };
    let logs = client.call_logs(call_id).await?;
    if json {
        let mut object = serde_json::Map::new();
        object.insert("call_id".into(), call_id.to_string().into());
        output::insert_bytes(&mut object, "logs", &logs);
        output::print_json(&object)?;
    } else {
        output::print_raw(&logs)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the function's output as it comes, until the daemon ends the stream.
async fn follow(client: &ApiClient, name: &str, json: bool) -> anyhow::Result<ExitCode> {
    let events = client.follow_logs(name).await?;
    let mut events = Box::pin(events);
    while let Some(event) = events.next().await {
        let event = event?;
        if json {
            let text = serde_json::to_string(&event)
                .map_err(|err| anyhow::anyhow!("cannot encode the output as JSON: {err}"))?;
            output::print_line(&text)?;
            continue;
        }
        match event {
            LogEvent::Line(line) => output::print_line(&line_text(&line))?,
            LogEvent::Lagged { skipped } => {
                eprintln!("skiff: {skipped} lines were skipped (this follower read too slowly)")
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One line as `skiff logs -f` prints it: time, where it came from, the line.
pub fn line_text(line: &LogLine) -> String {
    let time = line.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let origin = match (&line.call, &line.instance) {
        (Some(call), _) => format!("call {call}"),
        (None, Some(instance)) => format!("instance {instance} {}", line.stream.as_str()),
        (None, None) => "-".to_string(),
    };
    format!("{time} {origin}: {}", line.line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use skiff_core::api::LogStream;

    #[test]
    fn lines_name_their_call_or_instance() {
        let at = Utc
            .with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
            .single()
            .expect("time");
        let call = Uuid::nil();
        let mut line = LogLine {
            at,
            function: "f".into(),
            call: Some(call),
            instance: None,
            stream: LogStream::Stderr,
            line: "hello".into(),
        };
        assert_eq!(
            line_text(&line),
            format!("2026-01-02T03:04:05.000Z call {call}: hello")
        );
        line.call = None;
        line.instance = Some("abc".into());
        line.stream = LogStream::Stdout;
        assert_eq!(
            line_text(&line),
            "2026-01-02T03:04:05.000Z instance abc stdout: hello"
        );
    }
}
