//! Outbox items: an event waiting to be published, written in the transaction that caused it.
//!
//! While unpublished the item carries `gsi1pk = OUTBOX` and `gsi1sk = <event id>` (a UUIDv7, so time-ordered):
//! the sweeper finds pending events, oldest first, with a query on the sparse index (no scan).

use super::keys;
use crate::events::event::Event;
use crate::store::StoreError;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use serde::Serialize;

#[derive(Serialize)]
struct OutboxItem<'a> {
    pk: String,
    sk: &'static str,
    gsi1pk: &'static str,
    gsi1sk: String,
    id: String,
    #[serde(rename = "type")]
    event_type: &'a str,
    occurred_at: String,
    aggregate_id: &'a str,
    /// The event's JSON exactly as it will be published.
    payload: String,
}

/// The `Put` that records `event` as pending, for use inside a transaction.
pub fn put_event(table: &str, event: &Event) -> Result<TransactWriteItem, StoreError> {
    let (pk, sk) = keys::event(event.id);
    let occurred_at = event
        .occurred_at
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| StoreError::Other(e.to_string()))?;
    let payload = serde_json::to_string(event).map_err(|e| StoreError::Other(e.to_string()))?;
    let item = OutboxItem {
        pk,
        sk,
        gsi1pk: keys::OUTBOX,
        gsi1sk: event.id.to_string(),
        id: event.id.to_string(),
        event_type: &event.event_type,
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
