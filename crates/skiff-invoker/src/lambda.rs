//! The `lambda` contract: the AWS Lambda Runtime API (2018-06-01), served by skiff to the
//! function's instances.
//!
//! An instance runs its image's entrypoint (an official runtime interface client) with
//! `AWS_LAMBDA_RUNTIME_API` pointing at skiff's Runtime API listener on the functions'
//! network gateway. The client long-polls `GET .../invocation/next`; skiff hands it its next
//! event and waits for `POST .../invocation/{id}/response` or `.../error`. Each instance is
//! known by its address on the network, so it only ever gets its own events, however many
//! instances a function has. An instance is ready once its client first asks for an event;
//! `POST .../init/error` fails its start.
//!
//! [`LambdaRegistry`] holds that state; the HTTP routes live in the gateway and only call it.

use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch, Notify};

/// How long an instance's first request may wait for its address to be registered (the
/// client can be faster than skiff's inspection of the new container).
const REGISTRATION_WAIT: Duration = Duration::from_secs(5);

/// An event as an instance receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The request id (skiff's call id).
    pub request_id: String,
    /// The payload.
    pub payload: Bytes,
    /// The deadline, in milliseconds since the Unix epoch.
    pub deadline_ms: i64,
    /// The invoked function's ARN.
    pub function_arn: String,
    /// A trace id.
    pub trace_id: String,
}

/// An event on its way to an instance, with the channel its answer goes back on.
#[derive(Debug)]
struct Event {
    invocation: Invocation,
    reply: oneshot::Sender<Outcome>,
}

/// What an instance answered to an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `POST .../response`: the function's result.
    Response(Bytes),
    /// `POST .../error`: the function failed.
    Error {
        /// `Lambda-Runtime-Function-Error-Type`, or the `errorType` of the body.
        error_type: String,
        /// The error document the client sent.
        body: Bytes,
    },
}

/// Why a Runtime API request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    /// The caller is not a known instance.
    #[error("no instance of skiff is known at {0}")]
    UnknownInstance(IpAddr),
    /// The request id is not an event in flight on this instance.
    #[error("no event {0} is in flight on this instance")]
    UnknownRequest(String),
    /// The instance is being stopped.
    #[error("the instance is stopping")]
    Stopping,
}

/// Where an instance is before serving events.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Readiness {
    Starting,
    Ready,
    InitError(String),
}

#[derive(Debug)]
struct Slot {
    container: String,
    events: mpsc::Sender<Event>,
    inbox: tokio::sync::Mutex<mpsc::Receiver<Event>>,
    pending: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    ready: watch::Sender<Readiness>,
}

/// The Runtime API's state: instances by address, their events, their answers.
#[derive(Debug, Default)]
pub struct LambdaRegistry {
    slots: Mutex<HashMap<IpAddr, Arc<Slot>>>,
    registered: Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock()
}

impl LambdaRegistry {
    /// An empty registry.
    pub fn new() -> Arc<Self> {
        Arc::new(LambdaRegistry::default())
    }

    /// Registers the instance in `container` at `ip`.
    pub fn register(&self, ip: IpAddr, container: &str) {
        let (events, inbox) = mpsc::channel(1);
        let slot = Arc::new(Slot {
            container: container.to_string(),
            events,
            inbox: tokio::sync::Mutex::new(inbox),
            pending: Mutex::new(HashMap::new()),
            ready: watch::channel(Readiness::Starting).0,
        });
        lock(&self.slots).insert(ip, slot);
        self.registered.notify_waiters();
    }

    /// Forgets the instance in `container`: events in flight on it fail (their callers see
    /// the instance gone).
    pub fn unregister(&self, container: &str) {
        lock(&self.slots).retain(|_, slot| slot.container != container);
    }

    fn slot(&self, ip: IpAddr) -> Option<Arc<Slot>> {
        lock(&self.slots).get(&ip).cloned()
    }

    async fn slot_waiting(&self, ip: IpAddr) -> Result<Arc<Slot>, RuntimeError> {
        let deadline = tokio::time::Instant::now() + REGISTRATION_WAIT;
        loop {
            let registered = self.registered.notified();
            if let Some(slot) = self.slot(ip) {
                return Ok(slot);
            }
            if tokio::time::timeout_at(deadline, registered).await.is_err() {
                return Err(RuntimeError::UnknownInstance(ip));
            }
        }
    }

    /// Waits until the instance at `ip` asks for its first event (`Ok`), reports an init
    /// error (`Err` with its account), or is forgotten.
    pub async fn wait_ready(&self, ip: IpAddr) -> Result<(), String> {
        let Some(slot) = self.slot(ip) else {
            return Err("the instance is gone".to_string());
        };
        let mut ready = slot.ready.subscribe();
        drop(slot);
        let state = ready
            .wait_for(|state| *state != Readiness::Starting)
            .await
            .map(|state| state.clone())
            .map_err(|_| "the instance is gone".to_string())?;
        match state {
            Readiness::InitError(message) => Err(message),
            _ => Ok(()),
        }
    }

    /// `GET .../invocation/next` from `ip`: the instance's next event, when there is one.
    /// Its answer is then awaited from [`LambdaRegistry::complete`].
    pub async fn next(&self, ip: IpAddr) -> Result<Invocation, RuntimeError> {
        let slot = self.slot_waiting(ip).await?;
        slot.ready.send_if_modified(|state| {
            let starting = *state == Readiness::Starting;
            if starting {
                *state = Readiness::Ready;
            }
            starting
        });
        let mut inbox = slot.inbox.lock().await;
        let Event { invocation, reply } = inbox.recv().await.ok_or(RuntimeError::Stopping)?;
        lock(&slot.pending).insert(invocation.request_id.clone(), reply);
        Ok(invocation)
    }

    /// `POST .../invocation/{id}/response` or `/error` from `ip`.
    pub fn complete(
        &self,
        ip: IpAddr,
        request_id: &str,
        outcome: Outcome,
    ) -> Result<(), RuntimeError> {
        let slot = self.slot(ip).ok_or(RuntimeError::UnknownInstance(ip))?;
        let reply = lock(&slot.pending)
            .remove(request_id)
            .ok_or_else(|| RuntimeError::UnknownRequest(request_id.to_string()))?;
        // The caller may have given up (deadline); that is not the instance's error.
        let _ = reply.send(outcome);
        Ok(())
    }

    /// `POST .../init/error` from `ip`: the instance cannot serve.
    pub fn init_error(&self, ip: IpAddr, message: String) -> Result<(), RuntimeError> {
        let slot = self.slot(ip).ok_or(RuntimeError::UnknownInstance(ip))?;
        slot.ready.send_replace(Readiness::InitError(message));
        Ok(())
    }

    /// Sends `payload` to the instance at `ip` and waits for its answer. `Err` means the
    /// instance went away before answering.
    pub async fn invoke(
        &self,
        ip: IpAddr,
        request_id: String,
        payload: Bytes,
        deadline_ms: i64,
        function_arn: String,
    ) -> Result<Outcome, RuntimeError> {
        let slot = self.slot(ip).ok_or(RuntimeError::UnknownInstance(ip))?;
        let (reply, answer) = oneshot::channel();
        let digits: String = request_id
            .chars()
            .filter(char::is_ascii_hexdigit)
            .take(24)
            .collect();
        let trace_id = format!("Root=1-{:08x}-{digits:0>24}", deadline_ms / 1000);
        let event = Event {
            invocation: Invocation {
                request_id,
                payload,
                deadline_ms,
                function_arn,
                trace_id,
            },
            reply,
        };
        slot.events
            .send(event)
            .await
            .map_err(|_| RuntimeError::Stopping)?;
        drop(slot);
        answer.await.map_err(|_| RuntimeError::Stopping)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[tokio::test]
    async fn each_instance_gets_only_its_own_events() {
        let registry = LambdaRegistry::new();
        registry.register(ip(1), "c1");
        registry.register(ip(2), "c2");
        let serve = |who: IpAddr| {
            let registry = registry.clone();
            tokio::spawn(async move {
                let event = registry.next(who).await.expect("event");
                let id = event.request_id.clone();
                let answer = format!("{who} got {}", String::from_utf8_lossy(&event.payload));
                registry
                    .complete(who, &id, Outcome::Response(answer.into()))
                    .expect("complete");
            })
        };
        let (a, b) = (serve(ip(1)), serve(ip(2)));
        let one = registry.invoke(
            ip(1),
            "00000000-0000-0000-0000-000000000001".into(),
            "x".into(),
            0,
            "arn".into(),
        );
        let two = registry.invoke(
            ip(2),
            "00000000-0000-0000-0000-000000000002".into(),
            "y".into(),
            0,
            "arn".into(),
        );
        let (one, two) = tokio::join!(one, two);
        assert_eq!(one, Ok(Outcome::Response("10.0.0.1 got x".into())));
        assert_eq!(two, Ok(Outcome::Response("10.0.0.2 got y".into())));
        a.await.expect("a");
        b.await.expect("b");
    }

    #[tokio::test]
    async fn readiness_follows_the_first_next_or_an_init_error() {
        let registry = LambdaRegistry::new();
        registry.register(ip(1), "c1");
        let waiting = {
            let registry = registry.clone();
            tokio::spawn(async move { registry.wait_ready(ip(1)).await })
        };
        let poller = {
            let registry = registry.clone();
            tokio::spawn(async move { registry.next(ip(1)).await.map(|e| e.request_id) })
        };
        assert_eq!(waiting.await.expect("join"), Ok(()));
        registry.unregister("c1");
        poller.abort();

        registry.register(ip(3), "c3");
        registry
            .init_error(ip(3), "ImportError: no module".into())
            .expect("known");
        assert_eq!(
            registry.wait_ready(ip(3)).await,
            Err("ImportError: no module".into())
        );
    }

    #[tokio::test]
    async fn an_instance_that_goes_away_fails_its_event() {
        let registry = LambdaRegistry::new();
        registry.register(ip(1), "c1");
        let taker = {
            let registry = registry.clone();
            tokio::spawn(async move {
                registry.next(ip(1)).await.expect("event");
            })
        };
        let call = registry.invoke(
            ip(1),
            "00000000-0000-0000-0000-000000000009".into(),
            "x".into(),
            0,
            "arn".into(),
        );
        let (result, _) = tokio::join!(call, async {
            taker.await.expect("join");
            registry.unregister("c1");
        });
        assert_eq!(result, Err(RuntimeError::Stopping));
        assert_eq!(
            registry.complete(ip(1), "nope", Outcome::Response(Bytes::new())),
            Err(RuntimeError::UnknownInstance(ip(1)))
        );
    }
}
