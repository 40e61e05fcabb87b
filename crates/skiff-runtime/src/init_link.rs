//! skiff's side of `skiff-init`'s listen mode: one call over TCP to an `exec` container whose
//! stdio the engine's API cannot attach to (a Docker Swarm task on another node).
//!
//! Started with `SKIFF_INIT_LISTEN=<port>`, `skiff-init` (see `init/main.rs`) listens on
//! `0.0.0.0:<port>`, accepts exactly one connection, runs one call and exits. [`connect`]
//! turns that connection into the same [`Attachment`] the Docker engine gives, plus the
//! function's exit code, which the engine's wait would otherwise give.
//!
//! # Wire format
//!
//! skiff to `skiff-init`:
//!
//! 1. the call's metadata frame, as in stdin mode ([`crate::init::encode_frame`]): a u32
//!    little-endian length `N` (at most 1 MiB), then `N` bytes of NUL-separated `KEY=VALUE`
//!    entries, added to the function's environment;
//! 2. the request body, the function's stdin, up to skiff's half-close (shutdown of its write
//!    side), which closes the function's stdin.
//!
//! `skiff-init` to skiff, frames in Docker's stream framing: an 8-byte header
//! `[kind, 0, 0, 0, len as u32 big-endian]`, then `len` bytes:
//!
//! - kind 1: bytes the function wrote to stdout; kind 2: to stderr; in the order `skiff-init`
//!   read them, at most 32 KiB a frame (this side refuses more than [`MAX_CHUNK`]). A frame
//!   with no bytes carries nothing: while the function runs, `skiff-init` sends an empty
//!   stdout frame every 500 ms, so that a write tells it when skiff has dropped the
//!   connection, and then it kills the function.
//! - kind 3, last, `len` 4: the exit status as a big-endian i32: the function's exit code,
//!   or 128 + the signal that killed it. If the function could not be run, a stderr frame
//!   `skiff-init: ...` comes first and the status is 127 (126 for a bad metadata frame).
//!
//! Then `skiff-init` shuts down its side, reads what remains of the body for up to 5 s (so
//! that closing does not reset the connection) and exits.

use crate::backoff::Backoff;
use crate::{Attachment, EngineError, Output};
use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncRead;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::codec::{Decoder, FramedRead};

/// The largest output frame accepted (`skiff-init` sends at most 32 KiB a frame).
pub const MAX_CHUNK: usize = 1 << 20;

/// The pauses between connection attempts: 10 ms, doubling up to 200 ms.
const RETRY: Backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(200));

const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const EXIT: u8 = 3;

/// A connection to a `skiff-init` in listen mode, for one call.
#[derive(Debug)]
pub struct InitLink {
    /// `stdin` writes to the connection: first the metadata frame, then the body; its
    /// `shutdown()` half-closes the connection, which closes the function's stdin. `output`
    /// yields the function's stdout and stderr until its exit status arrives, or an error
    /// if the connection breaks first or carries a malformed frame. Dropping both ends the
    /// call: `skiff-init` notices and kills the function.
    pub attachment: Attachment,
    /// The function's exit code (128 + signal if a signal killed it), sent when `output`
    /// reaches it; the error `output` ended with, if it ended so; closed without a value if
    /// `output` is dropped before.
    pub exit: oneshot::Receiver<Result<i64, EngineError>>,
}

/// Connects to the `skiff-init` listening at `addr`, retrying with a short backoff (its task
/// may not be listening yet) until `deadline` has passed.
pub async fn connect(addr: SocketAddr, deadline: Duration) -> Result<InitLink, EngineError> {
    let stream = connect_with_retry(addr, deadline).await?;
    // Small frames (the metadata, short outputs) should not wait for more.
    stream
        .set_nodelay(true)
        .map_err(|err| link_error(addr, &err))?;
    let (read, write) = stream.into_split();
    let (exit_tx, exit) = oneshot::channel();
    Ok(InitLink {
        attachment: Attachment {
            stdin: Box::pin(write),
            output: output_stream(read, addr, exit_tx).boxed(),
        },
        exit,
    })
}

async fn connect_with_retry(
    addr: SocketAddr,
    deadline: Duration,
) -> Result<TcpStream, EngineError> {
    let give_up = Instant::now() + deadline;
    let mut retry = 0u32;
    loop {
        retry = retry.saturating_add(1);
        let delay = RETRY.delay(retry);
        let left = give_up.saturating_duration_since(Instant::now());
        let failure = match tokio::time::timeout(left, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(err)) => err.to_string(),
            Err(_) => "connection attempt timed out".to_owned(),
        };
        if Instant::now() + delay >= give_up {
            let secs = deadline.as_secs_f64();
            return Err(link_error(
                addr,
                &format!("no connection within {secs}s: {failure}"),
            ));
        }
        tokio::time::sleep(delay).await;
    }
}

fn link_error(addr: SocketAddr, message: &dyn std::fmt::Display) -> EngineError {
    EngineError::InitLink {
        addr,
        message: message.to_string(),
    }
}

/// The function's output decoded from `read`; the exit status goes to `exit`.
fn output_stream(
    read: impl AsyncRead + Send + Unpin + 'static,
    addr: SocketAddr,
    exit: oneshot::Sender<Result<i64, EngineError>>,
) -> impl Stream<Item = Result<Output, EngineError>> + Send {
    let frames = FramedRead::new(read, FrameDecoder);
    futures::stream::unfold(Some((frames, exit)), move |state| async move {
        let (mut frames, exit) = state?;
        let failure = match frames.next().await {
            Some(Ok(Frame::Output(output))) => return Some((Ok(output), Some((frames, exit)))),
            Some(Ok(Frame::Exit(code))) => {
                let _ = exit.send(Ok(i64::from(code)));
                return None;
            }
            Some(Err(err)) => err.to_string(),
            None => "the connection closed before the function's exit status".to_owned(),
        };
        let _ = exit.send(Err(link_error(addr, &failure)));
        Some((Err(link_error(addr, &failure)), None))
    })
}

/// One frame from `skiff-init`.
#[derive(Debug, PartialEq, Eq)]
enum Frame {
    Output(Output),
    Exit(i32),
}

/// Why the stream from `skiff-init` could not be decoded.
#[derive(Debug, thiserror::Error)]
enum FrameError {
    #[error("reading from the connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed stream: {0}")]
    Malformed(String),
}

/// Decodes the frames `skiff-init` sends (see the module doc); skips empty output frames.
#[derive(Debug)]
struct FrameDecoder;

impl Decoder for FrameDecoder {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        loop {
            let Some(header) = src.get(..8) else {
                return Ok(None);
            };
            let kind = header[0];
            if header[1..4] != [0, 0, 0] {
                let header = format!("{header:02x?}");
                return Err(FrameError::Malformed(format!("bad frame header {header}")));
            }
            let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
            match kind {
                STDOUT | STDERR if len > MAX_CHUNK => {
                    return Err(FrameError::Malformed(format!(
                        "an output frame of {len} bytes (at most {MAX_CHUNK})"
                    )))
                }
                EXIT if len != 4 => {
                    return Err(FrameError::Malformed(format!(
                        "an exit frame of {len} bytes (4 expected)"
                    )))
                }
                STDOUT | STDERR | EXIT => {}
                other => return Err(FrameError::Malformed(format!("unknown frame kind {other}"))),
            }
            if src.len() < 8 + len {
                src.reserve(8 + len - src.len());
                return Ok(None);
            }
            src.advance(8);
            let data: Bytes = src.split_to(len).freeze();
            match kind {
                EXIT => {
                    return Ok(Some(Frame::Exit(i32::from_be_bytes([
                        data[0], data[1], data[2], data[3],
                    ]))))
                }
                _ if data.is_empty() => continue,
                STDOUT => return Ok(Some(Frame::Output(Output::Stdout(data)))),
                _ => return Ok(Some(Frame::Output(Output::Stderr(data)))),
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        match self.decode(src)? {
            None if !src.is_empty() => Err(FrameError::Malformed(format!(
                "the connection closed in the middle of a frame ({} bytes left)",
                src.len()
            ))),
            frame => Ok(frame),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, data: &[u8]) -> Vec<u8> {
        let mut frame = vec![kind, 0, 0, 0];
        frame.extend_from_slice(&(data.len() as u32).to_be_bytes());
        frame.extend_from_slice(data);
        frame
    }

    fn addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 7000))
    }

    /// Decodes `chunks` fed one after the other, as reads would deliver them.
    fn decode_all(chunks: &[&[u8]]) -> Result<Vec<Frame>, FrameError> {
        let mut decoder = FrameDecoder;
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            while let Some(frame) = decoder.decode(&mut buf)? {
                frames.push(frame);
            }
        }
        while let Some(frame) = decoder.decode_eof(&mut buf)? {
            frames.push(frame);
        }
        Ok(frames)
    }

    #[test]
    fn frames_split_across_reads_are_reassembled_in_order() {
        let stream = [
            frame(1, b"hello "),
            frame(2, b"oops"),
            frame(1, b"world"),
            frame(3, &3i32.to_be_bytes()),
        ]
        .concat();
        let expected = vec![
            Frame::Output(Output::Stdout(Bytes::from_static(b"hello "))),
            Frame::Output(Output::Stderr(Bytes::from_static(b"oops"))),
            Frame::Output(Output::Stdout(Bytes::from_static(b"world"))),
            Frame::Exit(3),
        ];
        // Every split point, including inside headers.
        for cut in 0..stream.len() {
            let (a, b) = stream.split_at(cut);
            assert_eq!(
                decode_all(&[a, b]).expect("decodes"),
                expected,
                "cut at {cut}"
            );
        }
        // One byte a read.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(decode_all(&bytes).expect("decodes"), expected);
    }

    #[test]
    fn empty_frames_are_heartbeats_and_yield_nothing() {
        let stream = [
            frame(1, b""),
            frame(2, b""),
            frame(1, b"x"),
            frame(3, &(-1i32).to_be_bytes()),
        ]
        .concat();
        assert_eq!(
            decode_all(&[&stream]).expect("decodes"),
            vec![
                Frame::Output(Output::Stdout(Bytes::from_static(b"x"))),
                Frame::Exit(-1)
            ]
        );
    }

    #[test]
    fn a_stream_cut_inside_a_frame_is_an_error() {
        let stream = [frame(1, b"hello"), frame(2, b"partial")].concat();
        let err = decode_all(&[&stream[..stream.len() - 2]]).expect_err("truncated");
        assert!(err.to_string().contains("middle of a frame"), "{err}");
        let err = decode_all(&[&[1, 0, 0]]).expect_err("truncated header");
        assert!(err.to_string().contains("middle of a frame"), "{err}");
    }

    #[test]
    fn oversized_and_unknown_frames_are_refused_before_buffering() {
        let mut header = vec![1, 0, 0, 0];
        header.extend_from_slice(&(MAX_CHUNK as u32 + 1).to_be_bytes());
        let mut buf = BytesMut::from(&header[..]);
        let err = FrameDecoder.decode(&mut buf).expect_err("too large");
        assert!(err.to_string().contains("at most"), "{err}");
        assert!(buf.capacity() < MAX_CHUNK);

        let err = decode_all(&[&frame(4, b"x")]).expect_err("unknown kind");
        assert!(err.to_string().contains("unknown frame kind 4"), "{err}");
        let err = decode_all(&[&frame(3, b"12345")]).expect_err("long exit frame");
        assert!(err.to_string().contains("exit frame of 5 bytes"), "{err}");
        let err = decode_all(&[&[1, 0, 1, 0, 0, 0, 0, 1, b'x']]).expect_err("bad padding");
        assert!(err.to_string().contains("bad frame header"), "{err}");
    }

    async fn collect(
        stream: Vec<u8>,
    ) -> (
        Vec<Result<Output, EngineError>>,
        Result<Result<i64, EngineError>, oneshot::error::RecvError>,
    ) {
        let (tx, rx) = oneshot::channel();
        let output: Vec<_> = output_stream(std::io::Cursor::new(stream), addr(), tx)
            .collect()
            .await;
        (output, rx.await)
    }

    #[tokio::test]
    async fn the_exit_frame_ends_output_and_carries_the_code() {
        let stream = [
            frame(1, b"out"),
            frame(3, &137i32.to_be_bytes()),
            frame(1, b"ignored"),
        ]
        .concat();
        let (output, exit) = collect(stream).await;
        assert_eq!(output.len(), 1);
        assert!(matches!(&output[0], Ok(Output::Stdout(b)) if b == "out"));
        assert_eq!(exit.expect("sent").expect("exit code"), 137);
    }

    #[tokio::test]
    async fn a_connection_closed_before_the_exit_frame_is_an_error_on_both() {
        let (output, exit) = collect(frame(2, b"err")).await;
        assert_eq!(output.len(), 2);
        assert!(matches!(&output[0], Ok(Output::Stderr(b)) if b == "err"));
        let err = output[1].as_ref().expect_err("error");
        assert!(matches!(err, EngineError::InitLink { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("before the function's exit status"),
            "{err}"
        );
        let err = exit.expect("sent").expect_err("no exit code");
        assert!(err.to_string().contains("127.0.0.1:7000"), "{err}");

        let (output, exit) = collect(frame(9, b"")).await;
        assert_eq!(output.len(), 1);
        assert!(output[0].as_ref().is_err());
        assert!(exit.expect("sent").is_err());
    }

    #[tokio::test]
    async fn connect_retries_until_the_listener_appears_and_gives_up_at_the_deadline() {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = probe.local_addr().expect("addr");
        drop(probe);
        let late = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let listener = tokio::net::TcpListener::bind(addr).await.expect("rebind");
            listener.accept().await.expect("accept")
        });
        connect(addr, Duration::from_secs(5))
            .await
            .expect("connects once listening");
        late.await.expect("accepted");

        let started = std::time::Instant::now();
        let err = connect(addr, Duration::from_millis(200))
            .await
            .expect_err("nobody listens");
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(matches!(err, EngineError::InitLink { .. }), "{err}");
        assert!(
            err.to_string().contains("no connection within 0.2s"),
            "{err}"
        );
    }
}
