//! The dashboard's handlers: each parses its request, asks the platform, and hands what it
//! got to its page.
//!
//! The gateway's guard puts the session's [`Grant`] in each request: a page shows only what
//! it reaches (`Grant::reaches`, `Grant::listing`), and a function or call of a namespace it
//! does not reach is "not found", as if it did not exist.

use crate::layout::{self, Section};
use crate::pages::call::{CallPage, Notice};
use crate::pages::calls::{CallsPage, Filters};
use crate::pages::function::FunctionPage;
use crate::pages::overview::{Overview, Row, WINDOW_MINUTES};
use crate::pages::{self, StateCounts};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use maud::{html, Markup};
use serde::Deserialize;
use skiff_core::access::{qualify, Grant, Listing};
use skiff_core::{CallStatus, Trigger};
use skiff_invoker::{Platform, PlatformError};
use skiff_store::CallFilter;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Calls shown on a function's page.
const RECENT_CALLS: u32 = 20;
/// Calls shown on a page of the explorer.
const CALLS_PER_PAGE: u32 = 50;

/// What the handlers share.
#[derive(Debug, Clone)]
pub(crate) struct Dashboard {
    pub(crate) platform: Arc<Platform>,
}

/// Pages may load only what the daemon serves; nothing a function wrote can run as script.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

/// An HTML page with `status`.
pub(crate) fn html_page(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("same-origin"),
            ),
        ],
        markup.into_string(),
    )
        .into_response()
}

/// A page that says what went wrong.
fn problem(status: StatusCode, title: &str, message: &str) -> Response {
    let body = html! {
        h1 { (title) }
        p.error { (message) }
        p { a href="/" { "Back to the functions" } }
    };
    html_page(status, layout::page(title, Section::Functions, body))
}

/// The page of a platform error: not found, or an internal error (logged, not shown).
fn failure(err: PlatformError) -> Response {
    match err {
        err @ (PlatformError::FunctionNotFound { .. } | PlatformError::CallNotFound { .. }) => {
            problem(StatusCode::NOT_FOUND, "Not found", &err.to_string())
        }
        err @ PlatformError::BadRequest { .. } => {
            problem(StatusCode::BAD_REQUEST, "Bad request", &err.to_string())
        }
        err => {
            tracing::error!(%err, "a dashboard page failed");
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal error",
                "internal error; see the daemon's log",
            )
        }
    }
}

/// The 404 of a function the session's token does not reach: the same as of one that does
/// not exist.
fn function_not_found(name: &str) -> Response {
    failure(PlatformError::FunctionNotFound {
        name: name.to_string(),
    })
}

/// The 404 of a namespace (`?ns=`) the session's token does not reach.
fn namespace_not_found(asked: Option<&str>) -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "Not found",
        &format!(
            "namespace `{}` does not exist",
            asked.unwrap_or_default().trim()
        ),
    )
}

/// The namespace selector of a listing: the namespaces `grant` may choose between (none
/// when it has one only), and the one shown.
fn selector(d: &Dashboard, grant: &Grant, listing: &Listing) -> pages::Namespaces {
    let functions = d.platform.list_functions();
    let choices = grant.choices(functions.iter().map(|f| f.namespace.as_str()));
    pages::Namespaces {
        choices: if choices.len() > 1 {
            choices
        } else {
            Vec::new()
        },
        current: listing.as_query().to_string(),
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct NamespaceQuery {
    ns: Option<String>,
}

/// A function as the dashboard names it: by its full name (`NS.NAME` outside the default
/// namespace), which its pages and the API's paths take.
fn by_full_name(mut view: skiff_core::FunctionView) -> skiff_core::FunctionView {
    view.name = skiff_core::access::qualify(&view.namespace, &view.name);
    view
}

/// `GET /?ns=`: the functions of the namespace shown.
pub(crate) async fn overview(
    State(d): State<Dashboard>,
    Extension(grant): Extension<Grant>,
    Query(query): Query<NamespaceQuery>,
) -> Response {
    let Some(listing) = grant.listing(query.ns.as_deref()) else {
        return namespace_not_found(query.ns.as_deref());
    };
    let functions: Vec<_> = d
        .platform
        .list_functions()
        .into_iter()
        .map(by_full_name)
        .filter(|function| grant.reaches(&function.name) && listing.shows(&function.name))
        .collect();
    // Only the calls of the functions shown are read: another namespace's load neither
    // costs this page nor crowds its figures out of the samples' cap.
    let names: Vec<String> = functions.iter().map(|f| f.name.clone()).collect();
    let every = grant.covers_all() && listing.namespace().is_none();
    let totals = match d
        .platform
        .stats_by_function(
            (!every).then_some(names.as_slice()),
            Duration::from_secs(WINDOW_MINUTES * 60),
        )
        .await
    {
        Ok(totals) => totals,
        Err(err) => return failure(err),
    };
    let rows = functions
        .into_iter()
        .map(|function| Row {
            instances: StateCounts::of(
                d.platform
                    .instances(&function.name)
                    .unwrap_or_default()
                    .iter()
                    .map(|i| i.state),
            ),
            totals: totals.get(&function.name).cloned(),
            function,
        })
        .collect();
    // The platform's load counts every namespace's calls: shown to a `*` token only.
    let load = grant.covers_all().then(|| d.platform.load());
    html_page(
        StatusCode::OK,
        pages::overview::render(&Overview {
            rows,
            load,
            namespaces: selector(&d, &grant, &listing),
        }),
    )
}

#[derive(Debug, Deserialize)]
pub(crate) struct WindowQuery {
    window: Option<String>,
}

/// `GET /functions/{name}?window=`: one function.
pub(crate) async fn function(
    State(d): State<Dashboard>,
    Extension(grant): Extension<Grant>,
    Path(name): Path<String>,
    Query(query): Query<WindowQuery>,
) -> Response {
    if !grant.reaches(&name) {
        return function_not_found(&name);
    }
    let window_text = query
        .window
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "1h".to_string());
    let window = match skiff_core::stats::parse_window(Some(&window_text)) {
        Ok(window) => window,
        Err(message) => return problem(StatusCode::BAD_REQUEST, "Bad request", &message),
    };
    let function = match d.platform.get_function(&name) {
        Ok(function) => by_full_name(function),
        Err(err) => return failure(err),
    };
    let stats = match d.platform.function_stats(&name, window).await {
        Ok(stats) => stats,
        Err(err) => return failure(err),
    };
    let calls = match d
        .platform
        .list_calls(&CallFilter {
            function: Some(name.clone()),
            limit: RECENT_CALLS,
            ..CallFilter::default()
        })
        .await
    {
        Ok(calls) => calls,
        Err(err) => return failure(err),
    };
    let page = FunctionPage {
        instances: d.platform.instances(&name).unwrap_or_default(),
        triggers: d
            .platform
            .list_triggers()
            .into_iter()
            .filter(|t| t.function == name)
            .collect(),
        function,
        stats,
        window: window_text,
        calls,
    };
    html_page(StatusCode::OK, pages::function::render(&page))
}

/// Lines shown on an instance's page.
const INSTANCE_LINES: u32 = 2000;

/// `GET /functions/{name}/instances/{id}?window=`: what an instance wrote.
pub(crate) async fn instance(
    State(d): State<Dashboard>,
    Extension(grant): Extension<Grant>,
    Path((name, id)): Path<(String, String)>,
    Query(query): Query<WindowQuery>,
) -> Response {
    if !grant.reaches(&name) {
        return function_not_found(&name);
    }
    let window_text = query
        .window
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "1h".to_string());
    let window =
        match skiff_core::stats::parse_window(Some(&window_text)).map(chrono::Duration::from_std) {
            Ok(Ok(window)) => window,
            Ok(Err(_)) | Err(_) => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "Bad request",
                    &format!("window `{window_text}` must be a duration from 1m to 7d"),
                )
            }
        };
    let filter = skiff_store::InstanceLogFilter {
        since: Some(chrono::Utc::now() - window),
        limit: INSTANCE_LINES,
        latest: true,
        ..Default::default()
    };
    match d.platform.instance_logs(&name, Some(&id), filter).await {
        Ok(lines) => html_page(
            StatusCode::OK,
            pages::instance::render(&pages::instance::InstancePage {
                function: name,
                instance: id,
                window: window_text,
                lines,
            }),
        ),
        Err(err) => failure(err),
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct CallsQuery {
    function: Option<String>,
    status: Option<String>,
    trigger: Option<String>,
    since: Option<String>,
    before: Option<String>,
    ns: Option<String>,
}

/// A form's empty field is no filter.
fn given(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// `GET /calls?ns=&function=&status=&trigger=&since=&before=`: the calls explorer, of the
/// namespace shown.
pub(crate) async fn calls(
    State(d): State<Dashboard>,
    Extension(grant): Extension<Grant>,
    Query(query): Query<CallsQuery>,
) -> Response {
    let Some(listing) = grant.listing(query.ns.as_deref()) else {
        return namespace_not_found(query.ns.as_deref());
    };
    let filters = Filters {
        namespace: given(query.ns),
        function: given(query.function),
        status: given(query.status),
        trigger: given(query.trigger),
        since: given(query.since),
    };
    let mut problems = Vec::new();
    let status = filters.status.as_deref().and_then(|s| {
        s.parse::<CallStatus>()
            .map_err(|e| problems.push(e.to_string()))
            .ok()
    });
    let trigger = filters.trigger.as_deref().and_then(|t| {
        t.parse::<Trigger>()
            .map_err(|e| problems.push(e.to_string()))
            .ok()
    });
    let since = filters.since.as_deref().and_then(|s| {
        skiff_core::stats::parse_window(Some(s))
            .map_err(|e| problems.push(e))
            .ok()
            .and_then(|w| chrono::Duration::from_std(w).ok())
            .map(|w| chrono::Utc::now() - w)
    });
    let before = given(query.before).and_then(|b| {
        Uuid::parse_str(&b)
            .map_err(|_| problems.push(format!("`{b}` is not a call id")))
            .ok()
    });
    let filter = CallFilter {
        function: filters.function.clone(),
        status,
        trigger,
        before,
        since,
        limit: CALLS_PER_PAGE,
        // The store keeps to the namespace shown (none: a `*` token's every namespace).
        namespace: listing.namespace().map(str::to_string),
    };
    let calls = if problems.is_empty() {
        match d.platform.list_calls(&filter).await {
            Ok(calls) => calls,
            Err(err) => return failure(err),
        }
    } else {
        Vec::new()
    };
    let next = if calls.len() as u32 >= CALLS_PER_PAGE {
        calls.last().map(|c| c.id)
    } else {
        None
    };
    let page = CallsPage {
        filters,
        functions: d
            .platform
            .list_functions()
            .into_iter()
            .map(|f| qualify(&f.namespace, &f.name))
            .filter(|name| grant.reaches(name) && listing.shows(name))
            .collect(),
        namespaces: selector(&d, &grant, &listing),
        calls,
        next,
        problem: (!problems.is_empty()).then(|| problems.join("; ")),
    };
    let status = if page.problem.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    html_page(status, pages::calls::render(&page))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct CallQuery {
    redriven: Option<String>,
}

/// `GET /calls/{id}`: one call.
pub(crate) async fn call(
    State(d): State<Dashboard>,
    Extension(grant): Extension<Grant>,
    Path(id): Path<String>,
    Query(query): Query<CallQuery>,
) -> Response {
    let notice = query
        .redriven
        .map(|_| Notice::Done("Queued again: the call runs for a new round of attempts.".into()));
    call_page(&d, &grant, &id, notice, StatusCode::OK).await
}

async fn call_page(
    d: &Dashboard,
    grant: &Grant,
    id: &str,
    notice: Option<Notice>,
    status: StatusCode,
) -> Response {
    let Ok(id) = Uuid::parse_str(id) else {
        return problem(
            StatusCode::NOT_FOUND,
            "Not found",
            &format!("`{id}` is not a call id"),
        );
    };
    let details = match d.platform.call_details(id).await {
        Ok(details) if grant.reaches(&details.record.function) => details,
        Ok(_) => return failure(PlatformError::CallNotFound { id }),
        Err(err) => return failure(err),
    };
    let logs = match d.platform.call_logs(id).await {
        Ok(logs) => logs,
        Err(err) => return failure(err),
    };
    html_page(
        status,
        pages::call::render(&CallPage {
            details,
            logs,
            notice,
            may_redrive: grant.may_browse(skiff_core::access::Scope::Invoke),
        }),
    )
}

/// Whether a form was posted from a page of this daemon: a browser sends `Origin` (or
/// `Sec-Fetch-Site`) with a form POST, and another site's page must not redrive calls.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if !matches!(site, "same-origin" | "none") {
            return false;
        }
    }
    match (text(header::ORIGIN), text(header::HOST)) {
        (None, _) => true,
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority == host),
        (Some(_), None) => false,
    }
}

/// `POST /calls/{id}/redrive`: queues a dead call again, then shows it (303). The guard let
/// only a token with `invoke` in; the call's namespace must be one it reaches, as the API's
/// `POST /v1/calls/{id}/redrive` asks.
pub(crate) async fn redrive(
    State(d): State<Dashboard>,
    Extension(grant): Extension<Grant>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !same_origin(&headers) {
        return problem(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "a redrive must be asked from the dashboard's own page",
        );
    }
    let Ok(call) = Uuid::parse_str(&id) else {
        return problem(
            StatusCode::NOT_FOUND,
            "Not found",
            &format!("`{id}` is not a call id"),
        );
    };
    match d.platform.get_call(call).await {
        Ok(record) if grant.reaches(&record.function) => {}
        Ok(_) => return failure(PlatformError::CallNotFound { id: call }),
        Err(err) => return failure(err),
    }
    match d.platform.redrive(call).await {
        Ok(_) => Redirect::to(&format!("/calls/{call}?redriven=1")).into_response(),
        Err(PlatformError::BadRequest { message }) => {
            call_page(
                &d,
                &grant,
                &id,
                Some(Notice::Failed(message)),
                StatusCode::BAD_REQUEST,
            )
            .await
        }
        Err(err) => failure(err),
    }
}

/// `GET /ui/style.css`
pub(crate) async fn style() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("../assets/style.css"),
    )
}

/// `GET /ui/live.js`
pub(crate) async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../assets/live.js"),
    )
}

fn asset(content_type: &'static str, text: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_same_origin_forms_redrive() {
        let mut headers = HeaderMap::new();
        assert!(same_origin(&headers), "no Origin: not a cross-site form");
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&headers));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&headers));
        let mut headers = HeaderMap::new();
        headers.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&headers));
    }
}
