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

use crate::http::{full, Client};
use http::{header, Method, Request, Uri};
use skiff_core::CallStatus;
use skiff_store::{PendingCallback, Store};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

/// Tries per callback before it is given up.
pub(crate) const ATTEMPTS: u32 = 5;
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
    /// A scheme other than `http`.
    #[error("`{url}`: only http:// callback URLs are supported")]
    Scheme {
        /// The URL as given.
        url: String,
    },
}

/// Checks a callback URL: absolute, `http`, with a host.
pub fn check_url(url: &str) -> Result<(), CallbackUrlError> {
    let uri: Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| CallbackUrlError::Invalid {
            url: url.to_string(),
            message: e.to_string(),
        })?;
    if uri.scheme_str() != Some("http") {
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
        client: Client,
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
                let (store, client, cancel) = (store.clone(), client.clone(), cancel.clone());
                async move {
                    for callback in callbacks {
                        let Ok(permit) = slots.clone().acquire_owned().await else {
                            return false;
                        };
                        let (store, client, cancel) =
                            (store.clone(), client.clone(), cancel.clone());
                        inner.spawn(async move {
                            deliver(&store, &client, callback, &cancel).await;
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
    client: &Client,
    callback: PendingCallback,
    cancel: &CancellationToken,
) {
    let id = callback.record.id;
    let mut delay = Duration::from_secs(1);
    for attempt in 1..=ATTEMPTS {
        match send(client, &callback).await {
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
            _ = tokio::time::sleep(delay) => {}
        }
        delay = delay.saturating_mul(2);
    }
    if let Err(err) = store.finish_callback(id, false).await {
        tracing::error!(%err, call = %id, "cannot record a failed callback");
    }
}

/// One try: a 2xx answer is a delivery.
async fn send(client: &Client, callback: &PendingCallback) -> Result<(), String> {
    let record = &callback.record;
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(&callback.url)
        .header("x-skiff-call-id", record.id.hyphenated().to_string())
        .header("x-skiff-function", &record.function)
        .header("x-skiff-attempt", record.attempt.to_string());
    let body = if record.status == CallStatus::Succeeded {
        request = request.header("x-skiff-status", "succeeded");
        match &callback.result {
            Some(result) => {
                request = request.header("x-skiff-status-code", result.status_code.to_string());
                if let Some(content_type) = &result.content_type {
                    request = request.header(header::CONTENT_TYPE, content_type);
                }
                result.body.clone()
            }
            None => Vec::new(),
        }
    } else {
        request = request
            .header("x-skiff-status", "dead")
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(result) = &callback.result {
            request = request.header("x-skiff-status-code", result.status_code.to_string());
        }
        serde_json::json!({"error": {
            "code": record.error_type.map_or("failed", |t| t.as_str()),
            "message": record.error_message.clone().unwrap_or_default(),
        }})
        .to_string()
        .into_bytes()
    };
    let request = request.body(full(body)).map_err(|e| e.to_string())?;
    match tokio::time::timeout(TRY_TIMEOUT, client.request(request)).await {
        Ok(Ok(response)) if response.status().is_success() => Ok(()),
        Ok(Ok(response)) => Err(format!("the receiver answered {}", response.status())),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err(format!("no answer within {}s", TRY_TIMEOUT.as_secs())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_absolute_http_urls_are_accepted() {
        assert!(check_url("http://127.0.0.1:9000/done").is_ok());
        assert!(check_url("http://receiver.internal/hook?x=1").is_ok());
        assert!(matches!(
            check_url("https://example.com/"),
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
