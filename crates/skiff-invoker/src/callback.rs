//! Callbacks: an async call accepted with a callback URL has its result POSTed there once it
//! is final (succeeded, or dead after its last attempt).
//!
//! Durable: the callback is `pending` in the store from the moment the call is accepted, and
//! marked sent (a 2xx answer) or failed (after [`ATTEMPTS`] tries) only afterwards; callbacks
//! still pending at start-up are sent then. A callback may thus arrive more than once (the
//! `X-Skiff-Call-Id` header tells duplicates apart), never not at all while the receiver
//! answers within its attempts.
//!
//! What is sent: the function's response body for a call that succeeded, with its content
//! type; `{"error":{"code","message"}}` for a dead call. Headers: `X-Skiff-Call-Id`,
//! `X-Skiff-Function`, `X-Skiff-Status` (`succeeded` or `dead`), `X-Skiff-Attempt` and, when
//! the function answered, `X-Skiff-Status-Code`.
//!
//! Where: only where [`CallbackPolicy`] lets callbacks go, checked on the address the name
//! resolves to, right before connecting (each try connects anew, to that address). An
//! `https://` URL is reached over TLS, its certificate checked against the system's roots
//! (and the daemon's `--callback-ca`) for the URL's host name.

use crate::backoff::Backoff;
use crate::body::full;
use crate::destinations::CallbackPolicy;
use http::{header, Method, Request, Uri};
use skiff_core::api::headers::{
    ATTEMPT_HEADER, CALL_ID_HEADER, FUNCTION_HEADER, STATUS_CODE_HEADER, STATUS_HEADER,
};
use skiff_core::CallStatus;
use skiff_store::{PendingCallback, Store};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::ClientConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

/// Tries per callback before it is given up.
pub(crate) const ATTEMPTS: u32 = 5;
/// The waits between tries: 1 s, doubling (1, 2, 4, 8 s for 5 tries).
const RETRY: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
/// Longest one try may take.
const TRY_TIMEOUT: Duration = Duration::from_secs(10);
/// Callbacks in flight at once.
const IN_FLIGHT: usize = 16;
/// Calls waiting for their callback to be looked up.
const BACKLOG: usize = 4096;

/// Why a callback URL was refused.
#[derive(Debug, thiserror::Error)]
pub enum CallbackUrlError {
    /// Not a URL at all.
    #[error("`{url}` is not a URL: {message}")]
    Invalid {
        /// The URL as given.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// A scheme other than `http` and `https`.
    #[error("`{url}`: only http:// and https:// callback URLs are supported")]
    Scheme {
        /// The URL as given.
        url: String,
    },
    /// A destination callbacks may not reach.
    #[error("`{url}`: {message}")]
    Refused {
        /// The URL as given.
        url: String,
        /// Why.
        message: String,
    },
}

/// How long resolving a callback's host may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// The host of `uri`, without the brackets of an IPv6 address.
fn bare_host(uri: &Uri) -> Option<&str> {
    uri.host()
        .map(|host| host.trim_start_matches('[').trim_end_matches(']'))
}

/// The addresses `uri`'s host resolves to, at its port (80 by default, 443 for https).
async fn resolve(uri: &Uri) -> Result<Vec<std::net::SocketAddr>, String> {
    let host = bare_host(uri).ok_or("it has no host")?;
    let default_port = if uri.scheme_str() == Some("https") {
        443
    } else {
        80
    };
    let port = uri.port_u16().unwrap_or(default_port);
    match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(addrs)) => Ok(addrs.collect()),
        Ok(Err(err)) => Err(format!("cannot resolve `{host}`: {err}")),
        Err(_) => Err(format!(
            "cannot resolve `{host}` within {RESOLVE_TIMEOUT:?}"
        )),
    }
}

/// Checks a callback URL as [`check_url`] does, and that it does not lead where callbacks
/// may not go (see [`CallbackPolicy`]). A host that does not resolve now is let through: it
/// is checked again when the callback is sent.
pub async fn check_destination(url: &str, policy: &CallbackPolicy) -> Result<(), CallbackUrlError> {
    check_url(url)?;
    let Ok(uri) = url.parse::<Uri>() else {
        return Ok(());
    };
    match resolve(&uri).await {
        Ok(addrs) => policy
            .pick(addrs)
            .map(|_| ())
            .map_err(|message| CallbackUrlError::Refused {
                url: url.to_string(),
                message,
            }),
        Err(_unresolved) => Ok(()),
    }
}

/// Checks a callback URL: absolute, `http` or `https`, with a host.
pub fn check_url(url: &str) -> Result<(), CallbackUrlError> {
    let uri: Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| CallbackUrlError::Invalid {
            url: url.to_string(),
            message: e.to_string(),
        })?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(CallbackUrlError::Scheme {
            url: url.to_string(),
        });
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(CallbackUrlError::Invalid {
            url: url.to_string(),
            message: "it has no host".to_string(),
        });
    }
    Ok(())
}

/// Sends callbacks in the background: bounded backlog, bounded concurrency, stops at
/// shutdown (what is left stays pending in the store and goes at the next start).
#[derive(Debug, Clone)]
pub(crate) struct Callbacks {
    tx: mpsc::Sender<Uuid>,
}

impl Callbacks {
    /// Starts the sender and queues the callbacks a previous run left pending.
    pub(crate) fn start(
        store: Store,
        policy: Arc<CallbackPolicy>,
        tls: Arc<ClientConfig>,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) -> Callbacks {
        let (tx, mut rx) = mpsc::channel::<Uuid>(BACKLOG);
        let slots = Arc::new(Semaphore::new(IN_FLIGHT));
        let inner = tracker.clone();
        tracker.spawn(async move {
            // Sends `callbacks`, each in its own task once a slot is free; false once the
            // slots are closed.
            let send_all = |callbacks: Vec<PendingCallback>| {
                let (slots, inner) = (slots.clone(), inner.clone());
                let (store, policy, cancel) = (store.clone(), policy.clone(), cancel.clone());
                let tls = tls.clone();
                async move {
                    for callback in callbacks {
                        let Ok(permit) = slots.clone().acquire_owned().await else {
                            return false;
                        };
                        let (store, policy, cancel) =
                            (store.clone(), policy.clone(), cancel.clone());
                        let tls = tls.clone();
                        inner.spawn(async move {
                            deliver(&store, &policy, &tls, callback, &cancel).await;
                            drop(permit);
                        });
                    }
                    true
                }
            };
            match store.pending_callbacks(None).await {
                Ok(pending) => {
                    if !send_all(pending).await {
                        return;
                    }
                }
                Err(err) => tracing::error!(%err, "cannot read pending callbacks"),
            }
            loop {
                let id = tokio::select! {
                    _ = cancel.cancelled() => return,
                    id = rx.recv() => match id {
                        Some(id) => id,
                        None => return,
                    },
                };
                let pending = match store.pending_callbacks(Some(id)).await {
                    Ok(pending) => pending,
                    Err(err) => {
                        tracing::error!(%err, call = %id, "cannot read a pending callback");
                        continue;
                    }
                };
                if !send_all(pending).await {
                    return;
                }
            }
        });
        Callbacks { tx }
    }

    /// Sends call `id`'s callback, if it has one and is final (its record must be stored).
    pub(crate) async fn notify(&self, id: Uuid) {
        // Closed only at shutdown: the callback stays pending for the next start.
        let _ = self.tx.send(id).await;
    }
}

/// Tries to deliver one callback, with backoff between tries; records how it ended.
async fn deliver(
    store: &Store,
    policy: &CallbackPolicy,
    tls: &Arc<ClientConfig>,
    callback: PendingCallback,
    cancel: &CancellationToken,
) {
    let id = callback.record.id;
    for attempt in 1..=ATTEMPTS {
        match send(policy, tls, &callback).await {
            Ok(()) => {
                if let Err(err) = store.finish_callback(id, true).await {
                    tracing::error!(%err, call = %id, "cannot record a sent callback");
                }
                return;
            }
            Err(message) => {
                tracing::warn!(call = %id, attempt, %message, "callback not delivered");
            }
        }
        if attempt == ATTEMPTS {
            break;
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(RETRY.delay(attempt)) => {}
        }
    }
    if let Err(err) = store.finish_callback(id, false).await {
        tracing::error!(%err, call = %id, "cannot record a failed callback");
    }
}

/// One try: a 2xx answer is a delivery. Connects to the first address of the URL's host
/// that the policy allows, and to nothing else.
async fn send(
    policy: &CallbackPolicy,
    tls: &Arc<ClientConfig>,
    callback: &PendingCallback,
) -> Result<(), String> {
    let record = &callback.record;
    let uri: Uri = callback.url.parse().map_err(|e| format!("{e}"))?;
    let addr = policy.pick(resolve(&uri).await?)?;
    let host = match (uri.host(), uri.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_string(),
        (None, _) => return Err("the callback URL has no host".to_string()),
    };
    let target = uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_string();
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(target)
        .header(header::HOST, host)
        .header(CALL_ID_HEADER, record.id.hyphenated().to_string())
        .header(FUNCTION_HEADER, &record.function)
        .header(ATTEMPT_HEADER, record.attempt.to_string());
    let body = if record.status == CallStatus::Succeeded {
        request = request.header(STATUS_HEADER, "succeeded");
        match &callback.result {
            Some(result) => {
                request = request.header(STATUS_CODE_HEADER, result.status_code.to_string());
                if let Some(content_type) = &result.content_type {
                    request = request.header(header::CONTENT_TYPE, content_type);
                }
                result.body.clone()
            }
            None => Vec::new(),
        }
    } else {
        request = request
            .header(STATUS_HEADER, "dead")
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(result) = &callback.result {
            request = request.header(STATUS_CODE_HEADER, result.status_code.to_string());
        }
        serde_json::json!({"error": {
            "code": record.error_type.map_or("failed", |t| t.as_str()),
            "message": record.error_message.clone().unwrap_or_default(),
        }})
        .to_string()
        .into_bytes()
    };
    let request = request.body(full(body)).map_err(|e| e.to_string())?;
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        if uri.scheme_str() != Some("https") {
            return exchange(stream, request).await;
        }
        let name = bare_host(&uri)
            .and_then(|host| ServerName::try_from(host.to_string()).ok())
            .ok_or("the callback URL's host is not a TLS server name")?;
        let stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, stream)
            .await
            .map_err(|e| format!("TLS with {addr}: {e}"))?;
        exchange(stream, request).await
    };
    match tokio::time::timeout(TRY_TIMEOUT, exchange).await {
        Ok(Ok(response)) if response.status().is_success() => Ok(()),
        Ok(Ok(response)) => Err(format!("the receiver answered {}", response.status())),
        Ok(Err(err)) => Err(err),
        Err(_) => Err(format!("no answer within {}s", TRY_TIMEOUT.as_secs())),
    }
}

/// One HTTP/1.1 request on `stream`, and its answer.
async fn exchange<S>(
    stream: S,
    request: Request<crate::body::Body>,
) -> Result<http::Response<hyper::body::Incoming>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::select! {
        response = sender.send_request(request) => response.map_err(|e| e.to_string()),
        closed = connection => Err(match closed {
            Ok(()) => "the receiver closed the connection".to_string(),
            Err(err) => err.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_absolute_http_and_https_urls_are_accepted() {
        assert!(check_url("http://127.0.0.1:9000/done").is_ok());
        assert!(check_url("http://receiver.internal/hook?x=1").is_ok());
        assert!(check_url("https://example.com/").is_ok());
        assert!(matches!(
            check_url("ftp://example.com/"),
            Err(CallbackUrlError::Scheme { .. })
        ));
        assert!(matches!(
            check_url("/relative"),
            Err(CallbackUrlError::Scheme { .. })
        ));
        assert!(matches!(
            check_url("not a url"),
            Err(CallbackUrlError::Invalid { .. })
        ));
    }
}
