//! The `lambda-hello` example function for the `lambda` contract (AWS Lambda Runtime API).
//!
//! Built on the official `lambda_runtime` crate, so it runs unmodified on AWS Lambda and on
//! skiff. Each event is a JSON object:
//!
//! - `{"name":"Ann"}` answers `{"message":"Hello Ann!","request_id":...,"function":...}`
//!   (`Hello World!` with no `name`); `function` is `$AWS_LAMBDA_FUNCTION_NAME`.
//! - `{"fail":"some text"}` fails the invocation with that message (posted to `/error`).
//! - `{"sleep_ms":N}` waits N milliseconds before answering.
//! - `{"panic":true}` panics in the handler; the runtime reports it as an error.
//! - `{"exit":true}` ends the process in the middle of the event (as a crash would).
//!
//! Every event writes `lambda-hello: event <request_id>` to stderr. With `FAIL_INIT` set, the
//! program reports an init error to `POST /2018-06-01/runtime/init/error` and exits with an
//! error before polling for events.

use std::time::Duration;

use lambda_runtime::{run, service_fn, Diagnostic, Error, LambdaEvent};
use lambda_runtime_api_client::{body::Body, build_request, PooledClient};
use serde_json::{json, Value};

/// The variables `lambda_runtime` needs; it panics when one is missing.
const REQUIRED_ENV: [&str; 4] = [
    "AWS_LAMBDA_RUNTIME_API",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
];

#[tokio::main]
async fn main() -> Result<(), Error> {
    if std::env::var_os("FAIL_INIT").is_some() {
        let message = "lambda-hello: init failed on purpose";
        eprintln!("{message}");
        if let Err(err) = report_init_error(message).await {
            eprintln!("lambda-hello: cannot report the init error: {err}");
        }
        return Err(message.into());
    }
    for name in REQUIRED_ENV {
        if std::env::var_os(name).is_none() {
            eprintln!("lambda-hello: missing environment variable {name}");
            return Err(format!("missing environment variable {name}").into());
        }
    }
    run(service_fn(handler)).await
}

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, ctx) = event.into_parts();
    eprintln!("lambda-hello: event {}", ctx.request_id);
    if let Some(text) = payload.get("fail").filter(|text| !text.is_null()) {
        let message = match text.as_str() {
            Some(text) => text.to_string(),
            None => text.to_string(),
        };
        return Err(message.into());
    }
    if payload.get("exit").and_then(Value::as_bool) == Some(true) {
        eprintln!("lambda-hello: exiting in the middle of an event");
        std::process::exit(3);
    }
    if payload.get("panic").and_then(Value::as_bool) == Some(true) {
        panic!("lambda-hello: panic requested by the event");
    }
    if let Some(ms) = payload.get("sleep_ms").and_then(Value::as_u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let name = payload
        .get("name")
        .and_then(Value::as_str)
        .filter(|name| !name.is_empty())
        .unwrap_or("World");
    Ok(json!({
        "message": format!("Hello {name}!"),
        "request_id": ctx.request_id,
        "function": std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default(),
    }))
}

/// Posts `message` to the Runtime API's `/runtime/init/error`, as official runtimes do when
/// initialisation fails. `lambda_runtime` only does this on its SnapStart path, so this uses
/// its Runtime API client directly.
async fn report_init_error(message: &str) -> Result<(), Error> {
    let api =
        std::env::var("AWS_LAMBDA_RUNTIME_API").map_err(|_| "AWS_LAMBDA_RUNTIME_API is not set")?;
    let client = PooledClient::builder().with_endpoint(api.parse()?).build();
    let diagnostic = Diagnostic {
        error_type: "Runtime.InitError".to_string(),
        error_message: message.to_string(),
    };
    let req = build_request()
        .method("POST")
        .uri("/2018-06-01/runtime/init/error")
        .header("Lambda-Runtime-Function-Error-Type", "Runtime.InitError")
        .header("Content-Type", "application/json")
        .body(Body::from(serde_json::to_vec(&diagnostic)?))?;
    let resp = client.call(req).await?;
    if !resp.status().is_success() {
        return Err(format!("/runtime/init/error answered {}", resp.status()).into());
    }
    Ok(())
}
