//! What the handler tests share: a real `Platform` on an in-memory store and the fake engine
//! (`skiff-runtime` feature `fake`), and requests sent without a socket
//! (`app().oneshot(request)`).

// Each test file uses a part of this module.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use skiff_gateway::{app, function_api, GatewayConfig};
use skiff_invoker::{Platform, PlatformConfig};
use skiff_runtime::fake::{FakeEngine, Script};
use skiff_store::Store;
use std::sync::Arc;
use tower::ServiceExt;

/// A platform to send requests to.
pub struct Harness {
    /// The HTTP API and public routes (`app`).
    pub api: Router,
    /// The function API (`function_api::router`).
    pub functions: Router,
    /// The fake engine under the platform.
    pub engine: Arc<FakeEngine>,
    /// The platform.
    pub platform: Arc<Platform>,
    _dir: tempfile::TempDir,
}

impl Harness {
    /// A platform whose engine has `images`, with no prepared exec containers and
    /// `configure` applied to the rest of its configuration.
    pub async fn start(
        images: &[(&str, Script)],
        configure: impl FnOnce(&mut PlatformConfig),
    ) -> Harness {
        Harness::start_with(images, configure, GatewayConfig::without_auth()).await
    }

    /// [`Harness::start`] with the gateway's settings (authentication on, say).
    pub async fn start_with(
        images: &[(&str, Script)],
        configure: impl FnOnce(&mut PlatformConfig),
        gateway: GatewayConfig,
    ) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Arc::new(FakeEngine::new());
        for (image, script) in images {
            engine.add_image(image, script.clone());
        }
        let store = Store::open_in_memory().await.expect("store");
        let mut config = PlatformConfig::new(dir.path().to_path_buf());
        config.exec_prewarm = 0;
        configure(&mut config);
        let platform = Platform::start(config, store, engine.clone())
            .await
            .expect("platform");
        Harness {
            api: app(platform.clone(), gateway),
            functions: function_api::router(platform.clone()),
            platform,
            engine,
            _dir: dir,
        }
    }

    /// A platform with one image, `hello:1`, that writes `Hello World!` and exits 0.
    pub async fn hello() -> Harness {
        Harness::start(&[("hello:1", script("Hello World!\n", "", 0))], |_| {}).await
    }
}

/// What a fake image does: writes `stdout` and `stderr`, then exits with `exit_code`.
pub fn script(stdout: &'static str, stderr: &'static str, exit_code: i64) -> Script {
    Script {
        stdout: stdout.into(),
        stderr: stderr.into(),
        exit_code,
    }
}

/// Sends `request` to `app`; the status, the headers and the whole body.
pub async fn respond(app: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let response = app.clone().oneshot(request).await.expect("response");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

/// `method uri` with `body` as JSON (`content-type: application/json`); the status, the
/// body and the headers.
pub async fn send(
    app: &Router,
    method: &str,
    uri: &str,
    body: impl Into<Body>,
) -> (StatusCode, Vec<u8>, HeaderMap) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(body.into())
        .expect("request");
    let (status, headers, body) = respond(app, request).await;
    (status, body, headers)
}

/// `method uri` with the JSON `body` (none for `null`); the status and the answer as JSON
/// (`null` when it is not JSON).
pub async fn send_json(app: &Router, method: &str, uri: &str, body: Value) -> (StatusCode, Value) {
    let body = if body.is_null() {
        Body::empty()
    } else {
        Body::from(body.to_string())
    };
    let (status, body, _) = send(app, method, uri, body).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}
