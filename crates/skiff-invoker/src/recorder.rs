//! Call records are written in batches by one background task, off the call's path.
//!
//! Each call sends its record (and logs) when it starts and when it ends; the writer takes
//! whatever is waiting (up to [`MAX_BATCH`]) and writes it in one transaction. Readers that
//! must see every record sent so far call [`Recorder::flush`] first. The channel is bounded:
//! when the store falls behind, calls wait to send rather than records piling up.

use skiff_store::{CallWrite, Store};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::task::TaskTracker;

const CHANNEL_CAPACITY: usize = 4096;
const MAX_BATCH: usize = 512;
const RETRIES: u32 = 5;

enum Message {
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

    /// Queues a record (and its logs) to be written.
    pub(crate) async fn record(&self, write: CallWrite) {
        if self.tx.send(Message::Write(Box::new(write))).await.is_err() {
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

async fn writer(store: Store, mut rx: mpsc::Receiver<Message>) {
    let mut batch: Vec<CallWrite> = Vec::new();
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    let mut closing = false;
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Write(w) => batch.push(*w),
                Message::Flush(done) => waiting.push(done),
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
        if !batch.is_empty() {
            write_with_retries(&store, &batch).await;
            batch.clear();
        }
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
        if closing {
            return;
        }
    }
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
