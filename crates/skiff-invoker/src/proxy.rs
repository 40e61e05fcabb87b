//! The HTTP client to instances: pooled keep-alive connections, readiness probes, and the
//! request an `http` call sends to its instance.
//!
//! Requests keep their method, path, query, headers (less hop-by-hop ones) and a streaming
//! body; skiff adds `X-Skiff-Call-Id` and `X-Skiff-Deadline`. Responses stream back as the
//! instance writes them.

use crate::body::Body;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Request, Response, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::time::Duration;

/// The pooled HTTP/1.1 client that talks to instances.
pub type Client = hyper_util::client::legacy::Client<HttpConnector, Body>;

pub use skiff_core::api::headers::{CALL_ID_HEADER, DEADLINE_HEADER};

/// The client to instances: keep-alive, no Nagle, short connect timeout.
pub fn client() -> Client {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(2)));
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .build(connector)
}

/// Whether an instance at `addr` is ready: its readiness path answers 2xx, or, with no path,
/// its port accepts a connection.
pub async fn is_ready(client: &Client, addr: SocketAddr, path: Option<&str>) -> bool {
    let Some(path) = path else {
        return matches!(
            tokio::time::timeout(
                Duration::from_millis(500),
                tokio::net::TcpStream::connect(addr)
            )
            .await,
            Ok(Ok(_))
        );
    };
    let Ok(uri) = format!("http://{addr}{path}").parse::<Uri>() else {
        return false;
    };
    let Ok(request) = Request::get(uri).body(
        Empty::<Bytes>::new()
            .map_err(|never| match never {})
            .boxed_unsync(),
    ) else {
        return false;
    };
    match tokio::time::timeout(Duration::from_secs(1), client.request(request)).await {
        Ok(Ok(response)) => response.status().is_success(),
        _ => false,
    }
}

/// Headers that belong to one connection and are not forwarded.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
    )
}

/// Builds the request sent to an instance.
#[allow(clippy::too_many_arguments)] // each is one part of the request, named at the call site
pub fn instance_request(
    addr: SocketAddr,
    method: &http::Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    call_id: &str,
    deadline: &str,
    body: Body,
) -> Result<Request<Body>, http::Error> {
    let uri = if query.is_empty() {
        format!("http://{addr}{path}")
    } else {
        format!("http://{addr}{path}?{query}")
    };
    let mut request = Request::builder()
        .method(method.clone())
        .uri(uri)
        .body(body)?;
    let out = request.headers_mut();
    for (name, value) in headers {
        if !is_hop_by_hop(name) {
            out.append(name.clone(), value.clone());
        }
    }
    if let Ok(value) = HeaderValue::from_str(call_id) {
        out.insert(CALL_ID_HEADER, value);
    }
    if let Ok(value) = HeaderValue::from_str(deadline) {
        out.insert(DEADLINE_HEADER, value);
    }
    Ok(request)
}

/// Response headers to pass back to the caller.
pub fn response_headers(response: &Response<hyper::body::Incoming>) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(response.headers().len() + 2);
    for (name, value) in response.headers() {
        if !is_hop_by_hop(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_keep_end_to_end_headers_and_gain_skiff_ones() {
        let mut headers = HeaderMap::new();
        headers.insert("x-trace", HeaderValue::from_static("t"));
        headers.append("accept", HeaderValue::from_static("a"));
        headers.append("accept", HeaderValue::from_static("b"));
        headers.insert("connection", HeaderValue::from_static("close"));
        headers.insert("host", HeaderValue::from_static("example"));
        let addr: SocketAddr = "10.0.0.2:8080".parse().expect("addr");
        let request = instance_request(
            addr,
            &http::Method::PUT,
            "/a/b",
            "x=1",
            &headers,
            "call-1",
            "2026-01-01T00:00:00Z",
            crate::body::full(""),
        )
        .expect("request");
        assert_eq!(request.uri(), "http://10.0.0.2:8080/a/b?x=1");
        assert_eq!(request.method(), http::Method::PUT);
        let h = request.headers();
        assert_eq!(h["x-trace"], "t");
        assert_eq!(h.get_all("accept").iter().count(), 2);
        assert!(h.get("connection").is_none());
        assert!(h.get("host").is_none());
        assert_eq!(h[CALL_ID_HEADER], "call-1");
        assert_eq!(h[DEADLINE_HEADER], "2026-01-01T00:00:00Z");
    }
}
