//! The `exec` contract's call: the body read whole, the call's metadata framed for
//! `skiff-init`, a fresh container run by the [`ExecDriver`](crate::exec::ExecDriver), the
//! record finished with what the function wrote and how it exited.

use super::{Contracts, InvokeOutcome, InvokeRequest};
use crate::calls::{CallContext, CallResult};
use crate::error::PlatformError;
use crate::exec::ExecTarget;
use crate::registry::Entry;
use crate::running::CallGuard;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use skiff_core::CallErrorType;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

impl Contracts {
    pub(super) async fn invoke_exec(
        &self,
        entry: &Entry,
        request: InvokeRequest,
        mut call: CallContext,
        guard: &CallGuard,
        used: &mut Option<String>,
    ) -> Result<InvokeOutcome, PlatformError> {
        let body = crate::body::read(request.body, self.max_request_bytes).await?;
        call.record.request_size = body.len() as u64;
        self.log.started(&call).await;
        let function = &entry.function;
        let outcome = match entry.exec_target(&*self.engine, &self.targets).await {
            Ok(target) => {
                let metrics = self.log.metrics();
                let start_by = call.start_by;
                // The call's timeout starts when its container receives it.
                let mut deliver = |waited: Duration, cold: bool| {
                    call.deliver(waited, cold);
                    if cold {
                        metrics.cold_start(function.name.as_str(), waited);
                    } else {
                        metrics.queue_waited(function.name.as_str(), waited);
                    }
                    let frame = call_frame(
                        &request.method,
                        &request.path,
                        &request.query,
                        &request.headers,
                        function.name.as_str(),
                        call.record.id,
                        call.started_at,
                        call.timeout,
                    );
                    (frame, call.deadline)
                };
                let outcome = self
                    .exec
                    .run(&target, body, start_by, guard, &mut deliver)
                    .await;
                self.refill_exec(&target);
                outcome
            }
            Err(err) => crate::exec::ExecOutcome {
                instance: None,
                cold: true,
                stdout: Bytes::new(),
                logs: Vec::new(),
                exit_code: None,
                error: Some((
                    CallErrorType::StartFailed,
                    format!("the function's image cannot be used: {err}"),
                )),
                container: None,
            },
        };
        used.clone_from(&outcome.container);
        if call.record.cold.is_none() {
            // It never reached a container; had it, `deliver` noted how it started.
            call.record.cold = Some(outcome.cold);
        }
        call.record.instance = outcome.instance.clone();
        call.record.exit_code = outcome.exit_code;
        let result = match &outcome.error {
            None => CallResult::Succeeded {
                response_size: outcome.stdout.len() as u64,
            },
            Some((kind, message)) => CallResult::Failed {
                kind: *kind,
                message: message.clone(),
            },
        };
        let refused = matches!(outcome.error, Some((CallErrorType::Rejected, _)));
        // A queued call refused for want of a container goes back to the queue: its record
        // is the dispatcher's to set, not ended here.
        if !(refused && call.from_queue) {
            self.log.finish(&mut call, result, Some(outcome.logs)).await;
        }
        let call_id = call.record.id;
        match outcome.error {
            None => {
                let mut headers = HeaderMap::new();
                headers.insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                Ok(InvokeOutcome {
                    call_id,
                    cold: outcome.cold,
                    status: StatusCode::OK,
                    headers,
                    body: crate::body::full(outcome.stdout),
                })
            }
            // No container within the start budget: refused, not failed (an async call goes
            // back to the queue).
            Some((CallErrorType::Rejected, _)) => {
                let (running, queued) = (self.limiter.running(), self.limiter.queued());
                Err(PlatformError::Overloaded { running, queued })
            }
            Some((error_type, message)) => Err(PlatformError::CallFailed {
                call_id,
                error_type,
                message,
                exit_code: outcome.exit_code,
            }),
        }
    }

    /// Prepares the next containers of an exec function, unless the function was deleted
    /// or updated meanwhile (see [`crate::registry::Functions::while_current`]): a pool is
    /// never made again for a deleted function.
    fn refill_exec(&self, target: &Arc<ExecTarget>) {
        if self.is_accepting() {
            self.functions
                .while_current(target, || self.exec.refill(target));
        }
    }
}

/// The `SKIFF_*` variables of one call, framed for `skiff-init`.
#[allow(clippy::too_many_arguments)]
fn call_frame(
    method: &Method,
    path: &str,
    query: &str,
    request_headers: &HeaderMap,
    function: &str,
    call_id: Uuid,
    started_at: DateTime<Utc>,
    timeout: Duration,
) -> Vec<u8> {
    let deadline =
        started_at + chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX);
    let mut vars: Vec<(String, String)> = vec![
        ("SKIFF_CALL_ID".into(), call_id.to_string()),
        ("SKIFF_FUNCTION".into(), function.to_string()),
        ("SKIFF_METHOD".into(), method.to_string()),
        ("SKIFF_PATH".into(), path.to_string()),
        ("SKIFF_QUERY".into(), query.to_string()),
        (
            "SKIFF_DEADLINE".into(),
            deadline.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        ),
    ];
    let mut headers: Vec<(String, String)> = Vec::new();
    for (name, value) in request_headers {
        let Ok(value) = value.to_str() else { continue };
        let key = format!("SKIFF_HEADER_{}", header_var(name.as_str()));
        match headers.iter_mut().find(|(k, _)| *k == key) {
            Some((_, existing)) => {
                existing.push_str(", ");
                existing.push_str(value);
            }
            None => headers.push((key, value.to_string())),
        }
    }
    vars.extend(headers);
    skiff_runtime::init::encode_frame(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// A header name as an environment variable suffix: upper case, `-` (and anything else that
/// is not a letter or digit) as `_`.
fn header_var(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(frame: &[u8]) -> Vec<String> {
        frame[4..]
            .split(|b| *b == 0)
            .filter(|e| !e.is_empty())
            .map(|e| String::from_utf8_lossy(e).to_string())
            .collect()
    }

    #[test]
    fn call_metadata_follows_the_contract() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert("x-trace-id", HeaderValue::from_static("t1"));
        headers.append("accept", HeaderValue::from_static("a"));
        headers.append("accept", HeaderValue::from_static("b"));
        let id = Uuid::now_v7();
        let started = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .expect("date")
            .with_timezone(&Utc);
        let vars = decode(&call_frame(
            &Method::PUT,
            "/a/b",
            "x=1&y=2",
            &headers,
            "hello",
            id,
            started,
            Duration::from_secs(10),
        ));
        assert!(vars.contains(&format!("SKIFF_CALL_ID={id}")));
        assert!(vars.contains(&"SKIFF_FUNCTION=hello".to_string()));
        assert!(vars.contains(&"SKIFF_METHOD=PUT".to_string()));
        assert!(vars.contains(&"SKIFF_PATH=/a/b".to_string()));
        assert!(vars.contains(&"SKIFF_QUERY=x=1&y=2".to_string()));
        assert!(vars.contains(&"SKIFF_DEADLINE=2026-01-02T03:04:15.000Z".to_string()));
        assert!(vars.contains(&"SKIFF_HEADER_CONTENT_TYPE=application/json".to_string()));
        assert!(vars.contains(&"SKIFF_HEADER_X_TRACE_ID=t1".to_string()));
        assert!(
            vars.contains(&"SKIFF_HEADER_ACCEPT=a, b".to_string()),
            "{vars:?}"
        );
    }
}
