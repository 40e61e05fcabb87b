//! One module per page. Each renders from data the handler gathered; none does I/O.

pub(crate) mod call;
pub(crate) mod calls;
pub(crate) mod function;
pub(crate) mod instance;
pub(crate) mod overview;

use maud::{html, Markup};
use skiff_core::InstanceState;
use std::collections::BTreeMap;

/// A listing's namespace selector: what the session's token may choose between (empty:
/// nothing to choose), and the namespace shown (`*`: every one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Namespaces {
    pub(crate) choices: Vec<String>,
    pub(crate) current: String,
}

impl Namespaces {
    /// The `ns` field of a `GET` form (none when there is nothing to choose).
    pub(crate) fn field(&self) -> Markup {
        html! {
            @if !self.choices.is_empty() {
                label { "Namespace "
                    select name="ns" {
                        @for ns in &self.choices {
                            option value=(ns) selected[*ns == self.current] {
                                (if ns == skiff_core::access::ALL_NAMESPACES { "all" } else { ns.as_str() })
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Instances by the states the pages show: starting, ready, busy, paused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StateCounts {
    pub(crate) starting: usize,
    pub(crate) ready: usize,
    pub(crate) busy: usize,
    pub(crate) paused: usize,
}

impl StateCounts {
    /// Counts `states`.
    pub(crate) fn of(states: impl IntoIterator<Item = InstanceState>) -> Self {
        let mut counts = StateCounts::default();
        for state in states {
            match state {
                InstanceState::Creating | InstanceState::Starting => counts.starting += 1,
                InstanceState::Ready | InstanceState::Idle => counts.ready += 1,
                InstanceState::Busy => counts.busy += 1,
                InstanceState::Paused => counts.paused += 1,
                InstanceState::Stopping | InstanceState::Gone | InstanceState::Failed => {}
            }
        }
        counts
    }
}

/// A JSON object's fields as `(name, text)` pairs, nulls and empty lists left out: a
/// record shown as it is, whatever fields it grows.
pub(crate) fn fields(value: &serde_json::Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(object) = value.as_object() {
        for (key, value) in object {
            let text = match value {
                serde_json::Value::Null => continue,
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Array(items) if items.is_empty() => continue,
                serde_json::Value::Object(map) if map.is_empty() => continue,
                other => other.to_string(),
            };
            out.insert(key.clone(), text);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_are_counted_as_the_pages_show_them() {
        let counts = StateCounts::of([
            InstanceState::Starting,
            InstanceState::Ready,
            InstanceState::Idle,
            InstanceState::Busy,
            InstanceState::Paused,
            InstanceState::Stopping,
        ]);
        assert_eq!(
            counts,
            StateCounts {
                starting: 1,
                ready: 2,
                busy: 1,
                paused: 1
            }
        );
    }

    #[test]
    fn the_selector_offers_the_choices_only_when_there_are_some() {
        let none = Namespaces {
            choices: Vec::new(),
            current: "team-a".into(),
        };
        assert_eq!(none.field().into_string(), "");
        let some = Namespaces {
            choices: vec!["*".into(), "team-a".into()],
            current: "team-a".into(),
        };
        let html = some.field().into_string();
        assert!(html.contains("name=\"ns\""), "{html}");
        assert!(html.contains("<option value=\"*\">all</option>"), "{html}");
        assert!(
            html.contains("<option value=\"team-a\" selected>team-a</option>"),
            "{html}"
        );
    }

    #[test]
    fn fields_leave_out_what_is_empty() {
        let value = serde_json::json!({"a": "text", "b": null, "c": [], "d": 3, "e": {}});
        let fields = fields(&value);
        assert_eq!(fields.get("a").map(String::as_str), Some("text"));
        assert_eq!(fields.get("d").map(String::as_str), Some("3"));
        assert_eq!(fields.len(), 2);
    }
}
