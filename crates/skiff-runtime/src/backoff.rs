//! The one backoff of skiff's retry loops: delays that double from a first delay up to a
//! cap, with optional jitter (from a real random source) so that retries spread out.

use std::time::Duration;

/// A doubling delay, capped, optionally jittered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    /// Share of the delay added or taken at random (0.2: up to 20% either way).
    jitter: f64,
}

impl Backoff {
    /// `first`, doubling after each retry, never more than `max`; no jitter.
    pub const fn new(first: Duration, max: Duration) -> Self {
        Backoff {
            first,
            max,
            jitter: 0.0,
        }
    }

    /// The same, with up to `share` of each delay added or taken at random (0 to 1).
    pub const fn with_jitter(self, share: f64) -> Self {
        Backoff {
            jitter: share,
            ..self
        }
    }

    /// The delay before retry `n`, counting from 1 (`first` before the first retry).
    pub fn delay(&self, n: u32) -> Duration {
        let doubled = self
            .first
            .saturating_mul(1u32 << n.saturating_sub(1).min(20));
        let capped = doubled.min(self.max);
        if self.jitter <= 0.0 {
            return capped;
        }
        let noise = (fastrand::f64() * 2.0 - 1.0) * self.jitter.min(1.0);
        capped.mul_f64(1.0 + noise)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_and_are_capped() {
        let b = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        assert_eq!(b.delay(1), Duration::from_millis(500));
        assert_eq!(b.delay(2), Duration::from_secs(1));
        assert_eq!(b.delay(3), Duration::from_secs(2));
        assert_eq!(b.delay(7), Duration::from_secs(30));
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(30));
        assert_eq!(
            b.delay(0),
            Duration::from_millis(500),
            "0 counts as the first"
        );
    }

    #[test]
    fn jitter_stays_within_its_share_and_varies() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(300)).with_jitter(0.2);
        let mut seen = std::collections::HashSet::new();
        for (n, expected) in [(1, 1.0), (2, 2.0), (3, 4.0), (10, 300.0), (40, 300.0)] {
            for _ in 0..50 {
                let d = b.delay(n).as_secs_f64();
                assert!(
                    d >= expected * 0.8 - 1e-9 && d <= expected * 1.2 + 1e-9,
                    "retry {n}: {d}"
                );
                seen.insert(d.to_bits());
            }
        }
        assert!(seen.len() > 100, "the jitter is random");
    }
}
