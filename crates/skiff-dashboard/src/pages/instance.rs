//! `/functions/{name}/instances/{id}`: what one instance wrote, line by line, over a window.

use crate::format;
use crate::layout::{self, Section};
use maud::{html, Markup};
use skiff_core::api::LogLine;

/// What the instance page shows.
#[derive(Debug, Clone)]
pub(crate) struct InstancePage {
    pub(crate) function: String,
    pub(crate) instance: String,
    pub(crate) window: String,
    pub(crate) lines: Vec<LogLine>,
}

pub(crate) fn render(p: &InstancePage) -> Markup {
    let body = html! {
        h1 { "Instance " code { (p.instance) } " of "
            a href=(format!("/functions/{}", p.function)) { (p.function) } }
        nav.windows {
            @for w in super::function::WINDOWS {
                a class=(if w == p.window { "current" } else { "" })
                    href=(format!("/functions/{}/instances/{}?window={w}", p.function, p.instance)) { (w) }
            }
        }
        p.note { "What the instance wrote to stdout and stderr over the last " (p.window) " (its last 2,000 lines at most), oldest first. "
            a href=(format!("/v1/functions/{}/instances/{}/logs", p.function, p.instance)) { "As JSON" } }
        div #lines data-live {
            @if p.lines.is_empty() {
                p.muted { "No line in this window." }
            } @else {
                pre.log { @for l in &p.lines {
                    (format::time(&l.at)) " " (l.stream.as_str()) "  " (l.line) "\n"
                } }
            }
        }
    };
    layout::page(
        &format!("Instance {}", p.instance),
        Section::Functions,
        body,
    )
}
