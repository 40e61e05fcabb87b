//! Who may do what on the main listener.
//!
//! Every route of the management API has a [`Rule`] in [`RULES`]: what it needs (nothing,
//! a scope in the request's namespace, a scope over every namespace, or the right to call
//! a function) and, for an action that changes something, its name in the audit log. A
//! route without a rule needs `admin` over every namespace.
//!
//! [`guard`] runs before each management route. It reads the credential
//! (`Authorization: Bearer`, `X-Skiff-Key`, or on `GET` the dashboard's session cookie),
//! has the platform check it against the store (every request: a revoked token stops
//! working at once, on every daemon), picks the namespace (`X-Skiff-Namespace`, else that
//! of a `NS.NAME` the path names when the credential reaches it, else the credential's own
//! when it has one, else `default`) and checks the scope. No valid
//! credential is 401 `unauthorized`; a credential that does not allow the route is 403
//! `forbidden`. It then hands the handler an [`Access`] and, for actions, writes the
//! audit log once the answer is known.
//!
//! The public route `/fn/...` is checked by [`authorize_invoke`]: a `public` function is
//! open to all; a private one needs a token with `invoke` in its namespace or one of its
//! invoke keys. The credential is taken off the request before the function sees it.

use crate::error::ApiError;
use crate::AppState;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use skiff_core::access::{check_namespace, qualify, Grant, Scope};
use skiff_core::api::headers::{KEY_HEADER, NAMESPACE_HEADER, SESSION_COOKIE};
use skiff_core::api::AuditEntry;
use skiff_core::FunctionName;
use skiff_invoker::PlatformError;

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing: health, readiness, the API's description.
    Open,
    /// The metrics: nothing with `--open-metrics`, else `read` over every namespace.
    Metrics,
    /// A scope in the request's namespace.
    In(Scope),
    /// A scope over every namespace (tokens, the audit log, the cluster, quotas).
    All(Scope),
    /// The right to call the function named in the path (`invoke`, or its key).
    Invoke,
}

/// A route's rule.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// The method.
    pub method: &'static str,
    /// The route as the router writes it.
    pub path: &'static str,
    /// What it needs.
    pub need: Need,
    /// Its name in the audit log; `None`: not an action (reads, invokes).
    pub action: Option<&'static str>,
}

const fn rule(
    method: &'static str,
    path: &'static str,
    need: Need,
    action: Option<&'static str>,
) -> Rule {
    Rule {
        method,
        path,
        need,
        action,
    }
}

use Need::{All, In, Invoke, Metrics, Open};
use Scope::{Admin, Deploy, Read};

/// The rule of every management route.
pub const RULES: &[Rule] = &[
    rule("GET", "/healthz", Open, None),
    rule("GET", "/readyz", Open, None),
    rule("GET", "/v1/openapi.json", Open, None),
    rule("GET", "/metrics", Metrics, None),
    rule("GET", "/v1/functions", In(Read), None),
    rule("GET", "/v1/functions/{name}", In(Read), None),
    rule(
        "PUT",
        "/v1/functions/{name}",
        In(Deploy),
        Some("deploy function"),
    ),
    rule(
        "DELETE",
        "/v1/functions/{name}",
        In(Deploy),
        Some("delete function"),
    ),
    rule("POST", "/v1/functions/{name}/invoke", Invoke, None),
    rule("GET", "/v1/functions/{name}/instances", In(Read), None),
    rule(
        "GET",
        "/v1/functions/{name}/instances/{id}/logs",
        In(Read),
        None,
    ),
    rule("GET", "/v1/functions/{name}/logs/follow", In(Read), None),
    rule("GET", "/v1/functions/{name}/stats", In(Read), None),
    rule(
        "POST",
        "/v1/functions/{name}/scale",
        In(Deploy),
        Some("scale function"),
    ),
    rule("GET", "/v1/functions/{name}/keys", In(Deploy), None),
    rule(
        "POST",
        "/v1/functions/{name}/keys",
        In(Deploy),
        Some("create key"),
    ),
    rule(
        "DELETE",
        "/v1/functions/{name}/keys/{id}",
        In(Deploy),
        Some("revoke key"),
    ),
    rule("GET", "/v1/calls", In(Read), None),
    rule("GET", "/v1/calls/{id}", In(Read), None),
    rule("GET", "/v1/calls/{id}/logs", In(Read), None),
    rule(
        "POST",
        "/v1/calls/{id}/redrive",
        In(Scope::Invoke),
        Some("redrive call"),
    ),
    rule("GET", "/v1/triggers", In(Read), None),
    rule("GET", "/v1/triggers/{name}", In(Read), None),
    rule(
        "PUT",
        "/v1/triggers/{name}",
        In(Deploy),
        Some("put trigger"),
    ),
    rule(
        "DELETE",
        "/v1/triggers/{name}",
        In(Deploy),
        Some("delete trigger"),
    ),
    rule("GET", "/v1/cluster", All(Read), None),
    // Images are the engine's, not a namespace's: a pull lets a deploy in any namespace
    // find its image; a push sends what any namespace's image holds to a registry.
    rule("POST", "/v1/images/pull", In(Deploy), Some("pull image")),
    rule("POST", "/v1/images/push", All(Deploy), Some("push image")),
    rule("GET", "/v1/tokens", All(Admin), None),
    rule("POST", "/v1/tokens", All(Admin), Some("create token")),
    rule(
        "DELETE",
        "/v1/tokens/{id}",
        All(Admin),
        Some("revoke token"),
    ),
    rule("GET", "/v1/audit", All(Admin), None),
    rule("GET", "/v1/namespaces", All(Read), None),
    rule(
        "PUT",
        "/v1/namespaces/{name}",
        All(Admin),
        Some("set quota"),
    ),
    rule("GET", "/v1/access-keys", All(Admin), None),
    rule(
        "POST",
        "/v1/access-keys",
        All(Admin),
        Some("create access key"),
    ),
    rule(
        "DELETE",
        "/v1/access-keys/{id}",
        All(Admin),
        Some("revoke access key"),
    ),
    rule(
        "POST",
        "/v1/secrets/rotate-key",
        All(Admin),
        Some("rotate secret key"),
    ),
];

/// The rule of a route; a route without one needs `admin` over every namespace.
pub fn rule_of(method: &Method, path: &str) -> Rule {
    RULES
        .iter()
        .find(|r| r.path == path && r.method == method.as_str())
        .copied()
        .unwrap_or(Rule {
            method: "ANY",
            path: "",
            need: All(Admin),
            action: Some("unlisted route"),
        })
}

/// What a request may do, as its handler sees it.
#[derive(Debug, Clone)]
pub struct Access {
    /// What the credential allows.
    pub grant: Grant,
    /// The namespace the request is about.
    pub namespace: String,
}

impl Access {
    /// Full access to the default namespace (authentication off).
    pub fn unrestricted() -> Access {
        Access {
            grant: Grant::unrestricted(),
            namespace: skiff_core::access::DEFAULT_NAMESPACE.to_string(),
        }
    }

    /// The full name of what a path names: `NAME` in the request's namespace, or `NS.NAME`
    /// in namespace `NS`, which the credential must reach (else it is not found).
    pub fn full(&self, name: &str) -> Result<String, ApiError> {
        let parsed = FunctionName::parse(name).map_err(PlatformError::InvalidSpec)?;
        if name.contains(skiff_core::access::NAMESPACE_SEPARATOR) {
            if !self.grant.covers(parsed.namespace()) {
                return Err(PlatformError::FunctionNotFound {
                    name: name.to_string(),
                }
                .into());
            }
            return Ok(parsed.as_str().to_string());
        }
        Ok(qualify(&self.namespace, parsed.as_str()))
    }
}

/// An `unauthorized` answer, with `WWW-Authenticate`.
pub(crate) fn unauthorized(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

/// A `forbidden` answer.
pub(crate) fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
}

/// The credential a request carries: `Authorization: Bearer`, else `X-Skiff-Key`, else
/// (when `cookie` allows it) the session cookie.
pub fn credential(headers: &HeaderMap, cookie: bool) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_string());
    let key = || {
        headers
            .get(KEY_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_string())
    };
    bearer
        .or_else(key)
        .or_else(|| cookie.then(|| session(headers)).flatten())
        .filter(|c| !c.is_empty())
}

/// The session cookie's value, if the request has one.
pub fn session(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim().to_string())
}

/// The grant of a request's credential; 401 without a valid one. With authentication off,
/// every request has full access.
pub(crate) async fn grant_of(
    state: &AppState,
    headers: &HeaderMap,
    cookie: bool,
) -> Result<Grant, ApiError> {
    if !state.config.auth {
        return Ok(Grant::unrestricted());
    }
    let Some(secret) = credential(headers, cookie) else {
        return Err(unauthorized(
            "this route needs a token: send `Authorization: Bearer <token>` (skiff tokens create)",
        ));
    };
    Ok(state.platform.authenticate(&secret).await?)
}

/// The namespace a request is about: `X-Skiff-Namespace`; else that of a path's full name
/// (`NS.NAME`, in `named`) when the credential reaches it, so that a page of the dashboard
/// can follow a function of any of its token's namespaces; else the credential's default.
fn namespace_of(
    headers: &HeaderMap,
    grant: &Grant,
    named: Option<&str>,
) -> Result<String, ApiError> {
    match headers.get(NAMESPACE_HEADER) {
        None => Ok(named
            .filter(|ns| grant.covers(ns))
            .unwrap_or(grant.default_namespace())
            .to_string()),
        Some(value) => {
            let ns = value
                .to_str()
                .map_err(|_| ApiError::bad_request(format!("{NAMESPACE_HEADER} is not text")))?
                .trim()
                .to_string();
            check_namespace(&ns, false).map_err(ApiError::bad_request)?;
            Ok(ns)
        }
    }
}

/// Whether `grant` may use a route that needs `need` in `namespace`; the refusal says why.
pub(crate) fn check(grant: &Grant, need: Need, namespace: &str) -> Result<(), ApiError> {
    let scope = match need {
        Open => return Ok(()),
        Metrics => Read,
        In(scope) | All(scope) => scope,
        Invoke => Scope::Invoke,
    };
    // A function's invoke key calls its function and does nothing else.
    if grant.function.is_some() && need != Invoke {
        return Err(forbidden("an invoke key only calls its function"));
    }
    if grant.function.is_none() && !grant.has_scope(scope) {
        return Err(forbidden(format!(
            "this token does not have the `{scope}` scope this route needs"
        )));
    }
    let all = matches!(need, All(_) | Metrics);
    if all && !grant.covers_all() {
        return Err(forbidden(
            "this route needs a token for every namespace (`*`)",
        ));
    }
    if !all && !grant.covers(namespace) {
        return Err(forbidden(format!(
            "this token does not reach namespace `{namespace}`"
        )));
    }
    Ok(())
}

/// The management API's guard (see the module's description).
pub(crate) async fn guard(
    State(state): State<AppState>,
    matched: Option<MatchedPath>,
    mut request: Request<Body>,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let template = matched.as_ref().map_or("", |m| m.as_str()).to_string();
    let rule = rule_of(&method, &template);
    if rule.need == Open || (rule.need == Metrics && state.config.open_metrics) {
        return next.run(request).await;
    }
    // The session cookie counts for reads only: an action needs a header, which another
    // site's page cannot make a browser send.
    let cookie = method == Method::GET || method == Method::HEAD;
    let named = named_namespace(&template, request.uri().path());
    let decided = match grant_of(&state, request.headers(), cookie).await {
        Err(err) => Err((None, err)),
        Ok(grant) => match namespace_of(request.headers(), &grant, named.as_deref()) {
            Err(err) => Err((Some(grant), err)),
            Ok(namespace) => match check(&grant, rule.need, &namespace) {
                Err(err) => Err((Some(grant), err)),
                Ok(()) => Ok(Access { grant, namespace }),
            },
        },
    };
    let path = request.uri().path().to_string();
    let (response, grant, namespace) = match decided {
        Err((grant, err)) => {
            let namespace = grant
                .as_ref()
                .map(|g| g.default_namespace().to_string())
                .unwrap_or_default();
            (denied(err), grant, namespace)
        }
        Ok(access) => {
            let (grant, namespace) = (access.grant.clone(), access.namespace.clone());
            request.extensions_mut().insert(access);
            (next.run(request).await, Some(grant), namespace)
        }
    };
    if let Some(action) = rule.action {
        let entry = AuditEntry {
            id: uuid::Uuid::now_v7().to_string(),
            at: Utc::now(),
            token_id: grant.as_ref().map(|g| g.id.clone()),
            actor: grant.map_or_else(|| "anonymous".to_string(), |g| g.name),
            namespace,
            action: action.to_string(),
            target: response
                .extensions()
                .get::<AuditTarget>()
                .map_or_else(|| target(&template, &path), |t| t.0.clone()),
            method: method.to_string(),
            path,
            status: response.status().as_u16(),
        };
        state.platform.audit(entry).await;
    }
    response
}

/// What an audited request acted on, when its path does not say (the image of a pull or a
/// push): a handler puts it in its response's extensions, and the audit entry takes it.
#[derive(Debug, Clone)]
pub struct AuditTarget(pub String);

/// A refusal, with `WWW-Authenticate` on a 401.
fn denied(err: ApiError) -> Response {
    let unauthorized = err.status() == StatusCode::UNAUTHORIZED;
    let mut response = err.into_response();
    if unauthorized {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// The namespace of the full name (`NS.NAME`) a path's `{name}` gives, if it gives one.
fn named_namespace(template: &str, path: &str) -> Option<String> {
    template
        .split('/')
        .zip(path.split('/'))
        .find(|(t, _)| *t == "{name}")
        .map(|(_, name)| name)
        .filter(|name| name.contains(skiff_core::access::NAMESPACE_SEPARATOR))
        .map(|name| skiff_core::access::namespace_of(name).to_string())
}

/// What a request acted on: the values of its path's parameters, joined by `/`.
fn target(template: &str, path: &str) -> String {
    template
        .split('/')
        .zip(path.split('/'))
        .filter(|(t, _)| t.starts_with('{'))
        .map(|(_, p)| p)
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether a call of the public route to function `full` may go ahead: a public function
/// is open to all; a private one needs a token with `invoke` in its namespace, or one of
/// its keys. A credential used here is taken off the request, so that the function never
/// sees it. A request without a valid credential is 401 whether the function exists or
/// not; a valid one of another namespace gets 404, as if it did not.
pub(crate) async fn authorize_invoke(
    state: &AppState,
    headers: &mut HeaderMap,
    full: &str,
) -> Result<(), ApiError> {
    if state.platform.is_public(full) {
        return Ok(());
    }
    let grant = grant_of(state, headers, false).await?;
    strip_credentials(headers);
    may_invoke(&grant, full)
}

/// Whether `grant` may call function `full` (see [`authorize_invoke`]).
pub(crate) fn may_invoke(grant: &Grant, full: &str) -> Result<(), ApiError> {
    let (namespace, name) = skiff_core::access::split(full);
    if !grant.covers(namespace) {
        return Err(PlatformError::FunctionNotFound {
            name: name.to_string(),
        }
        .into());
    }
    if !grant.may_invoke(full) {
        return Err(forbidden(match &grant.function {
            Some(_) => format!("this key does not call `{name}`"),
            None => "this token does not have the `invoke` scope".to_string(),
        }));
    }
    Ok(())
}

/// Takes skiff's credentials off a request that goes on to a function.
pub(crate) fn strip_credentials(headers: &mut HeaderMap) {
    headers.remove(header::AUTHORIZATION);
    headers.remove(KEY_HEADER);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(scopes: &[Scope], namespaces: &[&str]) -> Grant {
        Grant {
            id: "tok_1".into(),
            name: "t".into(),
            scopes: scopes.to_vec(),
            namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
            function: None,
        }
    }

    #[test]
    fn credentials_come_from_the_header_the_key_or_a_read_cookie() {
        let mut headers = HeaderMap::new();
        assert_eq!(credential(&headers, true), None);
        headers.insert(
            header::COOKIE,
            "a=b; skiff_session=skt_c".parse().expect("h"),
        );
        assert_eq!(credential(&headers, false), None);
        assert_eq!(credential(&headers, true).as_deref(), Some("skt_c"));
        headers.insert(KEY_HEADER, "skk_k".parse().expect("h"));
        assert_eq!(credential(&headers, true).as_deref(), Some("skk_k"));
        headers.insert(header::AUTHORIZATION, "Bearer skt_b".parse().expect("h"));
        assert_eq!(credential(&headers, true).as_deref(), Some("skt_b"));
    }

    #[test]
    fn scopes_and_namespaces_are_checked() {
        let reader = grant(&[Read], &["team-a"]);
        assert!(check(&reader, In(Read), "team-a").is_ok());
        assert_eq!(
            check(&reader, In(Deploy), "team-a").map_err(|e| e.status()),
            Err(StatusCode::FORBIDDEN)
        );
        assert!(check(&reader, In(Read), "team-b").is_err());
        assert!(check(&reader, All(Read), "team-a").is_err());
        assert!(check(&grant(&[Admin], &["*"]), All(Admin), "x").is_ok());
        let key = Grant {
            function: Some("team-a.f".into()),
            ..grant(&[Scope::Invoke], &["team-a"])
        };
        assert!(check(&key, In(Scope::Invoke), "team-a").is_err());
        assert!(check(&key, Invoke, "team-a").is_ok());
    }

    #[test]
    fn a_full_name_in_the_path_names_the_namespace_its_credential_reaches() {
        let template = "/v1/functions/{name}/logs/follow";
        let named = named_namespace(template, "/v1/functions/team-b.f/logs/follow");
        assert_eq!(named.as_deref(), Some("team-b"));
        assert_eq!(
            named_namespace(template, "/v1/functions/f/logs/follow"),
            None
        );
        assert_eq!(named_namespace("/v1/calls", "/v1/calls"), None);
        let two = grant(&[Read], &["team-a", "team-b"]);
        let none = HeaderMap::new();
        assert_eq!(
            namespace_of(&none, &two, Some("team-b")).ok().as_deref(),
            Some("team-b")
        );
        assert_eq!(
            namespace_of(&none, &two, Some("team-c")).ok().as_deref(),
            Some("default"),
            "one it does not reach is not taken from the path"
        );
        let mut header = HeaderMap::new();
        header.insert(NAMESPACE_HEADER, "team-a".parse().expect("h"));
        assert_eq!(
            namespace_of(&header, &two, Some("team-b")).ok().as_deref(),
            Some("team-a"),
            "the header comes first"
        );
    }

    #[test]
    fn targets_are_the_path_parameters() {
        assert_eq!(
            target("/v1/functions/{name}", "/v1/functions/hello"),
            "hello"
        );
        assert_eq!(
            target(
                "/v1/functions/{name}/keys/{id}",
                "/v1/functions/f/keys/key_1"
            ),
            "f/key_1"
        );
        assert_eq!(target("/v1/tokens", "/v1/tokens"), "");
    }

    #[test]
    fn every_documented_route_has_a_rule() {
        use utoipa::OpenApi;
        let doc = crate::ApiDoc::openapi();
        for (path, item) in &doc.paths.paths {
            for (method, op) in [
                ("GET", &item.get),
                ("PUT", &item.put),
                ("POST", &item.post),
                ("DELETE", &item.delete),
            ] {
                if op.is_some() {
                    let method = Method::from_bytes(method.as_bytes()).expect("method");
                    assert!(
                        RULES
                            .iter()
                            .any(|r| r.path == path && r.method == method.as_str()),
                        "{method} {path} has no rule in auth::RULES"
                    );
                }
            }
        }
    }
}
