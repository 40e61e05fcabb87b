//! `/`: every function (of the namespace shown) with its contract, its instances by state, and its calls over the
//! last minutes.

use super::{Namespaces, StateCounts};
use crate::format;
use crate::layout::{self, Section};
use maud::{html, Markup};
use skiff_core::api::StatsTotals;
use skiff_core::FunctionView;

/// The window the overview's figures cover.
pub(crate) const WINDOW_MINUTES: u64 = 5;

/// One function's row.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) function: FunctionView,
    pub(crate) instances: StateCounts,
    pub(crate) totals: Option<StatsTotals>,
}

/// What the overview shows.
#[derive(Debug, Clone)]
pub(crate) struct Overview {
    pub(crate) rows: Vec<Row>,
    /// Calls running and waiting on the whole platform (shown to a `*` token only).
    pub(crate) load: Option<(usize, usize)>,
    pub(crate) namespaces: Namespaces,
}

pub(crate) fn render(o: &Overview) -> Markup {
    let body = html! {
        h1 { "Functions" }
        @if !o.namespaces.choices.is_empty() {
            form.filters method="get" action="/" {
                (o.namespaces.field())
                button type="submit" { "Show" }
            }
        }
        section #summary.cards data-live {
            div.card { span.value { (o.rows.len()) } span.label { "functions" } }
            @if let Some((running, queued)) = o.load {
                div.card { span.value { (running) } span.label { "calls running" } }
                div.card { span.value { (queued) } span.label { "calls waiting" } }
            }
        }
        p.note { "Calls, errors, latency and cold starts over the last " (WINDOW_MINUTES) " minutes." }
        div.scroll {
            table #functions data-live {
                thead { tr {
                    th { "Function" } th { "Contract" } th { "State" }
                    th title="starting / ready / busy / paused" { "Instances" }
                    th.num { "Calls/min" } th.num { "Errors/min" }
                    th.num { "p50" } th.num { "p99" } th.num { "Cold/min" }
                } }
                tbody {
                    @if o.rows.is_empty() {
                        tr { td colspan="9" { "No function is deployed. " code { "skiff deploy NAME --image IMAGE" } " makes one." } }
                    }
                    @for row in &o.rows {
                        @let t = row.totals.clone().unwrap_or_default();
                        tr data-function=(row.function.name) {
                            td { a href=(format!("/functions/{}", row.function.name)) { (row.function.name) } }
                            td { (row.function.contract.to_string()) }
                            td { (function_state(&row.function)) }
                            td { (instances(&row.instances)) }
                            td.num { (format::rate(t.calls_per_minute)) }
                            td.num class=(if t.errors > 0 { "num bad" } else { "num" }) { (format::rate(t.errors_per_minute)) }
                            td.num { (format::ms_opt(t.p50_ms)) }
                            td.num { (format::ms_opt(t.p99_ms)) }
                            td.num { (format::rate(t.cold_starts_per_minute)) }
                        }
                    }
                }
            }
        }
    };
    layout::page("Functions", Section::Functions, body)
}

/// The function's status as a badge, with its last error as the badge's title while its
/// instances fail (`backing_off`, `refused`).
pub(crate) fn function_state(f: &skiff_core::FunctionView) -> Markup {
    match &f.state {
        None => html! { span.muted { "-" } },
        Some(state) => {
            let word = state.status.as_str();
            html! {
                span class=(format!("badge {word}")) title=[state.last_error.as_deref()] { (word) }
            }
        }
    }
}

/// Instances by state, compactly.
pub(crate) fn instances(c: &StateCounts) -> Markup {
    if *c == StateCounts::default() {
        return html! { span.muted { "none" } };
    }
    html! {
        span.states {
            @if c.starting > 0 { span.state.starting { (c.starting) " starting" } }
            @if c.ready > 0 { span.state.ready { (c.ready) " ready" } }
            @if c.busy > 0 { span.state.busy { (c.busy) " busy" } }
            @if c.paused > 0 { span.state.paused { (c.paused) " paused" } }
        }
    }
}
