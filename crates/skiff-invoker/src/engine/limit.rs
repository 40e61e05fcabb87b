//! How many heavy engine operations may run at once: an adaptive limit that follows the
//! engine's latency (in the manner of TCP Vegas and the gradient limiters of
//! concurrency-limits libraries).
//!
//! Each kind of operation (create, start, remove) has a baseline: the least latency
//! seen lately (it drifts up slowly, so that an engine that became slower for good is not
//! held to an old best). Every finished operation gives a ratio, its latency over its kind's
//! baseline, and the limit follows a short average of those ratios: while the engine answers
//! within `TOLERANCE` times its baseline and the limit is reached, the limit grows by one
//! per round of operations; when latency goes past it, the limit shrinks in proportion.
//! It stays between a floor and a ceiling. Plain data, no clock: the caller gives each
//! sample.

use std::time::Duration;

/// The kinds of operations the gate bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpKind {
    Create,
    Start,
    Remove,
}

impl OpKind {
    const ALL: usize = 3;

    fn index(self) -> usize {
        match self {
            OpKind::Create => 0,
            OpKind::Start => 1,
            OpKind::Remove => 2,
        }
    }
}

/// Latency up to this many times the baseline counts as an engine keeping up.
const TOLERANCE: f64 = 1.5;
/// Weight of a new sample in the short average of latency ratios.
const SMOOTHING: f64 = 0.2;
/// How fast a baseline drifts up, per sample of its kind.
const BASELINE_DRIFT: f64 = 1.0005;

/// The adaptive limit.
#[derive(Debug, Clone)]
pub(crate) struct AdaptiveLimit {
    limit: f64,
    floor: f64,
    ceiling: f64,
    /// Per kind, the least latency seen lately, in seconds (0: none yet).
    baseline: [f64; OpKind::ALL],
    /// Short average of latency over baseline.
    congestion: f64,
}

impl AdaptiveLimit {
    /// A limit starting at `initial`, kept within `floor..=ceiling` (floor at least 1).
    pub(crate) fn new(initial: usize, floor: usize, ceiling: usize) -> Self {
        let floor = floor.max(1) as f64;
        let ceiling = (ceiling as f64).max(floor);
        AdaptiveLimit {
            limit: (initial as f64).clamp(floor, ceiling),
            floor,
            ceiling,
            baseline: [0.0; OpKind::ALL],
            congestion: 1.0,
        }
    }

    /// How many operations may run at once now.
    pub(crate) fn current(&self) -> usize {
        self.limit.floor() as usize
    }

    /// Takes one finished operation: its kind, how long it took, and how many operations
    /// were running when it ended (itself included).
    pub(crate) fn observe(&mut self, kind: OpKind, latency: Duration, in_flight: usize) {
        let latency = latency.as_secs_f64().max(1e-4);
        let baseline = &mut self.baseline[kind.index()];
        if *baseline == 0.0 || latency < *baseline {
            *baseline = latency;
        } else {
            *baseline *= BASELINE_DRIFT;
        }
        let ratio = latency / *baseline;
        self.congestion = (1.0 - SMOOTHING) * self.congestion + SMOOTHING * ratio;
        if self.congestion > TOLERANCE {
            // Shrink in proportion to how far past the tolerance the engine is, never by
            // more than a tenth per sample.
            let factor = (TOLERANCE / self.congestion).max(0.9);
            self.limit = (self.limit * factor).max(self.floor);
        } else if in_flight as f64 >= self.limit.floor() {
            // The limit is what holds operations back, and the engine keeps up: one more
            // per round of `limit` operations.
            self.limit = (self.limit + 1.0 / self.limit).min(self.ceiling);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An engine that runs `capacity` operations at `base` each and queues the rest: with
    /// `n` in flight, an operation takes `base * max(1, n / capacity)`.
    fn engine_latency(base: Duration, capacity: usize, in_flight: usize) -> Duration {
        base.mul_f64((in_flight as f64 / capacity as f64).max(1.0))
    }

    /// Runs `rounds` operations with as many in flight as the limit allows (demand never
    /// runs out); returns the limit after each.
    fn saturate(limit: &mut AdaptiveLimit, capacity: usize, rounds: usize) -> Vec<usize> {
        let base = Duration::from_millis(100);
        (0..rounds)
            .map(|i| {
                let in_flight = limit.current();
                let kind = if i % 2 == 0 {
                    OpKind::Create
                } else {
                    OpKind::Start
                };
                limit.observe(kind, engine_latency(base, capacity, in_flight), in_flight);
                limit.current()
            })
            .collect()
    }

    #[test]
    fn under_steady_demand_the_limit_settles_near_what_the_engine_keeps_up_with() {
        for capacity in [2, 6, 12] {
            let mut limit = AdaptiveLimit::new(1, 1, 64);
            let history = saturate(&mut limit, capacity, 2000);
            let settled = &history[1000..];
            let (low, high) = (
                *settled.iter().min().expect("samples"),
                *settled.iter().max().expect("samples"),
            );
            assert!(
                low >= capacity && high <= capacity * 3,
                "capacity {capacity}: limit between {low} and {high}"
            );
        }
    }

    #[test]
    fn a_slower_engine_gets_fewer_operations_at_once() {
        let mut limit = AdaptiveLimit::new(1, 1, 64);
        saturate(&mut limit, 12, 1000);
        let before = limit.current();
        // The engine now keeps up with 3 at a time only.
        let after = *saturate(&mut limit, 3, 1000).last().expect("samples");
        assert!(after < before, "{after} < {before}");
        assert!(after <= 9, "{after}");
    }

    #[test]
    fn the_limit_stays_between_its_floor_and_ceiling() {
        let mut limit = AdaptiveLimit::new(50, 4, 10);
        assert_eq!(limit.current(), 10);
        saturate(&mut limit, 100, 500);
        assert_eq!(limit.current(), 10, "never past the ceiling");
        // An engine that takes ever longer pulls the limit down to the floor, no further.
        for i in 0..500 {
            limit.observe(OpKind::Create, Duration::from_millis(100 + i * 50), 10);
        }
        assert_eq!(limit.current(), 4);
    }

    #[test]
    fn light_demand_does_not_grow_the_limit() {
        let mut limit = AdaptiveLimit::new(4, 1, 64);
        for _ in 0..1000 {
            limit.observe(OpKind::Remove, Duration::from_millis(50), 1);
        }
        assert_eq!(limit.current(), 4);
    }
}
