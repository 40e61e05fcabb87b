//! `/calls/{id}`: one call: its record, its timings (wait, start, run), its error, the
//! result of an async call, its log, and a redrive button when it is dead.

use crate::format;
use crate::layout::{self, badge, Section};
use maud::{html, Markup};
use skiff_core::{CallDetails, CallRecord, CallStatus};

/// What the call page shows.
#[derive(Debug, Clone)]
pub(crate) struct CallPage {
    pub(crate) details: CallDetails,
    pub(crate) logs: Vec<u8>,
    /// What came of a redrive asked from this page.
    pub(crate) notice: Option<Notice>,
    /// Whether the session's token may redrive (`invoke`).
    pub(crate) may_redrive: bool,
}

/// A message above the record.
#[derive(Debug, Clone)]
pub(crate) enum Notice {
    Done(String),
    Failed(String),
}

pub(crate) fn render(p: &CallPage) -> Markup {
    let r = &p.details.record;
    let body = html! {
        h1 { "Call " code.callid { (r.id) } }
        @match &p.notice {
            Some(Notice::Done(text)) => p.notice { (text) },
            Some(Notice::Failed(text)) => p.error { (text) },
            None => {},
        }
        div #call data-live=(if r.status.is_final() { "" } else { "until-final" }) {
            p.summary {
                (badge(r.status.as_str())) " "
                a href=(format!("/functions/{}", r.function)) { (r.function) }
                " · " (r.trigger.as_str()) " · attempt " (r.attempt)
                " · received " (format::time(&r.received_at))
            }
            @if r.status == CallStatus::Dead && p.may_redrive {
                form.redrive method="post" action=(format!("/calls/{}/redrive", r.id)) {
                    button type="submit" { "Redrive" }
                    span.note { " Queue this dead call again for a new round of attempts." }
                }
            }
            @if let Some(kind) = r.error_type {
                section.failure {
                    h2 { "Error" }
                    p { strong.error { (kind.to_string()) } }
                    @if let Some(message) = &r.error_message { pre.message { (message) } }
                }
            }
            section { h2 { "Timings" } (timings(r)) }
            @if let Some(result) = &p.details.result {
                section {
                    h2 { "Result" }
                    p.note {
                        "Status " (result.status_code)
                        @if let Some(ct) = &result.content_type { " · " (ct) }
                        " · " (result.size) " bytes"
                        @if result.truncated { " (truncated)" }
                        " · " (format!("{:?}", result.encoding).to_lowercase())
                    }
                    pre.result { (result.body) }
                }
            }
            section {
                h2 { "Log" }
                @if p.logs.is_empty() {
                    p.muted { "This call wrote no log." }
                } @else {
                    pre.log #call-log { (String::from_utf8_lossy(&p.logs)) }
                }
            }
            section {
                h2 { "Record" }
                (record(r))
            }
        }
    };
    layout::page(
        &format!("Call {}", format::short(&r.id.to_string())),
        Section::Calls,
        body,
    )
}

/// Wait, start and run as a bar and as figures: the wait for a slot (and a warm container
/// or instance), the cold start of a container or instance started for the call, and the
/// rest of the whole duration.
fn timings(r: &CallRecord) -> Markup {
    let wait = r.wait_ms.unwrap_or(0);
    let start = start_ms(r);
    let total = r.duration_ms;
    let run = total.map(|t| t.saturating_sub(wait + start.unwrap_or(0)));
    let whole = total.unwrap_or(wait).max(1) as f64;
    let width = |ms: u64| (ms as f64 / whole * 100.0).max(if ms > 0 { 0.5 } else { 0.0 });
    html! {
        svg.timeline viewBox="0 0 100 6" preserveAspectRatio="none" role="img" aria-label="wait, start and run" {
            rect.wait x="0" y="0" width=(width(wait)) height="6" {}
            rect.start x=(width(wait)) y="0" width=(width(start.unwrap_or(0))) height="6" {}
            rect.run x=(width(wait) + width(start.unwrap_or(0))) y="0" width=(width(run.unwrap_or(0))) height="6" {}
        }
        dl.timings {
            dt { span.swatch.wait {} "wait" } dd { (format::ms(wait)) }
            dt { span.swatch.start {} "start" } dd { (format::ms_opt(start)) }
            dt { span.swatch.run {} "run" } dd { (format::ms_opt(run)) }
            dt { "total" } dd { (format::ms_opt(total)) }
        }
    }
}

/// How long the call waited for a container or instance started for it.
fn start_ms(record: &CallRecord) -> Option<u64> {
    record.start_ms
}

fn record(r: &CallRecord) -> Markup {
    let value = serde_json::to_value(r).unwrap_or_default();
    let fields = super::fields(&value);
    html! {
        dl.config { @for (key, text) in &fields { dt { (key) } dd { (text) } } }
    }
}
