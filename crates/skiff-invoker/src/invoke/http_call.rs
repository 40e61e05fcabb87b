//! The `http` contract's call: a lease on an instance, the request proxied to it, and the
//! response streamed back in a [`Completion`] that finishes the record when it ends.

use super::{Contracts, InvokeOutcome, InvokeRequest};
use crate::calls::{CallContext, CallResult, Completion, CompletionState, Held};
use crate::error::PlatformError;
use crate::registry::Entry;
use crate::running::CallGuard;
use bytes::Bytes;
use skiff_core::CallErrorType;

/// Bodies up to this size are read before an `http` call is sent, so that it can be sent
/// again to another instance.
const REPLAYABLE_BODY: u64 = 64 * 1024;

/// Attempts of one call on instances that refuse its connection before taking it.
const CONNECT_ATTEMPTS: u32 = 3;

/// The first error of type `E` in `err`'s chain of sources.
fn find_source<'a, E: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

impl Contracts {
    pub(super) async fn invoke_http(
        &self,
        entry: &Entry,
        request: InvokeRequest,
        mut call: CallContext,
        held: Held,
        guard: &CallGuard,
    ) -> Result<InvokeOutcome, PlatformError> {
        let limit = self.max_request_bytes;
        let function = entry.function.name.to_string();
        let one_at_a_time = entry.function.config.scaling.concurrency == 1;
        call.record.request_size = http_body::Body::size_hint(&request.body)
            .exact()
            .unwrap_or(0);
        let call_id = call.record.id.to_string();
        // A small body is read first, so that the call can be sent again to another instance
        // if the first turns out to be gone before it took the request; a larger (or
        // unsized) body streams through and cannot be replayed.
        let small = http_body::Body::is_end_stream(&request.body)
            || crate::body::content_length(&request.headers).is_some_and(|n| n <= REPLAYABLE_BODY);
        let (replay, mut body) = if small {
            let bytes = crate::body::read(request.body, limit).await?;
            call.record.request_size = bytes.len() as u64;
            (Some(bytes), None)
        } else {
            (None, Some(crate::body::limited(request.body, limit)))
        };
        // From here on, the call has a record, and every way out finishes it.
        self.log.started(&call).await;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut lease = match self.instances.acquire(&function, call.start_by).await {
                Ok(lease) => lease,
                Err(err) => return Err(self.no_instance(&mut call, err, None).await),
            };
            self.leased(&mut call, &lease, guard);
            let deadline_text = call.deadline_text();
            // One call at a time on the instance: what it writes meanwhile is the call's.
            let mark = lease.output.lock().begin_call();
            let this_body = match (&replay, body.take()) {
                (Some(bytes), _) => crate::body::full(bytes.clone()),
                (None, Some(streamed)) => streamed,
                (None, None) => crate::body::full(Bytes::new()),
            };
            let outgoing = crate::proxy::instance_request(
                lease.addr,
                &request.method,
                &request.path,
                &request.query,
                &request.headers,
                &call_id,
                &deadline_text,
                this_body,
            );
            let outgoing = match outgoing {
                Ok(outgoing) => outgoing,
                Err(err) => {
                    let message = format!("the request cannot be forwarded: {err}");
                    self.log
                        .fail(&mut call, CallErrorType::Rejected, message.clone())
                        .await;
                    return Err(PlatformError::BadRequest { message });
                }
            };
            let failure =
                match tokio::time::timeout_at(call.deadline, self.client.request(outgoing)).await {
                    Ok(Ok(response)) => {
                        let cold = lease.cold;
                        let log_mark = one_at_a_time.then(|| {
                            (
                                mark,
                                crate::calls::LateLog {
                                    tracker: self.tracker.clone(),
                                    recorder: self.log.recorder().clone(),
                                    store: self.store.clone(),
                                },
                            )
                        });
                        let status = response.status();
                        let headers = crate::proxy::response_headers(&response);
                        let id = call.record.id;
                        let body = Completion::wrap(
                            response.into_body(),
                            CompletionState {
                                log: self.log.clone(),
                                call,
                                status,
                                lease,
                                held,
                                log_mark,
                            },
                            self.max_response_bytes as u64,
                        );
                        return Ok(InvokeOutcome {
                            call_id: id,
                            cold,
                            status,
                            headers,
                            body,
                        });
                    }
                    Ok(Err(err)) => err,
                    Err(_elapsed) => {
                        let message = "the call ran past its timeout".to_string();
                        return Err(self
                            .log
                            .fail(&mut call, CallErrorType::Timeout, message)
                            .await);
                    }
                };
            if find_source::<http_body_util::LengthLimitError>(&failure).is_some() {
                let message = format!("the request body is larger than the limit of {limit} bytes");
                self.log
                    .finish(
                        &mut call,
                        CallResult::Failed {
                            kind: CallErrorType::Rejected,
                            message,
                        },
                        None,
                    )
                    .await;
                return Err(PlatformError::PayloadTooLarge { limit });
            }
            lease.mark_broken();
            drop(lease);
            if failure.is_connect() && replay.is_some() && attempts < CONNECT_ATTEMPTS {
                tracing::warn!(function, err = %failure, "an instance refused a call before taking it; retrying on another");
                continue;
            }
            let message = format!("the instance failed while serving the call: {failure}");
            return Err(self
                .log
                .fail(&mut call, CallErrorType::Crashed, message)
                .await);
        }
    }
}
