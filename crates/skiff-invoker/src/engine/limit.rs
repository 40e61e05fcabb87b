//! How many heavy engine operations may run at once: an adaptive limit that follows the
//! engine's latency, after TCP Vegas (latency over a no-load baseline decides growth or
//! shrinkage) with the baseline kept the way BBR keeps its minimum round-trip time: a
//! windowed minimum, refreshed by a periodic short probe at low concurrency (BBR's
//! ProbeRTT state).
//!
//! Each kind of operation (create, start, remove) has a baseline: the least latency seen
//! since the last probe. Every finished operation gives a ratio, its latency over its
//! kind's baseline, and the limit follows a short average of those ratios: while the engine
//! answers within `TOLERANCE` times its baseline and the limit is reached, the limit grows
//! by one per round of operations; when latency goes past it, the limit shrinks in
//! proportion. It stays between a floor and a ceiling.
//!
//! A least-ever baseline cannot tell an engine slowed by something else on the machine from
//! one queueing what skiff gives it: every later latency would look like congestion and the
//! limit would sit at its floor for good. So every `PROBE_INTERVAL` samples the limit drops
//! to its floor for a short probe: the operations admitted before it drain, then the
//! latencies of `PROBE_SAMPLES` operations run at most `floor` at once replace each kind's
//! baseline (at low concurrency the engine's own queueing is out of them). An engine that
//! is slower for outside reasons gets a slower baseline and the limit grows back; one that
//! is overloaded by skiff answers the probe quickly, keeps its baseline and the limit stays
//! down. Plain data, no clock: the caller gives each sample.

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
/// Samples between the end of a probe and the start of the next.
const PROBE_INTERVAL: usize = 250;
/// Samples at low concurrency a probe takes (of all kinds together).
const PROBE_SAMPLES: usize = 6;
/// A probe that finds no low-concurrency samples within this many (after its drain) ends
/// without touching the baselines.
const PROBE_GIVE_UP: usize = 4 * PROBE_SAMPLES;

/// A probe under way: the limit is held at its floor.
#[derive(Debug, Clone)]
struct Probe {
    /// Samples still to come from operations admitted before the probe.
    draining: usize,
    /// Samples seen since the drain.
    seen: usize,
    /// Low-concurrency samples taken.
    taken: usize,
    /// Per kind, the least latency among them, in seconds (0: none).
    least: [f64; OpKind::ALL],
}

/// The adaptive limit.
#[derive(Debug, Clone)]
pub(crate) struct AdaptiveLimit {
    limit: f64,
    floor: f64,
    ceiling: f64,
    /// Per kind, the least latency since the last probe, in seconds (0: none yet).
    baseline: [f64; OpKind::ALL],
    /// Short average of latency over baseline.
    congestion: f64,
    /// Samples since the last probe ended.
    since_probe: usize,
    probe: Option<Probe>,
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
            since_probe: 0,
            probe: None,
        }
    }

    /// How many operations may run at once now: the floor while a probe is under way.
    pub(crate) fn current(&self) -> usize {
        if self.probe.is_some() {
            self.floor as usize
        } else {
            self.limit.floor() as usize
        }
    }

    /// Takes one finished operation: its kind, how long it took, and how many operations
    /// were running when it ended (itself included).
    pub(crate) fn observe(&mut self, kind: OpKind, latency: Duration, in_flight: usize) {
        let latency = latency.as_secs_f64().max(1e-4);
        if self.probe.is_some() {
            self.probe_sample(kind, latency, in_flight);
            return;
        }
        let baseline = &mut self.baseline[kind.index()];
        if *baseline == 0.0 || latency < *baseline {
            *baseline = latency;
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
        self.since_probe += 1;
        if self.since_probe >= PROBE_INTERVAL {
            self.probe = Some(Probe {
                // The others running now were admitted under the old limit.
                draining: in_flight.saturating_sub(1),
                seen: 0,
                taken: 0,
                least: [0.0; OpKind::ALL],
            });
        }
    }

    /// A sample while a probe is under way: once the operations admitted before it have
    /// finished, samples run at most `floor` at once give the kinds' new baselines. The
    /// limit itself does not move during a probe.
    fn probe_sample(&mut self, kind: OpKind, latency: f64, in_flight: usize) {
        let Some(probe) = self.probe.as_mut() else {
            return;
        };
        if probe.draining > 0 {
            probe.draining -= 1;
            return;
        }
        probe.seen += 1;
        if in_flight as f64 <= self.floor {
            probe.taken += 1;
            let least = &mut probe.least[kind.index()];
            if *least == 0.0 || latency < *least {
                *least = latency;
            }
        }
        if probe.taken >= PROBE_SAMPLES || probe.seen >= PROBE_GIVE_UP {
            for (baseline, least) in self.baseline.iter_mut().zip(probe.least) {
                if least > 0.0 {
                    *baseline = least;
                }
            }
            if probe.taken > 0 {
                // The new baselines are what the engine does now: no congestion measured
                // against them yet.
                self.congestion = 1.0;
            }
            self.since_probe = 0;
            self.probe = None;
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
    /// runs out); returns the limit after each (outside probes: what it settles to).
    fn saturate(limit: &mut AdaptiveLimit, capacity: usize, rounds: usize) -> Vec<usize> {
        saturate_slowed(limit, 1.0, capacity, rounds)
    }

    /// `saturate` on an engine `slowdown` times slower for reasons of its own.
    fn saturate_slowed(
        limit: &mut AdaptiveLimit,
        slowdown: f64,
        capacity: usize,
        rounds: usize,
    ) -> Vec<usize> {
        let base = Duration::from_millis(100).mul_f64(slowdown);
        (0..rounds)
            .map(|i| {
                let in_flight = limit.current();
                let kind = if i % 2 == 0 {
                    OpKind::Create
                } else {
                    OpKind::Start
                };
                limit.observe(kind, engine_latency(base, capacity, in_flight), in_flight);
                limit.limit.floor() as usize
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
        let before = limit.limit.floor() as usize;
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

    #[test]
    fn an_engine_slower_for_outside_reasons_gets_its_limit_back() {
        for capacity in [3, 6, 12] {
            let mut limit = AdaptiveLimit::new(4, 2, 64);
            // The baselines are taken while the engine is idle.
            saturate(&mut limit, capacity, 1000);
            // Something else on the machine makes every operation 3 times slower; the
            // engine still keeps up with `capacity` at a time.
            let history = saturate_slowed(&mut limit, 3.0, capacity, 2000);
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
    fn an_overloaded_engine_still_pulls_the_limit_down_after_a_slowdown() {
        let mut limit = AdaptiveLimit::new(4, 2, 64);
        saturate(&mut limit, 12, 1000);
        saturate_slowed(&mut limit, 3.0, 12, 1000);
        let before = limit.limit.floor() as usize;
        // Still 3 times slower, and now it keeps up with 3 at a time only.
        let history = saturate_slowed(&mut limit, 3.0, 3, 2000);
        let high = *history[1000..].iter().max().expect("samples");
        assert!(high < before, "{high} < {before}");
        assert!(high <= 9, "{high}");
    }

    #[test]
    fn a_probe_holds_the_limit_at_its_floor_until_it_has_its_samples() {
        let mut limit = AdaptiveLimit::new(8, 2, 64);
        for _ in 0..PROBE_INTERVAL - 1 {
            limit.observe(OpKind::Create, Duration::from_millis(100), 8);
        }
        assert!(limit.current() >= 8);
        // This sample starts a probe: the 7 others running drain first.
        limit.observe(OpKind::Create, Duration::from_millis(100), 8);
        assert_eq!(limit.current(), 2);
        for _ in 0..7 {
            limit.observe(OpKind::Create, Duration::from_millis(100), 8);
        }
        assert_eq!(limit.current(), 2);
        // Then operations run 2 at a time, slower than the old baseline for outside reasons.
        for _ in 0..PROBE_SAMPLES {
            assert_eq!(limit.current(), 2);
            limit.observe(OpKind::Create, Duration::from_millis(300), 2);
        }
        assert!(limit.current() >= 8, "{}", limit.current());
        assert_eq!(limit.baseline[OpKind::Create.index()], 0.3);
    }
}
