//! Group commit: callers hand an item to one writer task, which stores whatever is waiting
//! (up to a batch) in one transaction and answers each caller once it has committed. Under
//! load many items share a commit; alone, an item waits for nothing but its own.
//!
//! The channel is bounded (four batches): callers wait for room. At shutdown (cancel) the
//! writer takes no new item, commits those already waiting, and ends; an item handed over
//! after that is given back ([`Refused::Closed`]).

use std::future::Future;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// One item waiting for its commit, and who waits for it.
struct Waiting<T> {
    item: T,
    done: oneshot::Sender<Result<(), String>>,
}

/// Why an item was not committed.
#[derive(Debug)]
pub(crate) enum Refused<T> {
    /// The writer has stopped (shutdown): the item, given back.
    Closed(T),
    /// The transaction that held it failed: the error, as text.
    Failed(String),
}

/// The handle callers hand items to; cheap to clone.
pub(crate) struct GroupCommit<T> {
    tx: mpsc::Sender<Waiting<T>>,
}

impl<T> Clone for GroupCommit<T> {
    fn clone(&self) -> Self {
        GroupCommit {
            tx: self.tx.clone(),
        }
    }
}

impl<T> std::fmt::Debug for GroupCommit<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl<T: Send + 'static> GroupCommit<T> {
    /// Starts the writer on `tracker`: `write` stores at most `batch` items in one
    /// transaction.
    pub(crate) fn start<W, F>(
        batch: usize,
        tracker: &TaskTracker,
        cancel: CancellationToken,
        write: W,
    ) -> Self
    where
        W: Fn(Vec<T>) -> F + Send + Sync + 'static,
        F: Future<Output = Result<(), String>> + Send,
    {
        let batch = batch.max(1);
        let (tx, mut rx) = mpsc::channel::<Waiting<T>>(4 * batch);
        tracker.spawn(async move {
            loop {
                let first = tokio::select! {
                    _ = cancel.cancelled() => break,
                    first = rx.recv() => match first {
                        Some(first) => first,
                        None => return,
                    },
                };
                let waiting = take_waiting(&mut rx, first, batch);
                commit(&write, waiting).await;
            }
            // Shutdown: nothing new is taken; what is already waiting is committed.
            rx.close();
            while let Some(first) = rx.recv().await {
                let waiting = take_waiting(&mut rx, first, batch);
                commit(&write, waiting).await;
            }
        });
        GroupCommit { tx }
    }

    /// Hands `item` to the writer; returns once the transaction that holds it committed.
    pub(crate) async fn submit(&self, item: T) -> Result<(), Refused<T>> {
        let (done, wait) = oneshot::channel();
        if let Err(mpsc::error::SendError(waiting)) = self.tx.send(Waiting { item, done }).await {
            return Err(Refused::Closed(waiting.item));
        }
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(Refused::Failed(message)),
            // The writer ended without answering: only if it panicked.
            Err(_) => Err(Refused::Failed("the writer stopped".to_string())),
        }
    }
}

/// `first` and whatever else is waiting, at most `batch` in all.
fn take_waiting<T>(
    rx: &mut mpsc::Receiver<Waiting<T>>,
    first: Waiting<T>,
    batch: usize,
) -> Vec<Waiting<T>> {
    let mut waiting = vec![first];
    while waiting.len() < batch {
        match rx.try_recv() {
            Ok(next) => waiting.push(next),
            Err(_) => break,
        }
    }
    waiting
}

/// Writes `waiting` in one transaction and answers each caller.
async fn commit<T, W, F>(write: &W, waiting: Vec<Waiting<T>>)
where
    W: Fn(Vec<T>) -> F,
    F: Future<Output = Result<(), String>>,
{
    let (items, done): (Vec<T>, Vec<_>) = waiting.into_iter().map(|w| (w.item, w.done)).unzip();
    let result = write(items).await;
    for done in done {
        let _ = done.send(result.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    type Batches = Arc<parking_lot::Mutex<Vec<Vec<u32>>>>;

    fn writer(batches: &Batches) -> impl Fn(Vec<u32>) -> std::future::Ready<Result<(), String>> {
        let batches = batches.clone();
        move |items: Vec<u32>| {
            let failed = items.contains(&13);
            batches.lock().push(items);
            std::future::ready(if failed {
                Err("13 is refused".to_string())
            } else {
                Ok(())
            })
        }
    }

    #[tokio::test]
    async fn items_waiting_together_share_a_commit_and_each_caller_hears_of_it() {
        let (tracker, cancel) = (TaskTracker::new(), CancellationToken::new());
        let batches = Batches::default();
        let commits = GroupCommit::start(4, &tracker, cancel.clone(), writer(&batches));
        let results = futures::future::join_all((0..10).map(|i| commits.submit(i))).await;
        assert!(results.iter().all(Result::is_ok));
        let batches = batches.lock().clone();
        assert!(batches.iter().all(|b| b.len() <= 4), "{batches:?}");
        assert!(batches.len() < 10, "some shared a commit: {batches:?}");
        let mut all: Vec<u32> = batches.concat();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_failed_commit_fails_its_callers_only() {
        let (tracker, cancel) = (TaskTracker::new(), CancellationToken::new());
        let batches = Batches::default();
        let commits = GroupCommit::start(1, &tracker, cancel.clone(), writer(&batches));
        assert!(matches!(commits.submit(13).await, Err(Refused::Failed(m)) if m.contains("13")));
        assert!(commits.submit(14).await.is_ok());
    }

    #[tokio::test]
    async fn after_shutdown_items_are_given_back() {
        let (tracker, cancel) = (TaskTracker::new(), CancellationToken::new());
        let batches = Batches::default();
        let commits = GroupCommit::start(4, &tracker, cancel.clone(), writer(&batches));
        assert!(commits.submit(1).await.is_ok());
        cancel.cancel();
        tracker.close();
        tracker.wait().await;
        assert!(matches!(commits.submit(2).await, Err(Refused::Closed(2))));
        assert_eq!(batches.lock().concat(), vec![1]);
    }

    #[tokio::test]
    async fn items_waiting_at_shutdown_are_committed() {
        let (tracker, cancel) = (TaskTracker::new(), CancellationToken::new());
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let committed = Batches::default();
        let write = {
            let (gate, committed) = (gate.clone(), committed.clone());
            move |items: Vec<u32>| {
                let (gate, committed) = (gate.clone(), committed.clone());
                async move {
                    // The first commit holds the writer until the test lets it go.
                    if items.contains(&1) {
                        let _ = gate.acquire().await;
                    }
                    committed.lock().push(items);
                    Ok(())
                }
            }
        };
        let commits = GroupCommit::start(1, &tracker, cancel.clone(), write);
        let first = tokio::spawn({
            let commits = commits.clone();
            async move { commits.submit(1).await.is_ok() }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let second = tokio::spawn({
            let commits = commits.clone();
            async move { commits.submit(2).await.is_ok() }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        cancel.cancel();
        gate.add_permits(1);
        assert!(first.await.expect("first"));
        assert!(
            second.await.expect("second"),
            "waiting at shutdown, still committed"
        );
        assert_eq!(committed.lock().concat(), vec![1, 2]);
    }
}
