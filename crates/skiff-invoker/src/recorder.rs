//! Call records are written in batches by one background task, off the call's path.
//!
//! Each call sends its record (and logs) when it starts and when it ends; the writer takes
//! whatever is waiting (up to [`MAX_BATCH`]) and writes it in one transaction. Readers that
//! must see every record sent so far call [`Recorder::flush`] first. The channel is bounded:
//! when the store falls behind, calls wait to send rather than records piling up.
//!
//! A started record waits up to [`DEFER`] for its call's end: a call that ends within it
//! (a warm call takes well under a millisecond) is written once, as one row insert, rather
//! than inserted and then updated. A flush or a close writes the waiting ones at once. The
//! cost: a call that starts less than [`DEFER`] before the daemon dies leaves no record, and
//! other daemons of a shared store list a running call up to [`DEFER`] late.

use skiff_store::{CallWrite, Store};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

const CHANNEL_CAPACITY: usize = 4096;
const MAX_BATCH: usize = 512;
const RETRIES: u32 = 5;
/// How long a started record waits for its call's end before it is written on its own.
pub(crate) const DEFER: Duration = Duration::from_millis(100);

enum Message {
    /// A call's started record: it may wait for the call's end (see [`DEFER`]).
    Started(Box<CallWrite>),
    Write(Box<CallWrite>),
    Flush(oneshot::Sender<()>),
    /// Write what came before, answer, and stop.
    Close(oneshot::Sender<()>),
}

/// The sending side; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Recorder {
    tx: mpsc::Sender<Message>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Message::Started(w) => write!(f, "Started({})", w.record.id),
            Message::Write(w) => write!(f, "Write({})", w.record.id),
            Message::Flush(_) => f.write_str("Flush"),
            Message::Close(_) => f.write_str("Close"),
        }
    }
}

impl Recorder {
    /// Starts the writer on `tracker`. It ends when every `Recorder` clone is dropped, after
    /// writing what was sent.
    pub(crate) fn start(store: Store, tracker: &TaskTracker) -> Recorder {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        tracker.spawn(writer(store, rx));
        Recorder { tx }
    }

    /// Queues the record of a call that has just started: it is written with the call's
    /// end if that comes within [`DEFER`], else on its own.
    pub(crate) async fn started(&self, write: CallWrite) {
        self.send(Message::Started(Box::new(write))).await;
    }

    /// Queues a record (and its logs) to be written.
    pub(crate) async fn record(&self, write: CallWrite) {
        self.send(Message::Write(Box::new(write))).await;
    }

    /// Sends a record's message, waiting for room in the channel.
    async fn send(&self, message: Message) {
        if self.tx.send(message).await.is_err() {
            tracing::error!("the call recorder has stopped; a call record was not written");
        }
    }

    /// Queues a record without waiting (from code that cannot wait, such as a `Drop`): when
    /// the channel is full, a task sends it.
    pub(crate) fn record_soon(&self, write: CallWrite) {
        match self.tx.try_send(Message::Write(Box::new(write))) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(message)) => {
                let tx = self.tx.clone();
                match tokio::runtime::Handle::try_current() {
                    Ok(handle) => {
                        handle.spawn(async move {
                            let _ = tx.send(message).await;
                        });
                    }
                    Err(_) => tracing::error!("no runtime to write a call record; it is lost"),
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!("the call recorder has stopped; a call record was not written");
            }
        }
    }

    /// Returns once everything sent before it is in the store (or could not be written).
    pub(crate) async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Writes everything sent before it, then stops the writer (at shutdown). Records sent
    /// afterwards are not written.
    pub(crate) async fn close(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Close(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

/// Started records waiting for their call's end, oldest first.
#[derive(Default)]
struct Deferred {
    writes: HashMap<Uuid, CallWrite>,
    /// When each was sent; an id whose write has left `writes` is skipped.
    order: VecDeque<(Instant, Uuid)>,
}

impl Deferred {
    fn hold(&mut self, write: CallWrite, now: Instant) {
        self.order.push_back((now, write.record.id));
        self.writes.insert(write.record.id, write);
    }

    /// The call's end came: its started record is no longer needed.
    fn ended(&mut self, id: &Uuid) {
        self.writes.remove(id);
    }

    /// When the oldest one is due.
    fn next_due(&self) -> Option<Instant> {
        self.order.front().map(|(at, _)| *at + DEFER)
    }

    /// Moves those due at `now` (all of them with `None`) into `batch`.
    fn release(&mut self, now: Option<Instant>, batch: &mut Vec<CallWrite>) {
        while let Some((at, id)) = self.order.front() {
            if now.is_some_and(|now| *at + DEFER > now) {
                break;
            }
            if let Some(write) = self.writes.remove(id) {
                batch.push(write);
            }
            self.order.pop_front();
        }
    }
}

async fn writer(store: Store, mut rx: mpsc::Receiver<Message>) {
    let mut deferred = Deferred::default();
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    let mut closing = false;
    loop {
        let first = match deferred.next_due() {
            Some(due) => tokio::select! {
                message = rx.recv() => match message {
                    Some(message) => Some(message),
                    None => break,
                },
                _ = tokio::time::sleep_until(due) => None,
            },
            None => match rx.recv().await {
                Some(message) => Some(message),
                None => break,
            },
        };
        let mut batch: Vec<CallWrite> = Vec::new();
        let mut next = first;
        let mut flushing = false;
        while let Some(message) = next.take() {
            match message {
                Message::Started(w) => deferred.hold(*w, Instant::now()),
                Message::Write(w) => {
                    deferred.ended(&w.record.id);
                    batch.push(*w);
                }
                Message::Flush(done) => {
                    waiting.push(done);
                    flushing = true;
                }
                Message::Close(done) => {
                    waiting.push(done);
                    closing = true;
                    break;
                }
            }
            if batch.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        // A flush or a close writes every started record still waiting; otherwise only
        // those whose time is out go.
        let now = (!flushing && !closing).then(Instant::now);
        deferred.release(now, &mut batch);
        if !batch.is_empty() {
            write_with_retries(&store, &batch).await;
        }
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
        if closing {
            return;
        }
    }
    // Every sender is gone: what waits is written before the writer ends.
    let mut rest = Vec::new();
    deferred.release(None, &mut rest);
    write_with_retries(&store, &rest).await;
}

async fn write_with_retries(store: &Store, batch: &[CallWrite]) {
    let mut delay = Duration::from_millis(50);
    for attempt in 1..=RETRIES {
        match store.write_calls(batch).await {
            Ok(()) => return,
            Err(err) if attempt < RETRIES => {
                tracing::warn!(%err, attempt, records = batch.len(), "writing call records failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(err) => {
                tracing::error!(%err, records = batch.len(), "writing call records failed; they are lost");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use skiff_core::{CallRecord, CallStatus, Trigger};

    fn write(id: Uuid, status: CallStatus) -> CallWrite {
        CallWrite {
            record: CallRecord::new(id, "web", Trigger::Http, status, Utc::now()),
            logs: None,
        }
    }

    /// A recorder writing to a new in-memory store.
    async fn started_recorder() -> (Store, TaskTracker, Recorder) {
        let store = Store::open_in_memory().await.expect("store");
        let tracker = TaskTracker::new();
        let recorder = Recorder::start(store.clone(), &tracker);
        (store, tracker, recorder)
    }

    async fn status(store: &Store, id: Uuid) -> Option<CallStatus> {
        store.get_call(id).await.expect("get").map(|r| r.status)
    }

    #[tokio::test]
    async fn a_short_call_is_written_once_with_its_end() {
        let (store, _tracker, recorder) = started_recorder().await;
        let id = Uuid::now_v7();
        recorder.started(write(id, CallStatus::Running)).await;
        // Nothing can be written before the started record's time is out.
        tokio::time::sleep(DEFER / 5).await;
        assert_eq!(status(&store, id).await, None, "the started record waits");
        recorder.record(write(id, CallStatus::Succeeded)).await;
        recorder.flush().await;
        assert_eq!(status(&store, id).await, Some(CallStatus::Succeeded));
        // The started record, dropped, is not written over the end later.
        tokio::time::sleep(DEFER * 2).await;
        recorder.flush().await;
        assert_eq!(status(&store, id).await, Some(CallStatus::Succeeded));
    }

    #[tokio::test]
    async fn a_long_call_is_listed_running_after_the_wait_or_at_a_flush() {
        let (store, _tracker, recorder) = started_recorder().await;
        let (long, flushed) = (Uuid::now_v7(), Uuid::now_v7());
        recorder.started(write(long, CallStatus::Running)).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while status(&store, long).await.is_none() {
            assert!(std::time::Instant::now() < deadline, "never written");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(status(&store, long).await, Some(CallStatus::Running));
        recorder.started(write(flushed, CallStatus::Running)).await;
        recorder.flush().await;
        assert_eq!(status(&store, flushed).await, Some(CallStatus::Running));
    }

    #[tokio::test]
    async fn closing_writes_the_waiting_started_records() {
        let (store, tracker, recorder) = started_recorder().await;
        let id = Uuid::now_v7();
        recorder.started(write(id, CallStatus::Running)).await;
        recorder.close().await;
        assert_eq!(status(&store, id).await, Some(CallStatus::Running));
        tracker.close();
        tracker.wait().await;
    }
}
