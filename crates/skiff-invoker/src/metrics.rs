//! Every metric skiff exports, defined in one place, in the Prometheus text format at
//! `/metrics`.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use skiff_core::{CallStatus, InstanceState};
use std::time::Duration;

/// A call's final status, as a label.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum StatusLabel {
    /// Succeeded.
    succeeded,
    /// Failed.
    failed,
    /// Timed out.
    timed_out,
    /// Dead.
    dead,
}

impl From<CallStatus> for StatusLabel {
    fn from(status: CallStatus) -> Self {
        match status {
            CallStatus::TimedOut => StatusLabel::timed_out,
            CallStatus::Dead => StatusLabel::dead,
            CallStatus::Succeeded => StatusLabel::succeeded,
            _ => StatusLabel::failed,
        }
    }
}

/// Labels of per-call metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// The function.
    pub function: String,
    /// Its final status.
    pub status: StatusLabel,
}

/// Labels of per-function metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FunctionLabels {
    /// The function.
    pub function: String,
}

/// Labels of the instance gauge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// The instance state.
    pub state: String,
}

/// Labels of the trigger firings counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TriggerLabels {
    /// The trigger.
    pub trigger: String,
    /// What came of it: `fired`, `skipped` (cron); `acked`, `retried`, `given_up`,
    /// `refused` (broker).
    pub result: String,
}

#[derive(Debug, Clone)]
struct LatencyBuckets;

impl MetricConstructor<Histogram> for LatencyBuckets {
    fn new_metric(&self) -> Histogram {
        // 0.5 ms to about 65 s.
        Histogram::new(exponential_buckets(0.0005, 2.0, 18))
    }
}

/// The memory allocator's own figures, where the binary's allocator keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapFigures {
    /// Bytes the program holds allocated now.
    pub allocated: u64,
    /// Bytes of physical memory the allocator holds (allocated, fragmentation, and freed
    /// pages not yet given back).
    pub resident: u64,
}

/// Reads [`HeapFigures`] from the allocator; `None` when they cannot be read.
pub type HeapProbe = fn() -> Option<HeapFigures>;

/// The heap gauges, registered only where there is a probe to read them from.
#[derive(Debug)]
struct Heap {
    probe: HeapProbe,
    allocated: Gauge,
    resident: Gauge,
}

/// skiff's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    heap: Option<Heap>,
    calls: Family<CallLabels, Counter>,
    call_duration: Family<FunctionLabels, Histogram, LatencyBuckets>,
    cold_starts: Family<FunctionLabels, Counter>,
    queue_wait: Family<FunctionLabels, Histogram, LatencyBuckets>,
    instances: Family<StateLabels, Gauge>,
    calls_running: Gauge,
    calls_queued: Gauge,
    trigger_firings: Family<TriggerLabels, Counter>,
    cold_start: Family<FunctionLabels, Histogram, LatencyBuckets>,
    engine_limit: Gauge,
    engine_running: Gauge,
    engine_waiting: Gauge,
    exec_containers: Family<StateLabels, Gauge>,
    exec_waiting: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("skiff");
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "calls",
            "Calls finished, by function and final status",
            calls.clone(),
        );
        let call_duration = Family::new_with_constructor(LatencyBuckets);
        registry.register(
            "call_duration_seconds",
            "Time from receiving a call to its end, by function",
            call_duration.clone(),
        );
        let cold_starts = Family::<FunctionLabels, Counter>::default();
        registry.register(
            "cold_starts",
            "Calls that waited for a container or instance to start or resume",
            cold_starts.clone(),
        );
        let queue_wait = Family::new_with_constructor(LatencyBuckets);
        registry.register(
            "queue_wait_seconds",
            "Time calls waited for a free instance, by function",
            queue_wait.clone(),
        );
        let instances = Family::<StateLabels, Gauge>::default();
        registry.register("instances", "Instances by state", instances.clone());
        let calls_running = Gauge::default();
        registry.register("calls_running", "Calls running now", calls_running.clone());
        let calls_queued = Gauge::default();
        registry.register(
            "calls_queued",
            "Calls waiting for a slot under the global limit",
            calls_queued.clone(),
        );
        let trigger_firings = Family::<TriggerLabels, Counter>::default();
        registry.register(
            "trigger_firings",
            "Cron ticks and broker messages handled by triggers, by trigger and result",
            trigger_firings.clone(),
        );
        let cold_start = Family::new_with_constructor(LatencyBuckets);
        registry.register(
            "cold_start_seconds",
            "Time cold calls waited for their container or instance to start or resume, by function",
            cold_start.clone(),
        );
        let engine_limit = Gauge::default();
        registry.register(
            "engine_concurrency_limit",
            "Container creates, starts and removes allowed at once (adaptive)",
            engine_limit.clone(),
        );
        let engine_running = Gauge::default();
        registry.register(
            "engine_operations_running",
            "Container creates, starts and removes running now",
            engine_running.clone(),
        );
        let engine_waiting = Gauge::default();
        registry.register(
            "engine_operations_waiting",
            "Container creates, starts and removes waiting for their turn",
            engine_waiting.clone(),
        );
        let exec_containers = Family::<StateLabels, Gauge>::default();
        registry.register(
            "exec_containers",
            "Containers of exec functions by state: ready (prepared ahead of calls), preparing, removing",
            exec_containers.clone(),
        );
        let exec_waiting = Gauge::default();
        registry.register(
            "exec_calls_waiting",
            "Calls of exec functions waiting for a container",
            exec_waiting.clone(),
        );
        Metrics {
            heap: None,
            exec_containers,
            exec_waiting,
            cold_start,
            engine_limit,
            engine_running,
            engine_waiting,
            trigger_firings,
            registry,
            calls,
            call_duration,
            cold_starts,
            queue_wait,
            instances,
            calls_running,
            calls_queued,
        }
    }

    /// Counts a finished call.
    pub fn call_finished(
        &self,
        function: &str,
        status: CallStatus,
        duration: Duration,
        cold: bool,
    ) {
        let function = function.to_string();
        self.calls
            .get_or_create(&CallLabels {
                function: function.clone(),
                status: status.into(),
            })
            .inc();
        let labels = FunctionLabels { function };
        self.call_duration
            .get_or_create(&labels)
            .observe(duration.as_secs_f64());
        if cold {
            self.cold_starts.get_or_create(&labels).inc();
        }
    }

    /// Counts one cron tick or broker message handled by `trigger`.
    pub fn trigger_fired(&self, trigger: &str, result: &str) {
        self.trigger_firings
            .get_or_create(&TriggerLabels {
                trigger: trigger.to_string(),
                result: result.to_string(),
            })
            .inc();
    }

    /// Records how long a call waited for an instance.
    pub fn queue_waited(&self, function: &str, waited: Duration) {
        self.queue_wait
            .get_or_create(&FunctionLabels {
                function: function.to_string(),
            })
            .observe(waited.as_secs_f64());
    }

    /// Observes how long a cold call waited for its container or instance.
    pub fn cold_start(&self, function: &str, took: Duration) {
        self.cold_start
            .get_or_create(&FunctionLabels {
                function: function.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// Sets the engine gate's gauges: its limit, operations running and waiting.
    pub fn engine(&self, limit: usize, running: usize, waiting: usize) {
        self.engine_limit.set(limit as i64);
        self.engine_running.set(running as i64);
        self.engine_waiting.set(waiting as i64);
    }

    /// Sets the exec driver's gauges.
    pub fn exec(&self, stats: crate::exec::ExecStats) {
        for (state, count) in [
            ("ready", stats.ready),
            ("preparing", stats.preparing),
            ("removing", stats.removing),
        ] {
            self.exec_containers
                .get_or_create(&StateLabels {
                    state: state.to_string(),
                })
                .set(count as i64);
        }
        self.exec_waiting.set(stats.waiting as i64);
    }

    /// Also exports the allocator's figures, read from `probe` at each scrape, as
    /// `skiff_heap_allocated_bytes` and `skiff_heap_resident_bytes`.
    pub fn with_heap(mut self, probe: HeapProbe) -> Self {
        let allocated = Gauge::default();
        self.registry.register(
            "heap_allocated_bytes",
            "Bytes the daemon holds allocated (from its memory allocator)",
            allocated.clone(),
        );
        let resident = Gauge::default();
        self.registry.register(
            "heap_resident_bytes",
            "Bytes of physical memory the daemon's allocator holds, freed pages not yet returned included",
            resident.clone(),
        );
        self.heap = Some(Heap {
            probe,
            allocated,
            resident,
        });
        self
    }

    /// The text exposition, with the gauges set from the current state.
    pub fn render(
        &self,
        running: usize,
        queued: usize,
        instances: &std::collections::HashMap<InstanceState, usize>,
    ) -> String {
        self.calls_running.set(running as i64);
        self.calls_queued.set(queued as i64);
        self.instances.clear();
        for (state, count) in instances {
            self.instances
                .get_or_create(&StateLabels {
                    state: state.to_string(),
                })
                .set(*count as i64);
        }
        if let Some(heap) = &self.heap {
            if let Some(figures) = (heap.probe)() {
                heap.allocated
                    .set(i64::try_from(figures.allocated).unwrap_or(i64::MAX));
                heap.resident
                    .set(i64::try_from(figures.resident).unwrap_or(i64::MAX));
            }
        }
        let mut text = String::new();
        if let Err(err) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(%err, "cannot encode the metrics");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_by_function_and_status() {
        let metrics = Metrics::new();
        metrics.call_finished(
            "hello",
            CallStatus::Succeeded,
            Duration::from_millis(3),
            true,
        );
        metrics.call_finished(
            "hello",
            CallStatus::Succeeded,
            Duration::from_millis(2),
            false,
        );
        metrics.call_finished("hello", CallStatus::TimedOut, Duration::from_secs(1), false);
        let text = metrics.render(1, 2, &Default::default());
        assert!(
            text.contains(r#"skiff_calls_total{function="hello",status="succeeded"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"skiff_calls_total{function="hello",status="timed_out"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"skiff_cold_starts_total{function="hello"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"skiff_call_duration_seconds_count{function="hello"} 3"#),
            "{text}"
        );
        assert!(text.contains("skiff_calls_running 1"), "{text}");
        assert!(text.contains("skiff_calls_queued 2"), "{text}");
    }

    #[test]
    fn heap_figures_are_read_at_each_scrape_where_there_is_a_probe() {
        let without = Metrics::new().render(0, 0, &Default::default());
        assert!(!without.contains("skiff_heap_"), "{without}");
        let metrics = Metrics::new().with_heap(|| {
            Some(HeapFigures {
                allocated: 1234,
                resident: 5678,
            })
        });
        let text = metrics.render(0, 0, &Default::default());
        assert!(text.contains("skiff_heap_allocated_bytes 1234"), "{text}");
        assert!(text.contains("skiff_heap_resident_bytes 5678"), "{text}");
    }
}
