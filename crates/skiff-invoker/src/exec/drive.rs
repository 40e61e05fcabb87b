//! Running one call in a prepared container: the call's metadata and body on stdin, its
//! stdout and stderr collected (both bounded), its exit read; the container killed when the
//! call ends early (deadline, output limit, stop).

use super::{ExecDriver, ExecOutcome, Prepared};
use crate::running::CallGuard;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use skiff_core::CallErrorType;
use skiff_runtime::{Attachment, EngineError, Output};
use std::collections::VecDeque;
use tokio::io::AsyncWriteExt;

/// Bytes of the end of stderr kept for a failed call's error message.
const ERROR_TAIL_BYTES: usize = 1024;

/// Stderr as kept for a call: the first `max` bytes, and the last bytes for error messages.
struct LogBuffer {
    head: Vec<u8>,
    max: usize,
    dropped: usize,
    tail: VecDeque<u8>,
}

impl LogBuffer {
    fn new(max: usize) -> Self {
        LogBuffer {
            head: Vec::new(),
            max,
            dropped: 0,
            tail: VecDeque::new(),
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        let room = self.max.saturating_sub(self.head.len());
        let kept = room.min(bytes.len());
        self.head.extend_from_slice(&bytes[..kept]);
        self.dropped += bytes.len() - kept;
        self.tail
            .extend(bytes.iter().rev().take(ERROR_TAIL_BYTES).rev());
        let excess = self.tail.len().saturating_sub(ERROR_TAIL_BYTES);
        self.tail.drain(..excess);
    }

    fn tail_text(&self) -> String {
        let bytes: Vec<u8> = self.tail.iter().copied().collect();
        String::from_utf8_lossy(&bytes).trim().to_string()
    }

    fn into_logs(mut self) -> Vec<u8> {
        if self.dropped > 0 {
            self.head.extend_from_slice(
                format!("\n[skiff: {} more bytes of log dropped]\n", self.dropped).as_bytes(),
            );
        }
        self.head
    }
}

/// How reading the container's output ended.
enum ReadEnd {
    /// The streams closed.
    Closed,
    /// Stdout went past the response limit.
    TooLarge,
}

impl ExecDriver {
    /// Sends the call to a prepared container and collects the result. The container comes
    /// back in the outcome, to be removed. `Err` only when not a byte of the call reached
    /// it (the container is discarded then).
    pub(super) async fn drive(
        &self,
        prepared: Prepared,
        frame: &[u8],
        body: &Bytes,
        deadline: tokio::time::Instant,
        cold: bool,
        call: &CallGuard,
    ) -> Result<ExecOutcome, NotDelivered> {
        let Prepared {
            instance,
            container,
            attachment:
                Attachment {
                    mut stdin,
                    mut output,
                },
        } = prepared;
        // From here on, requests of the function API from this container belong to the call.
        call.bind(&instance, deadline);
        if let Err(err) = stdin.write_all(frame).await {
            self.discard(container);
            return Err(NotDelivered(err));
        }
        let max_response = self.settings.max_response_bytes;
        let mut stdout = BytesMut::new();
        let mut logs = LogBuffer::new(self.settings.max_log_bytes);
        let mut tap = self.settings.logs.call_tap(call.function(), call.id());
        let engine = &self.engine;
        let work = async {
            let write = async {
                // A function may exit without reading all of its input: a failed write of
                // the body is not an error of the call.
                let _ = stdin.write_all(body).await;
                let _ = stdin.shutdown().await;
            };
            let read = async {
                while let Some(chunk) = output.next().await {
                    match chunk? {
                        Output::Stdout(bytes) => {
                            if stdout.len() + bytes.len() > max_response {
                                return Ok(ReadEnd::TooLarge);
                            }
                            stdout.extend_from_slice(&bytes);
                        }
                        Output::Stderr(bytes) => {
                            tap.push(skiff_core::api::LogStream::Stderr, &bytes);
                            logs.push(&bytes);
                        }
                    }
                }
                Ok::<_, EngineError>(ReadEnd::Closed)
            };
            let ((), read) = tokio::join!(write, read);
            match read? {
                ReadEnd::Closed => {
                    Ok::<_, EngineError>((ReadEnd::Closed, Some(engine.wait(&container).await?)))
                }
                ReadEnd::TooLarge => Ok((ReadEnd::TooLarge, None)),
            }
        };
        let result = tokio::select! {
            result = tokio::time::timeout_at(deadline, work) => Some(result),
            _ = call.stopped() => None,
        };
        // The engine cannot finish a container's exit while an attached client leaves its
        // output unread: let go of the attachment before killing.
        drop(output);
        drop(stdin);
        let instance = Some(instance);
        let outcome = match result {
            None => {
                if let Err(err) = engine.kill(&container).await {
                    tracing::warn!(%err, container, "could not kill a stopped call's container");
                }
                stopped(instance, cold, call)
            }
            Some(Err(_elapsed)) => {
                if let Err(err) = engine.kill(&container).await {
                    tracing::warn!(%err, container, "could not kill a timed-out container");
                }
                failed(
                    instance,
                    cold,
                    CallErrorType::Timeout,
                    "the call ran past its timeout and was stopped".into(),
                )
            }
            Some(Ok(Ok((ReadEnd::TooLarge, _)))) => {
                if let Err(err) = engine.kill(&container).await {
                    tracing::warn!(%err, container, "could not kill a container over the output limit");
                }
                failed(
                    instance,
                    cold,
                    CallErrorType::OutputTooLarge,
                    format!(
                        "the function wrote more than the response limit of {max_response} bytes"
                    ),
                )
            }
            Some(Ok(Err(err))) => {
                failed(instance, cold, CallErrorType::EngineError, err.to_string())
            }
            Some(Ok(Ok((ReadEnd::Closed, Some(0))))) => ExecOutcome {
                instance,
                cold,
                stdout: stdout.freeze(),
                logs: Vec::new(),
                exit_code: Some(0),
                error: None,
                container: None,
            },
            Some(Ok(Ok((ReadEnd::Closed, code)))) => {
                let code = code.unwrap_or(-1);
                let oom = oom_killed(&**engine, &container, code).await;
                let tail = logs.tail_text();
                let (kind, message) = if oom {
                    (
                        CallErrorType::OutOfMemory,
                        "the function ran out of memory and was killed".to_string(),
                    )
                } else if (129..=192).contains(&code) {
                    (
                        CallErrorType::Crashed,
                        format!("the function was killed by signal {}", code - 128),
                    )
                } else {
                    (
                        CallErrorType::FunctionError,
                        format!("the function exited with status {code}"),
                    )
                };
                let message = if tail.is_empty() {
                    message
                } else {
                    format!("{message}: {tail}")
                };
                ExecOutcome {
                    exit_code: Some(code),
                    ..failed(instance, cold, kind, message)
                }
            }
        };
        Ok(ExecOutcome {
            logs: logs.into_logs(),
            container: Some(container),
            ..outcome
        })
    }
}

/// The call could not be handed to the container at all.
#[derive(Debug)]
pub(super) struct NotDelivered(pub(super) std::io::Error);

pub(super) fn failed(
    instance: Option<String>,
    cold: bool,
    kind: CallErrorType,
    message: String,
) -> ExecOutcome {
    ExecOutcome {
        instance,
        cold,
        stdout: Bytes::new(),
        logs: Vec::new(),
        exit_code: None,
        error: Some((kind, message)),
        container: None,
    }
}

/// The outcome of a call stopped before its end, for the reason it was stopped.
pub(super) fn stopped(instance: Option<String>, cold: bool, call: &CallGuard) -> ExecOutcome {
    let reason = call
        .reason()
        .unwrap_or(crate::running::StopReason::ShuttingDown);
    failed(
        instance,
        cold,
        reason.error_type(),
        reason.message().to_string(),
    )
}

/// How often, and how far apart, a container killed by SIGKILL is inspected again for the
/// engine's out-of-memory flag: the engine hears of the exit and of the kernel's OOM kill
/// separately, and the flag can land a moment after the exit.
const OOM_FLAG_CHECKS: u32 = 5;
const OOM_FLAG_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// Whether the kernel killed the exited `container` for running out of memory.
async fn oom_killed(
    engine: &dyn skiff_runtime::ContainerEngine,
    container: &str,
    code: i64,
) -> bool {
    let checks = if code == 128 + 9 { OOM_FLAG_CHECKS } else { 1 };
    for check in 1..=checks {
        match engine.inspect(container).await {
            Ok(state) if state.oom_killed => return true,
            Ok(_) if check < checks => tokio::time::sleep(OOM_FLAG_PAUSE).await,
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(%err, container, "could not inspect a failed container");
                return false;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_keep_the_head_and_count_what_is_dropped() {
        let mut logs = LogBuffer::new(8);
        logs.push(b"0123456789");
        logs.push(b"abc");
        assert_eq!(logs.tail_text(), "0123456789abc");
        let kept = String::from_utf8(logs.into_logs()).expect("utf8");
        assert!(kept.starts_with("01234567\n[skiff: 5 more bytes"), "{kept}");
    }

    #[test]
    fn the_error_tail_is_bounded() {
        let mut logs = LogBuffer::new(1 << 20);
        logs.push(&vec![b'a'; 4000]);
        logs.push(b"the end");
        let tail = logs.tail_text();
        assert_eq!(tail.len(), ERROR_TAIL_BYTES);
        assert!(tail.ends_with("the end"));
    }
}
