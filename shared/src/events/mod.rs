//! Domain events: the transactional outbox, and getting its events to Kafka.
//!
//! - [`event`]: the event type and its JSON, written to the outbox in the same transaction as the change;
//! - [`publisher`]: after the commit, the function sends its events to Kafka and marks them published;
//! - [`relay`]: the sweeper's second chance for events a function could not publish (Kafka down);
//! - [`msk_iam`]: Amazon MSK's IAM authentication (SASL/OAUTHBEARER tokens) for the producer.

pub mod event;
pub mod msk_iam;
pub mod publisher;
pub mod relay;
