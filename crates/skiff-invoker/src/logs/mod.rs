//! Live logs: every line functions write, as it is written, to whoever follows them; and
//! the lines of `http` and `lambda` instances kept in the store.
//!
//! The contract drivers hand each chunk of output to the [`LogSink`] with where it came
//! from: an `exec` call's stderr (its call id), an instance's stdout and stderr (its
//! instance id). The sink cuts chunks into lines ([`lines`]) and
//! - publishes each line on one bounded broadcast channel for the daemon. A follower
//!   ([`LogSink::follow`]) reads the lines of one function from it; one that reads too
//!   slowly misses lines and is told how many ([`LogEvent::Lagged`]). Sending never waits,
//!   so followers never slow calls down. At most [`MAX_FOLLOWERS`] follow at once.
//! - queues instance lines for the store, on a bounded channel read by one writer task that
//!   stores them in batches ([`skiff_store::Store::write_instance_logs`], which keeps them
//!   bounded). When the writer falls behind, lines are dropped from the store (not from the
//!   followers) and the drop is logged.

mod lines;

use chrono::Utc;
use futures::Stream;
use skiff_core::api::{LogEvent, LogLine, LogStream};
use skiff_store::Store;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

pub(crate) use lines::LineSplitter;

/// Lines the broadcast channel holds for its slowest follower.
const BROADCAST_LINES: usize = 4096;
/// Most followers at once.
pub const MAX_FOLLOWERS: usize = 256;
/// Instance lines waiting for the store.
const STORE_QUEUE_LINES: usize = 16 * 1024;
/// Most lines stored in one transaction.
const STORE_BATCH_LINES: usize = 2048;

/// Too many followers already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{MAX_FOLLOWERS} logs are followed already")]
pub struct TooManyFollowers;

#[derive(Debug)]
struct Inner {
    lines: broadcast::Sender<Arc<LogLine>>,
    store: mpsc::Sender<LogLine>,
    dropped: AtomicU64,
    followers: Arc<Semaphore>,
    closed: CancellationToken,
}

/// Where output goes, line by line. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LogSink {
    inner: Arc<Inner>,
}

/// What a call or an instance writes, cut into lines as it comes.
#[derive(Debug)]
pub(crate) struct LineTap {
    sink: LogSink,
    function: String,
    call: Option<Uuid>,
    instance: Option<String>,
    stdout: LineSplitter,
    stderr: LineSplitter,
}

impl LineTap {
    /// Takes a chunk of `stream`.
    pub(crate) fn push(&mut self, stream: LogStream, chunk: &[u8]) {
        let lines = match stream {
            LogStream::Stdout => self.stdout.push(chunk),
            LogStream::Stderr => self.stderr.push(chunk),
        };
        for line in lines {
            self.emit(stream, line);
        }
    }

    /// The streams have ended: their last lines, if unended, go out.
    pub(crate) fn finish(&mut self) {
        if let Some(line) = self.stdout.finish() {
            self.emit(LogStream::Stdout, line);
        }
        if let Some(line) = self.stderr.finish() {
            self.emit(LogStream::Stderr, line);
        }
    }

    fn emit(&self, stream: LogStream, line: String) {
        self.sink.publish(LogLine {
            at: Utc::now(),
            function: self.function.clone(),
            call: self.call,
            instance: self.instance.clone(),
            stream,
            line,
        });
    }
}

impl Drop for LineTap {
    fn drop(&mut self) {
        self.finish();
    }
}

impl LogSink {
    /// A sink whose instance lines go to `store`, by a writer task on `tracker` that ends
    /// once every sink is dropped or [`LogSink::close`] is called, after storing what was
    /// queued.
    pub fn start(store: Store, tracker: &TaskTracker) -> LogSink {
        let (lines, _) = broadcast::channel(BROADCAST_LINES);
        let (tx, rx) = mpsc::channel(STORE_QUEUE_LINES);
        let closed = CancellationToken::new();
        tracker.spawn(writer(store, rx, closed.clone()));
        LogSink {
            inner: Arc::new(Inner {
                lines,
                store: tx,
                dropped: AtomicU64::new(0),
                followers: Arc::new(Semaphore::new(MAX_FOLLOWERS)),
                closed,
            }),
        }
    }

    /// A tap for what `exec` call `call` of `function` writes.
    pub(crate) fn call_tap(&self, function: &str, call: Uuid) -> LineTap {
        self.tap(function, Some(call), None)
    }

    /// A tap for what `instance` of `function` writes.
    pub(crate) fn instance_tap(&self, function: &str, instance: &str) -> LineTap {
        self.tap(function, None, Some(instance.to_string()))
    }

    fn tap(&self, function: &str, call: Option<Uuid>, instance: Option<String>) -> LineTap {
        LineTap {
            sink: self.clone(),
            function: function.to_string(),
            call,
            instance,
            stdout: LineSplitter::default(),
            stderr: LineSplitter::default(),
        }
    }

    /// Sends a line to the followers, and an instance's line to the store. Never waits.
    fn publish(&self, line: LogLine) {
        if line.instance.is_some() && !self.inner.closed.is_cancelled() {
            match self.inner.store.try_send(line.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    let before = self.inner.dropped.fetch_add(1, Ordering::Relaxed);
                    if before.is_multiple_of(10_000) {
                        tracing::warn!(
                            dropped = before + 1,
                            "instance logs come faster than they are stored; lines are dropped from the store"
                        );
                    }
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        // No follower is not an error.
        let _ = self.inner.lines.send(Arc::new(line));
    }

    /// The lines of `function` from now on, as they are written, until the sink is closed.
    pub fn follow(
        &self,
        function: &str,
    ) -> Result<impl Stream<Item = LogEvent> + Send + 'static, TooManyFollowers> {
        let permit = self
            .inner
            .followers
            .clone()
            .try_acquire_owned()
            .map_err(|_| TooManyFollowers)?;
        let state = Following {
            rx: self.inner.lines.subscribe(),
            function: function.to_string(),
            closed: self.inner.closed.clone(),
            _permit: permit,
        };
        Ok(futures::stream::unfold(state, |mut state| async move {
            let event = state.next().await?;
            Some((event, state))
        }))
    }

    /// Ends every follower's stream and stops storing lines (at shutdown); the writer
    /// stores what was queued before it stops.
    pub fn close(&self) {
        self.inner.closed.cancel();
    }

    /// Lines dropped so far because the store fell behind.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }
}

/// One follower's place in the broadcast.
struct Following {
    rx: broadcast::Receiver<Arc<LogLine>>,
    function: String,
    closed: CancellationToken,
    _permit: OwnedSemaphorePermit,
}

impl Following {
    /// The next event of the followed function; `None` once the sink is closed.
    async fn next(&mut self) -> Option<LogEvent> {
        loop {
            let received = tokio::select! {
                biased;
                _ = self.closed.cancelled() => return None,
                received = self.rx.recv() => received,
            };
            match received {
                Ok(line) if line.function == self.function => {
                    return Some(LogEvent::Line(LogLine::clone(&line)))
                }
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    return Some(LogEvent::Lagged { skipped })
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

/// Stores instance lines in batches until the sink is closed (then stores what is queued)
/// or every sender is gone.
async fn writer(store: Store, mut rx: mpsc::Receiver<LogLine>, closed: CancellationToken) {
    let mut batch = Vec::with_capacity(STORE_BATCH_LINES);
    loop {
        let got = tokio::select! {
            got = rx.recv_many(&mut batch, STORE_BATCH_LINES) => got,
            _ = closed.cancelled() => {
                rx.close();
                rx.recv_many(&mut batch, STORE_BATCH_LINES).await
            }
        };
        if got == 0 {
            return;
        }
        if let Err(err) = store.write_instance_logs(&batch).await {
            tracing::warn!(%err, lines = batch.len(), "could not store instance logs");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn followers_get_the_lines_of_their_function() {
        let store = Store::open_in_memory().await.expect("store");
        let tracker = TaskTracker::new();
        let sink = LogSink::start(store.clone(), &tracker);
        let follow = sink.follow("f").expect("follow");
        let mut follow = Box::pin(follow);
        let call = Uuid::now_v7();
        let mut tap = sink.call_tap("f", call);
        sink.instance_tap("g", "other")
            .push(LogStream::Stdout, b"not f\n");
        tap.push(LogStream::Stderr, b"one\ntw");
        tap.push(LogStream::Stderr, b"o\n");
        let mut instance = sink.instance_tap("f", "i1");
        instance.push(LogStream::Stdout, b"from the instance");
        drop(instance);
        let mut lines = Vec::new();
        for _ in 0..3 {
            match follow.next().await {
                Some(LogEvent::Line(line)) => lines.push(line),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(lines[0].line, "one");
        assert_eq!(lines[0].call, Some(call));
        assert_eq!(lines[0].stream, LogStream::Stderr);
        assert_eq!(lines[1].line, "two");
        assert_eq!(lines[2].line, "from the instance");
        assert_eq!(lines[2].instance.as_deref(), Some("i1"));
        sink.close();
        assert!(follow.next().await.is_none(), "closing ends the stream");
        tracker.close();
        tracker.wait().await;
        let stored = store
            .instance_logs(&skiff_store::InstanceLogFilter::default())
            .await
            .expect("read");
        assert_eq!(
            stored.iter().map(|l| l.line.as_str()).collect::<Vec<_>>(),
            ["not f", "from the instance"],
            "only instance lines are stored"
        );
    }

    #[tokio::test]
    async fn a_slow_follower_is_told_it_lagged() {
        let store = Store::open_in_memory().await.expect("store");
        let sink = LogSink::start(store, &TaskTracker::new());
        let mut follow = Box::pin(sink.follow("f").expect("follow"));
        let mut tap = sink.call_tap("f", Uuid::now_v7());
        for i in 0..BROADCAST_LINES + 10 {
            tap.push(LogStream::Stderr, format!("{i}\n").as_bytes());
        }
        assert_eq!(follow.next().await, Some(LogEvent::Lagged { skipped: 10 }));
        match follow.next().await {
            Some(LogEvent::Line(line)) => assert_eq!(line.line, "10"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn followers_are_bounded() {
        let store = Store::open_in_memory().await.expect("store");
        let sink = LogSink::start(store, &TaskTracker::new());
        let held: Vec<_> = (0..MAX_FOLLOWERS)
            .map(|_| sink.follow("f").expect("room"))
            .collect();
        assert!(sink.follow("f").is_err());
        drop(held);
        assert!(sink.follow("f").is_ok());
    }
}
