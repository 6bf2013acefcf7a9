//! Kafka for the outbox relay, kept out of `shop` so that only the relay binary links librdkafka
//! (with its static OpenSSL) and connects to Amazon MSK:
//!
//! - [`producer`]: the idempotent producer, an `EventSink` the relay sends events to;
//! - [`msk_iam`]: Amazon MSK's IAM authentication (SASL/OAUTHBEARER tokens) for it.

pub mod msk_iam;
pub mod producer;

pub use producer::{KafkaAuth, KafkaConfig, Producer};
