//! Domain events, as published to Kafka: `{id, type, occurred_at, data}`.
//!
//! On the wire (Kafka message value, outbox `payload`) an event is this struct as JSON:
//! `{"id", "type", "occurred_at", "aggregate_id", "data"}`; the message key is `aggregate_id`.
//!
//! An event is written to the outbox in the same DynamoDB transaction as the change it describes,
//! so "the change happened" and "someone will be told" can never disagree. Publishing it to Kafka
//! happens after the commit (and again by the sweeper if that fails).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: time::OffsetDateTime,
    /// The entity the event is about (user id, order id); the Kafka message key, so one entity's
    /// events stay in order on one partition.
    pub aggregate_id: String,
    pub data: Value,
}

// Every event type, with the `data` each carries, is documented in `docs/events.md`.
pub const USER_SIGNED_UP: &str = "user.signed_up";
pub const ORDER_PLACED: &str = "order.placed";
pub const ORDER_PAID: &str = "order.paid";
pub const ORDER_PAYMENT_FAILED: &str = "order.payment_failed";
pub const ORDER_CANCELLED: &str = "order.cancelled";
pub const ORDER_EXPIRED: &str = "order.expired";
pub const ORDER_REFUND_REQUIRED: &str = "order.refund_required";

impl Event {
    pub fn new(
        event_type: &str,
        aggregate_id: impl Into<String>,
        occurred_at: time::OffsetDateTime,
        data: Value,
    ) -> Self {
        Self {
            id: Uuid::now_v7(),
            event_type: event_type.to_owned(),
            occurred_at,
            aggregate_id: aggregate_id.into(),
            data,
        }
    }
}
