//! Broker sources behind one trait, and the supervisor that turns their events into calls.
//!
//! A source ([`EventSource`]) hands out [`Event`]s, each with an [`Acker`] that tells the
//! broker how its call went: `ack` after a success, `nack(delay)` after a failure so that
//! the broker delivers it again later, `term` once the last delivery failed. A
//! [`Connector`] makes a source, and is called again after any error. NATS JetStream is
//! the first implementation (`nats.rs`); Redis Streams, Kafka or AMQP fit the same traits.

use crate::backoff::Backoff;
use crate::error::PlatformError;
use crate::invoke::{InvokeRequest, Invoker};
use crate::metrics::Metrics;
use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body_util::BodyExt;
use skiff_core::api::headers::{DELIVERY_HEADER, TRIGGER_HEADER};
use skiff_core::{Trigger, TriggerState};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The waits between two connection attempts: 0.5 s, doubling after each failure, at most
/// 30 s.
const RECONNECT: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
/// The delay before a message whose call was refused (overload, shutdown) comes back.
const REFUSED_DELAY: Duration = Duration::from_secs(1);
/// The delays before a failed message is delivered again: 1 s doubling, with jitter...
const REDELIVERY: Backoff =
    Backoff::new(Duration::from_secs(1), MAX_REDELIVERY_DELAY).with_jitter(0.2);
/// ...at most 60 s.
const MAX_REDELIVERY_DELAY: Duration = Duration::from_secs(60);

/// Why a source failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The broker could not be reached.
    #[error("cannot connect to {url}: {message}")]
    Connect {
        /// The broker's address.
        url: String,
        /// Why.
        message: String,
    },
    /// The broker refused or failed an operation.
    #[error("{what}: {message}")]
    Broker {
        /// What was being done (`create the stream`, ...).
        what: &'static str,
        /// Why it failed.
        message: String,
    },
    /// The subscription ended (the connection closed).
    #[error("the subscription ended")]
    Closed,
}

/// Tells the broker how the call of one event went.
#[async_trait]
pub trait Acker: Send + Sync {
    /// The call succeeded: the event is done.
    async fn ack(&self) -> Result<(), SourceError>;
    /// The call failed: deliver the event again after `delay`.
    async fn nack(&self, delay: Duration) -> Result<(), SourceError>;
    /// The last delivery failed: never deliver the event again.
    async fn term(&self) -> Result<(), SourceError>;
}

/// One message from a broker.
pub struct Event {
    /// The message body, the call's request body.
    pub body: Bytes,
    /// The message's headers, and the source's own metadata (`X-Nats-Subject`, ...), as
    /// request headers.
    pub headers: Vec<(String, String)>,
    /// Which delivery of this message this is, from 1.
    pub delivery: u32,
    /// Answers the broker.
    pub acker: Box<dyn Acker>,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("body", &self.body.len())
            .field("headers", &self.headers)
            .field("delivery", &self.delivery)
            .finish_non_exhaustive()
    }
}

/// A subscription that hands out events one at a time.
#[async_trait]
pub trait EventSource: Send {
    /// Waits for the next event. An error ends this source; the supervisor connects again.
    async fn next(&mut self) -> Result<Event, SourceError>;
}

/// Makes a connected [`EventSource`].
#[async_trait]
pub trait Connector: Send + Sync {
    /// Connects and subscribes, creating what the subscription needs on the broker.
    async fn connect(&self) -> Result<Box<dyn EventSource>, SourceError>;
    /// Removes what [`Connector::connect`] created for this trigger alone (a durable
    /// consumer), when the trigger is deleted. Best effort.
    async fn remove(&self) {}
}

/// A broker trigger's state, shared between its supervisor and the API.
#[derive(Debug)]
pub(crate) struct SourceStatus(parking_lot::Mutex<(TriggerState, Option<String>)>);

impl SourceStatus {
    pub(crate) fn new(state: TriggerState) -> Self {
        SourceStatus(parking_lot::Mutex::new((state, None)))
    }

    /// The state and the last error.
    pub(crate) fn get(&self) -> (TriggerState, Option<String>) {
        self.0.lock().clone()
    }

    /// Sets the state; `error` replaces the last error when given.
    pub(crate) fn set(&self, state: TriggerState, error: Option<String>) {
        let mut guard = self.0.lock();
        guard.0 = state;
        if error.is_some() {
            guard.1 = error;
        }
    }
}

/// What a supervisor runs.
pub(crate) struct Subscription {
    /// The trigger's name.
    pub(crate) trigger: String,
    /// The function called for each event.
    pub(crate) function: String,
    /// Most deliveries of one event.
    pub(crate) max_deliver: u32,
    /// Events handled at once.
    pub(crate) concurrency: u32,
    /// Makes the source.
    pub(crate) connector: Box<dyn Connector>,
    /// Where the state is shown.
    pub(crate) status: Arc<SourceStatus>,
    /// Stops this subscription (trigger replaced or deleted, or shutdown).
    pub(crate) stop: CancellationToken,
    /// Set when the trigger was deleted (not replaced, not shut down): the connector then
    /// removes what it created.
    pub(crate) removed: Arc<std::sync::atomic::AtomicBool>,
}

/// The wait before connection attempt `failures + 1`.
fn reconnect_delay(failures: u32) -> Duration {
    RECONNECT.delay(failures.saturating_add(1))
}

/// The delay before delivery `delivery + 1` of a failed event.
fn redelivery_delay(delivery: u32) -> Duration {
    REDELIVERY.delay(delivery).min(MAX_REDELIVERY_DELAY)
}

/// Turns a subscription's events into calls, through the platform's [`Invoker`].
#[derive(Debug, Clone)]
pub(crate) struct Supervisor {
    pub(crate) invoker: Arc<dyn Invoker>,
    pub(crate) metrics: Arc<Metrics>,
    /// Owns the supervisor's task and its events' tasks.
    pub(crate) tracker: TaskTracker,
}

impl Supervisor {
    /// Runs one broker subscription on the tracker until it is stopped: connects (again
    /// after any error, with a growing delay), takes events while a slot of its
    /// concurrency is free, and handles each in a task of its own.
    pub(crate) fn spawn(self, sub: Subscription) {
        let tracker = self.tracker.clone();
        tracker.spawn(async move {
            self.supervise(sub).await;
        });
    }

    async fn supervise(self, sub: Subscription) {
        let slots = Arc::new(Semaphore::new(sub.concurrency.max(1) as usize));
        let mut failures: u32 = 0;
        'connect: while !sub.stop.is_cancelled() {
            sub.status.set(TriggerState::Connecting, None);
            let connected = tokio::select! {
                _ = sub.stop.cancelled() => break,
                connected = sub.connector.connect() => connected,
            };
            let mut source = match connected {
                Ok(source) => source,
                Err(err) => {
                    tracing::warn!(trigger = %sub.trigger, %err, "broker trigger cannot connect");
                    sub.status
                        .set(TriggerState::Connecting, Some(err.to_string()));
                    let delay = reconnect_delay(failures);
                    failures = failures.saturating_add(1);
                    tokio::select! {
                        _ = sub.stop.cancelled() => break,
                        _ = tokio::time::sleep(delay) => continue,
                    }
                }
            };
            failures = 0;
            sub.status.set(TriggerState::Connected, None);
            tracing::info!(trigger = %sub.trigger, "broker trigger connected");
            loop {
                if !self.invoker.is_accepting() {
                    // Shutting down: leave the messages to the broker for the next start.
                    break 'connect;
                }
                let permit = tokio::select! {
                    _ = sub.stop.cancelled() => break 'connect,
                    permit = slots.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break 'connect,
                    },
                };
                let event = tokio::select! {
                    _ = sub.stop.cancelled() => break 'connect,
                    event = source.next() => event,
                };
                match event {
                    Ok(event) => {
                        let supervisor = self.clone();
                        let function = sub.function.clone();
                        let trigger = sub.trigger.clone();
                        let max_deliver = sub.max_deliver;
                        self.tracker.spawn(async move {
                            supervisor
                                .handle_event(&trigger, &function, max_deliver, event)
                                .await;
                            drop(permit);
                        });
                    }
                    Err(err) => {
                        tracing::warn!(trigger = %sub.trigger, %err, "broker trigger lost its subscription");
                        sub.status
                            .set(TriggerState::Connecting, Some(err.to_string()));
                        let delay = reconnect_delay(failures);
                        failures = failures.saturating_add(1);
                        tokio::select! {
                            _ = sub.stop.cancelled() => break 'connect,
                            _ = tokio::time::sleep(delay) => continue 'connect,
                        }
                    }
                }
            }
        }
        if sub.removed.load(std::sync::atomic::Ordering::Acquire) {
            let _ = tokio::time::timeout(Duration::from_secs(5), sub.connector.remove()).await;
        }
        sub.status.set(TriggerState::Stopped, None);
    }

    /// Calls the function with one event, then acknowledges it, asks for it again later,
    /// or gives it up after its last delivery.
    async fn handle_event(&self, trigger: &str, function: &str, max_deliver: u32, event: Event) {
        let Event {
            body,
            headers: pairs,
            delivery,
            acker,
        } = event;
        let mut headers = HeaderMap::new();
        for (name, value) in &pairs {
            if let (Ok(name), Ok(value)) = (
                HeaderName::try_from(name.as_str()),
                HeaderValue::from_str(value),
            ) {
                // The body's framing is skiff's, not the message's.
                if name != http::header::CONTENT_LENGTH && name != http::header::TRANSFER_ENCODING {
                    headers.append(name, value);
                }
            }
        }
        if let Ok(value) = HeaderValue::from_str(trigger) {
            headers.insert(TRIGGER_HEADER, value);
        }
        headers.insert(DELIVERY_HEADER, HeaderValue::from(delivery));
        let request = InvokeRequest {
            attempt: delivery.max(1),
            headers,
            ..InvokeRequest::post(Trigger::Queue, body)
        };
        let result = match self.invoker.invoke(function, request).await {
            Ok(outcome) => {
                let failed = outcome.status.is_server_error();
                // An http call's record ends with its body.
                let _ = outcome.body.collect().await;
                if failed {
                    Err(Some(format!("the function answered {}", outcome.status)))
                } else {
                    Ok(())
                }
            }
            Err(PlatformError::Overloaded { .. })
            | Err(PlatformError::NearFdLimit { .. })
            | Err(PlatformError::QuotaExceeded { .. })
            | Err(PlatformError::ShuttingDown) => Err(None),
            Err(err) => Err(Some(err.to_string())),
        };
        let (answered, counted) = match result {
            Ok(()) => (acker.ack().await, "acked"),
            // Refused, not run: back soon, whatever the count.
            Err(None) => (acker.nack(REFUSED_DELAY).await, "refused"),
            Err(Some(message)) if delivery >= max_deliver => {
                tracing::warn!(%trigger, delivery, %message, "the last delivery of a message failed; it is given up");
                (acker.term().await, "given_up")
            }
            Err(Some(_)) => (acker.nack(redelivery_delay(delivery)).await, "retried"),
        };
        self.metrics.trigger_fired(trigger, counted);
        if let Err(err) = answered {
            tracing::warn!(%trigger, %err, "cannot answer the broker; it will deliver the message again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_are_capped() {
        assert_eq!(reconnect_delay(0), Duration::from_millis(500));
        assert_eq!(reconnect_delay(1), Duration::from_secs(1));
        assert_eq!(reconnect_delay(20), Duration::from_secs(30));
        let first = redelivery_delay(1).as_secs_f64();
        assert!((0.8..=1.2).contains(&first), "{first}");
        assert!(redelivery_delay(30) <= MAX_REDELIVERY_DELAY);
    }
}
