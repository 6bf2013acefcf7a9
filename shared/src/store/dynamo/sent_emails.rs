//! The notifier's e-mail records, one item per event: `pk = EMAIL_SENT#<event id>`, `sk = EMAIL`,
//! `status` = `SENT` (with SES's `message_id`) or `REFUSED` (SES refused the address for good,
//! with its `reason`), and `expires_at` (TTL, [`RETENTION`]).
//!
//! A batch's records are read with one `BatchGetItem` (strongly consistent, 100 keys at a time)
//! before sending, and written with `BatchWriteItem` (25 at a time) after: two calls per 25–100
//! e-mails instead of two writes per e-mail. (Against DynamoDB Local, which does one write at a time
//! on one core, per-e-mail writes were what bounded the notifier: see `docs/events.md`.)
//!
//! Why no claim before sending: one Kafka partition is handled by one invocation at a time, and
//! every copy of an event has the same key, so two copies of one event are never sent at the same
//! moment; a copy that arrives later finds the record. The one gap is a crash after SES accepted an
//! e-mail and before the batch's records were written: the redelivered batch sends it again. That
//! duplicate is chosen over the alternative (record first, lose the e-mail if the send then fails)
//! — see `docs/events.md`.

use super::{DynamoStore, decode_error, keys, store_error};
use crate::store::{EmailRecord, SentEmails, StoreError};
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// How long an e-mail record is kept: longer than Kafka keeps a record (7 days by default on
/// MSK) and the sweeper redrives an event, so a late copy still finds it.
pub const RETENTION: time::Duration = time::Duration::days(14);
const SENT: &str = "SENT";
const REFUSED: &str = "REFUSED";
/// Attempts at the unprocessed part of a batch read or write (DynamoDB hands back what it throttled).
const ROUNDS: usize = 5;

#[derive(Deserialize)]
struct RecordItem {
    pk: String,
}

impl SentEmails for DynamoStore {
    async fn settled(&self, events: &[Uuid]) -> Result<HashSet<Uuid>, StoreError> {
        let mut settled = HashSet::new();
        let keys = events.iter().map(|id| keys::key(keys::email_sent(*id))).collect();
        for item in self.batch_get_projected(keys, true, Some("pk")).await? {
            let r: RecordItem = serde_dynamo::from_item(item).map_err(decode_error)?;
            if let Some(id) = r.pk.strip_prefix("EMAIL_SENT#").and_then(|id| Uuid::parse_str(id).ok()) {
                settled.insert(id);
            }
        }
        Ok(settled)
    }

    async fn record(&self, records: &[(Uuid, EmailRecord)], now: time::OffsetDateTime) -> Result<(), StoreError> {
        let at = AttributeValue::S(keys::rfc3339(now)?);
        let expires = keys::expires_at(now + RETENTION);
        for chunk in records.chunks(25) {
            let mut writes = Vec::with_capacity(chunk.len());
            for (id, record) in chunk {
                let mut item = keys::key(keys::email_sent(*id));
                item.insert("at".into(), at.clone());
                item.insert(keys::TTL.into(), expires.clone());
                match record {
                    EmailRecord::Sent { message_id } => {
                        item.insert("status".into(), AttributeValue::S(SENT.into()));
                        item.insert("message_id".into(), AttributeValue::S(message_id.clone()));
                    }
                    EmailRecord::Refused { reason } => {
                        item.insert("status".into(), AttributeValue::S(REFUSED.into()));
                        item.insert("reason".into(), AttributeValue::S(reason.clone()));
                    }
                }
                let put =
                    PutRequest::builder().set_item(Some(item)).build().map_err(|e| StoreError::Other(e.to_string()))?;
                writes.push(WriteRequest::builder().put_request(put).build());
            }
            let mut pending = Some(HashMap::from([(self.table.clone(), writes)]));
            for _ in 0..ROUNDS {
                let Some(request) = pending.take().filter(|m| m.values().any(|w| !w.is_empty())) else { break };
                let out = self
                    .client
                    .batch_write_item()
                    .set_request_items(Some(request))
                    .send()
                    .await
                    .map_err(store_error)?;
                pending = out.unprocessed_items;
            }
            if pending.is_some_and(|m| m.values().any(|w| !w.is_empty())) {
                return Err(StoreError::Unavailable("e-mail records could not all be written".into()));
            }
        }
        Ok(())
    }
}
