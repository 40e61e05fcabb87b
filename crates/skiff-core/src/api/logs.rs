//! Bodies of the log routes: one line of a function's output, the events of a followed
//! log (`GET /v1/functions/{name}/logs/follow`), and the instance logs
//! (`GET /v1/functions/{name}/instances/{id}/logs`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Which output stream of a container a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    /// Standard output (of an instance; an `exec` function's stdout is its response).
    Stdout,
    /// Standard error.
    Stderr,
}

impl LogStream {
    /// The stream as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }

    /// The stream named `s`, if any.
    pub fn parse(s: &str) -> Option<LogStream> {
        match s {
            "stdout" => Some(LogStream::Stdout),
            "stderr" => Some(LogStream::Stderr),
            _ => None,
        }
    }
}

/// One line a function wrote, tagged with where it came from: the call of an `exec`
/// function, or the instance of an `http` or `lambda` function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LogLine {
    /// When skiff read the line.
    pub at: DateTime<Utc>,
    /// The function.
    pub function: String,
    /// The call that wrote it (`exec` functions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<Uuid>,
    /// The instance that wrote it (`http` and `lambda` functions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The stream it was written to.
    pub stream: LogStream,
    /// The line, without its end of line (invalid UTF-8 replaced; a very long line is cut
    /// in pieces).
    pub line: String,
}

impl LogLine {
    /// `call <id>` or `instance <id>`: where the line came from.
    pub fn origin(&self) -> String {
        match (&self.call, &self.instance) {
            (Some(call), _) => format!("call {call}"),
            (None, Some(instance)) => format!("instance {instance}"),
            (None, None) => "-".to_string(),
        }
    }
}

/// One event of a followed log (`GET /v1/functions/{name}/logs/follow`): a line, or word
/// that the follower fell behind and lines were skipped. As NDJSON, one JSON object a line;
/// as server-sent events, the event's name is its `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LogEvent {
    /// A line of output.
    Line(LogLine),
    /// The follower read too slowly: this many lines were skipped (calls never wait for
    /// followers).
    Lagged {
        /// Lines skipped.
        skipped: u64,
    },
}

impl LogEvent {
    /// The event's name: `line` or `lagged`.
    pub fn name(&self) -> &'static str {
        match self {
            LogEvent::Line(_) => "line",
            LogEvent::Lagged { .. } => "lagged",
        }
    }
}

/// Filters of `GET /v1/functions/{name}/instances/{id}/logs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InstanceLogQuery {
    /// Only lines read at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Only lines read before this time (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// Most lines to return, the oldest first from `since` (default 1000, at most 10000).
    pub limit: Option<u32>,
}

/// Lines an instance wrote, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InstanceLogs {
    /// The lines.
    pub lines: Vec<LogLine>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_tagged_by_type() {
        let line = LogEvent::Line(LogLine {
            at: DateTime::from_timestamp(0, 0).unwrap_or_default(),
            function: "f".into(),
            call: None,
            instance: Some("abc".into()),
            stream: LogStream::Stdout,
            line: "hello".into(),
        });
        let json = serde_json::to_value(&line).expect("json");
        assert_eq!(json["type"], "line");
        assert_eq!(json["instance"], "abc");
        assert_eq!(json["line"], "hello");
        assert!(json.get("call").is_none());
        assert_eq!(
            serde_json::from_value::<LogEvent>(json).expect("back"),
            line
        );
        let lagged = serde_json::to_value(LogEvent::Lagged { skipped: 3 }).expect("json");
        assert_eq!(lagged, serde_json::json!({"type": "lagged", "skipped": 3}));
        assert_eq!(LogEvent::Lagged { skipped: 1 }.name(), "lagged");
    }
}
