//! The `lambda` contract's call: a lease on an instance, the event handed to its runtime
//! through skiff's Runtime API ([`LambdaRegistry`](crate::lambda::LambdaRegistry)), and the
//! instance's output while it handled the event as the call's log, framed as AWS does.

use super::{Contracts, InvokeOutcome, InvokeRequest};
use crate::calls::{CallContext, CallResult, Held};
use crate::error::PlatformError;
use crate::lambda::Outcome;
use crate::registry::Entry;
use crate::running::CallGuard;
use http::{HeaderMap, HeaderValue, StatusCode};
use skiff_core::CallErrorType;
use std::time::Duration;
use uuid::Uuid;

/// A `lambda` call's log as AWS writes it: START, the function's output, END, REPORT.
fn lambda_log(id: Uuid, output: &[u8], took: Duration) -> Vec<u8> {
    let mut log = format!("START RequestId: {id} Version: $LATEST\n").into_bytes();
    log.extend_from_slice(output);
    if !output.is_empty() && !output.ends_with(b"\n") {
        log.push(b'\n');
    }
    log.extend_from_slice(
        format!(
            "END RequestId: {id}\nREPORT RequestId: {id}\tDuration: {:.2} ms\n",
            took.as_secs_f64() * 1000.0
        )
        .as_bytes(),
    );
    log
}

impl Contracts {
    pub(super) async fn invoke_lambda(
        &self,
        entry: &Entry,
        request: InvokeRequest,
        mut call: CallContext,
        held: Held,
        guard: &CallGuard,
    ) -> Result<InvokeOutcome, PlatformError> {
        let function = entry.function.name.to_string();
        let payload = crate::body::read(request.body, self.max_request_bytes).await?;
        call.record.request_size = payload.len() as u64;
        self.log.started(&call).await;
        let mut lease = match self.instances.acquire(&function, call.start_by).await {
            Ok(lease) => lease,
            Err(err) => {
                drop(held);
                let logs = lambda_log(call.record.id, &[], call.clock.elapsed());
                return Err(self.no_instance(&mut call, err, Some(logs)).await);
            }
        };
        self.leased(&mut call, &lease, guard);
        let output = lease.output.clone();
        let mark = output.lock().begin_call();
        let deadline_ms = (call.started_at
            + chrono::Duration::from_std(call.timeout).unwrap_or(chrono::Duration::MAX))
        .timestamp_millis();
        let answer = tokio::time::timeout_at(
            call.deadline,
            self.lambda.invoke(
                lease.addr.ip(),
                call.record.id.to_string(),
                payload,
                deadline_ms,
                self.targets.function_arn(&function),
            ),
        )
        .await;
        // One event at a time: what the instance wrote meanwhile is this call's log.
        let written = output.lock().call_log(mark);
        let cold = lease.cold;
        let result = match answer {
            Ok(Ok(Outcome::Response(body))) => Ok(body),
            Ok(Ok(Outcome::Error { error_type, body })) => Err((
                CallErrorType::FunctionError,
                format!("{error_type}: {}", String::from_utf8_lossy(&body)),
            )),
            Ok(Err(_gone)) => {
                lease.mark_broken();
                Err((
                    CallErrorType::Crashed,
                    "the instance died while handling the event".to_string(),
                ))
            }
            Err(_elapsed) => {
                // The runtime is still busy with the event: the instance cannot take
                // another, so it goes.
                lease.mark_broken();
                Err((
                    CallErrorType::Timeout,
                    "the call ran past its timeout and its instance was stopped".to_string(),
                ))
            }
        };
        drop(lease);
        drop(held);
        let id = call.record.id;
        let logs = lambda_log(id, &written, call.clock.elapsed());
        self.rewrite_late_log(id, output, mark, logs.len(), call.clock.elapsed());
        match result {
            Ok(body) => {
                let response_size = body.len() as u64;
                self.log
                    .finish(
                        &mut call,
                        CallResult::Succeeded { response_size },
                        Some(logs),
                    )
                    .await;
                let mut headers = HeaderMap::new();
                headers.insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                Ok(InvokeOutcome {
                    call_id: id,
                    cold,
                    status: StatusCode::OK,
                    headers,
                    body: crate::body::full(body),
                })
            }
            Err((kind, message)) => {
                self.log
                    .finish(
                        &mut call,
                        CallResult::Failed {
                            kind,
                            message: message.clone(),
                        },
                        Some(logs),
                    )
                    .await;
                Err(PlatformError::CallFailed {
                    call_id: id,
                    error_type: kind,
                    message,
                    exit_code: None,
                })
            }
        }
    }

    /// Output reaches skiff a little after the answer: a tracked task rewrites the call's
    /// log once it has, if there is more than the `seen` bytes of log written now.
    fn rewrite_late_log(
        &self,
        id: Uuid,
        output: crate::pool::Output,
        mark: crate::pool::CallMark,
        seen: usize,
        took: Duration,
    ) {
        crate::calls::LateLog {
            tracker: self.tracker.clone(),
            recorder: self.log.recorder().clone(),
            store: self.store.clone(),
        }
        .rewrite(id, output, mark, seen, move |late| {
            lambda_log(id, late, took)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lambda_log_is_framed_as_aws_does() {
        let id = Uuid::now_v7();
        let log =
            String::from_utf8(lambda_log(id, b"hello", Duration::from_millis(5))).expect("text");
        assert!(log.starts_with(&format!("START RequestId: {id} Version: $LATEST\nhello\n")));
        assert!(log.contains(&format!(
            "END RequestId: {id}\nREPORT RequestId: {id}\tDuration: 5.00 ms"
        )));
    }
}
