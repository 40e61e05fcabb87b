//! The `echo-http` example function for the `http` contract.
//!
//! A small HTTP/1.1 server (keep-alive, no per-request logging) on `0.0.0.0:$PORT` (default
//! 8080) that describes the requests it gets, for skiff's tests and latency benchmarks:
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /ready`, `GET /healthz` | 200 `ok`; 503 `sick` once `/sick` was called |
//! | `/sick` | 200 `sick`: from now on the health checks fail (the process keeps serving) |
//! | `/echo` | 200, the request body streamed back unchanged, with its `content-type` |
//! | `/stream?chunks=N&interval_ms=M` | 200, N chunks `chunk 0\n` .. `chunk N-1\n`, M ms apart (defaults 3 and 100) |
//! | `/status/NNN` | status NNN (200 to 599), body `status NNN` |
//! | `/crash` | writes `crashing on purpose` to stderr and exits with code 3, unanswered |
//! | `/log?line=TEXT` | writes `TEXT` (as it is in the query) and a newline to stdout; 200 `logged` |
//! | `/env` | 200, the process's environment as a JSON object |
//! | `/connect?addr=IP:PORT` | tries a TCP connection there for 3 s: 200 `connected`, or 502 `failed: <error>` |
//! | anything else | 200, JSON describing the request (below), header `x-echo-instance` |
//!
//! The JSON is `{"method", "path", "query", "headers": {lower-case name: value}, "body_bytes",
//! "instance", "pid", "in_flight"}`: `instance` is the host name (`HOSTNAME`, else
//! `/etc/hostname`) and `in_flight` the number of requests this process is serving, this one
//! included. `sleep_ms=N` in the query delays every answer but the health checks by N ms.
//!
//! Environment: `PORT`; `STARTUP_DELAY_MS` waits that long before binding; `NEVER_LISTEN=1`
//! never binds. On SIGTERM (or SIGINT) it stops accepting, lets the requests in flight finish
//! for up to 10 s and exits 0.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::time::Sleep;

const DEFAULT_PORT: u16 = 8080;
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_CHUNKS: u64 = 3;
const DEFAULT_INTERVAL_MS: u64 = 100;
const X_ECHO_INSTANCE: HeaderName = HeaderName::from_static("x-echo-instance");

type ResBody = BoxBody<Bytes, hyper::Error>;

/// Requests being served right now.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
/// Set by `/sick`: health checks fail from then on.
static SICK: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static CTX: OnceLock<Ctx> = OnceLock::new();

/// What every answer may tell about this process.
struct Ctx {
    instance: String,
    instance_header: HeaderValue,
    pid: u32,
}

impl Ctx {
    fn load() -> Self {
        let instance = std::env::var("HOSTNAME")
            .ok()
            .map(|name| name.trim().to_string())
            .filter(|name| !name.is_empty())
            .or_else(|| {
                std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .map(|name| name.trim().to_string())
                    .filter(|name| !name.is_empty())
            })
            .unwrap_or_else(|| "unknown".to_string());
        let instance_header = HeaderValue::from_str(&instance)
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        Ctx {
            instance,
            instance_header,
            pid: std::process::id(),
        }
    }

    fn get() -> &'static Ctx {
        CTX.get_or_init(Ctx::load)
    }
}

fn main() -> ExitCode {
    let port = match std::env::var("PORT") {
        Ok(value) if !value.trim().is_empty() => match value.trim().parse::<u16>() {
            Ok(port) => port,
            Err(_) => {
                eprintln!("echo-http: PORT is not a port number: {value:?}");
                return ExitCode::from(2);
            }
        },
        _ => DEFAULT_PORT,
    };
    let startup_delay = match std::env::var("STARTUP_DELAY_MS") {
        Ok(value) if !value.trim().is_empty() => match value.trim().parse::<u64>() {
            Ok(ms) => Duration::from_millis(ms),
            Err(_) => {
                eprintln!("echo-http: STARTUP_DELAY_MS is not a number: {value:?}");
                return ExitCode::from(2);
            }
        },
        _ => Duration::ZERO,
    };
    let never_listen = std::env::var("NEVER_LISTEN").is_ok_and(|value| value.trim() == "1");
    Ctx::get();

    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("echo-http: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(port, startup_delay, never_listen))
}

async fn run(port: u16, startup_delay: Duration, never_listen: bool) -> ExitCode {
    let (mut sigterm, mut sigint) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(int)) => (term, int),
        (Err(err), _) | (_, Err(err)) => {
            eprintln!("echo-http: cannot handle signals: {err}");
            return ExitCode::FAILURE;
        }
    };

    // Before listening, a signal ends the process at once: there is nothing to drain.
    if never_listen {
        eprintln!("echo-http: NEVER_LISTEN=1, not listening");
        let name = next_signal(&mut sigterm, &mut sigint).await;
        eprintln!("echo-http: {name}, exiting");
        return ExitCode::SUCCESS;
    }
    if !startup_delay.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(startup_delay) => {}
            name = next_signal(&mut sigterm, &mut sigint) => {
                eprintln!("echo-http: {name}, exiting");
                return ExitCode::SUCCESS;
            }
        }
    }

    let addr = SocketAddr::from(([0, 0, 0, 0], port));
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("echo-http: cannot listen on {addr}: {err}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("echo-http: listening on {addr}");

    let http = http1::Builder::new();
    let graceful = GracefulShutdown::new();
    let name = loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service_fn(handle)));
                    tokio::spawn(async move {
                        // A client going away mid-request is its business, not an error here.
                        let _ = conn.await;
                    });
                }
                Err(err) => {
                    // Out of descriptors, say: back off rather than spin.
                    eprintln!("echo-http: accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            name = next_signal(&mut sigterm, &mut sigint) => break name,
        }
    };
    drop(listener);
    eprintln!("echo-http: {name}, draining");
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        eprintln!("echo-http: requests still in flight after 10 s, exiting anyway");
    }
    ExitCode::SUCCESS
}

async fn next_signal(sigterm: &mut Signal, sigint: &mut Signal) -> &'static str {
    tokio::select! {
        _ = sigterm.recv() => "SIGTERM",
        _ = sigint.recv() => "SIGINT",
    }
}

/// Counts a request in [`IN_FLIGHT`] for as long as it lives (also when the client goes away).
struct InFlight;

impl InFlight {
    fn enter() -> Self {
        IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Route {
    Health,
    Sick,
    Echo,
    Stream,
    Crash,
    Log,
    Env,
    Connect,
    /// `/status/NNN`; `None` when NNN is not a status code from 200 to 599.
    Status(Option<StatusCode>),
    Describe,
}

fn route(method: &Method, path: &str) -> Route {
    match path {
        "/ready" | "/healthz" if method == Method::GET || method == Method::HEAD => Route::Health,
        "/sick" => Route::Sick,
        "/echo" => Route::Echo,
        "/stream" => Route::Stream,
        "/crash" => Route::Crash,
        "/log" => Route::Log,
        "/env" => Route::Env,
        "/connect" => Route::Connect,
        _ => match path.strip_prefix("/status/") {
            Some(code) => Route::Status(
                code.parse::<u16>()
                    .ok()
                    .filter(|code| (200..=599).contains(code))
                    .and_then(|code| StatusCode::from_u16(code).ok()),
            ),
            None => Route::Describe,
        },
    }
}

/// The query parameters this function understands; values that are not numbers are ignored.
#[derive(Debug, Default, PartialEq, Eq)]
struct Params {
    sleep_ms: Option<u64>,
    chunks: Option<u64>,
    interval_ms: Option<u64>,
}

fn parse_params(query: &str) -> Params {
    let mut params = Params::default();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match key {
            "sleep_ms" => &mut params.sleep_ms,
            "chunks" => &mut params.chunks,
            "interval_ms" => &mut params.interval_ms,
            _ => continue,
        };
        if let Ok(value) = value.parse() {
            *slot = Some(value);
        }
    }
    params
}

async fn handle(req: Request<Incoming>) -> Result<Response<ResBody>, Infallible> {
    let _in_flight = InFlight::enter();
    let route = route(req.method(), req.uri().path());
    if route == Route::Health {
        if SICK.load(Ordering::Acquire) {
            return Ok(text(StatusCode::SERVICE_UNAVAILABLE, "sick"));
        }
        return Ok(text(StatusCode::OK, "ok"));
    }
    if route == Route::Sick {
        SICK.store(true, Ordering::Release);
        return Ok(text(StatusCode::OK, "sick"));
    }
    let params = parse_params(req.uri().query().unwrap_or(""));
    if let Some(ms) = params.sleep_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let response = match route {
        Route::Health | Route::Sick => text(StatusCode::OK, "ok"),
        Route::Echo => {
            let content_type = req.headers().get(CONTENT_TYPE).cloned();
            let mut response = Response::new(req.into_body().boxed());
            if let Some(content_type) = content_type {
                response.headers_mut().insert(CONTENT_TYPE, content_type);
            }
            response
        }
        Route::Stream => {
            let body = Chunks {
                next: 0,
                total: params.chunks.unwrap_or(DEFAULT_CHUNKS),
                interval: Duration::from_millis(params.interval_ms.unwrap_or(DEFAULT_INTERVAL_MS)),
                delay: None,
            };
            let mut response = Response::new(body.map_err(|never| match never {}).boxed());
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            response
        }
        Route::Crash => {
            eprintln!("crashing on purpose");
            std::process::exit(3);
        }
        Route::Log => {
            let line = req
                .uri()
                .query()
                .unwrap_or("")
                .split('&')
                .find_map(|pair| pair.strip_prefix("line="))
                .unwrap_or("");
            println!("{line}");
            text(StatusCode::OK, "logged")
        }
        Route::Env => {
            let env: BTreeMap<String, String> = std::env::vars().collect();
            let mut response = text(StatusCode::OK, serde_json::to_vec(&env).unwrap_or_default());
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        Route::Connect => {
            let addr = req
                .uri()
                .query()
                .unwrap_or("")
                .split('&')
                .find_map(|pair| pair.strip_prefix("addr="))
                .unwrap_or("")
                .to_string();
            let attempt = tokio::time::timeout(
                Duration::from_secs(3),
                tokio::net::TcpStream::connect(addr.as_str()),
            )
            .await;
            match attempt {
                Ok(Ok(_)) => text(StatusCode::OK, "connected"),
                Ok(Err(err)) => text(StatusCode::BAD_GATEWAY, format!("failed: {err}")),
                Err(_) => text(StatusCode::BAD_GATEWAY, "failed: timed out"),
            }
        }
        Route::Status(Some(status)) => text(status, format!("status {}", status.as_u16())),
        Route::Status(None) => text(StatusCode::BAD_REQUEST, "not a status code from 200 to 599"),
        Route::Describe => describe(req).await,
    };
    Ok(response)
}

#[derive(Serialize)]
struct Description<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a str,
    headers: BTreeMap<&'a str, String>,
    body_bytes: u64,
    instance: &'a str,
    pid: u32,
    in_flight: usize,
}

async fn describe(req: Request<Incoming>) -> Response<ResBody> {
    let (parts, mut body) = req.into_parts();
    let mut body_bytes = 0u64;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    body_bytes += data.len() as u64;
                }
            }
            Err(err) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the request body: {err}"),
                )
            }
        }
    }
    let mut headers: BTreeMap<&str, String> = BTreeMap::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        headers
            .entry(name.as_str())
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    let ctx = Ctx::get();
    let description = Description {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers,
        body_bytes,
        instance: &ctx.instance,
        pid: ctx.pid,
        in_flight: IN_FLIGHT.load(Ordering::Relaxed),
    };
    let json = match serde_json::to_vec(&description) {
        Ok(json) => json,
        Err(err) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot encode: {err}"),
            )
        }
    };
    let mut response = Response::new(full(json));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(X_ECHO_INSTANCE, ctx.instance_header.clone());
    response
}

fn full(body: impl Into<Bytes>) -> ResBody {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed()
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<ResBody> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The `/stream` body: `chunk 0\n`, `chunk 1\n`, ... with `interval` between two chunks.
struct Chunks {
    next: u64,
    total: u64,
    interval: Duration,
    delay: Option<Pin<Box<Sleep>>>,
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.next >= this.total {
            return Poll::Ready(None);
        }
        if this.next > 0 && !this.interval.is_zero() {
            let interval = this.interval;
            let delay = this
                .delay
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(interval)));
            ready!(delay.as_mut().poll(cx));
            this.delay = None;
        }
        let chunk = format!("chunk {}\n", this.next);
        this.next += 1;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
    }

    fn is_end_stream(&self) -> bool {
        self.next >= self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_parsed_from_the_query() {
        assert_eq!(parse_params(""), Params::default());
        assert_eq!(
            parse_params("chunks=3&interval_ms=100&x=y&sleep_ms=25"),
            Params {
                sleep_ms: Some(25),
                chunks: Some(3),
                interval_ms: Some(100),
            }
        );
        assert_eq!(
            parse_params("sleep_ms=abc&chunks&interval_ms=-1&&sleep_ms=7"),
            Params {
                sleep_ms: Some(7),
                ..Params::default()
            }
        );
    }

    #[test]
    fn paths_are_routed() {
        assert_eq!(route(&Method::GET, "/ready"), Route::Health);
        assert_eq!(route(&Method::GET, "/healthz"), Route::Health);
        assert_eq!(route(&Method::POST, "/ready"), Route::Describe);
        assert_eq!(route(&Method::POST, "/echo"), Route::Echo);
        assert_eq!(route(&Method::GET, "/stream"), Route::Stream);
        assert_eq!(route(&Method::GET, "/crash"), Route::Crash);
        assert_eq!(route(&Method::GET, "/sick"), Route::Sick);
        assert_eq!(route(&Method::GET, "/"), Route::Describe);
        assert_eq!(route(&Method::GET, "/a/b"), Route::Describe);
        assert_eq!(
            route(&Method::GET, "/status/418"),
            Route::Status(Some(StatusCode::IM_A_TEAPOT))
        );
        assert_eq!(route(&Method::GET, "/status/101"), Route::Status(None));
        assert_eq!(route(&Method::GET, "/status/x"), Route::Status(None));
    }

    #[tokio::test]
    async fn stream_body_yields_numbered_chunks() {
        let body = Chunks {
            next: 0,
            total: 3,
            interval: Duration::from_millis(1),
            delay: None,
        };
        let collected = body.collect().await.map(|c| c.to_bytes());
        assert_eq!(
            collected.ok(),
            Some(Bytes::from_static(b"chunk 0\nchunk 1\nchunk 2\n"))
        );
    }
}
