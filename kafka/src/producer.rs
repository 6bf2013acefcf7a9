//! The outbox relay's Kafka producer: the [`EventSink`] the relay sends every outbox event to.
//!
//! Each event goes to `KAFKA_TOPIC` with the event's aggregate id as the key (one order's events
//! stay in order on one partition), the event JSON as the value, and the ids of the request that
//! caused it (the event's `trace`) as the record headers `request_id` and `trace_id` (see
//! [`shop::trace`]), so a consumer can log them without reading the value. The relay starts a whole
//! stream batch at once and then **awaits every delivery report before it returns**: Lambda
//! freezes the process, librdkafka's threads included, between invocations, so nothing may be
//! left to background flushing. Producer settings follow from that:
//!
//! - `enable.idempotence=true`, `acks=all`: a retried produce never duplicates or reorders within a
//!   partition, and "delivered" means on every in-sync replica;
//! - `linger.ms=5`: a batch of stream records is sent together, so a few milliseconds of batching
//!   turn a hundred sends into a few requests without delaying a lone event noticeably;
//! - `message.timeout.ms` (= `KAFKA_PUBLISH_TIMEOUT_MS`, default 5000): how long one event may try
//!   before it is reported failed (the stream then retries it); a `tokio` timeout a little above it
//!   is the belt to those braces.
//!
//! The producer is created once per instance at cold start ([`Producer::from_env`]) and reused: one
//! small pool of broker connections for the whole shop, where every API function producing itself
//! would open its own per instance (MSK limits new connections per broker per second). If
//! librdkafka reports a *fatal* error (the idempotent producer's state is lost: after a message
//! timed out in flight the broker may fence it, `ProducerFenced`) the producer is replaced and the
//! send tried once more with the new one.
//!
//! Configuration: `KAFKA_BOOTSTRAP_SERVERS` (required), `KAFKA_TOPIC` (default `shop-events`),
//! `KAFKA_AUTH` = `plaintext` (default) | `msk-iam` (SASL_SSL + OAUTHBEARER with IAM tokens, see
//! [`crate::msk_iam`]) | `msk-iam-plaintext` (the same tokens without TLS: the local stack only,
//! whose Kafka front authenticates and authorizes them as MSK does), `KAFKA_PUBLISH_TIMEOUT_MS`.

use crate::msk_iam::MskIamContext;
use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::util::Timeout;
use shop::config::ConfigError;
use shop::events::sink::{EventSink, Outgoing, SinkError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const DEFAULT_TOPIC: &str = "shop-events";
const DEFAULT_PUBLISH_TIMEOUT_MS: u64 = 5000;

/// How the producer authenticates to the brokers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KafkaAuth {
    /// No TLS, no SASL: the local broker.
    Plaintext,
    /// Amazon MSK with IAM access control: TLS, SASL/OAUTHBEARER, tokens signed for `region`.
    MskIam { region: String },
    /// The local stack only: the same SASL/OAUTHBEARER and IAM tokens, without TLS, to the
    /// stack's Kafka front, which judges them by the function's role as MSK would. Never for a
    /// real cluster: the token (a presigned URL, valid 15 minutes) would cross the network in clear.
    MskIamPlaintext { region: String },
}

impl KafkaAuth {
    /// From `KAFKA_AUTH` (unset: plaintext) and `AWS_REGION` (needed for IAM tokens).
    fn parse(auth: Option<&str>, region: Option<String>) -> Result<Self, ConfigError> {
        let signing = || region.clone().ok_or(ConfigError::Missing("AWS_REGION"));
        match auth {
            None | Some("plaintext") => Ok(Self::Plaintext),
            Some("msk-iam") => Ok(Self::MskIam { region: signing()? }),
            Some("msk-iam-plaintext") => Ok(Self::MskIamPlaintext { region: signing()? }),
            Some(other) => Err(ConfigError::Invalid {
                name: "KAFKA_AUTH",
                why: format!("must be `plaintext`, `msk-iam` or `msk-iam-plaintext` (local stack only), got {other:?}"),
            }),
        }
    }

    /// The region IAM tokens are signed for, if the brokers take them.
    fn iam_region(&self) -> Option<&str> {
        match self {
            Self::Plaintext => None,
            Self::MskIam { region } | Self::MskIamPlaintext { region } => Some(region),
        }
    }
}

#[derive(Debug, Clone)]
pub struct KafkaConfig {
    pub bootstrap_servers: String,
    pub topic: String,
    pub auth: KafkaAuth,
    /// Upper bound of one awaited publish (librdkafka's `message.timeout.ms`).
    pub publish_timeout: Duration,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

impl KafkaConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let bootstrap_servers =
            var("KAFKA_BOOTSTRAP_SERVERS").ok_or(ConfigError::Missing("KAFKA_BOOTSTRAP_SERVERS"))?;
        let auth = KafkaAuth::parse(var("KAFKA_AUTH").as_deref(), var("AWS_REGION"))?;
        let timeout_ms =
            shop::config::bounded_from_env("KAFKA_PUBLISH_TIMEOUT_MS", DEFAULT_PUBLISH_TIMEOUT_MS, 100..=30_000)?;
        Ok(Self {
            bootstrap_servers,
            topic: var("KAFKA_TOPIC").unwrap_or_else(|| DEFAULT_TOPIC.to_owned()),
            auth,
            publish_timeout: Duration::from_millis(timeout_ms),
        })
    }

    /// The librdkafka settings of the producer.
    fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", self.publish_timeout.as_millis().to_string())
            // A request that hangs (frozen or partitioned broker) must not outlive the message.
            .set("request.timeout.ms", self.publish_timeout.as_millis().to_string())
            .set("socket.connection.setup.timeout.ms", "1000")
            .set("reconnect.backoff.max.ms", "1000");
        match self.auth {
            KafkaAuth::Plaintext => {}
            KafkaAuth::MskIam { .. } => {
                c.set("security.protocol", "SASL_SSL").set("sasl.mechanism", "OAUTHBEARER");
            }
            KafkaAuth::MskIamPlaintext { .. } => {
                c.set("security.protocol", "SASL_PLAINTEXT").set("sasl.mechanism", "OAUTHBEARER");
            }
        }
        c
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("not delivered within {0:?}")]
    Timeout(Duration),
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
}

type Kafka = FutureProducer<MskIamContext>;

/// The instance's Kafka producer. Cheap to clone.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
}

struct Inner {
    config: KafkaConfig,
    producer: Mutex<Arc<Kafka>>,
}

impl Producer {
    /// From `KAFKA_*` (see the module docs); at cold start. Creating the producer does not
    /// connect yet, so a down broker never fails an init.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::new(KafkaConfig::from_env()?)
    }

    pub fn new(config: KafkaConfig) -> Result<Self, ConfigError> {
        let producer = Arc::new(create(&config)?);
        warm_up(&producer, &config.topic);
        Ok(Self { inner: Arc::new(Inner { config, producer: Mutex::new(producer) }) })
    }

    /// Sends one record with `headers` and waits for the broker's acknowledgement (or the
    /// bounded timeout).
    pub async fn send_record(&self, key: &str, payload: &[u8], headers: &[(&str, &str)]) -> Result<(), PublishError> {
        let inner = &self.inner;
        let producer = inner.current();
        match inner.send_with(&producer, key, payload, headers).await {
            // A fatal error (e.g. ProducerFenced after an outage) poisons this producer for good:
            // replace it and try once more, so the batch that found out does not pay for it.
            Err(e) if inner.replace_if_broken(&producer, &e) => {
                inner.send_with(&inner.current(), key, payload, headers).await
            }
            result => result,
        }
    }
}

impl EventSink for Producer {
    async fn send(&self, event: Outgoing<'_>) -> Result<(), SinkError> {
        let headers = event.trace.map(|t| t.headers()).unwrap_or_default();
        self.send_record(event.key, event.payload, &headers).await.map_err(|e| SinkError(e.to_string()))
    }
}

/// librdkafka's headers of a record.
fn record_headers(headers: &[(&str, &str)]) -> Option<OwnedHeaders> {
    (!headers.is_empty()).then(|| {
        headers.iter().fold(OwnedHeaders::new_with_capacity(headers.len()), |h, (key, value)| {
            h.insert(Header { key, value: Some(*value) })
        })
    })
}

impl Inner {
    fn current(&self) -> Arc<Kafka> {
        self.producer.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    async fn send_with(
        &self,
        producer: &Kafka,
        key: &str,
        payload: &[u8],
        headers: &[(&str, &str)],
    ) -> Result<(), PublishError> {
        let mut record = FutureRecord::to(&self.config.topic).key(key).payload(payload);
        if let Some(headers) = record_headers(headers) {
            record = record.headers(headers);
        }
        let timeout = self.config.publish_timeout;
        // librdkafka enforces message.timeout.ms itself; this outer bound only guards against a
        // delivery report that never comes.
        let delivery = producer.send(record, Timeout::After(timeout));
        match tokio::time::timeout(timeout + Duration::from_millis(500), delivery).await {
            Err(_) => Err(PublishError::Timeout(timeout)),
            Ok(Ok(_)) => Ok(()),
            Ok(Err((e, _message))) => Err(PublishError::Kafka(e)),
        }
    }

    /// After a fatal error, or once the broker has fenced its producer id (which a message timing
    /// out in flight can lead to), librdkafka's idempotent producer refuses everything: replace it.
    /// True when `used` was (or had already been) replaced.
    fn replace_if_broken(&self, used: &Arc<Kafka>, error: &PublishError) -> bool {
        use rdkafka::types::RDKafkaErrorCode as Code;
        let fenced = matches!(
            error,
            PublishError::Kafka(KafkaError::MessageProduction(
                Code::ProducerFenced
                    | Code::InvalidProducerEpoch
                    | Code::UnknownProducerId
                    | Code::OutOfOrderSequenceNumber
            ))
        );
        let fatal = used.client().fatal_error();
        if !fenced && fatal.is_none() {
            return false;
        }
        let mut current = self.producer.lock().unwrap_or_else(|e| e.into_inner());
        if Arc::ptr_eq(&current, used) {
            tracing::warn!(error = %error, ?fatal, "kafka producer unusable; creating a new one");
            match create(&self.config) {
                Ok(fresh) => *current = Arc::new(fresh),
                Err(e) => {
                    tracing::error!(error = %e, "could not recreate the kafka producer");
                    return false;
                }
            }
        }
        true
    }
}

/// Starts connecting now, in the background: asks a broker for the topic's metadata on a thread
/// of its own (librdkafka's calls block), without waiting for the answer, so the init is not
/// delayed. The answer also starts the idempotent producer's id request, which librdkafka
/// otherwise first tries on a 500 ms timer and retries 500 ms later when no broker is up yet
/// (`rd_kafka_idemp_init`): measured, the first record of a cold instance waited about a
/// second for it; now the connection, the metadata and the producer id are in place by the time
/// the first batch arrives, or soon after.
fn warm_up(producer: &Arc<Kafka>, topic: &str) {
    let (producer, topic) = (Arc::clone(producer), topic.to_owned());
    std::thread::spawn(move || {
        if let Err(e) = producer.client().fetch_metadata(Some(&topic), Timeout::After(Duration::from_secs(5))) {
            tracing::debug!(error = %e, "kafka warm-up: no metadata yet (the first batch will connect)");
        }
    });
}

fn create(config: &KafkaConfig) -> Result<Kafka, ConfigError> {
    let context = match config.auth.iam_region() {
        None => MskIamContext::none(),
        Some(region) => MskIamContext::for_region(region),
    };
    config
        .client_config()
        .create_with_context(context)
        .map_err(|e| ConfigError::Invalid { name: "KAFKA_BOOTSTRAP_SERVERS", why: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_settings_bound_latency_and_keep_order() {
        let config = KafkaConfig {
            bootstrap_servers: "127.0.0.1:9092".into(),
            topic: DEFAULT_TOPIC.into(),
            auth: KafkaAuth::Plaintext,
            publish_timeout: Duration::from_millis(5000),
        };
        let c = config.client_config();
        assert_eq!(c.get("enable.idempotence"), Some("true"));
        assert_eq!(c.get("acks"), Some("all"));
        assert_eq!(c.get("linger.ms"), Some("5"));
        assert_eq!(c.get("message.timeout.ms"), Some("5000"));
        assert_eq!(c.get("security.protocol"), None);
        let msk = KafkaConfig { auth: KafkaAuth::MskIam { region: "eu-west-1".into() }, ..config.clone() };
        assert_eq!(msk.client_config().get("sasl.mechanism"), Some("OAUTHBEARER"));
        assert_eq!(msk.client_config().get("security.protocol"), Some("SASL_SSL"));
        let local = KafkaConfig { auth: KafkaAuth::MskIamPlaintext { region: "us-east-1".into() }, ..config };
        assert_eq!(local.client_config().get("sasl.mechanism"), Some("OAUTHBEARER"));
        assert_eq!(local.client_config().get("security.protocol"), Some("SASL_PLAINTEXT"));
    }

    #[test]
    fn the_trace_becomes_record_headers() {
        use rdkafka::message::Headers;
        assert!(record_headers(&[]).is_none());
        let trace = shop::trace::Trace { request_id: "AbCdEfGhIjKlMg=".into(), trace_id: Some("1-a-b".into()) };
        let headers = record_headers(&trace.headers()).unwrap();
        let read: Vec<(String, Vec<u8>)> =
            headers.iter().map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec())).collect();
        assert_eq!(
            read,
            [("request_id".to_owned(), b"AbCdEfGhIjKlMg=".to_vec()), ("trace_id".to_owned(), b"1-a-b".to_vec())]
        );
    }

    #[test]
    fn kafka_auth_names_the_mechanism_and_iam_needs_a_region() {
        let region = || Some("eu-west-1".to_owned());
        assert_eq!(KafkaAuth::parse(None, None).unwrap(), KafkaAuth::Plaintext);
        assert_eq!(KafkaAuth::parse(Some("plaintext"), None).unwrap(), KafkaAuth::Plaintext);
        assert_eq!(
            KafkaAuth::parse(Some("msk-iam"), region()).unwrap(),
            KafkaAuth::MskIam { region: "eu-west-1".into() }
        );
        let local = KafkaAuth::parse(Some("msk-iam-plaintext"), region()).unwrap();
        assert_eq!(local, KafkaAuth::MskIamPlaintext { region: "eu-west-1".into() });
        assert_eq!(local.iam_region(), Some("eu-west-1"));
        assert_eq!(KafkaAuth::Plaintext.iam_region(), None);
        assert!(matches!(KafkaAuth::parse(Some("msk-iam-plaintext"), None), Err(ConfigError::Missing("AWS_REGION"))));
        assert!(matches!(
            KafkaAuth::parse(Some("sasl"), region()),
            Err(ConfigError::Invalid { name: "KAFKA_AUTH", .. })
        ));
    }
}
