//! How many instances a function should have, from its demand: in-flight plus waiting calls,
//! averaged over a stable window and a short panic window, as Knative's autoscaler does.
//!
//! Each instance is targeted at `target_utilization` (default 70%) of its concurrency (at
//! least one call), over the function's own stable window or the daemon's. The stable
//! average decides; when the panic-window average needs twice the instances there are, the
//! autoscaler panics: it scales up on the short window and does not scale down until a
//! whole stable window has passed without panic. The result is kept within
//! `[min_instances, max_instances]`.

use skiff_core::Scaling;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Ratio of panic-window demand to capacity that starts a panic.
const PANIC_THRESHOLD: f64 = 2.0;

/// The autoscaler's answer for one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Instances wanted.
    pub desired: usize,
    /// Whether the autoscaler is in panic mode (no scale-down).
    pub panic: bool,
}

/// Per-function demand history.
#[derive(Debug, Default)]
pub struct Autoscaler {
    samples: VecDeque<(Instant, f64)>,
    panic_until: Option<Instant>,
}

fn average(samples: &VecDeque<(Instant, f64)>, since: Instant) -> f64 {
    let (sum, count) = samples
        .iter()
        .filter(|(t, _)| *t >= since)
        .fold((0.0, 0usize), |(sum, count), (_, v)| (sum + v, count + 1));
    if count == 0 {
        0.0
    } else {
        sum / count as f64
    }
}

impl Autoscaler {
    /// Records `demand` at `now` with `current` instances, and decides.
    pub fn observe(
        &mut self,
        now: Instant,
        demand: f64,
        current: usize,
        scaling: &Scaling,
        window: Duration,
    ) -> Decision {
        let panic_window = window / 10;
        self.samples.push_back((now, demand));
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > window)
        {
            self.samples.pop_front();
        }
        let per_instance = (f64::from(scaling.concurrency) * scaling.target_utilization).max(1.0);
        let stable = average(&self.samples, now.checked_sub(window).unwrap_or(now));
        let burst = average(&self.samples, now.checked_sub(panic_window).unwrap_or(now));
        let want_stable = (stable / per_instance).ceil() as usize;
        let want_burst = (burst / per_instance).ceil() as usize;
        if current > 0 && burst / (current as f64 * per_instance) >= PANIC_THRESHOLD {
            self.panic_until = Some(now + window);
        }
        let panic = self.panic_until.is_some_and(|until| now < until);
        if !panic {
            self.panic_until = None;
        }
        let desired = if panic {
            want_stable.max(want_burst).max(current)
        } else {
            want_stable
        };
        let desired = desired.clamp(
            scaling.min_instances as usize,
            scaling.max_instances as usize,
        );
        Decision { desired, panic }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scaling(concurrency: u32, min: u32, max: u32) -> Scaling {
        Scaling {
            concurrency,
            min_instances: min,
            max_instances: max,
            idle_timeout_ms: 1000,
            window_ms: None,
            target_utilization: 0.7,
        }
    }

    const WINDOW: Duration = Duration::from_secs(60);

    #[test]
    fn steady_demand_gets_instances_at_seventy_percent() {
        let mut a = Autoscaler::default();
        let t0 = Instant::now();
        let s = scaling(10, 0, 100);
        let mut d = Decision {
            desired: 0,
            panic: false,
        };
        for i in 0..60 {
            d = a.observe(t0 + Duration::from_secs(i), 28.0, 4, &s, WINDOW);
        }
        assert_eq!(
            d,
            Decision {
                desired: 4,
                panic: false
            }
        );
    }

    #[test]
    fn a_burst_panics_and_scales_on_the_short_window() {
        let mut a = Autoscaler::default();
        let t0 = Instant::now();
        let s = scaling(10, 0, 100);
        for i in 0..50 {
            a.observe(t0 + Duration::from_secs(i), 7.0, 1, &s, WINDOW);
        }
        let d = a.observe(t0 + Duration::from_secs(50), 140.0, 1, &s, WINDOW);
        assert!(d.panic);
        // The short window (6s) averages the burst with the steady samples before it.
        assert!(d.desired >= 4, "{d:?}");
        // Demand gone: no scale-down while panicking.
        let d = a.observe(t0 + Duration::from_secs(55), 0.0, 10, &s, WINDOW);
        assert!(d.panic);
        assert_eq!(d.desired, 10);
        // A window later, the stable average rules again.
        let d = a.observe(t0 + Duration::from_secs(200), 0.0, 10, &s, WINDOW);
        assert!(!d.panic);
        assert_eq!(d.desired, 0);
    }

    #[test]
    fn the_result_stays_within_min_and_max() {
        let mut a = Autoscaler::default();
        let now = Instant::now();
        assert_eq!(a.observe(now, 0.0, 0, &scaling(1, 2, 5), WINDOW).desired, 2);
        let mut a = Autoscaler::default();
        assert_eq!(
            a.observe(now, 1000.0, 0, &scaling(1, 0, 5), WINDOW).desired,
            5
        );
    }

    #[test]
    fn one_call_at_a_time_needs_one_instance() {
        let mut a = Autoscaler::default();
        let d = a.observe(Instant::now(), 1.0, 1, &scaling(1, 0, 10), WINDOW);
        assert_eq!(d.desired, 1);
    }
}
