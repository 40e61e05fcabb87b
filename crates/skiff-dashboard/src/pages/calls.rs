//! `/calls`: the calls explorer: filters for function, status, trigger and time, newest
//! first, a page at a time.

use crate::format;
use crate::layout::{self, badge, Section};
use maud::{html, Markup};
use skiff_core::{CallRecord, CallStatus};
use uuid::Uuid;

/// Triggers, as the filter offers them.
pub(crate) const TRIGGERS: [&str; 6] = ["http", "api", "async", "cron", "queue", "lambda_api"];
/// Time filters: calls received in the last ...
pub(crate) const SINCE: [&str; 4] = ["5m", "1h", "1d", "7d"];

/// The filters as the form holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Filters {
    /// The namespace asked (`?ns=`).
    pub(crate) namespace: Option<String>,
    pub(crate) function: Option<String>,
    pub(crate) status: Option<String>,
    pub(crate) trigger: Option<String>,
    pub(crate) since: Option<String>,
}

impl Filters {
    /// The query string of these filters, for links.
    pub(crate) fn query(&self, before: Option<Uuid>) -> String {
        let mut pairs: Vec<String> = Vec::new();
        for (key, value) in [
            ("ns", &self.namespace),
            ("function", &self.function),
            ("status", &self.status),
            ("trigger", &self.trigger),
            ("since", &self.since),
        ] {
            if let Some(value) = value {
                pairs.push(format!("{key}={}", encode(value)));
            }
        }
        if let Some(before) = before {
            pairs.push(format!("before={before}"));
        }
        pairs.join("&")
    }
}

/// Percent-encodes what a query value must not hold as it is.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// What the explorer shows.
#[derive(Debug, Clone)]
pub(crate) struct CallsPage {
    pub(crate) filters: Filters,
    pub(crate) functions: Vec<String>,
    pub(crate) namespaces: super::Namespaces,
    pub(crate) calls: Vec<CallRecord>,
    pub(crate) next: Option<Uuid>,
    /// A filter that could not be read.
    pub(crate) problem: Option<String>,
}

pub(crate) fn render(p: &CallsPage) -> Markup {
    let f = &p.filters;
    let selected = |current: &Option<String>, value: &str| current.as_deref() == Some(value);
    let body = html! {
        h1 { "Calls" }
        form.filters method="get" action="/calls" {
            (p.namespaces.field())
            label { "Function "
                select name="function" {
                    option value="" { "any" }
                    @for name in &p.functions {
                        option value=(name) selected[selected(&f.function, name)] { (name) }
                    }
                }
            }
            label { "Status "
                select name="status" {
                    option value="" { "any" }
                    @for status in CallStatus::ALL {
                        option value=(status.as_str()) selected[selected(&f.status, status.as_str())] { (status.as_str()) }
                    }
                }
            }
            label { "Trigger "
                select name="trigger" {
                    option value="" { "any" }
                    @for trigger in TRIGGERS {
                        option value=(trigger) selected[selected(&f.trigger, trigger)] { (trigger) }
                    }
                }
            }
            label { "Received "
                select name="since" {
                    option value="" { "any time" }
                    @for since in SINCE {
                        option value=(since) selected[selected(&f.since, since)] { "last " (since) }
                    }
                }
            }
            button type="submit" { "Filter" }
        }
        @if let Some(problem) = &p.problem {
            p.error { (problem) }
        }
        div.scroll #calls data-live { (calls_table(&p.calls, true)) }
        @if let Some(next) = p.next {
            p { a.more href=(format!("/calls?{}", f.query(Some(next)))) { "Older calls →" } }
        }
    };
    layout::page("Calls", Section::Calls, body)
}

/// A table of calls, newest first; with the function's column or without.
pub(crate) fn calls_table(calls: &[CallRecord], with_function: bool) -> Markup {
    html! {
        @if calls.is_empty() {
            p.muted { "No call yet." }
        } @else {
            table.calls {
                thead { tr {
                    th { "Call" }
                    @if with_function { th { "Function" } }
                    th { "Status" } th { "Trigger" } th { "Cold" }
                    th.num { "Duration" } th.num { "Wait" } th { "Received" } th { "Error" }
                } }
                tbody {
                    @for call in calls {
                        tr data-call=(call.id) {
                            td { a href=(format!("/calls/{}", call.id)) { code { (format::short(&call.id.to_string())) } } }
                            @if with_function {
                                td { a href=(format!("/functions/{}", call.function)) { (call.function) } }
                            }
                            td { (badge(call.status.as_str())) }
                            td { (call.trigger.as_str()) }
                            td { (match call.cold { Some(true) => "cold", Some(false) => "warm", None => "-" }) }
                            td.num { (format::ms_opt(call.duration_ms)) }
                            td.num { (format::ms_opt(call.wait_ms)) }
                            td { (format::time(&call.received_at)) }
                            td.error { (call.error_type.map(|e| e.to_string()).unwrap_or_default()) }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_make_their_query() {
        let filters = Filters {
            function: Some("a b".into()),
            status: Some("dead".into()),
            ..Filters::default()
        };
        assert_eq!(filters.query(None), "function=a%20b&status=dead");
        let filters = Filters {
            namespace: Some("*".into()),
            ..Filters::default()
        };
        assert_eq!(filters.query(None), "ns=%2A");
        assert_eq!(
            Filters::default().query(Some(Uuid::nil())),
            format!("before={}", Uuid::nil())
        );
    }
}
