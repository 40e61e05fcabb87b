//! NATS JetStream as an event source. Core NATS has no acknowledgements, so a trigger
//! reads through a durable pull consumer of a JetStream stream: explicit acknowledgement,
//! `max_deliver`, and an acknowledgement wait longer than the function's timeout. The
//! stream is created for the trigger's subjects if it does not exist; the consumer is
//! named `skiff-<trigger>` and is recreated when its settings no longer match.

use super::source::{Acker, Connector, Event, EventSource, SourceError};
use async_nats::jetstream::{self, consumer, AckKind};
use async_trait::async_trait;
use futures::StreamExt;
use std::time::Duration;

/// How long connecting (and each JetStream request) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A NATS JetStream subscription of one trigger.
#[derive(Debug, Clone)]
pub(crate) struct NatsConnector {
    /// `nats://host:port`.
    pub(crate) url: String,
    /// The stream.
    pub(crate) stream: String,
    /// The subjects.
    pub(crate) subjects: Vec<String>,
    /// The durable consumer's name.
    pub(crate) consumer: String,
    /// Most deliveries of one message.
    pub(crate) max_deliver: u32,
    /// How long the server waits for an acknowledgement.
    pub(crate) ack_wait: Duration,
    /// Most messages delivered and not yet acknowledged.
    pub(crate) max_ack_pending: u32,
}

impl NatsConnector {
    fn broker(what: &'static str) -> impl FnOnce(String) -> SourceError {
        move |message| SourceError::Broker { what, message }
    }

    fn consumer_config(&self) -> consumer::pull::Config {
        consumer::pull::Config {
            durable_name: Some(self.consumer.clone()),
            description: Some("skiff trigger".to_string()),
            ack_policy: consumer::AckPolicy::Explicit,
            deliver_policy: consumer::DeliverPolicy::All,
            ack_wait: self.ack_wait,
            max_deliver: i64::from(self.max_deliver),
            max_ack_pending: i64::from(self.max_ack_pending),
            // NATS before 2.10 takes one filter; with several subjects the stream's own
            // subjects (created for them) are the filter.
            filter_subject: match self.subjects.as_slice() {
                [one] => one.clone(),
                _ => String::new(),
            },
            ..Default::default()
        }
    }

    async fn client(&self) -> Result<async_nats::Client, SourceError> {
        async_nats::ConnectOptions::new()
            .name("skiff")
            .connection_timeout(CONNECT_TIMEOUT)
            .request_timeout(Some(CONNECT_TIMEOUT))
            .connect(self.url.as_str())
            .await
            .map_err(|e| SourceError::Connect {
                url: self.url.clone(),
                message: e.to_string(),
            })
    }
}

/// Whether the consumer on the server has the settings this trigger asks for.
fn matches(have: &consumer::Config, want: &consumer::pull::Config) -> bool {
    have.ack_wait == want.ack_wait
        && have.max_deliver == want.max_deliver
        && have.filter_subject == want.filter_subject
        && have.max_ack_pending == want.max_ack_pending
        && have.ack_policy == want.ack_policy
}

#[async_trait]
impl Connector for NatsConnector {
    async fn connect(&self) -> Result<Box<dyn EventSource>, SourceError> {
        let client = self.client().await?;
        let js = jetstream::new(client.clone());
        let stream = js
            .get_or_create_stream(jetstream::stream::Config {
                name: self.stream.clone(),
                subjects: self.subjects.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| Self::broker("create the stream")(e.to_string()))?;
        let want = self.consumer_config();
        let mut pull = stream
            .get_or_create_consumer(&self.consumer, want.clone())
            .await
            .map_err(|e| Self::broker("create the consumer")(e.to_string()))?;
        if !matches(&pull.cached_info().config, &want) {
            stream
                .delete_consumer(&self.consumer)
                .await
                .map_err(|e| Self::broker("replace the consumer")(e.to_string()))?;
            pull = stream
                .create_consumer(want)
                .await
                .map_err(|e| Self::broker("replace the consumer")(e.to_string()))?;
        }
        let messages = pull
            .messages()
            .await
            .map_err(|e| Self::broker("subscribe")(e.to_string()))?;
        Ok(Box::new(NatsSource {
            _client: client,
            messages,
        }))
    }

    async fn remove(&self) {
        let Ok(client) = self.client().await else {
            return;
        };
        let js = jetstream::new(client);
        if let Err(err) = js
            .delete_consumer_from_stream(&self.consumer, &self.stream)
            .await
        {
            tracing::warn!(consumer = %self.consumer, %err, "cannot delete the consumer of a deleted trigger");
        }
    }
}

/// A connected pull consumer.
struct NatsSource {
    _client: async_nats::Client,
    messages: consumer::pull::Stream,
}

#[async_trait]
impl EventSource for NatsSource {
    async fn next(&mut self) -> Result<Event, SourceError> {
        let message = match self.messages.next().await {
            None => return Err(SourceError::Closed),
            Some(Err(err)) => return Err(Self::error(err.to_string())),
            Some(Ok(message)) => message,
        };
        let (delivery, stream, sequence) = match message.info() {
            Ok(info) => (
                u32::try_from(info.delivered).unwrap_or(u32::MAX),
                info.stream.to_string(),
                info.stream_sequence,
            ),
            Err(err) => return Err(Self::error(err.to_string())),
        };
        let (message, acker) = message.split();
        let mut headers: Vec<(String, String)> = Vec::new();
        if let Some(map) = &message.headers {
            for (name, values) in map.iter() {
                for value in values {
                    headers.push((name.to_string(), value.to_string()));
                }
            }
        }
        headers.push(("x-nats-subject".into(), message.subject.to_string()));
        headers.push(("x-nats-stream".into(), stream));
        headers.push(("x-nats-sequence".into(), sequence.to_string()));
        Ok(Event {
            body: message.payload,
            headers,
            delivery,
            acker: Box::new(NatsAcker(acker)),
        })
    }
}

impl NatsSource {
    fn error(message: String) -> SourceError {
        SourceError::Broker {
            what: "receive messages",
            message,
        }
    }
}

struct NatsAcker(jetstream::message::Acker);

impl NatsAcker {
    async fn send(&self, kind: AckKind) -> Result<(), SourceError> {
        self.0
            .ack_with(kind)
            .await
            .map_err(|e| SourceError::Broker {
                what: "acknowledge a message",
                message: e.to_string(),
            })
    }
}

#[async_trait]
impl Acker for NatsAcker {
    async fn ack(&self) -> Result<(), SourceError> {
        // A double acknowledgement waits for the server's confirmation: once this returns,
        // the message is not delivered again.
        self.0
            .double_ack_with(AckKind::Ack)
            .await
            .map_err(|e| SourceError::Broker {
                what: "acknowledge a message",
                message: e.to_string(),
            })
    }

    async fn nack(&self, delay: Duration) -> Result<(), SourceError> {
        self.send(AckKind::Nak(Some(delay))).await
    }

    async fn term(&self) -> Result<(), SourceError> {
        self.send(AckKind::Term).await
    }
}
