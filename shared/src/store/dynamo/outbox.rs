//! Outbox items: an event on its way to Kafka, written in the transaction that caused it.
//!
//! While unpublished the item carries `gsi1pk = OUTBOX#<shard>` (32 shards, see
//! `keys::OUTBOX_SHARDS`: every event is written into the queue and out of it, which on one
//! partition key would cap the shop near 500 events/s) and `gsi1sk = <event id>` (a UUIDv7, so
//! time-ordered). Its insert is a record in the table's stream, which the relay function receives
//! (the event source's filter lets through only images with `sk = EVENT` and a `gsi1pk`
//! beginning with `OUTBOX`);
//! once Kafka has it, the relay marks it published: both index attributes are removed (a stream
//! record the filter drops) and `expires_at` set, so DynamoDB's TTL deletes it after
//! [`PUBLISHED_RETENTION`]. What the stream path gave up on is still in the index, where the
//! sweeper finds it and touches it (`redrives`), which sends it down the stream again (see
//! `events::redrive`).

use super::index::Partition;
use super::{DynamoStore, applied, keys};
use crate::events::event::Event;
use crate::store::StoreError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use serde::Serialize;
use uuid::Uuid;

/// How long a published event stays readable in the table (for support and audits).
pub const PUBLISHED_RETENTION: time::Duration = time::Duration::days(7);

#[derive(Serialize)]
struct OutboxItem<'a> {
    pk: String,
    sk: &'static str,
    gsi1pk: String,
    gsi1sk: String,
    id: String,
    #[serde(rename = "type")]
    event_type: &'static str,
    occurred_at: String,
    aggregate_id: &'a str,
    /// The event's JSON exactly as it will be published.
    payload: String,
}

/// The `Put` that records `event` as pending, for use inside a transaction.
pub fn put_event(table: &str, event: &Event) -> Result<TransactWriteItem, StoreError> {
    let (pk, sk) = keys::event(event.id);
    let occurred_at = keys::rfc3339(event.occurred_at)?;
    let payload = serde_json::to_string(event).map_err(|e| StoreError::Other(e.to_string()))?;
    let item = OutboxItem {
        pk,
        sk,
        gsi1pk: keys::outbox(event.id),
        gsi1sk: event.id.to_string(),
        id: event.id.to_string(),
        event_type: event.event_type().as_str(),
        occurred_at,
        aggregate_id: &event.aggregate_id,
        payload,
    };
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(serde_dynamo::to_item(item).map_err(super::decode_error)?))
        .condition_expression("attribute_not_exists(pk)")
        .build()
        .map_err(|e| StoreError::Other(e.to_string()))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// The smallest UUIDv7 of the millisecond `t` as text: every event id that sorts below it was
/// made before `t`, so "pending and older than `t`" is a key condition on `gsi1sk`.
fn v7_floor(t: time::OffsetDateTime) -> String {
    let ms = u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0) & 0xFFFF_FFFF_FFFF;
    format!("{:08x}-{:04x}-7000-8000-000000000000", ms >> 16, ms & 0xFFFF)
}

impl crate::store::OutboxStore for DynamoStore {
    async fn mark_published(&self, event_id: Uuid, now: time::OffsetDateTime) -> Result<(), StoreError> {
        let published_at = keys::rfc3339(now)?;
        let result = self
            .update(keys::event(event_id))
            .update_expression("REMOVE gsi1pk, gsi1sk SET published_at = :t, #ttl = :ttl")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#ttl", keys::TTL)
            .expression_attribute_values(":t", AttributeValue::S(published_at))
            .expression_attribute_values(":ttl", keys::expires_at(now + PUBLISHED_RETENTION))
            .send()
            .await;
        if applied(result)? {
            Ok(())
        } else {
            Err(StoreError::Other(format!("outbox event {event_id} does not exist")))
        }
    }

    async fn pending_events(
        &self,
        before: time::OffsetDateTime,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Uuid>, StoreError> {
        let after = after.map(|id| (keys::event(id), id.to_string()));
        let partitions = keys::queue_partitions(keys::OUTBOX, keys::OUTBOX_SHARDS);
        let due =
            self.due_sharded(&partitions, Partition::gsi1, v7_floor(before), after, limit, Some("id, gsi1sk")).await?;
        due.into_iter()
            .map(|item| match item.get("id") {
                Some(AttributeValue::S(id)) => {
                    Uuid::parse_str(id).map_err(|e| StoreError::Other(format!("outbox item with a bad id: {e}")))
                }
                _ => Err(StoreError::Other("outbox item without id".into())),
            })
            .collect()
    }

    async fn redrive(&self, event_id: Uuid, now: time::OffsetDateTime) -> Result<bool, StoreError> {
        let result = self
            .update(keys::event(event_id))
            .update_expression("SET redrives = if_not_exists(redrives, :zero) + :one, redriven_at = :t")
            .condition_expression("begins_with(gsi1pk, :outbox)")
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":t", AttributeValue::S(keys::rfc3339(now)?))
            .expression_attribute_values(":outbox", AttributeValue::S(keys::OUTBOX.into()))
            .send()
            .await;
        applied(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v7_floor_sorts_between_ids_of_earlier_and_later_milliseconds() {
        let t = time::macros::datetime!(2026-01-02 03:04:05.678 UTC);
        let floor = v7_floor(t);
        let at = |t: time::OffsetDateTime| {
            let ms = u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap();
            let ts =
                uuid::Timestamp::from_unix(uuid::NoContext, ms / 1000, u32::try_from(ms % 1000).unwrap() * 1_000_000);
            Uuid::new_v7(ts).to_string()
        };
        assert!(at(t - time::Duration::milliseconds(1)) < floor);
        assert!(at(t) >= floor);
        assert!(at(t + time::Duration::milliseconds(1)) > floor);
    }
}
