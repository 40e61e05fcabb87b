//! The `vote` function (`http` contract): takes votes over HTTP and queues each one as an
//! async call of the worker, through skiff's function API (`$SKIFF_API_URL`, with
//! `$SKIFF_TOKEN`).

use crate::{choices, parse_ballot};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::json;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

/// Largest vote accepted.
const MAX_BODY: usize = 4096;
/// Longest the queueing of a vote may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

const FORM: &str = r#"<!doctype html>
<title>Vote</title>
<form method="post"><p>CHOICES</p></form>
<p><a href="/fn/result">Results</a></p>
"#;

/// What every request needs.
struct Ctx {
    client: Client<HttpConnector, Full<Bytes>>,
    /// `POST` target: the worker's invoke route on the function API.
    invoke_url: String,
    /// `Bearer <token>`.
    authorization: HeaderValue,
    choices: Vec<String>,
}

pub fn main() -> ExitCode {
    let port = std::env::var("PORT")
        .ok()
        .and_then(|p| p.trim().parse::<u16>().ok())
        .unwrap_or(8080);
    let (Ok(api), Ok(token)) = (std::env::var("SKIFF_API_URL"), std::env::var("SKIFF_TOKEN"))
    else {
        eprintln!("vote: SKIFF_API_URL and SKIFF_TOKEN must be set (skiff sets them)");
        return ExitCode::from(2);
    };
    let worker = std::env::var("VOTING_WORKER").unwrap_or_else(|_| "worker".to_string());
    let Ok(authorization) = HeaderValue::from_str(&format!("Bearer {}", token.trim())) else {
        eprintln!("vote: SKIFF_TOKEN is not a header value");
        return ExitCode::from(2);
    };
    let ctx = Arc::new(Ctx {
        client: Client::builder(TokioExecutor::new()).build_http(),
        invoke_url: format!("{}/v1/functions/{worker}/invoke", api.trim_end_matches('/')),
        authorization,
        choices: choices(),
    });
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("vote: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(port, ctx))
}

async fn serve(port: u16, ctx: Arc<Ctx>) -> ExitCode {
    let (Ok(mut sigterm), Ok(mut sigint)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        eprintln!("vote: cannot handle signals");
        return ExitCode::FAILURE;
    };
    let addr = SocketAddr::from(([0, 0, 0, 0], port));
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("vote: cannot listen on {addr}: {err}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("vote: listening on {addr}");
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let ctx = ctx.clone();
                    let service = service_fn(move |request| handle(ctx.clone(), request));
                    let conn = graceful.watch(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                }
                Err(err) => {
                    eprintln!("vote: accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
    ExitCode::SUCCESS
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response<Full<Bytes>> {
    answer(
        status,
        json!({"error": {"code": code, "message": message.into()}}),
    )
}

async fn handle(
    ctx: Arc<Ctx>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(match *request.method() {
        Method::GET | Method::HEAD => {
            let buttons: String = ctx
                .choices
                .iter()
                .map(|c| format!(r#"<button name="choice" value="{c}">{c}</button> "#))
                .collect();
            let mut response =
                Response::new(Full::new(Bytes::from(FORM.replace("CHOICES", &buttons))));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            response
        }
        Method::POST => vote(&ctx, request).await,
        _ => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "vote with POST",
        ),
    })
}

async fn vote(ctx: &Ctx, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_vote",
                format!("a vote is at most {MAX_BODY} bytes"),
            )
        }
    };
    let ballot = match parse_ballot(&body, &ctx.choices) {
        Ok(ballot) => ballot,
        Err(message) => return error(StatusCode::BAD_REQUEST, "invalid_vote", message),
    };
    let call = Request::post(&ctx.invoke_url)
        .header(AUTHORIZATION, ctx.authorization.clone())
        .header("prefer", "respond-async")
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(
            json!({"choice": ballot.choice}).to_string(),
        )));
    let call = match call {
        Ok(call) => call,
        Err(err) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                err.to_string(),
            )
        }
    };
    let queued = tokio::time::timeout(CALL_TIMEOUT, async {
        let response = ctx.client.request(call).await.map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok::<_, String>((status, body))
    })
    .await;
    match queued {
        Ok(Ok((StatusCode::ACCEPTED, body))) => {
            let accepted: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            answer(
                StatusCode::ACCEPTED,
                json!({"call_id": accepted["call_id"], "choice": ballot.choice}),
            )
        }
        Ok(Ok((status, body))) => {
            eprintln!(
                "vote: the worker call was refused with {status}: {}",
                String::from_utf8_lossy(&body)
            );
            error(
                StatusCode::BAD_GATEWAY,
                "not_queued",
                format!("the vote could not be queued ({status})"),
            )
        }
        Ok(Err(err)) => {
            eprintln!("vote: cannot reach the function API: {err}");
            error(
                StatusCode::BAD_GATEWAY,
                "not_queued",
                "the vote could not be queued",
            )
        }
        Err(_) => error(
            StatusCode::GATEWAY_TIMEOUT,
            "not_queued",
            "queueing the vote took too long",
        ),
    }
}
