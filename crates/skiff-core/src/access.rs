//! Who may do what: scopes, namespaces, namespace-qualified names, and the [`Grant`] a
//! credential carries. Pure: the store keeps credentials, the gateway checks them.
//!
//! A function, trigger or volume lives in a namespace. Within the platform (the registry,
//! the store, call records, container labels) it is known by its *full name*: `NAME` in the
//! `default` namespace, `NS.NAME` in namespace `NS`. Names themselves never hold a `.`, so a
//! full name splits one way only.

use serde::{Deserialize, Serialize};
use std::fmt;
use utoipa::ToSchema;

/// The namespace of everything not placed in another.
pub const DEFAULT_NAMESPACE: &str = "default";
/// In a credential's namespaces: every namespace.
pub const ALL_NAMESPACES: &str = "*";
/// What separates a namespace from a name in a full name.
pub const NAMESPACE_SEPARATOR: char = '.';
/// The prefix of API token secrets (`skt_` + 43 base64url characters).
pub const TOKEN_PREFIX: &str = "skt_";
/// The prefix of function invoke key secrets.
pub const KEY_PREFIX: &str = "skk_";

/// What a credential allows.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Everything, tokens and the audit log included.
    Admin,
    /// Manage functions and triggers.
    Deploy,
    /// Call functions.
    Invoke,
    /// Read functions, calls, logs, stats, metrics; the dashboard.
    Read,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 4] = [Scope::Admin, Scope::Deploy, Scope::Invoke, Scope::Read];

    /// Its name: `admin`, `deploy`, `invoke`, `read`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::Deploy => "deploy",
            Scope::Invoke => "invoke",
            Scope::Read => "read",
        }
    }

    /// The scope called `name`.
    pub fn parse(name: &str) -> Result<Scope, String> {
        Scope::ALL
            .into_iter()
            .find(|s| s.as_str() == name)
            .ok_or_else(|| format!("`{name}` is not a scope: use admin, deploy, invoke or read"))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks a namespace name: 1 to 32 lowercase letters, digits or `-`, starting with a
/// letter or digit (or `*`, every namespace, where `wildcard` allows it).
pub fn check_namespace(name: &str, wildcard: bool) -> Result<(), String> {
    if wildcard && name == ALL_NAMESPACES {
        return Ok(());
    }
    let ok = (1..=32).contains(&name.len())
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid namespace: use 1 to 32 lowercase letters, digits or `-`, starting with a letter or digit"
        ))
    }
}

/// The full name of `name` in `namespace`: `name` in `default`, `namespace.name` elsewhere.
pub fn qualify(namespace: &str, name: &str) -> String {
    if namespace == DEFAULT_NAMESPACE {
        name.to_string()
    } else {
        format!("{namespace}{NAMESPACE_SEPARATOR}{name}")
    }
}

/// A full name split into its namespace and its name.
pub fn split(full: &str) -> (&str, &str) {
    match full.split_once(NAMESPACE_SEPARATOR) {
        Some((namespace, name)) => (namespace, name),
        None => (DEFAULT_NAMESPACE, full),
    }
}

/// The namespace of a full name.
pub fn namespace_of(full: &str) -> &str {
    split(full).0
}

/// What a valid credential allows: its scopes, in its namespaces, and for an invoke key,
/// one function only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The credential's id (`tok_...`, `key_...`), or `none` when authentication is off.
    pub id: String,
    /// The credential's name.
    pub name: String,
    /// Its scopes.
    pub scopes: Vec<Scope>,
    /// Its namespaces (`*`: every one).
    pub namespaces: Vec<String>,
    /// An invoke key's function (full name): the only one it may call.
    pub function: Option<String>,
}

impl Grant {
    /// What every request may do when authentication is off.
    pub fn unrestricted() -> Grant {
        Grant {
            id: "none".to_string(),
            name: "anonymous".to_string(),
            scopes: vec![Scope::Admin],
            namespaces: vec![ALL_NAMESPACES.to_string()],
            function: None,
        }
    }

    /// Whether it has `scope` (`admin` has every scope).
    pub fn has_scope(&self, scope: Scope) -> bool {
        self.scopes.contains(&Scope::Admin) || self.scopes.contains(&scope)
    }

    /// Whether it reaches `namespace`.
    pub fn covers(&self, namespace: &str) -> bool {
        self.namespaces
            .iter()
            .any(|n| n == ALL_NAMESPACES || n == namespace)
    }

    /// Whether it reaches every namespace (what the routes that are not in a namespace need:
    /// tokens, the audit log, the cluster, quotas).
    pub fn covers_all(&self) -> bool {
        self.namespaces.iter().any(|n| n == ALL_NAMESPACES)
    }

    /// The namespace a request names none for: the credential's own when it has one only,
    /// else `default`.
    pub fn default_namespace(&self) -> &str {
        match self.namespaces.as_slice() {
            [only] if only != ALL_NAMESPACES => only,
            _ => DEFAULT_NAMESPACE,
        }
    }

    /// Whether it may call the function `full` (an invoke key calls its function only).
    pub fn may_invoke(&self, full: &str) -> bool {
        let scoped = match &self.function {
            Some(function) => function == full,
            None => self.has_scope(Scope::Invoke),
        };
        scoped && self.covers(namespace_of(full))
    }

    /// Whether it reaches what the full name `full` names (a function, a call's function):
    /// whatever it does not reach, it is not to see.
    pub fn reaches(&self, full: &str) -> bool {
        self.covers(namespace_of(full))
    }

    /// Whether it may use the dashboard's pages that need `scope` (`read` to look,
    /// `invoke` to redrive): a token, not an invoke key, with that scope in at least one
    /// namespace.
    pub fn may_browse(&self, scope: Scope) -> bool {
        self.function.is_none() && self.has_scope(scope) && !self.namespaces.is_empty()
    }

    /// What a listing shows for it when `asked` (a page's `?ns=`, empty or absent when
    /// none) is asked: the namespace asked, if it reaches it; with none asked, the first of
    /// its namespaces, or every namespace when it has `*`. `None`: a namespace it does not
    /// reach (or no valid namespace), which is not to be shown.
    pub fn listing(&self, asked: Option<&str>) -> Option<Listing> {
        match asked.map(str::trim).filter(|a| !a.is_empty()) {
            Some(ALL_NAMESPACES) => self.covers_all().then_some(Listing::Every),
            Some(namespace) => (check_namespace(namespace, false).is_ok()
                && self.covers(namespace))
            .then(|| Listing::One(namespace.to_string())),
            None if self.covers_all() => Some(Listing::Every),
            None => self
                .namespaces
                .first()
                .map(|first| Listing::One(first.clone())),
        }
    }

    /// The namespaces a page offers it to choose between: its own (in its order), or for a
    /// `*` credential, `*` and the namespaces in `known` (those in use), sorted.
    pub fn choices<'a>(&self, known: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        if !self.covers_all() {
            return self.namespaces.clone();
        }
        let known: std::collections::BTreeSet<&str> = known.into_iter().collect();
        std::iter::once(ALL_NAMESPACES)
            .chain(known.into_iter().filter(|n| *n != ALL_NAMESPACES))
            .map(str::to_string)
            .collect()
    }
}

/// What a listing (functions, calls) shows: every namespace, or one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    /// Every namespace (a `*` credential that chose none).
    Every,
    /// One namespace.
    One(String),
}

impl Listing {
    /// The namespace it keeps to, `None` for every one: what a store query filters by.
    pub fn namespace(&self) -> Option<&str> {
        match self {
            Listing::Every => None,
            Listing::One(namespace) => Some(namespace),
        }
    }

    /// Whether it shows what the full name `full` names.
    pub fn shows(&self, full: &str) -> bool {
        self.namespace().is_none_or(|n| n == namespace_of(full))
    }

    /// Its value in a page's `?ns=`.
    pub fn as_query(&self) -> &str {
        self.namespace().unwrap_or(ALL_NAMESPACES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(scopes: &[Scope], namespaces: &[&str]) -> Grant {
        Grant {
            id: "tok_x".into(),
            name: "t".into(),
            scopes: scopes.to_vec(),
            namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
            function: None,
        }
    }

    #[test]
    fn full_names_split_one_way() {
        assert_eq!(qualify("default", "hello"), "hello");
        assert_eq!(qualify("team-a", "hello"), "team-a.hello");
        assert_eq!(split("team-a.hello"), ("team-a", "hello"));
        assert_eq!(split("hello"), ("default", "hello"));
        assert_eq!(namespace_of("x.y"), "x");
    }

    #[test]
    fn namespaces_are_checked() {
        for good in ["default", "team-a", "a", "0x"] {
            assert!(check_namespace(good, false).is_ok(), "{good}");
        }
        for bad in ["", "Team", "a.b", "-a", "a_b", "*", &"x".repeat(33)] {
            assert!(check_namespace(bad, false).is_err(), "{bad}");
        }
        assert!(check_namespace("*", true).is_ok());
    }

    #[test]
    fn admin_has_every_scope_and_others_their_own() {
        let admin = grant(&[Scope::Admin], &["*"]);
        assert!(Scope::ALL.iter().all(|s| admin.has_scope(*s)));
        let reader = grant(&[Scope::Read], &["team-a"]);
        assert!(reader.has_scope(Scope::Read));
        assert!(!reader.has_scope(Scope::Deploy));
        assert!(reader.covers("team-a") && !reader.covers("default"));
        assert!(!reader.covers_all());
        assert_eq!(reader.default_namespace(), "team-a");
        assert_eq!(admin.default_namespace(), "default");
    }

    #[test]
    fn keys_invoke_their_function_only() {
        let invoker = grant(&[Scope::Invoke], &["team-a"]);
        assert!(invoker.may_invoke("team-a.f"));
        assert!(!invoker.may_invoke("f"));
        let key = Grant {
            function: Some("team-a.f".into()),
            ..grant(&[Scope::Invoke], &["team-a"])
        };
        assert!(key.may_invoke("team-a.f"));
        assert!(!key.may_invoke("team-a.g"));
        assert!(!grant(&[Scope::Read], &["*"]).may_invoke("f"));
    }

    #[test]
    fn a_grant_reaches_its_namespaces_only() {
        let team = grant(&[Scope::Read], &["team-a", "team-b"]);
        assert!(team.reaches("team-a.f") && team.reaches("team-b.g"));
        assert!(!team.reaches("f"), "default is another namespace");
        assert!(!team.reaches("team-c.f"));
        assert!(grant(&[Scope::Read], &["*"]).reaches("anything.f"));
        assert!(grant(&[Scope::Read], &["default"]).reaches("f"));
    }

    #[test]
    fn the_dashboard_takes_tokens_with_the_scope_in_any_namespace() {
        assert!(grant(&[Scope::Read], &["team-a"]).may_browse(Scope::Read));
        assert!(grant(&[Scope::Admin], &["*"]).may_browse(Scope::Read));
        assert!(!grant(&[Scope::Deploy], &["*"]).may_browse(Scope::Read));
        assert!(!grant(&[Scope::Read], &[]).may_browse(Scope::Read));
        assert!(!grant(&[Scope::Read], &["team-a"]).may_browse(Scope::Invoke));
        let key = Grant {
            function: Some("team-a.f".into()),
            ..grant(&[Scope::Invoke, Scope::Read], &["team-a"])
        };
        assert!(!key.may_browse(Scope::Read) && !key.may_browse(Scope::Invoke));
    }

    #[test]
    fn a_listing_keeps_to_a_namespace_the_grant_reaches() {
        let one = |n: &str| Some(Listing::One(n.to_string()));
        let team = grant(&[Scope::Read], &["team-a", "team-b"]);
        assert_eq!(team.listing(None), one("team-a"), "the first by default");
        assert_eq!(team.listing(Some("")), one("team-a"));
        assert_eq!(team.listing(Some("team-b")), one("team-b"));
        assert_eq!(team.listing(Some("default")), None);
        assert_eq!(team.listing(Some("*")), None, "not every namespace");
        assert_eq!(team.listing(Some("Bad.ns")), None);
        let all = grant(&[Scope::Read], &["*"]);
        assert_eq!(all.listing(None), Some(Listing::Every));
        assert_eq!(all.listing(Some("*")), Some(Listing::Every));
        assert_eq!(all.listing(Some("team-c")), one("team-c"));
        assert_eq!(all.listing(Some("a.b")), None);
        assert_eq!(grant(&[Scope::Read], &[]).listing(None), None);

        let a = Listing::One("team-a".into());
        assert_eq!(a.namespace(), Some("team-a"));
        assert!(a.shows("team-a.f") && !a.shows("f") && !a.shows("team-b.f"));
        assert_eq!(a.as_query(), "team-a");
        assert!(Listing::Every.shows("f") && Listing::Every.shows("x.f"));
        assert_eq!(Listing::Every.namespace(), None);
        assert_eq!(Listing::Every.as_query(), "*");
        assert!(Listing::One("default".into()).shows("f"));
    }

    #[test]
    fn choices_are_the_grant_s_namespaces_or_those_in_use() {
        let team = grant(&[Scope::Read], &["team-b", "team-a"]);
        assert_eq!(team.choices(["default", "x"]), vec!["team-b", "team-a"]);
        let all = grant(&[Scope::Read], &["*"]);
        assert_eq!(
            all.choices(["team-a", "default", "team-a"]),
            vec!["*", "default", "team-a"]
        );
    }

    #[test]
    fn scopes_parse_by_name() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Ok(scope));
        }
        assert!(Scope::parse("root").is_err());
    }
}
