//! Domain events: the transactional outbox, and how its events reach Kafka.
//!
//! - [`event`]: the typed events and their JSON, written to the outbox in the same transaction as
//!   the change they describe;
//! - [`sink`]: the port the outbox relay produces to (Kafka, in the `shop-kafka` crate);
//! - [`redrive`]: the sweeper's backstop for events the stream path gave up on.
//!
//! The path of an event: the API function's transaction writes it as an outbox item; the table's
//! DynamoDB stream carries the insert to the one relay function (`api::outbox_relay`), which
//! produces it to Kafka and marks it published. API functions never talk to Kafka. See
//! `docs/events.md`.

pub mod event;
pub mod redrive;
pub mod sink;
