//! Latency statistics for the benchmarks: samples kept in an HDR histogram (three
//! significant digits, so a quantile is within 0.1% of the sample it stands for), and the
//! way the reports print them.

use hdrhistogram::Histogram;
use std::time::Duration;

/// The longest sample told apart from longer ones: an hour.
const LONGEST_NANOS: u64 = 3_600_000_000_000;

/// Latency samples, in nanoseconds.
#[derive(Debug, Clone)]
pub struct Latencies {
    histogram: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies::new()
    }
}

impl Latencies {
    /// No sample yet.
    pub fn new() -> Latencies {
        Latencies {
            histogram: Histogram::new_with_bounds(1, LONGEST_NANOS, 3)
                .expect("1 ns to an hour, three significant digits: valid bounds"),
        }
    }

    /// Adds one sample (one over an hour counts as an hour).
    pub fn record(&mut self, sample: Duration) {
        let nanos = u64::try_from(sample.as_nanos()).unwrap_or(u64::MAX);
        self.histogram.saturating_record(nanos);
    }

    /// Adds the samples of `other`.
    pub fn add(&mut self, other: &Latencies) {
        self.histogram
            .add(&other.histogram)
            .expect("histograms of the same bounds add up");
    }

    /// How many samples there are.
    pub fn len(&self) -> u64 {
        self.histogram.len()
    }

    /// Whether there is no sample.
    pub fn is_empty(&self) -> bool {
        self.histogram.is_empty()
    }

    /// The sample at quantile `q` (0.0 to 1.0): the smallest that at least that fraction of
    /// the samples does not exceed. Zero when there is no sample.
    pub fn quantile(&self, q: f64) -> Duration {
        Duration::from_nanos(self.histogram.value_at_quantile(q))
    }

    /// The median (p50).
    pub fn median(&self) -> Duration {
        self.quantile(0.5)
    }

    /// The 99th percentile.
    pub fn p99(&self) -> Duration {
        self.quantile(0.99)
    }

    /// The smallest sample. Zero when there is no sample.
    pub fn min(&self) -> Duration {
        Duration::from_nanos(self.histogram.min())
    }
}

impl Extend<Duration> for Latencies {
    fn extend<I: IntoIterator<Item = Duration>>(&mut self, samples: I) {
        for sample in samples {
            self.record(sample);
        }
    }
}

impl FromIterator<Duration> for Latencies {
    fn from_iter<I: IntoIterator<Item = Duration>>(samples: I) -> Self {
        let mut latencies = Latencies::new();
        latencies.extend(samples);
        latencies
    }
}

/// `d` in milliseconds.
pub fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `d` in milliseconds with `decimals` digits after the point: `ms(d, 1)` is `"12.3 ms"`.
pub fn ms(d: Duration, decimals: usize) -> String {
    format!("{:.*} ms", decimals, millis(d))
}

/// How many times `baseline` `d` takes, as the reports print it: `"0.26x"`.
pub fn ratio(d: Duration, baseline: Duration) -> String {
    format!("{:.2}x", d.as_secs_f64() / baseline.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn within_a_thousandth(got: Duration, want: Duration) -> bool {
        got.abs_diff(want).as_secs_f64() <= want.as_secs_f64() / 1000.0
    }

    #[test]
    fn quantiles_of_a_hundred_samples() {
        // 100 ms down to 1 ms, in no particular order.
        let latencies: Latencies = (1..=100u64).rev().map(Duration::from_millis).collect();
        assert_eq!(latencies.len(), 100);
        for (got, want) in [
            (latencies.median(), 50),
            (latencies.p99(), 99),
            (latencies.quantile(1.0), 100),
            (latencies.min(), 1),
        ] {
            let want = Duration::from_millis(want);
            assert!(within_a_thousandth(got, want), "{got:?} for {want:?}");
        }
    }

    #[test]
    fn sub_millisecond_samples_keep_their_precision() {
        let latencies: Latencies = [106_000u64, 106_500, 281_000]
            .into_iter()
            .map(Duration::from_nanos)
            .collect();
        assert_eq!(ms(latencies.min(), 3), "0.106 ms");
        assert_eq!(ms(latencies.p99(), 3), "0.281 ms");
    }

    #[test]
    fn samples_add_up() {
        let mut all: Latencies = [1u64, 2].into_iter().map(Duration::from_millis).collect();
        let more: Latencies = [3u64, 4].into_iter().map(Duration::from_millis).collect();
        all.add(&more);
        assert_eq!(all.len(), 4);
        assert!(within_a_thousandth(
            all.quantile(1.0),
            Duration::from_millis(4)
        ));
    }

    #[test]
    fn no_sample_reads_as_zero() {
        let latencies = Latencies::new();
        assert!(latencies.is_empty());
        assert_eq!(latencies.median(), Duration::ZERO);
        assert_eq!(latencies.min(), Duration::ZERO);
    }

    #[test]
    fn durations_and_ratios_print_as_in_the_reports() {
        assert_eq!(ms(Duration::from_micros(81_640), 1), "81.6 ms");
        assert_eq!(ms(Duration::from_micros(106), 3), "0.106 ms");
        assert_eq!(
            ratio(Duration::from_millis(81), Duration::from_millis(309)),
            "0.26x"
        );
        assert_eq!(
            ratio(Duration::from_millis(309), Duration::from_millis(309)),
            "1.00x"
        );
    }
}
