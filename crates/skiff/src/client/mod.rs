//! A small typed client of the skiff daemon's public HTTP API: one method per endpoint, and
//! one error type ([`ClientError`]) whose message is always a single readable line.

mod access;
mod images;

use chrono::SecondsFormat;
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::de::DeserializeOwned;
use skiff_core::api::headers::{
    CALLBACK_HEADER, CALL_ID_HEADER, COLD_HEADER, PREFER_HEADER, RESPOND_ASYNC,
};
use skiff_core::api::{
    Accepted, CallDetails, CallPage, CallQuery, CallRecord, ErrorBody, FunctionList, FunctionSpec,
    FunctionView, Health, HealthStatus, InstanceList, InstanceView, LogEvent, ScaleRequest,
    TriggerList, TriggerSpec, TriggerView,
};
use std::time::Duration;
use uuid::Uuid;

/// How long to wait for a TCP connection to the daemon.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a management request (list, get, delete, ...) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a deploy may take (the daemon may have to resolve or pull the image).
const DEPLOY_TIMEOUT: Duration = Duration::from_secs(600);

/// Why a request to the daemon failed. Every message is one line.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon URL could not be used.
    #[error("invalid skiff URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No connection could be made to the daemon.
    #[error("cannot reach skiff at {url}: {reason}; is `skiff serve` running?")]
    Unreachable {
        /// The daemon URL.
        url: String,
        /// Why the connection failed (`connection refused`, ...).
        reason: String,
    },
    /// The connection was made but the exchange failed (reset, timed out, ...).
    #[error("request to skiff at {url} failed: {reason}")]
    Transport {
        /// The daemon URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The daemon answered with an error.
    #[error("{} ({code})", crate::output::one_line(message))]
    Api {
        /// The HTTP status.
        status: u16,
        /// The stable error code (`function_not_found`, `timeout`, ...).
        code: String,
        /// The readable explanation.
        message: String,
        /// The request field at fault, for validation errors.
        field: Option<String>,
        /// The call that failed, when one was recorded.
        call_id: Option<String>,
    },
    /// The TLS settings cannot be used.
    #[error("TLS: {0}")]
    Tls(String),
    /// The daemon answered something this client does not understand.
    #[error("unexpected response from skiff at {url}: {reason}")]
    Decode {
        /// The daemon URL.
        url: String,
        /// What could not be read.
        reason: String,
    },
}

impl ClientError {
    /// The error as the API's error JSON, `{"error": {"code", "message", ...}}`. Errors that
    /// did not come from the daemon get a code of their own (`unreachable`, ...).
    pub fn to_json(&self) -> serde_json::Value {
        let mut detail = serde_json::Map::new();
        let code = match self {
            ClientError::InvalidUrl { .. } => "invalid_url",
            ClientError::Unreachable { .. } => "unreachable",
            ClientError::Transport { .. } => "transport",
            ClientError::Decode { .. } => "bad_response",
            ClientError::Tls(_) => "tls",
            ClientError::Api { code, .. } => code,
        };
        detail.insert("code".into(), code.into());
        match self {
            ClientError::Api {
                message,
                field,
                call_id,
                ..
            } => {
                detail.insert("message".into(), message.as_str().into());
                if let Some(field) = field {
                    detail.insert("field".into(), field.as_str().into());
                }
                if let Some(call_id) = call_id {
                    detail.insert("call_id".into(), call_id.as_str().into());
                }
            }
            other => {
                detail.insert("message".into(), other.to_string().into());
            }
        }
        serde_json::json!({ "error": detail })
    }
}

/// The answer to a deploy.
#[derive(Debug, Clone)]
pub struct Deployed {
    /// The function as now deployed.
    pub function: FunctionView,
    /// Whether the function was created (`true`) or updated (`false`).
    pub created: bool,
}

/// The answer to a successful invocation.
#[derive(Debug, Clone)]
pub struct Invoked {
    /// The id of the call, when the daemon reported one.
    pub call_id: Option<String>,
    /// Whether the call waited for a cold start, when the daemon reported it.
    pub cold: Option<bool>,
    /// The function's response, byte for byte.
    pub output: Vec<u8>,
}

/// How a client reaches the daemon: the CA its certificate is checked against (besides the
/// system's roots), the token and the namespace it acts in.
#[derive(Debug, Default, Clone, Copy)]
pub struct Access<'a> {
    /// A PEM file of extra roots.
    pub ca: Option<&'a std::path::Path>,
    /// The API token.
    pub token: Option<&'a str>,
    /// The namespace.
    pub namespace: Option<&'a str>,
}

/// A client of one skiff daemon.
#[derive(Debug, Clone)]
pub struct ApiClient {
    /// The base URL, parsed.
    base: Url,
    /// The base URL as shown in messages (as given, without a trailing `/`).
    shown: String,
    http: reqwest::Client,
}

impl ApiClient {
    /// A client of the daemon at `url` (`http://host:port`, optionally with a path prefix).
    #[cfg(test)]
    pub fn new(url: &str) -> Result<Self, ClientError> {
        ApiClient::connect(url, &Access::default())
    }

    /// A client of the daemon at `url`, with `access`: an `https://` URL's certificate is
    /// checked against the system's roots and those of `access.ca`; the token
    /// (`Authorization: Bearer`) and namespace (`X-Skiff-Namespace`) go with every request.
    pub fn connect(url: &str, access: &Access<'_>) -> Result<Self, ClientError> {
        let invalid = |reason: String| ClientError::InvalidUrl {
            url: url.to_string(),
            reason,
        };
        let base = Url::parse(url.trim()).map_err(|err| invalid(err.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("use an http:// or https:// URL".to_string()));
        }
        if base.cannot_be_a_base() || base.host_str().is_none() {
            return Err(invalid("it has no host".to_string()));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(invalid(
                "it must not have a query or a fragment".to_string(),
            ));
        }
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = access.token {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| invalid("the token is not valid text".to_string()))?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        if let Some(namespace) = access.namespace {
            let value = reqwest::header::HeaderValue::from_str(namespace)
                .map_err(|_| invalid("the namespace is not valid text".to_string()))?;
            headers.insert(skiff_core::api::headers::NAMESPACE_HEADER, value);
        }
        let tls = skiff_invoker::tls::client_config(access.ca)
            .map_err(|err| ClientError::Tls(err.to_string()))?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .tls_backend_preconfigured(tls)
            .default_headers(headers)
            .build()
            .map_err(|err| invalid(describe(&err)))?;
        Ok(ApiClient {
            shown: url.trim().trim_end_matches('/').to_string(),
            base,
            http,
        })
    }

    /// `PUT /v1/functions/{name}`: creates or updates a function.
    pub async fn put_function(
        &self,
        name: &str,
        spec: &FunctionSpec,
    ) -> Result<Deployed, ClientError> {
        let request = self
            .request(Method::PUT, &["v1", "functions", name])
            .timeout(DEPLOY_TIMEOUT)
            .json(&spec_body(spec));
        let response = self.send(request).await?;
        let created = response.status() == StatusCode::CREATED;
        let function = self.json(response).await?;
        Ok(Deployed { function, created })
    }

    /// `GET /v1/functions`: every deployed function.
    pub async fn list_functions(&self) -> Result<Vec<FunctionView>, ClientError> {
        let request = self
            .request(Method::GET, &["v1", "functions"])
            .timeout(REQUEST_TIMEOUT);
        let list: FunctionList = self.json(self.send(request).await?).await?;
        Ok(list.functions)
    }

    /// `GET /v1/functions/{name}`: one function.
    #[allow(dead_code)] // Part of the API surface; no command needs it yet.
    pub async fn get_function(&self, name: &str) -> Result<FunctionView, ClientError> {
        let request = self
            .request(Method::GET, &["v1", "functions", name])
            .timeout(REQUEST_TIMEOUT);
        self.json(self.send(request).await?).await
    }

    /// `DELETE /v1/functions/{name}`: removes a function.
    pub async fn delete_function(&self, name: &str) -> Result<(), ClientError> {
        let request = self
            .request(Method::DELETE, &["v1", "functions", name])
            .timeout(REQUEST_TIMEOUT);
        self.send(request).await?;
        Ok(())
    }

    /// `GET /v1/functions/{name}/instances`: the instances of a function now.
    pub async fn list_instances(&self, name: &str) -> Result<Vec<InstanceView>, ClientError> {
        let request = self
            .request(Method::GET, &["v1", "functions", name, "instances"])
            .timeout(REQUEST_TIMEOUT);
        let list: InstanceList = self.json(self.send(request).await?).await?;
        Ok(list.instances)
    }

    /// `POST /v1/functions/{name}/scale`: changes the bounds of a function's instances
    /// (without a new version).
    pub async fn scale(
        &self,
        name: &str,
        bounds: &ScaleRequest,
    ) -> Result<FunctionView, ClientError> {
        let request = self
            .request(Method::POST, &["v1", "functions", name, "scale"])
            .timeout(REQUEST_TIMEOUT)
            .json(bounds);
        self.json(self.send(request).await?).await
    }

    /// `POST /v1/functions/{name}/invoke`: calls a function with `body` and waits for its
    /// response, however long it takes (the daemon enforces the function's timeout).
    pub async fn invoke(&self, name: &str, body: Vec<u8>) -> Result<Invoked, ClientError> {
        let request = self
            .request(Method::POST, &["v1", "functions", name, "invoke"])
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body);
        let response = self.send(request).await?;
        let call_id = header(&response, CALL_ID_HEADER);
        let cold = header(&response, COLD_HEADER).and_then(|v| match v.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        });
        let output = self.bytes(response).await?;
        Ok(Invoked {
            call_id,
            cold,
            output,
        })
    }

    /// `POST /v1/functions/{name}/invoke` with `Prefer: respond-async`: the call is queued
    /// durably; returns its id.
    pub async fn invoke_async(
        &self,
        name: &str,
        body: Vec<u8>,
        callback: Option<&str>,
    ) -> Result<Uuid, ClientError> {
        let mut request = self
            .request(Method::POST, &["v1", "functions", name, "invoke"])
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(PREFER_HEADER, RESPOND_ASYNC)
            .timeout(REQUEST_TIMEOUT)
            .body(body);
        if let Some(url) = callback {
            request = request.header(CALLBACK_HEADER, url);
        }
        let accepted: Accepted = self.json(self.send(request).await?).await?;
        Ok(accepted.call_id)
    }

    /// `POST /v1/calls/{id}/redrive`: puts a dead call back in the queue.
    pub async fn redrive(&self, id: Uuid) -> Result<CallRecord, ClientError> {
        let id = id.to_string();
        let request = self
            .request(Method::POST, &["v1", "calls", &id, "redrive"])
            .timeout(REQUEST_TIMEOUT);
        self.json(self.send(request).await?).await
    }

    /// `GET /v1/calls`: one page of calls, newest first.
    pub async fn list_calls(&self, query: &CallQuery) -> Result<CallPage, ClientError> {
        // Every filter is named, so that a new one cannot be left out of the URL.
        let CallQuery {
            function,
            status,
            trigger,
            before,
            since,
            limit,
        } = query;
        let mut url = self.url_of(&["v1", "calls"]);
        {
            let mut pairs = url.query_pairs_mut();
            if let Some(function) = function {
                pairs.append_pair("function", function);
            }
            if let Some(status) = status {
                pairs.append_pair("status", status.as_str());
            }
            if let Some(trigger) = trigger {
                pairs.append_pair("trigger", trigger.as_str());
            }
            if let Some(before) = before {
                pairs.append_pair("before", &before.to_string());
            }
            if let Some(since) = since {
                pairs.append_pair("since", &since.to_rfc3339_opts(SecondsFormat::AutoSi, true));
            }
            if let Some(limit) = limit {
                pairs.append_pair("limit", &limit.to_string());
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        let request = self.http.get(url).timeout(REQUEST_TIMEOUT);
        self.json(self.send(request).await?).await
    }

    /// `GET /v1/calls/{id}`: one call's record, and its result if it is an async call that
    /// answered.
    pub async fn get_call(&self, id: Uuid) -> Result<CallDetails, ClientError> {
        let id = id.to_string();
        let request = self
            .request(Method::GET, &["v1", "calls", &id])
            .timeout(REQUEST_TIMEOUT);
        self.json(self.send(request).await?).await
    }

    /// `GET /v1/calls/{id}/logs`: the log a call wrote, byte for byte.
    pub async fn call_logs(&self, id: Uuid) -> Result<Vec<u8>, ClientError> {
        let id = id.to_string();
        let request = self
            .request(Method::GET, &["v1", "calls", &id, "logs"])
            .timeout(REQUEST_TIMEOUT);
        self.bytes(self.send(request).await?).await
    }

    /// `GET /v1/functions/{name}/logs/follow`: the function's output from now on, event by
    /// event (NDJSON), until the daemon ends the stream.
    pub async fn follow_logs(
        &self,
        name: &str,
    ) -> Result<impl futures::Stream<Item = Result<LogEvent, ClientError>> + use<>, ClientError>
    {
        let request = self
            .request(Method::GET, &["v1", "functions", name, "logs", "follow"])
            .header(reqwest::header::ACCEPT, "application/x-ndjson");
        Ok(self.ndjson(self.send(request).await?))
    }

    /// `PUT /v1/triggers/{name}`: creates or replaces a trigger; true if it was created.
    pub async fn put_trigger(
        &self,
        name: &str,
        spec: &TriggerSpec,
    ) -> Result<(TriggerView, bool), ClientError> {
        let request = self
            .request(Method::PUT, &["v1", "triggers", name])
            .timeout(REQUEST_TIMEOUT)
            .json(spec);
        let response = self.send(request).await?;
        let created = response.status() == StatusCode::CREATED;
        Ok((self.json(response).await?, created))
    }

    /// `GET /v1/cluster`: the daemons sharing the store.
    pub async fn cluster(&self) -> Result<skiff_core::api::ClusterView, ClientError> {
        let request = self
            .request(Method::GET, &["v1", "cluster"])
            .timeout(REQUEST_TIMEOUT);
        self.json(self.send(request).await?).await
    }

    /// `GET /v1/triggers`: every trigger.
    pub async fn list_triggers(&self) -> Result<Vec<TriggerView>, ClientError> {
        let request = self
            .request(Method::GET, &["v1", "triggers"])
            .timeout(REQUEST_TIMEOUT);
        let list: TriggerList = self.json(self.send(request).await?).await?;
        Ok(list.triggers)
    }

    /// `GET /v1/triggers/{name}`: one trigger and its state.
    pub async fn get_trigger(&self, name: &str) -> Result<TriggerView, ClientError> {
        let request = self
            .request(Method::GET, &["v1", "triggers", name])
            .timeout(REQUEST_TIMEOUT);
        self.json(self.send(request).await?).await
    }

    /// `DELETE /v1/triggers/{name}`: removes a trigger.
    pub async fn delete_trigger(&self, name: &str) -> Result<(), ClientError> {
        let request = self
            .request(Method::DELETE, &["v1", "triggers", name])
            .timeout(REQUEST_TIMEOUT);
        self.send(request).await?;
        Ok(())
    }

    /// `GET /healthz`: succeeds when the daemon is up.
    #[allow(dead_code)] // Part of the API surface; no command needs it yet.
    pub async fn health(&self) -> Result<(), ClientError> {
        let request = self
            .request(Method::GET, &["healthz"])
            .timeout(REQUEST_TIMEOUT);
        let health: Health = self.json(self.send(request).await?).await?;
        if health.status == HealthStatus::Ok {
            Ok(())
        } else {
            Err(ClientError::Decode {
                url: self.shown.clone(),
                reason: format!("the daemon reports status `{}`", health.status),
            })
        }
    }

    /// The URL of the endpoint made of `segments` (each one percent-encoded).
    fn url_of(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        // `new` refused URLs that cannot be a base, so this always succeeds.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn request(&self, method: Method, segments: &[&str]) -> RequestBuilder {
        self.http.request(method, self.url_of(segments))
    }

    /// Sends `request`; a non-success answer becomes [`ClientError::Api`].
    async fn send(&self, request: RequestBuilder) -> Result<Response, ClientError> {
        let response = request.send().await.map_err(|err| self.transport(&err))?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(self.api_error(response).await)
        }
    }

    async fn bytes(&self, response: Response) -> Result<Vec<u8>, ClientError> {
        let bytes = response.bytes().await.map_err(|err| self.transport(&err))?;
        Ok(bytes.to_vec())
    }

    async fn json<T: DeserializeOwned>(&self, response: Response) -> Result<T, ClientError> {
        let bytes = self.bytes(response).await?;
        serde_json::from_slice(&bytes).map_err(|err| ClientError::Decode {
            url: self.shown.clone(),
            reason: err.to_string(),
        })
    }

    fn transport(&self, err: &reqwest::Error) -> ClientError {
        if err.is_connect() {
            ClientError::Unreachable {
                url: self.shown.clone(),
                reason: describe(err),
            }
        } else {
            ClientError::Transport {
                url: self.shown.clone(),
                reason: describe(err),
            }
        }
    }

    async fn api_error(&self, response: Response) -> ClientError {
        let status = response.status();
        let header_call_id = header(&response, CALL_ID_HEADER);
        let body = match response.bytes().await {
            Ok(body) => body.to_vec(),
            Err(err) => return self.transport(&err),
        };
        match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(ErrorBody { error }) => ClientError::Api {
                status: status.as_u16(),
                code: error.code,
                message: error.message,
                field: error.field,
                call_id: error.call_id.map(|id| id.to_string()).or(header_call_id),
            },
            Err(_) => {
                let text = String::from_utf8_lossy(&body);
                let text = crate::output::one_line(&text);
                let snippet: String = text.chars().take(200).collect();
                let message = if snippet.is_empty() {
                    format!("skiff at {} answered {status}", self.shown)
                } else {
                    format!("skiff at {} answered {status}: {snippet}", self.shown)
                };
                ClientError::Api {
                    status: status.as_u16(),
                    code: format!("http_{}", status.as_u16()),
                    message,
                    field: None,
                    call_id: header_call_id,
                }
            }
        }
    }
}

/// `spec` as the JSON body of a deploy, without the fields left unset.
fn spec_body(spec: &FunctionSpec) -> serde_json::Value {
    let mut body = serde_json::to_value(spec).unwrap_or_default();
    if let Some(fields) = body.as_object_mut() {
        fields.retain(|_, value| !value.is_null());
    }
    body
}

fn header(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// A short, lower-case account of a transport error: the innermost cause, which says what
/// actually happened (`connection refused`), rather than reqwest's wrapping.
fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        return if err.is_connect() {
            format!("no connection within {}s", CONNECT_TIMEOUT.as_secs())
        } else {
            "the request timed out".to_string()
        };
    }
    let mut source: &(dyn std::error::Error + 'static) = err;
    let mut io_kind = None;
    while let Some(next) = source.source() {
        if let Some(io) = next.downcast_ref::<std::io::Error>() {
            io_kind = Some(io.kind());
        }
        source = next;
    }
    match io_kind {
        Some(std::io::ErrorKind::ConnectionRefused) => "connection refused".to_string(),
        Some(std::io::ErrorKind::ConnectionReset) => "connection reset".to_string(),
        _ => {
            let text = source.to_string();
            let text = text
                .split(" (os error")
                .next()
                .unwrap_or(&text)
                .trim()
                .to_string();
            let mut chars = text.chars();
            match chars.next() {
                Some(first) => first.to_lowercase().chain(chars).collect(),
                None => "unknown error".to_string(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Bytes;
    use axum::extract::{Path, RawQuery};
    use axum::http::{HeaderMap, StatusCode as AxumStatus};
    use axum::response::IntoResponse;
    use axum::routing::{get, post, put};
    use axum::{Json, Router};
    use serde_json::json;
    use skiff_core::{CallStatus, InstanceState};

    fn view_json(name: &str, version: u64) -> serde_json::Value {
        json!({
            "name": name, "image": "skiff/hello:latest", "image_digest": "sha256:0deb1fb9310d1234",
            "contract": "exec", "memory": "128Mi", "cpus": 1.0, "pids": 256, "tmp_size": "64Mi",
            "timeout": "10s", "env": {}, "secrets": [], "version": version,
            "created_at": "2026-11-22T11:04:05Z", "updated_at": "2026-11-22T11:04:05Z"
        })
    }

    fn not_found(name: &str) -> axum::response::Response {
        (
            AxumStatus::NOT_FOUND,
            Json(json!({"error": {"code": "function_not_found",
                "message": format!("function `{name}` does not exist")}})),
        )
            .into_response()
    }

    async fn serve() -> String {
        let app = Router::new()
            .route(
                "/healthz",
                get(|| async { Json(json!({"status": "ok", "daemon": "0190b1a2"})) }),
            )
            .route(
                "/v1/functions",
                get(|| async { Json(json!({"functions": [view_json("hello", 2)]})) }),
            )
            .route(
                "/v1/functions/{name}",
                put(
                    |Path(name): Path<String>, Json(spec): Json<FunctionSpec>| async move {
                        assert_eq!(spec.image, "skiff/hello:latest");
                        (AxumStatus::CREATED, Json(view_json(&name, 1)))
                    },
                )
                .get(|Path(name): Path<String>| async move {
                    if name == "hello" {
                        Json(view_json(&name, 2)).into_response()
                    } else {
                        not_found(&name)
                    }
                }),
            )
            .route(
                "/v1/functions/{name}/invoke",
                post(|Path(name): Path<String>, body: Bytes| async move {
                    let mut headers = HeaderMap::new();
                    headers.insert(
                        CALL_ID_HEADER,
                        "0190b1a2-0000-7000-8000-000000000001"
                            .parse()
                            .expect("header"),
                    );
                    match name.as_str() {
                        "echo" => {
                            headers.insert(COLD_HEADER, "true".parse().expect("header"));
                            (AxumStatus::OK, headers, body.to_vec()).into_response()
                        }
                        "fails" => (
                            AxumStatus::BAD_GATEWAY,
                            headers,
                            Json(json!({"error": {"code": "function_error",
                                "message": "the function exited with status 1: boom\nat line 3",
                                "call_id": "0190b1a2-0000-7000-8000-000000000001"}})),
                        )
                            .into_response(),
                        _ => not_found(&name),
                    }
                }),
            )
            .route(
                "/v1/functions/{name}/instances",
                get(|Path(name): Path<String>| async move {
                    if name != "web" {
                        return not_found(&name);
                    }
                    Json(json!({"instances": [{"id": "4f9a0c1d2e3b", "container": "0123456789abcdef",
                        "version": 1, "state": "ready", "in_flight": 0, "idle_seconds": 3}]}))
                    .into_response()
                }),
            )
            .route(
                "/v1/functions/{name}/scale",
                post(
                    |Path(name): Path<String>, Json(body): Json<serde_json::Value>| async move {
                        if name != "web" {
                            return (
                                AxumStatus::BAD_REQUEST,
                                Json(json!({"error": {"code": "invalid_spec",
                                    "message": "min_instances: the `exec` contract has no instances",
                                    "field": "min_instances"}})),
                            )
                                .into_response();
                        }
                        assert_eq!(body, json!({"max_instances": 5}));
                        let mut view = view_json(&name, 1);
                        view["contract"] = json!("http");
                        view["min_instances"] = json!(1);
                        view["max_instances"] = json!(5);
                        Json(view).into_response()
                    },
                ),
            )
            .route(
                "/v1/calls",
                get(|RawQuery(query): RawQuery| async move {
                    assert_eq!(query.as_deref(), Some("function=a+b&status=failed&limit=5"));
                    Json(json!({"calls": [], "next": null}))
                }),
            )
            .route("/v1/calls/{id}/logs", get(|| async { "line 1\nline 2\n" }))
            .route(
                "/teapot",
                get(|| async { (AxumStatus::IM_A_TEAPOT, "short and stout") }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn successful_requests_decode() {
        let client = ApiClient::new(&serve().await).expect("client");
        client.health().await.expect("healthy");
        let functions = client.list_functions().await.expect("list");
        assert_eq!(functions.len(), 1);
        assert_eq!(functions[0].name, "hello");
        assert_eq!(client.get_function("hello").await.expect("get").version, 2);

        let spec = FunctionSpec {
            image: "skiff/hello:latest".into(),
            ..FunctionSpec::default()
        };
        let deployed = client.put_function("new", &spec).await.expect("deploy");
        assert!(deployed.created);
        assert_eq!(deployed.function.name, "new");

        let invoked = client
            .invoke("echo", vec![0, 159, 146, 150])
            .await
            .expect("invoke");
        assert_eq!(invoked.output, vec![0, 159, 146, 150]);
        assert_eq!(invoked.cold, Some(true));
        assert_eq!(
            invoked.call_id.as_deref(),
            Some("0190b1a2-0000-7000-8000-000000000001")
        );

        let page = client
            .list_calls(&CallQuery {
                function: Some("a b".into()),
                status: Some(CallStatus::Failed),
                limit: Some(5),
                ..CallQuery::default()
            })
            .await
            .expect("calls");
        assert!(page.calls.is_empty());
        assert_eq!(page.next, None);

        let logs = client.call_logs(Uuid::nil()).await.expect("logs");
        assert_eq!(logs, b"line 1\nline 2\n");
    }

    #[tokio::test]
    async fn instances_list_and_scale() {
        let client = ApiClient::new(&serve().await).expect("client");
        let instances = client.list_instances("web").await.expect("instances");
        assert_eq!(
            instances,
            vec![InstanceView {
                id: "4f9a0c1d2e3b".into(),
                container: "0123456789abcdef".into(),
                version: 1,
                state: InstanceState::Ready,
                in_flight: 0,
                idle_seconds: 3,
            }]
        );
        let err = client.list_instances("nope").await.expect_err("missing");
        assert!(matches!(err, ClientError::Api { status: 404, .. }), "{err}");

        let bounds = ScaleRequest {
            min_instances: None,
            max_instances: Some(5),
        };
        let view = client.scale("web", &bounds).await.expect("scaled");
        assert_eq!((view.min_instances, view.max_instances), (Some(1), Some(5)));
        let err = client.scale("hello", &bounds).await.expect_err("exec");
        match &err {
            ClientError::Api { code, field, .. } => {
                assert_eq!(code, "invalid_spec");
                assert_eq!(field.as_deref(), Some("min_instances"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn api_errors_read_as_one_line() {
        let client = ApiClient::new(&serve().await).expect("client");
        let err = client.get_function("nope").await.expect_err("missing");
        assert_eq!(
            err.to_string(),
            "function `nope` does not exist (function_not_found)"
        );
        assert!(matches!(err, ClientError::Api { status: 404, .. }));

        let err = client.invoke("fails", Vec::new()).await.expect_err("fails");
        assert_eq!(
            err.to_string(),
            "the function exited with status 1: boom | at line 3 (function_error)"
        );
        match &err {
            ClientError::Api { call_id, code, .. } => {
                assert_eq!(code, "function_error");
                assert_eq!(
                    call_id.as_deref(),
                    Some("0190b1a2-0000-7000-8000-000000000001")
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        let json = err.to_json();
        assert_eq!(json["error"]["code"], "function_error");
        assert_eq!(
            json["error"]["call_id"],
            "0190b1a2-0000-7000-8000-000000000001"
        );
    }

    #[tokio::test]
    async fn non_json_errors_still_read_well() {
        let url = serve().await;
        let client = ApiClient::new(&format!("{url}/")).expect("client");
        let request = client.request(Method::GET, &["teapot"]);
        let err = client.send(request).await.expect_err("teapot");
        assert_eq!(
            err.to_string(),
            format!("skiff at {url} answered 418 I'm a teapot: short and stout (http_418)")
        );
    }

    #[tokio::test]
    async fn an_unreachable_daemon_says_so() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let url = format!("http://{addr}");
        let client = ApiClient::new(&url).expect("client");
        let err = client.list_functions().await.expect_err("unreachable");
        assert_eq!(
            err.to_string(),
            format!("cannot reach skiff at {url}: connection refused; is `skiff serve` running?")
        );
    }

    #[test]
    fn bad_urls_are_refused() {
        for bad in ["localhost:8080", "ftp://x", "http://", "not a url"] {
            let err = ApiClient::new(bad).expect_err(bad);
            assert!(err.to_string().starts_with("invalid skiff URL"), "{err}");
        }
    }

    #[test]
    fn unset_spec_fields_are_left_out() {
        let spec = FunctionSpec {
            image: "img".into(),
            ..FunctionSpec::default()
        };
        assert_eq!(spec_body(&spec), json!({"image": "img"}));
        let spec = FunctionSpec {
            image: "img".into(),
            contract: Some(skiff_core::Contract::Http),
            max_instances: Some(3),
            ..FunctionSpec::default()
        };
        assert_eq!(
            spec_body(&spec),
            json!({"image": "img", "contract": "http", "max_instances": 3})
        );
    }

    #[test]
    fn paths_are_encoded() {
        let client = ApiClient::new("http://127.0.0.1:8080/prefix/").expect("client");
        let url = client.url_of(&["v1", "functions", "a/b c"]);
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8080/prefix/v1/functions/a%2Fb%20c"
        );
    }
}
