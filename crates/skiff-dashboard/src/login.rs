//! Signing in to the dashboard: a form takes an API token with the `read` scope (in any of
//! its namespaces: the pages show only what it reaches), checks it, and keeps it in a session
//! cookie (`HttpOnly`, `SameSite=Strict`:
//! scripts cannot read it, and other sites' pages cannot make the browser send it). Each
//! request checks the token again against the store, so revoking it ends the session.

use crate::handlers::{html_page, same_origin};
use crate::layout::{self, Section};
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use maud::{html, Markup};
use serde::Deserialize;
use skiff_core::access::Scope;
use skiff_core::api::headers::SESSION_COOKIE;
use skiff_invoker::Platform;
use std::sync::Arc;

/// What the login routes share.
#[derive(Debug, Clone)]
pub(crate) struct Login {
    pub(crate) platform: Arc<Platform>,
    /// Whether the daemon checks credentials at all.
    pub(crate) auth: bool,
}

/// The login form's fields.
#[derive(Debug, Deserialize)]
pub(crate) struct LoginForm {
    token: String,
}

/// How long a session cookie lasts (the token's own expiry and revocation still apply).
const SESSION_SECONDS: u32 = 12 * 3600;

fn form(message: Option<&str>) -> Markup {
    let body = html! {
        h1 { "Sign in" }
        @if let Some(message) = message { p.error { (message) } }
        p { "Paste an API token with the " code { "read" } " scope ("
            code { "skiff tokens create NAME --scope read -n NAMESPACE" } "). The dashboard shows
            only the namespaces the token reaches; the daemon wrote its admin token, which
            reaches every one, to " code { "admin.token" } " in its data directory." }
        form method="post" action=(crate::LOGIN_PATH) {
            input type="password" name="token" autocomplete="off" required placeholder="skt_...";
            button type="submit" { "Sign in" }
        }
    };
    layout::page("Sign in", Section::Functions, body)
}

/// `GET /login`: the form (or the dashboard, when the daemon checks no credentials).
pub(crate) async fn show(State(l): State<Login>) -> Response {
    if !l.auth {
        return Redirect::to("/").into_response();
    }
    html_page(StatusCode::OK, form(None))
}

/// `POST /login`: checks the token; a good one becomes the session cookie (303 to `/`).
pub(crate) async fn submit(
    State(l): State<Login>,
    headers: HeaderMap,
    Form(input): Form<LoginForm>,
) -> Response {
    if !same_origin(&headers) {
        return html_page(
            StatusCode::FORBIDDEN,
            form(Some("sign in from the dashboard's own page")),
        );
    }
    let token = input.token.trim();
    let refused = |message: &str| html_page(StatusCode::UNAUTHORIZED, form(Some(message)));
    let grant = match l.platform.authenticate(token).await {
        Ok(grant) => grant,
        Err(err) => return refused(&err.to_string()),
    };
    if grant.function.is_some() {
        return refused("an invoke key only calls its function: sign in with an API token");
    }
    if !grant.may_browse(Scope::Read) {
        return refused("this token does not have the `read` scope");
    }
    let cookie = format!(
        "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={SESSION_SECONDS}"
    );
    let Ok(cookie) = HeaderValue::from_str(&cookie) else {
        return refused("the token is not valid");
    };
    let mut response = Redirect::to("/").into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    *response.status_mut() = StatusCode::SEE_OTHER;
    response
}

/// `POST /logout`: forgets the session.
pub(crate) async fn logout() -> Response {
    let mut response = Redirect::to(crate::LOGIN_PATH).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("skiff_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    response
}
