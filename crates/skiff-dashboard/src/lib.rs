//! skiff-dashboard: the daemon's web pages, served at `/` on the API's own listener.
//!
//! Pages are rendered on the server (maud), charts are inline SVG drawn here (`charts`),
//! and a little plain JavaScript (`assets/live.js`) keeps the marked parts of a page fresh
//! and follows a function's output. CSS and script are embedded in the binary. Every page
//! works with JavaScript off, live updates aside; a dead call's redrive is a form POST.
//!
//! - `handlers`: parse each request, ask the [`Platform`], hand the data to a page;
//! - `pages`: one module per page (overview, function, instance, calls explorer, call), pure
//!   rendering from data;
//! - `layout`, `charts`, `format`: the frame of every page, the SVG charts, numbers and
//!   times.
//!
//! [`routes`] returns a router with its state applied; the gateway merges it before its
//! layers, so whatever guards the API (tracing, panics, authentication) guards the pages.

mod charts;
mod format;
mod handlers;
mod layout;
mod login;
mod pages;

use axum::routing::{get, post};
use axum::Router;
use skiff_invoker::Platform;
use std::sync::Arc;

/// Where the stylesheet is served.
pub const STYLE_PATH: &str = "/ui/style.css";
/// Where the script is served.
pub const SCRIPT_PATH: &str = "/ui/live.js";

/// The dashboard's routes: `/`, `/functions/{name}` (and its instances' lines), `/calls`,
/// `/calls/{id}` (and its
/// redrive form), and the assets under `/ui/`.
///
/// They need a session: the gateway guards them (a page without one redirects to
/// [`LOGIN_PATH`]).
pub fn routes(platform: Arc<Platform>) -> Router {
    Router::new()
        .route("/", get(handlers::overview))
        .route("/functions/{name}", get(handlers::function))
        .route("/functions/{name}/instances/{id}", get(handlers::instance))
        .route("/calls", get(handlers::calls))
        .route("/calls/{id}", get(handlers::call))
        .route("/calls/{id}/redrive", post(handlers::redrive))
        .with_state(handlers::Dashboard { platform })
}

/// Where the login form is.
pub const LOGIN_PATH: &str = "/login";

/// The routes open to all: the login form (`GET`, `POST /login`, `POST /logout`) and the
/// assets. `auth`: whether the daemon checks credentials (if not, `/login` leads to `/`).
pub fn open_routes(platform: Arc<Platform>, auth: bool) -> Router {
    Router::new()
        .route(LOGIN_PATH, get(login::show).post(login::submit))
        .route("/logout", post(login::logout))
        .with_state(login::Login { platform, auth })
        .route(STYLE_PATH, get(handlers::style))
        .route(SCRIPT_PATH, get(handlers::script))
}
