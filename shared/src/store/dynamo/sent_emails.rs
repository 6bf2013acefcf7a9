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
//!
//! The records are written after the sends, so a write that fails loses them: a refusal is then
//! not on record, and an accepted e-mail is sent again by any redelivery of its event (the batch's,
//! when another of its e-mails failed, or the sweeper's redrive). So a batch write DynamoDB
//! throttles or fails as a whole (`ProvisionedThroughputExceededException`, `InternalServerError`:
//! after the SDK's own three attempts) is tried again, as is what it leaves unprocessed, with a
//! backoff, for up to [`RETRY_FOR`]; only then is it given up on (and the notifier says so
//! loudly). That budget stays within the time the notifier keeps free for its records at the end
//! of an invocation (`email::pace::END_RESERVE`).

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
/// How long a batch's records are tried again while DynamoDB throttles or fails their writes (as
/// a whole, or leaving items unprocessed), counted from the first attempt.
pub const RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(5);
/// The first wait before trying again; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: std::time::Duration = std::time::Duration::from_millis(50);
const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_millis(800);

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
        // One budget for the whole batch, however many writes it takes.
        let give_up_at = tokio::time::Instant::now() + RETRY_FOR;
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
            self.write_all(HashMap::from([(self.table.clone(), writes)]), give_up_at).await?;
        }
        Ok(())
    }
}

impl DynamoStore {
    /// One `BatchWriteItem` to its end: what DynamoDB leaves unprocessed, and a request it
    /// throttles or fails as a whole (a transient error, after the SDK's own retries), is sent
    /// again after a backoff, until `give_up_at`.
    async fn write_all(
        &self,
        mut request: HashMap<String, Vec<WriteRequest>>,
        give_up_at: tokio::time::Instant,
    ) -> Result<(), StoreError> {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let result = self.client.batch_write_item().set_request_items(Some(request.clone())).send().await;
            let why = match result {
                Ok(out) => match out.unprocessed_items.filter(|m| m.values().any(|w| !w.is_empty())) {
                    None => return Ok(()),
                    Some(rest) => {
                        request = rest;
                        StoreError::Unavailable("e-mail records could not all be written (unprocessed)".into())
                    }
                },
                Err(e) => match store_error(e) {
                    e @ StoreError::Unavailable(_) => e,
                    other => return Err(other),
                },
            };
            if tokio::time::Instant::now() + backoff >= give_up_at {
                return Err(why);
            }
            tracing::warn!(error = %why, retry_in_ms = backoff.as_millis() as u64, "e-mail records not written yet; trying again");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}
