//! Which of the networks sharing a name every daemon on one engine settles on.
//!
//! Docker keeps no network names unique, and a container's start finds its network by name:
//! while two networks share the name, no container on either starts ("ambiguous"). Daemons
//! starting at once on one engine can each create the functions' network, and a create shows
//! in listings only once it is done, stamped with the moment it began: a network made before
//! another can show after it, so "the oldest one seen" is not yet an answer.
//!
//! A create that a daemon does not see yet was begun by a daemon whose listing was empty,
//! before the first network showed; it shows within [`SETTLE`] of then (a generous bound on
//! one create, list to done). So once networks show, a daemon waits until [`SETTLE`] has
//! passed since it looked, or until the youngest network is twice that old (a daemon
//! restarting beside an old network waits for nothing), and looks again: the listing then
//! holds every contender. Every daemon settles on the oldest (the lowest id among equals)
//! and removes the others, on which nothing runs: no daemon settled on them.
//!
//! This module decides; [`crate::docker::DockerEngine`] lists, waits, creates and removes.

use chrono::{DateTime, Utc};
use std::time::Duration;

/// A generous bound on one network create, from the listing that found no network to the
/// network showing in listings. The engine's clock is taken to be this host's: on a remote
/// engine whose clock runs behind, the age shortcut can cut the wait short.
pub(crate) const SETTLE: Duration = Duration::from_secs(2);

/// A network of the name, as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    pub id: String,
    /// When its create began, if the engine says.
    pub created: Option<DateTime<Utc>>,
}

/// What to do next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// No network of the name: create one, then look again.
    Create,
    /// Contenders may still show: look again after this long.
    Wait(Duration),
    /// Use `chosen`; remove `others`.
    Settled { chosen: String, others: Vec<String> },
}

/// The next step, given the networks a listing at `now` shows and whether this daemon has
/// waited since it first saw some.
pub(crate) fn next(mut seen: Vec<Seen>, now: DateTime<Utc>, waited: bool) -> Step {
    if seen.is_empty() {
        return Step::Create;
    }
    if !waited {
        // A network without a creation time counts as just made.
        let youngest_age = seen
            .iter()
            .map(|n| n.created.map_or(Duration::ZERO, |c| age(c, now)))
            .min()
            .unwrap_or(Duration::ZERO);
        let wait = SETTLE.min((SETTLE * 2).saturating_sub(youngest_age));
        if !wait.is_zero() {
            return Step::Wait(wait);
        }
    }
    // Networks with a creation time first, oldest first; the id breaks ties.
    seen.sort_by(|a, b| {
        (a.created.is_none(), a.created, &a.id).cmp(&(b.created.is_none(), b.created, &b.id))
    });
    let mut ids = seen.into_iter().map(|n| n.id);
    let chosen = ids.next().unwrap_or_default();
    Step::Settled {
        chosen,
        others: ids.collect(),
    }
}

/// How long ago `created` was; zero if it is in the future (a clock ahead of this host's).
fn age(created: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (now - created).to_std().unwrap_or(Duration::ZERO)
}

/// The creation time a listing gives (RFC 3339 with nanoseconds), if it is one.
pub(crate) fn parse_created(created: Option<&str>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(created?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        parse_created(Some(s)).expect("a time")
    }

    fn seen(id: &str, created: &str) -> Seen {
        Seen {
            id: id.to_string(),
            created: Some(at(created)),
        }
    }

    #[test]
    fn nothing_seen_means_create() {
        assert_eq!(
            next(vec![], at("2026-01-01T00:00:00Z"), false),
            Step::Create
        );
        assert_eq!(next(vec![], at("2026-01-01T00:00:00Z"), true), Step::Create);
    }

    #[test]
    fn a_young_network_is_waited_for_at_most_settle() {
        let now = at("2026-01-01T00:00:10Z");
        let just_made = vec![seen("b", "2026-01-01T00:00:10Z")];
        assert_eq!(next(just_made, now, false), Step::Wait(SETTLE));
        let three_seconds = vec![seen("b", "2026-01-01T00:00:07Z")];
        assert_eq!(
            next(three_seconds, now, false),
            Step::Wait(Duration::from_secs(1))
        );
        let unknown = vec![Seen {
            id: "b".to_string(),
            created: None,
        }];
        assert_eq!(next(unknown, now, false), Step::Wait(SETTLE));
    }

    #[test]
    fn an_old_network_is_used_at_once() {
        let now = at("2026-01-01T00:10:00Z");
        assert_eq!(
            next(vec![seen("a", "2026-01-01T00:00:00Z")], now, false),
            Step::Settled {
                chosen: "a".to_string(),
                others: vec![]
            }
        );
    }

    #[test]
    fn the_youngest_decides_the_wait() {
        let now = at("2026-01-01T00:10:00Z");
        let networks = vec![
            seen("a", "2026-01-01T00:00:00Z"),
            seen("b", "2026-01-01T00:09:59.5Z"),
        ];
        assert_eq!(next(networks, now, false), Step::Wait(SETTLE));
    }

    /// The race this module exists for: a network whose create began first shows last.
    /// After the wait, every daemon settles on it, whichever it saw first.
    #[test]
    fn after_the_wait_all_settle_on_the_oldest_and_remove_the_rest() {
        let now = at("2026-01-01T00:00:02Z");
        let shown_first = seen("b", "2026-01-01T00:00:00.25Z");
        let begun_first = seen("c", "2026-01-01T00:00:00.125Z");
        let shown_last = seen("a", "2026-01-01T00:00:00.25Z");
        for order in [
            vec![shown_first.clone(), begun_first.clone(), shown_last.clone()],
            vec![shown_last.clone(), shown_first.clone(), begun_first.clone()],
        ] {
            assert_eq!(
                next(order, now, true),
                Step::Settled {
                    chosen: "c".to_string(),
                    others: vec!["a".to_string(), "b".to_string()],
                }
            );
        }
    }

    /// Times compare as times: RFC 3339 with nanoseconds drops trailing zeros, so as strings
    /// `.1Z` sorts after `.12Z`.
    #[test]
    fn creation_times_compare_as_times_not_strings() {
        let now = at("2026-01-01T00:00:10Z");
        let networks = vec![
            seen("x", "2026-01-01T00:00:05.12Z"),
            seen("y", "2026-01-01T00:00:05.1Z"),
        ];
        assert_eq!(
            next(networks, now, true),
            Step::Settled {
                chosen: "y".to_string(),
                others: vec!["x".to_string()],
            }
        );
    }

    #[test]
    fn a_network_without_a_time_loses_to_one_with() {
        let now = at("2026-01-01T00:00:10Z");
        let networks = vec![
            Seen {
                id: "a".to_string(),
                created: None,
            },
            seen("z", "2026-01-01T00:00:05Z"),
        ];
        assert_eq!(
            next(networks, now, true),
            Step::Settled {
                chosen: "z".to_string(),
                others: vec!["a".to_string()],
            }
        );
    }

    #[test]
    fn engine_timestamps_parse() {
        assert!(parse_created(Some("2026-12-01T19:59:34.896266391Z")).is_some());
        assert!(parse_created(Some("2026-12-01T19:59:34.896266391+01:00")).is_some());
        assert!(parse_created(Some("not a time")).is_none());
        assert!(parse_created(None).is_none());
    }
}
