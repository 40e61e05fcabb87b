//! HTTP calls to a test [`Daemon`]: its management API (`/v1/...`), its public routes
//! (`/fn/...`), and the [`Answer`]s they give. Every call uses a client of its own, so no
//! connection is kept from one call to the next, nor across a restart of the daemon.

use crate::daemon::Daemon;
use crate::poll::{poll, EVERY};
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

/// A whole answer: its status, its headers and its body, read to the end.
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

impl Answer {
    /// Sends `request` and reads its answer whole; panics if there is none.
    pub async fn of(request: RequestBuilder) -> Answer {
        Answer::from_response(request.send().await.expect("an answer")).await
    }

    /// Reads `response` whole.
    pub async fn from_response(response: reqwest::Response) -> Answer {
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.expect("the answer's body").to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics, showing the body, when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {}", self.status, self.text()))
    }

    /// The body as JSON, if it is JSON.
    pub fn try_json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The call id skiff gave the call (`X-Skiff-Call-Id`), if any.
    pub fn call_id(&self) -> Option<String> {
        self.headers
            .get("x-skiff-call-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// The status and the body as text.
    pub fn status_text(&self) -> (StatusCode, String) {
        (self.status, self.text())
    }

    /// The status and the body as JSON (see [`Answer::json`]).
    pub fn status_json(&self) -> (StatusCode, Value) {
        (self.status, self.json())
    }

    /// The status, the headers and the body as JSON (see [`Answer::json`]).
    pub fn parts(&self) -> (StatusCode, HeaderMap, Value) {
        (self.status, self.headers.clone(), self.json())
    }
}

impl Daemon {
    /// A request for `path` (below the daemon's URL, e.g. `/v1/functions`), to finish and
    /// send with [`Answer::of`].
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client().request(method, format!("{}{path}", self.url))
    }

    /// A new HTTP client that sends the daemon's admin token with every request.
    pub fn client(&self) -> reqwest::Client {
        self.client_with(reqwest::Client::builder())
    }

    /// A client made from `builder` that sends the daemon's admin token with every request
    /// (and trusts its CA, with TLS).
    pub fn client_with(&self, mut builder: reqwest::ClientBuilder) -> reqwest::Client {
        crate::tls::install_provider();
        if let Some(ca) = &self.tls {
            let pem = std::fs::read(ca).expect("the CA file");
            builder = builder.add_root_certificate(
                reqwest::Certificate::from_pem(&pem).expect("a CA certificate"),
            );
        }
        let mut headers = HeaderMap::new();
        if !self.token.is_empty() {
            let value = format!("Bearer {}", self.token)
                .parse()
                .expect("a header value");
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        builder
            .default_headers(headers)
            .build()
            .expect("an HTTP client")
    }

    /// A request for `path` with no credential.
    pub fn anonymous(&self, method: Method, path: &str) -> RequestBuilder {
        crate::tls::client().request(method, format!("{}{path}", self.url))
    }

    /// `GET path`, whatever the status.
    pub async fn get(&self, path: &str) -> Answer {
        Answer::of(self.request(Method::GET, path)).await
    }

    /// `GET path` as JSON, whatever the status; panics if the answer is not JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        self.get(path).await.json()
    }

    /// `GET path` as text, whatever the status.
    pub async fn get_text(&self, path: &str) -> String {
        self.get(path).await.text()
    }

    /// `PUT /v1/functions/{name}` with `spec`, whatever the answer.
    pub async fn put_function(&self, name: &str, spec: Value) -> Answer {
        Answer::of(
            self.request(Method::PUT, &format!("/v1/functions/{name}"))
                .json(&spec),
        )
        .await
    }

    /// Creates or updates function `name` with `spec`; panics unless it succeeded. Returns
    /// the function as the API shows it.
    pub async fn deploy(&self, name: &str, spec: Value) -> Value {
        let answer = self.put_function(name, spec).await;
        assert!(
            answer.status.is_success(),
            "deploying {name}: {} {}",
            answer.status,
            answer.text()
        );
        answer.json()
    }

    /// `DELETE /v1/functions/{name}`; its status.
    pub async fn delete_function(&self, name: &str) -> StatusCode {
        Answer::of(self.request(Method::DELETE, &format!("/v1/functions/{name}")))
            .await
            .status
    }

    /// Calls function `name` with `body` through the API (`POST
    /// /v1/functions/{name}/invoke`).
    pub async fn invoke(&self, name: &str, body: impl Into<reqwest::Body>) -> Answer {
        Answer::of(
            self.request(Method::POST, &format!("/v1/functions/{name}/invoke"))
                .body(body),
        )
        .await
    }

    /// Calls function `name` with `body` on its public route (`POST /fn/{name}`).
    pub async fn call(&self, name: &str, body: impl Into<reqwest::Body>) -> Answer {
        Answer::of(
            self.request(Method::POST, &format!("/fn/{name}"))
                .body(body),
        )
        .await
    }

    /// Calls function `name` with the JSON `event` on its public route.
    pub async fn call_json(&self, name: &str, event: &Value) -> Answer {
        Answer::of(
            self.request(Method::POST, &format!("/fn/{name}"))
                .json(event),
        )
        .await
    }

    /// Sends `body` to `path` (`/v1/functions/{name}/invoke` or a public route) as an async
    /// call (`Prefer: respond-async`), with `callback` as its `X-Skiff-Callback-Url`.
    pub async fn call_async(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
        callback: Option<&str>,
    ) -> Answer {
        let mut request = self
            .request(Method::POST, path)
            .header("Prefer", "respond-async")
            .body(body);
        if let Some(url) = callback {
            request = request.header("X-Skiff-Callback-Url", url);
        }
        Answer::of(request).await
    }

    /// The record of call `id` (`GET /v1/calls/{id}`).
    pub async fn call_record(&self, id: &str) -> Value {
        self.get_json(&format!("/v1/calls/{id}")).await
    }

    /// Waits until call `id` has `status`, for at most `bound`; returns its record. Panics
    /// with the last record seen if it does not get there.
    pub async fn wait_call(&self, id: &str, status: &str, bound: Duration) -> Value {
        let mut last = Value::Null;
        let reached = poll(bound, EVERY, async || {
            let record = self.call_record(id).await;
            if record["status"] == status {
                return Some(record);
            }
            last = record;
            None
        })
        .await;
        reached.unwrap_or_else(|| panic!("call {id} never reached {status} in {bound:?}: {last}"))
    }

    /// The calls `GET /v1/calls?{query}` lists, oldest first; panics unless it answers 200.
    pub async fn calls(&self, query: &str) -> Vec<Value> {
        let (status, page) = self.get(&format!("/v1/calls?{query}")).await.status_json();
        assert_eq!(status, StatusCode::OK, "{page}");
        let mut calls = page["calls"].as_array().cloned().unwrap_or_default();
        calls.reverse();
        calls
    }

    /// What call `id` logged (`GET /v1/calls/{id}/logs`).
    pub async fn logs(&self, id: &str) -> String {
        self.get_text(&format!("/v1/calls/{id}/logs")).await
    }

    /// Pulls `image` onto the daemon's engine (`POST /v1/images/pull`), as `skiff deploy`
    /// does for an image the engine lacks; panics unless the pull ends with `done`.
    pub async fn pull(&self, image: &str) {
        let answer = Answer::of(
            self.request(Method::POST, "/v1/images/pull")
                .json(&serde_json::json!({"image": image})),
        )
        .await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "pull {image}: {}",
            answer.text()
        );
        assert!(
            answer.text().contains("\"done\""),
            "pull {image}: {}",
            answer.text()
        );
    }

    /// The instances of function `name` (`GET /v1/functions/{name}/instances`); none when
    /// the answer has no list (a function that does not exist, or not yet).
    pub async fn instances(&self, name: &str) -> Vec<Value> {
        let answer = self.get(&format!("/v1/functions/{name}/instances")).await;
        answer
            .try_json()
            .and_then(|page| page["instances"].as_array().cloned())
            .unwrap_or_default()
    }

    /// Deploys `skiff/testfn` in `env` mode as function `name` and returns the environment
    /// its exec containers get.
    pub async fn exec_env(&self, name: &str) -> HashMap<String, String> {
        self.deploy(
            name,
            serde_json::json!({"image": "skiff/testfn:latest", "env": {"MODE": "env"}}),
        )
        .await;
        let answer = Answer::of(self.request(Method::POST, &format!("/fn/{name}"))).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        env_lines(&answer.text())
    }
}

/// `KEY=VALUE` lines as a map.
pub fn env_lines(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `spec` with the fields of `extra` added or replaced (both JSON objects).
pub fn merged(mut spec: Value, extra: Value) -> Value {
    if let (Some(spec), Value::Object(extra)) = (spec.as_object_mut(), extra) {
        spec.extend(extra);
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extra_fields_are_added_to_the_spec_or_replace_its_own() {
        let spec = merged(
            json!({"image": "a", "memory": "64Mi"}),
            json!({"memory": "128Mi", "min_instances": 1}),
        );
        assert_eq!(
            spec,
            json!({"image": "a", "memory": "128Mi", "min_instances": 1})
        );
    }

    #[test]
    fn env_lines_are_split_at_the_first_equals_sign() {
        let env = env_lines("A=1\nB=x=y\nnot a variable\n");
        assert_eq!(env.len(), 2);
        assert_eq!(env["B"], "x=y");
    }
}
