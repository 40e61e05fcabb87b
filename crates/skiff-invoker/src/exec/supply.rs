//! One `exec` function's supply of prepared containers, as a state machine without I/O.
//!
//! Calls arrive ([`Supply::arrive`]) and take a ready container, or wait in line for one
//! (first come, first served). The driver asks how many preparations to start
//! ([`Supply::start_preparing`]): enough for every waiting call plus a [`Supply::target`] of
//! ready ones, which follows demand: the arrival rate (decayed over [`RATE_WINDOW`]) times
//! how long a preparation takes, between the `floor` and `cap` the daemon sets. So calls that
//! arrive back to back, or steadily, find a container ready, and a quiet function keeps only
//! its floor. A prepared container goes to the first waiting call, else to the ready queue
//! ([`Supply::prepared`]); a failed preparation fails the first waiting call
//! ([`Supply::failed`]); a call that gives up leaves the line ([`Supply::give_up`]) and the
//! container meant for it serves the next. [`Supply::trim`] gives back what demand no
//! longer needs, and everything once the function has been idle past its idle timeout.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Over how long arrivals are averaged into a rate.
pub(crate) const RATE_WINDOW: Duration = Duration::from_secs(10);
/// Weight of the newest preparation in the average preparation time.
const LATENCY_WEIGHT: f64 = 0.3;
/// A first guess at how long a preparation takes, before one has been measured.
const FIRST_LATENCY: Duration = Duration::from_millis(500);

/// A call's place in line.
pub(crate) type WaiterId = u64;

/// What an arriving call gets.
#[derive(Debug, PartialEq)]
pub(crate) enum Arrival<C> {
    /// A ready container.
    Ready(C),
    /// A place in line.
    Wait,
}

/// One function's prepared containers and the calls waiting for one.
#[derive(Debug)]
pub(crate) struct Supply<C> {
    /// Prepared containers of another generation are never used.
    pub(crate) generation: u64,
    ready: VecDeque<C>,
    waiters: VecDeque<WaiterId>,
    preparing: usize,
    floor: usize,
    cap: usize,
    /// Arrivals per second, decayed to `rate_at`.
    rate: f64,
    rate_at: Option<Instant>,
    /// Average seconds a preparation takes.
    prepare_secs: f64,
    last_used: Option<Instant>,
}

impl<C> Supply<C> {
    /// An empty supply keeping `floor` to `cap` containers ready.
    pub(crate) fn new(generation: u64, floor: usize, cap: usize) -> Self {
        Supply {
            generation,
            ready: VecDeque::new(),
            waiters: VecDeque::new(),
            preparing: 0,
            floor,
            cap: cap.max(floor),
            rate: 0.0,
            rate_at: None,
            prepare_secs: FIRST_LATENCY.as_secs_f64(),
            last_used: None,
        }
    }

    /// Containers ready now.
    pub(crate) fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// Calls waiting now.
    pub(crate) fn waiting(&self) -> usize {
        self.waiters.len()
    }

    /// Preparations under way.
    pub(crate) fn preparing(&self) -> usize {
        self.preparing
    }

    /// The arrival rate at `now`, per second.
    fn rate_at(&self, now: Instant) -> f64 {
        match self.rate_at {
            Some(at) => {
                let dt = now.saturating_duration_since(at).as_secs_f64();
                self.rate * (-dt / RATE_WINDOW.as_secs_f64()).exp()
            }
            None => 0.0,
        }
    }

    /// A call arrives at `now` as `waiter`: it takes a ready container or gets in line.
    pub(crate) fn arrive(&mut self, now: Instant, waiter: WaiterId) -> Arrival<C> {
        self.rate = self.rate_at(now) + 1.0 / RATE_WINDOW.as_secs_f64();
        self.rate_at = Some(now);
        self.last_used = Some(now);
        match self.ready.pop_front() {
            Some(container) => Arrival::Ready(container),
            None => {
                self.waiters.push_back(waiter);
                Arrival::Wait
            }
        }
    }

    /// Marks the function used at `now` without a call (it was just deployed or refilled),
    /// so that its floor is not trimmed at once.
    pub(crate) fn touch(&mut self, now: Instant) {
        self.last_used.get_or_insert(now);
    }

    /// `waiter` stops waiting. False if it is not in line any more: a container (or a
    /// failure) was handed to it already.
    pub(crate) fn give_up(&mut self, waiter: WaiterId) -> bool {
        match self.waiters.iter().position(|w| *w == waiter) {
            Some(at) => {
                self.waiters.remove(at);
                true
            }
            None => false,
        }
    }

    /// Ready containers wanted at `now`: the arrival rate times the preparation time (the
    /// calls expected while one is prepared), rounded, between the floor and the cap. A
    /// rare call does not keep a container ready beyond the floor.
    pub(crate) fn target(&self, now: Instant) -> usize {
        let wanted = (self.rate_at(now) * self.prepare_secs).round();
        // The float is small and non-negative; `as` saturates anyway.
        (wanted as usize).clamp(self.floor, self.cap)
    }

    /// How many preparations to start now (counted as under way from here on).
    pub(crate) fn start_preparing(&mut self, now: Instant) -> usize {
        let wanted = self.waiters.len() + self.target(now);
        let have = self.ready.len() + self.preparing;
        let more = wanted.saturating_sub(have);
        self.preparing += more;
        more
    }

    /// `count` preparations counted by [`Supply::start_preparing`] were not started after all.
    pub(crate) fn not_started(&mut self, count: usize) {
        self.preparing = self.preparing.saturating_sub(count);
    }

    /// A preparation ended with `container` after `took`: it goes to the first call in
    /// line (returned with it), or to the ready queue.
    pub(crate) fn prepared(&mut self, container: C, took: Duration) -> Option<(WaiterId, C)> {
        self.preparing = self.preparing.saturating_sub(1);
        self.prepare_secs =
            LATENCY_WEIGHT * took.as_secs_f64() + (1.0 - LATENCY_WEIGHT) * self.prepare_secs;
        self.hand_over(container)
    }

    /// A container that was handed to a call that had gone: the next in line gets it, or
    /// it is ready.
    pub(crate) fn hand_over(&mut self, container: C) -> Option<(WaiterId, C)> {
        match self.waiters.pop_front() {
            Some(waiter) => Some((waiter, container)),
            None => {
                self.ready.push_back(container);
                None
            }
        }
    }

    /// A preparation failed: the first call in line fails with it (returned).
    pub(crate) fn failed(&mut self) -> Option<WaiterId> {
        self.preparing = self.preparing.saturating_sub(1);
        self.waiters.pop_front()
    }

    /// The ready containers to remove at `now`: all of them once the function has been idle
    /// for `idle_timeout`, else those beyond the target.
    pub(crate) fn trim(&mut self, now: Instant, idle_timeout: Duration) -> Vec<C> {
        let idle = self
            .last_used
            .is_none_or(|t| now.saturating_duration_since(t) >= idle_timeout);
        let keep = if idle { 0 } else { self.target(now) };
        let excess = self.ready.len().saturating_sub(keep);
        // The newest stay (they have the longest life ahead); the oldest go.
        self.ready.drain(..excess).collect()
    }

    /// Switches to `generation`: the ready containers of the old one are returned, to remove.
    pub(crate) fn renew(&mut self, generation: u64) -> Vec<C> {
        if self.generation == generation {
            return Vec::new();
        }
        self.generation = generation;
        self.ready.drain(..).collect()
    }

    /// Everything ready, to remove (the function is gone or the daemon stops). Calls in
    /// line are returned too: they get no container.
    pub(crate) fn drain(&mut self) -> (Vec<C>, Vec<WaiterId>) {
        (
            self.ready.drain(..).collect(),
            self.waiters.drain(..).collect(),
        )
    }

    /// Takes the ready containers out (they are gone, or no longer to be trusted); waiting
    /// calls keep their place, and the next preparations serve them.
    pub(crate) fn take_ready(&mut self) -> Vec<C> {
        self.ready.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_containers_taken_out_leave_the_line_and_the_target_as_they_were() {
        let t0 = Instant::now();
        let mut supply: Supply<u32> = Supply::new(1, 1, 4);
        assert_eq!(supply.start_preparing(t0), 1);
        assert_eq!(supply.prepared(1, Duration::from_millis(100)), None);
        assert_eq!(supply.ready_len(), 1);
        assert_eq!(supply.take_ready(), vec![1]);
        assert_eq!(supply.ready_len(), 0);
        // A call now waits, and a preparation is asked for it.
        assert_eq!(supply.arrive(t0, 7), Arrival::Wait);
        assert!(supply.start_preparing(t0) >= 1);
        assert_eq!(supply.take_ready(), Vec::<u32>::new());
        assert_eq!(supply.waiting(), 1);
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_quiet_function_keeps_its_floor() {
        let t0 = Instant::now();
        let mut supply: Supply<u32> = Supply::new(1, 1, 8);
        supply.touch(t0);
        assert_eq!(supply.start_preparing(t0), 1);
        assert_eq!(supply.start_preparing(t0), 0, "one under way is counted");
        assert_eq!(supply.prepared(7, ms(300)), None);
        assert_eq!(supply.ready_len(), 1);
        assert_eq!(supply.arrive(t0, 1), Arrival::Ready(7));
        assert_eq!(supply.start_preparing(t0), 1, "the floor is refilled");
    }

    #[test]
    fn waiting_calls_are_served_first_come_first_served() {
        let t0 = Instant::now();
        let mut supply: Supply<u32> = Supply::new(1, 0, 8);
        assert_eq!(supply.arrive(t0, 1), Arrival::Wait);
        assert_eq!(supply.arrive(t0, 2), Arrival::Wait);
        assert_eq!(supply.arrive(t0, 3), Arrival::Wait);
        assert!(
            supply.start_preparing(t0) >= 3,
            "one preparation per waiting call at least"
        );
        assert_eq!(supply.prepared(10, ms(200)), Some((1, 10)));
        // The second call gives up: the next container goes to the third.
        assert!(supply.give_up(2));
        assert_eq!(supply.prepared(11, ms(200)), Some((3, 11)));
        assert_eq!(
            supply.prepared(12, ms(200)),
            None,
            "no one waits: it is ready"
        );
        assert_eq!(supply.ready_len(), 1);
        assert!(!supply.give_up(1), "the first call was served already");
    }

    #[test]
    fn a_failed_preparation_fails_the_first_call_in_line() {
        let t0 = Instant::now();
        let mut supply: Supply<u32> = Supply::new(1, 0, 8);
        assert_eq!(supply.arrive(t0, 1), Arrival::Wait);
        assert_eq!(supply.arrive(t0, 2), Arrival::Wait);
        supply.start_preparing(t0);
        assert_eq!(supply.failed(), Some(1));
        assert_eq!(supply.waiting(), 1);
        // The failure is not retried for the first call, but the second still has its own.
        assert!(supply.preparing() >= 1);
    }

    #[test]
    fn the_target_follows_the_arrival_rate_and_decays_when_calls_stop() {
        let t0 = Instant::now();
        let mut supply: Supply<u32> = Supply::new(1, 1, 8);
        // Preparations take a second; calls arrive five times a second for twenty seconds.
        for i in 0..10 {
            supply.prepared(0, Duration::from_secs(1));
            supply.arrive(t0, i);
        }
        let mut now = t0;
        for i in 0..100 {
            now = t0 + ms(200 * i);
            supply.arrive(now, 100 + i);
        }
        let busy = supply.target(now);
        assert!((3..=6).contains(&busy), "about 5 calls/s x 1 s: {busy}");
        // A minute later the rate has decayed: back to the floor.
        assert_eq!(supply.target(now + Duration::from_secs(60)), 1);
        // Never above the cap.
        let mut flood: Supply<u32> = Supply::new(1, 0, 3);
        for i in 0..1000 {
            flood.arrive(t0 + ms(i), i);
        }
        assert_eq!(flood.target(t0 + ms(1000)), 3);
    }

    #[test]
    fn a_single_call_keeps_nothing_ready_beyond_a_floor_of_zero() {
        let t0 = Instant::now();
        let mut supply: Supply<u32> = Supply::new(1, 0, 8);
        assert_eq!(supply.arrive(t0, 1), Arrival::Wait);
        assert_eq!(
            supply.start_preparing(t0),
            1,
            "one for the waiting call, none more"
        );
        assert_eq!(supply.prepared(3, ms(400)), Some((1, 3)));
        assert_eq!(supply.start_preparing(t0), 0);
    }

    #[test]
    fn trimming_keeps_the_target_and_empties_an_idle_function() {
        let t0 = Instant::now();
        let mut supply: Supply<u32> = Supply::new(1, 1, 8);
        supply.touch(t0);
        for c in 0..4 {
            supply.start_preparing(t0);
            supply.prepared(c, ms(100));
        }
        let idle = Duration::from_secs(300);
        // No call came in: the target is the floor, the oldest three go.
        assert_eq!(supply.trim(t0 + ms(10), idle), vec![0, 1, 2]);
        assert_eq!(supply.ready_len(), 1);
        assert_eq!(
            supply.trim(t0 + idle, idle),
            vec![3],
            "idle: nothing is kept"
        );
    }

    #[test]
    fn a_new_generation_drops_the_old_containers() {
        let t0 = Instant::now();
        let mut supply: Supply<u32> = Supply::new(1, 1, 8);
        supply.start_preparing(t0);
        supply.prepared(5, ms(100));
        assert_eq!(supply.renew(1), Vec::<u32>::new());
        assert_eq!(supply.renew(2), vec![5]);
        assert_eq!(supply.generation, 2);
    }
}
