//! Figures of calls over time, from their records: calls and errors, latency percentiles,
//! cold starts and their duration, queue wait. Pure: the store reads the samples, this
//! module counts them.

use crate::api::{FunctionStats, StatsBucket, StatsTotals};
use crate::call::CallStatus;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::time::Duration;

/// The shortest window stats are asked for.
pub const MIN_WINDOW: Duration = Duration::from_secs(60);
/// The longest.
pub const MAX_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);
/// The window when none is given.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(3600);
/// The most buckets a window is cut into.
pub const MAX_BUCKETS: u64 = 60;

/// Bucket lengths, in seconds, shortest first: a window gets the shortest that cuts it in
/// at most [`MAX_BUCKETS`].
const BUCKET_SECONDS: [u64; 12] = [
    5,
    10,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    3 * 3600,
    6 * 3600,
];

/// What the figures need of one call record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallSample {
    /// The function.
    pub function: String,
    /// When the call was received.
    pub received_at: DateTime<Utc>,
    /// Its status.
    pub status: CallStatus,
    /// Time from receipt to end, once finished.
    pub duration_ms: Option<u64>,
    /// Whether it waited for a container or instance to start.
    pub cold: Option<bool>,
    /// Time it waited for a slot and an instance.
    pub wait_ms: Option<u64>,
    /// Time it waited for a container or instance started for it (a cold start).
    pub start_ms: Option<u64>,
}

impl CallSample {
    fn is_error(&self) -> bool {
        matches!(
            self.status,
            CallStatus::Failed | CallStatus::TimedOut | CallStatus::Dead
        )
    }
}

/// Reads a window as a user writes it (`15m`, `1h`, `2d`); `None` gives the default. The
/// message of an error says what is allowed.
pub fn parse_window(text: Option<&str>) -> Result<Duration, String> {
    let Some(text) = text else {
        return Ok(DEFAULT_WINDOW);
    };
    let window = humantime::parse_duration(text.trim())
        .map_err(|e| format!("window `{text}` is not a duration such as 15m, 1h or 1d: {e}"))?;
    if window < MIN_WINDOW || window > MAX_WINDOW {
        return Err(format!("window `{text}` must be from 1m to 7d"));
    }
    Ok(window)
}

/// The length of the buckets of `window`.
pub fn bucket_length(window: Duration) -> Duration {
    let secs = window.as_secs().max(1);
    let chosen = BUCKET_SECONDS
        .iter()
        .copied()
        .find(|b| secs.div_ceil(*b) <= MAX_BUCKETS)
        .unwrap_or(secs.div_ceil(MAX_BUCKETS));
    Duration::from_secs(chosen)
}

/// Where the figures of `window` before `now` start and end: bucket-aligned, so that two
/// reads a moment apart draw the same buckets.
pub fn window_bounds(now: DateTime<Utc>, window: Duration) -> (DateTime<Utc>, DateTime<Utc>, u64) {
    let bucket = bucket_length(window).as_secs() as i64;
    let count = window.as_secs().div_ceil(bucket as u64).max(1);
    let end_secs = (now.timestamp().div_euclid(bucket) + 1) * bucket;
    let to = DateTime::from_timestamp(end_secs, 0).unwrap_or(now);
    let from = to - chrono::Duration::seconds(bucket * count as i64);
    (from, to, count)
}

/// The `p`th percentile (0 to 100) of sorted `values`, nearest rank.
fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// Counts what [`StatsTotals`] holds.
#[derive(Debug, Default)]
struct Tally {
    calls: u64,
    errors: u64,
    durations: Vec<u64>,
    cold_starts: u64,
    cold_waits: Vec<u64>,
    waits: Vec<u64>,
}

impl Tally {
    fn add(&mut self, sample: &CallSample) {
        if !sample.status.is_final() {
            return;
        }
        self.calls += 1;
        if sample.is_error() {
            self.errors += 1;
        }
        if let Some(d) = sample.duration_ms {
            self.durations.push(d);
        }
        let wait = sample.wait_ms.unwrap_or(0);
        self.waits.push(wait);
        if sample.cold == Some(true) {
            self.cold_starts += 1;
            self.cold_waits.push(sample.start_ms.unwrap_or(wait));
        }
    }

    fn totals(mut self, length: Duration) -> StatsTotals {
        self.durations.sort_unstable();
        self.cold_waits.sort_unstable();
        self.waits.sort_unstable();
        let minutes = (length.as_secs_f64() / 60.0).max(1.0 / 60.0);
        StatsTotals {
            calls: self.calls,
            errors: self.errors,
            p50_ms: percentile(&self.durations, 50.0),
            p99_ms: percentile(&self.durations, 99.0),
            cold_starts: self.cold_starts,
            cold_start_p50_ms: percentile(&self.cold_waits, 50.0),
            cold_start_p99_ms: percentile(&self.cold_waits, 99.0),
            queue_wait_p50_ms: percentile(&self.waits, 50.0),
            queue_wait_p99_ms: percentile(&self.waits, 99.0),
            calls_per_minute: self.calls as f64 / minutes,
            errors_per_minute: self.errors as f64 / minutes,
            cold_starts_per_minute: self.cold_starts as f64 / minutes,
        }
    }
}

/// The stats of `function` over `window` before `now`, from `samples` (the calls received
/// since [`window_bounds`]' start; any other is left out). `complete` is false when the
/// samples do not hold every call of the window.
pub fn function_stats(
    function: &str,
    samples: &[CallSample],
    now: DateTime<Utc>,
    window: Duration,
    complete: bool,
) -> FunctionStats {
    let (from, to, count) = window_bounds(now, window);
    let bucket = bucket_length(window);
    let bucket_ms = bucket.as_millis() as i64;
    let mut tallies: Vec<Tally> = (0..count).map(|_| Tally::default()).collect();
    let mut total = Tally::default();
    for sample in samples.iter().filter(|s| s.function == function) {
        let offset = (sample.received_at - from).num_milliseconds();
        if offset < 0 || sample.received_at >= to {
            continue;
        }
        if let Some(tally) = tallies.get_mut((offset / bucket_ms) as usize) {
            tally.add(sample);
        }
        total.add(sample);
    }
    let buckets = tallies
        .into_iter()
        .enumerate()
        .map(|(i, tally)| StatsBucket {
            start: from + chrono::Duration::milliseconds(bucket_ms * i as i64),
            figures: tally.totals(bucket),
        })
        .collect();
    FunctionStats {
        function: function.to_string(),
        from,
        to,
        window_seconds: window.as_secs(),
        bucket_seconds: bucket.as_secs(),
        complete,
        totals: total.totals(window),
        buckets,
    }
}

/// The totals of every function in `samples` over the `window` before `now` (the
/// dashboard's overview).
pub fn totals_by_function(
    samples: &[CallSample],
    now: DateTime<Utc>,
    window: Duration,
) -> HashMap<String, StatsTotals> {
    let from = now - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::zero());
    let mut tallies: HashMap<&str, Tally> = HashMap::new();
    for sample in samples.iter().filter(|s| s.received_at >= from) {
        tallies
            .entry(sample.function.as_str())
            .or_default()
            .add(sample);
    }
    tallies
        .into_iter()
        .map(|(function, tally)| (function.to_string(), tally.totals(window)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap_or_default()
    }

    fn sample(secs: i64, status: CallStatus, ms: u64, cold: bool, wait: u64) -> CallSample {
        CallSample {
            function: "f".into(),
            received_at: at(secs),
            status,
            duration_ms: Some(ms),
            cold: Some(cold),
            wait_ms: Some(wait),
            start_ms: cold.then_some(wait),
        }
    }

    #[test]
    fn windows_are_read_and_bounded() {
        assert_eq!(parse_window(None), Ok(DEFAULT_WINDOW));
        assert_eq!(parse_window(Some("15m")), Ok(Duration::from_secs(900)));
        assert_eq!(parse_window(Some("1d")), Ok(Duration::from_secs(86400)));
        assert!(parse_window(Some("10s")).is_err());
        assert!(parse_window(Some("30d")).is_err());
        assert!(parse_window(Some("soon")).is_err());
    }

    #[test]
    fn buckets_cut_a_window_in_at_most_sixty() {
        assert_eq!(
            bucket_length(Duration::from_secs(60)),
            Duration::from_secs(5)
        );
        assert_eq!(
            bucket_length(Duration::from_secs(3600)),
            Duration::from_secs(60)
        );
        assert_eq!(
            bucket_length(Duration::from_secs(86400)),
            Duration::from_secs(1800)
        );
        assert_eq!(
            bucket_length(Duration::from_secs(7 * 86400)),
            Duration::from_secs(3 * 3600)
        );
        let (from, to, count) = window_bounds(at(3_601), Duration::from_secs(3600));
        assert_eq!((from, to, count), (at(60), at(3_660), 60));
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 50.0), Some(50));
        assert_eq!(percentile(&values, 99.0), Some(99));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn calls_fall_in_their_buckets() {
        let now = at(600);
        let samples = vec![
            sample(10, CallStatus::Succeeded, 10, true, 300),
            sample(20, CallStatus::Succeeded, 20, false, 0),
            sample(30, CallStatus::Failed, 30, false, 4),
            sample(400, CallStatus::TimedOut, 1000, false, 0),
            // Not finished: not counted yet.
            CallSample {
                duration_ms: None,
                ..sample(500, CallStatus::Running, 0, false, 0)
            },
            // Another function, and a call before the window.
            CallSample {
                function: "g".into(),
                ..sample(20, CallStatus::Succeeded, 1, false, 0)
            },
        ];
        let stats = function_stats("f", &samples, now, Duration::from_secs(600), true);
        assert_eq!(stats.bucket_seconds, 10);
        assert_eq!(stats.buckets.len(), 60);
        assert_eq!(stats.totals.calls, 4);
        assert_eq!(stats.totals.errors, 2);
        assert_eq!(stats.totals.cold_starts, 1);
        assert_eq!(stats.totals.cold_start_p50_ms, Some(300));
        assert_eq!(stats.totals.p50_ms, Some(20));
        assert_eq!(stats.totals.p99_ms, Some(1000));
        let first = stats
            .buckets
            .iter()
            .find(|b| b.start == at(10))
            .expect("bucket");
        assert_eq!(first.figures.calls, 1);
        assert_eq!(first.figures.cold_starts, 1);
        // A 10 s bucket: one call is 6 calls a minute.
        assert!((first.figures.calls_per_minute - 6.0).abs() < 1e-9);
        assert_eq!(
            stats.buckets.iter().map(|b| b.figures.calls).sum::<u64>(),
            4
        );
        let by_function = totals_by_function(&samples, now, Duration::from_secs(600));
        assert_eq!(by_function["f"].calls, 4);
        assert_eq!(by_function["g"].calls, 1);
    }
}
