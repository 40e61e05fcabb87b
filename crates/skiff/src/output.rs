//! What the client commands print: aligned tables, `key: value` blocks, times and
//! durations, JSON, and raw bytes. Writes to stdout ignore a closed pipe
//! (`skiff calls | head -3` is not an error).

use chrono::{DateTime, Local, TimeZone, Utc};
use serde::Serialize;
use std::fmt::Display;
use std::io::{self, Write};

/// A table of left-aligned columns with a header row, separated by three spaces.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these column headers.
    pub fn new<I, S>(headers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Table {
            headers: headers.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are blank, extra cells are dropped.
    pub fn push(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, one line per row, each ending in a newline, with no trailing
    /// spaces.
    pub fn render(&self) -> String {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, width) in widths.iter().enumerate().take(columns) {
                let cell = row.get(i).map(String::as_str).unwrap_or("");
                if i > 0 {
                    line.push_str("   ");
                }
                line.push_str(cell);
                let pad = width.saturating_sub(cell.chars().count());
                line.extend(std::iter::repeat_n(' ', pad));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `key: value` lines with the values aligned. A value of several lines continues under
/// the first one.
pub fn key_values(pairs: &[(&str, String)]) -> String {
    let width = pairs
        .iter()
        .map(|(k, _)| k.chars().count() + 1)
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (key, value) in pairs {
        let label = format!("{key}:");
        let mut lines = value.lines();
        let first = lines.next().unwrap_or("");
        out.push_str(format!("{label:<width$}  {first}").trim_end());
        out.push('\n');
        for line in lines {
            out.push_str(format!("{:width$}  {line}", "").trim_end());
            out.push('\n');
        }
    }
    out
}

/// A time as `2026-11-22 11:04:05`, in the time zone it carries.
pub fn format_time<Tz: TimeZone>(time: &DateTime<Tz>) -> String
where
    Tz::Offset: Display,
{
    time.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A time as `2026-11-22 11:04:05` in the local time zone.
pub fn local_time(time: &DateTime<Utc>) -> String {
    format_time(&time.with_timezone(&Local))
}

/// A duration given in milliseconds, short: `31ms`, `1.2s`, `12.5s`, `2m05s`, `1h02m`.
pub fn format_duration_ms(ms: u64) -> String {
    if ms < 1_000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        // One decimal, rounded down so that 59_999ms does not read as 60.0s.
        format!("{}.{}s", ms / 1_000, (ms % 1_000) / 100)
    } else if ms < 3_600_000 {
        let secs = ms / 1_000;
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        let mins = ms / 60_000;
        format!("{}h{:02}m", mins / 60, mins % 60)
    }
}

/// A duration given in seconds, short: `0s`, `42s`, `2m05s`, `1h02m`.
pub fn format_duration_secs(secs: u64) -> String {
    if secs < 60 {
        format!("{secs}s")
    } else {
        format_duration_ms(secs.saturating_mul(1_000))
    }
}

/// An id (a container's, say) shortened to its first 12 characters.
pub fn short_id(id: &str) -> String {
    id.chars().take(12).collect()
}

/// The bounds of a function's instances as `min-max` (`0-10`), when both are known.
pub fn instance_range(min: Option<u32>, max: Option<u32>) -> Option<String> {
    Some(format!("{}-{}", min?, max?))
}

/// An image digest shortened to its algorithm and 12 hex digits (`sha256:0deb1fb9310d`).
pub fn short_digest(digest: &str) -> String {
    match digest.split_once(':') {
        Some((algorithm, hex)) => {
            format!("{algorithm}:{}", hex.chars().take(12).collect::<String>())
        }
        None => digest.chars().take(12).collect(),
    }
}

/// `text` on one line: its lines trimmed, blank ones dropped, joined with ` | `.
pub fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Writes `bytes` to stdout as they are, and flushes.
pub fn print_raw(bytes: &[u8]) -> anyhow::Result<()> {
    let mut stdout = io::stdout().lock();
    let written = stdout.write_all(bytes).and_then(|()| stdout.flush());
    match written {
        Err(err) if err.kind() != io::ErrorKind::BrokenPipe => {
            Err(anyhow::anyhow!("cannot write to stdout: {err}"))
        }
        _ => Ok(()),
    }
}

/// Writes `text` to stdout as it is.
pub fn print_text(text: &str) -> anyhow::Result<()> {
    print_raw(text.as_bytes())
}

/// Writes `line` and a newline to stdout.
pub fn print_line(line: &str) -> anyhow::Result<()> {
    print_text(&format!("{line}\n"))
}

/// Writes `value` as pretty JSON and a newline to stdout.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|err| anyhow::anyhow!("cannot encode the output as JSON: {err}"))?;
    print_line(&text)
}

/// Inserts `bytes` into `object` under `key` if they are UTF-8 text, else base64-encoded
/// under `{key}_base64`.
pub fn insert_bytes(
    object: &mut serde_json::Map<String, serde_json::Value>,
    key: &str,
    bytes: &[u8],
) {
    use base64::Engine as _;
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            object.insert(key.to_string(), text.into());
        }
        Err(_) => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
            object.insert(format!("{key}_base64"), encoded.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_without_trailing_spaces() {
        let mut table = Table::new(["NAME", "IMAGE", "VERSION"]);
        table.push(vec![
            "hello".into(),
            "skiff/hello:latest".into(),
            "1".into(),
        ]);
        table.push(vec!["a-much-longer-name".into(), "x".into(), "12".into()]);
        table.push(vec!["short".into()]);
        assert_eq!(
            table.render(),
            "NAME                 IMAGE                VERSION\n\
             hello                skiff/hello:latest   1\n\
             a-much-longer-name   x                    12\n\
             short\n"
        );
    }

    #[test]
    fn tables_count_characters_not_bytes() {
        let mut table = Table::new(["A", "B"]);
        table.push(vec!["héé".into(), "x".into()]);
        assert_eq!(table.render(), "A     B\nhéé   x\n");
    }

    #[test]
    fn key_values_align_and_indent_continuations() {
        let text = key_values(&[
            ("id", "x".into()),
            ("error", "boom\nat line 3".into()),
            ("cold", String::new()),
        ]);
        assert_eq!(text, "id:     x\nerror:  boom\n        at line 3\ncold:\n");
    }

    #[test]
    fn times_and_durations_are_short() {
        let time = DateTime::parse_from_rfc3339("2026-11-22T11:04:05.123Z").expect("time");
        assert_eq!(
            format_time(&time.with_timezone(&Utc)),
            "2026-11-22 11:04:05"
        );
        assert_eq!(format_duration_ms(0), "0ms");
        assert_eq!(format_duration_ms(31), "31ms");
        assert_eq!(format_duration_ms(1_234), "1.2s");
        assert_eq!(format_duration_ms(59_999), "59.9s");
        assert_eq!(format_duration_ms(125_000), "2m05s");
        assert_eq!(format_duration_ms(3_720_000), "1h02m");
        assert_eq!(format_duration_secs(0), "0s");
        assert_eq!(format_duration_secs(59), "59s");
        assert_eq!(format_duration_secs(125), "2m05s");
        assert_eq!(format_duration_secs(3_720), "1h02m");
    }

    #[test]
    fn digests_and_lines_shorten() {
        assert_eq!(
            short_digest("sha256:0deb1fb9310d4b1e9a"),
            "sha256:0deb1fb9310d"
        );
        assert_eq!(short_digest("abc"), "abc");
        assert_eq!(short_id("4f9a0c1d2e3b4a5c6d7e8f"), "4f9a0c1d2e3b");
        assert_eq!(short_id("abc"), "abc");
        assert_eq!(instance_range(Some(0), Some(10)).as_deref(), Some("0-10"));
        assert_eq!(instance_range(None, Some(10)), None);
        assert_eq!(one_line("  boom\n\n  at line 3\n"), "boom | at line 3");
    }

    #[test]
    fn bytes_go_in_as_text_or_base64() {
        let mut object = serde_json::Map::new();
        insert_bytes(&mut object, "output", b"hi");
        insert_bytes(&mut object, "logs", &[0xff, 0x00]);
        assert_eq!(object["output"], "hi");
        assert_eq!(object["logs_base64"], "/wA=");
    }
}
