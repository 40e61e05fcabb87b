//! `/functions/{name}`: a function's configuration (secret values never shown), its
//! instances, charts of its calls over time, its recent calls, its triggers, and its output
//! followed live.

use super::calls::calls_table;
use super::overview::{function_state, instances as state_summary};
use super::StateCounts;
use crate::charts::{Chart, Kind, Series, Unit};
use crate::format;
use crate::layout::{self, badge, Section};
use maud::{html, Markup};
use skiff_core::api::{FunctionStats, InstanceView, StatsTotals};
use skiff_core::{CallRecord, FunctionView, TriggerView};

/// The windows the charts can cover.
pub(crate) const WINDOWS: [&str; 4] = ["15m", "1h", "6h", "1d"];

/// What the function page shows.
#[derive(Debug, Clone)]
pub(crate) struct FunctionPage {
    pub(crate) function: FunctionView,
    pub(crate) instances: Vec<InstanceView>,
    pub(crate) stats: FunctionStats,
    pub(crate) window: String,
    pub(crate) calls: Vec<CallRecord>,
    pub(crate) triggers: Vec<TriggerView>,
}

pub(crate) fn render(p: &FunctionPage) -> Markup {
    let f = &p.function;
    let counts = StateCounts::of(p.instances.iter().map(|i| i.state));
    let body = html! {
        h1 { (f.name) " " span.muted { (f.contract.to_string()) } " " (function_state(f)) }
        @if let Some(state) = &f.state {
            @if let Some(error) = &state.last_error {
                p.error data-live id="function-error" {
                    (state.failures) " failure(s) in a row: " (error)
                    @if let Some(at) = state.retry_at { " The next start is at " (format::time(&at)) "." }
                }
            }
        }
        section #figures.cards data-live { (cards(&p.stats.totals, &p.window)) }
        section {
            h2 { "Calls over time" }
            nav.windows {
                @for w in WINDOWS {
                    a class=(if w == p.window { "current" } else { "" })
                        href=(format!("/functions/{}?window={w}", f.name)) { (w) }
                }
            }
            div #charts.charts data-live { (charts(&p.stats)) }
            @if !p.stats.complete {
                p.note { "This window holds more calls than are read at once: its oldest calls are left out." }
            }
        }
        section {
            h2 { "Instances " (state_summary(&counts)) }
            div.scroll data-live id="instances" {
                @if p.instances.is_empty() {
                    p.muted { @if f.contract == skiff_core::Contract::Exec {
                        "An exec function runs a fresh container per call."
                    } @else { "No instance is running." } }
                } @else {
                    table {
                        thead { tr { th { "Instance" } th { "State" } th.num { "In flight" } th.num { "Version" } th.num { "Idle" } th { "Logs" } } }
                        tbody { @for i in &p.instances {
                            tr {
                                td { code { (i.id) } }
                                td { (badge(&i.state.to_string())) }
                                td.num { (i.in_flight) }
                                td.num { (i.version) }
                                td.num { (i.idle_seconds) " s" }
                                td { a href=(format!("/functions/{}/instances/{}", f.name, i.id)) { "lines" } }
                            }
                        } }
                    }
                }
            }
        }
        section {
            h2 { "Recent calls " a.more href=(format!("/calls?function={}", f.name)) { "all" } }
            div.scroll #recent data-live { (calls_table(&p.calls, false)) }
        }
        section {
            h2 { "Live output" }
            p.note { "Lines appear here as the function writes them (stderr of each call of an exec function, the output of each instance). Needs JavaScript; without it, each call's log is on its page." }
            pre #live-log.log data-follow=(format!("/v1/functions/{}/logs/follow", f.name)) {}
        }
        section {
            h2 { "Triggers" }
            @if p.triggers.is_empty() {
                p.muted { "No trigger starts calls of this function." }
            } @else {
                div.scroll { table {
                    thead { tr { th { "Trigger" } th { "Kind" } th { "Source" } th { "State" } th { "Last tick" } th { "Last error" } } }
                    tbody { @for t in &p.triggers {
                        tr {
                            td { (t.name) }
                            td { (t.kind.as_str()) }
                            td { (trigger_source(t)) }
                            td { (badge(t.state.as_str())) }
                            td { @if let Some(tick) = &t.last_tick { (format::time(tick)) } @else { "-" } }
                            td { (t.last_error.clone().unwrap_or_default()) }
                        }
                    } }
                } }
            }
        }
        section {
            h2 { "Configuration" }
            (configuration(f))
        }
    };
    layout::page(&f.name, Section::Functions, body)
}

fn cards(t: &StatsTotals, window: &str) -> Markup {
    html! {
        div.card { span.value { (t.calls) } span.label { "calls (" (window) ")" } }
        div.card { span.value { (t.errors) } span.label { "errors" } }
        div.card { span.value { (format::ms_opt(t.p50_ms)) } span.label { "p50 latency" } }
        div.card { span.value { (format::ms_opt(t.p99_ms)) } span.label { "p99 latency" } }
        div.card { span.value { (t.cold_starts) } span.label { "cold starts" } }
        div.card { span.value { (format::ms_opt(t.queue_wait_p99_ms)) } span.label { "p99 queue wait" } }
    }
}

fn charts(stats: &FunctionStats) -> Markup {
    let times: Vec<_> = stats.buckets.iter().map(|b| b.start).collect();
    let of = |f: &dyn Fn(&StatsTotals) -> Option<f64>| -> Vec<Option<f64>> {
        stats.buckets.iter().map(|b| f(&b.figures)).collect()
    };
    let ms = |v: Option<u64>| v.map(|v| v as f64);
    let count = |v: u64| Some(v as f64);
    let charts = [
        Chart {
            title: "Latency",
            unit: Unit::Millis,
            times: &times,
            series: vec![
                Series {
                    name: "p50",
                    kind: Kind::Line,
                    values: of(&|t| ms(t.p50_ms)),
                },
                Series {
                    name: "p99",
                    kind: Kind::Line,
                    values: of(&|t| ms(t.p99_ms)),
                },
            ],
        },
        Chart {
            title: "Throughput and errors (calls per bucket)",
            unit: Unit::Count,
            times: &times,
            series: vec![
                Series {
                    name: "calls",
                    kind: Kind::Bar,
                    values: of(&|t| count(t.calls)),
                },
                Series {
                    name: "errors",
                    kind: Kind::Bar,
                    values: of(&|t| count(t.errors)),
                },
            ],
        },
        Chart {
            title: "Cold starts",
            unit: Unit::Count,
            times: &times,
            series: vec![Series {
                name: "cold starts",
                kind: Kind::Bar,
                values: of(&|t| count(t.cold_starts)),
            }],
        },
        Chart {
            title: "Cold start duration",
            unit: Unit::Millis,
            times: &times,
            series: vec![
                Series {
                    name: "p50",
                    kind: Kind::Line,
                    values: of(&|t| ms(t.cold_start_p50_ms)),
                },
                Series {
                    name: "p99",
                    kind: Kind::Line,
                    values: of(&|t| ms(t.cold_start_p99_ms)),
                },
            ],
        },
        Chart {
            title: "Queue wait",
            unit: Unit::Millis,
            times: &times,
            series: vec![
                Series {
                    name: "p50",
                    kind: Kind::Line,
                    values: of(&|t| ms(t.queue_wait_p50_ms)),
                },
                Series {
                    name: "p99",
                    kind: Kind::Line,
                    values: of(&|t| ms(t.queue_wait_p99_ms)),
                },
            ],
        },
    ];
    html! { @for chart in &charts { (chart.render()) } }
}

fn trigger_source(t: &TriggerView) -> String {
    if let Some(cron) = &t.cron {
        return format!(
            "{} ({})",
            cron.schedule,
            cron.timezone.as_deref().unwrap_or("UTC")
        );
    }
    if let Some(nats) = &t.nats {
        return format!("{} {}", nats.stream, nats.subjects.join(", "));
    }
    String::new()
}

/// The configuration as the API shows it: secret names only, never their values.
fn configuration(f: &FunctionView) -> Markup {
    let value = serde_json::to_value(f).unwrap_or_default();
    let mut fields = super::fields(&value);
    fields.remove("env");
    fields.remove("secrets");
    fields.remove("name");
    html! {
        dl.config {
            @for (key, text) in &fields { dt { (key) } dd { (text) } }
            @if !f.env.is_empty() {
                dt { "env" }
                dd { @for (k, v) in &f.env { code { (k) "=" (v) } " " } }
            }
            @if !f.secrets.is_empty() {
                dt { "secrets" }
                dd { @for name in &f.secrets { code { (name) "=••••••" } " " } }
            }
        }
    }
}
