//! Numbers and times as the pages show them.

use chrono::{DateTime, Utc};

/// Milliseconds, readably: `840 ms`, `1.25 s`, `2 min 5 s`.
pub(crate) fn ms(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms} ms"),
        1000..=59_999 => format!("{:.2} s", ms as f64 / 1000.0),
        _ => format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

/// An optional number of milliseconds; `-` when absent.
pub(crate) fn ms_opt(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_string(), ms)
}

/// A rate, with one decimal under 10.
pub(crate) fn rate(per_minute: f64) -> String {
    if per_minute < 10.0 {
        format!("{per_minute:.1}")
    } else {
        format!("{per_minute:.0}")
    }
}

/// A time in UTC, to the second.
pub(crate) fn time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A time of day, for chart axes.
pub(crate) fn clock(t: &DateTime<Utc>) -> String {
    t.format("%H:%M").to_string()
}

/// The last 8 characters of an id, for tables (the full id is in the link): a call id
/// (UUIDv7) starts with its time, the same for calls a moment apart, and ends at random.
pub(crate) fn short(id: &str) -> &str {
    id.get(id.len().saturating_sub(8)..).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(ms(840), "840 ms");
        assert_eq!(ms(1250), "1.25 s");
        assert_eq!(ms(125_000), "2 min 5 s");
        assert_eq!(ms_opt(None), "-");
        assert_eq!(rate(2.0), "2.0");
        assert_eq!(rate(120.4), "120");
        assert_eq!(short("0123456789"), "23456789");
    }
}
