//! The notifier's e-mail records, one item per event: `pk = EMAIL_SENT#<event id>`, `sk = EMAIL`,
//! `attempt` (1, 2, …), `claim_id`, `at`, `expires_at` (TTL, [`RETENTION`]) and `status`:
//!
//! | `status` | written | means |
//! |---|---|---|
//! | `SENDING` | [`claim`](SentEmails::claim), just before the send | attempt `attempt` is sending it; found by a later delivery, the attempt died before recording SES's answer: **unknown** whether it went out |
//! | `SENT` (+ `message_id`) | after SES accepted it | done |
//! | `REFUSED` (+ `reason`) | after SES refused the address for good | done, never tried again |
//! | `UNKNOWN` | when a later delivery found it `SENDING` and its kind is not sent again (`email::unknown`) | settled, never tried again |
//!
//! Why a claim before every send: SES's `SendEmail` takes no idempotency key, so an instance that
//! dies (or times out, or is throttled by DynamoDB until it dies) after SES accepted an e-mail and
//! before its record is written leaves an e-mail that went out with nothing saying so. Without a
//! claim the redelivery cannot tell that e-mail from one never tried and sends it again — silently
//! (the 30-minute soak found nine, under DynamoDB throttling). With the claim, such an e-mail is
//! *known to be unknown*: the notifier decides it explicitly per kind of e-mail, counts it, and
//! its alarm says so. An e-mail surely not taken (SES answered an error, was unreachable, the send
//! never started) has its claim **released** (deleted), so the redelivery sends it as new.
//!
//! The claim is conditional (`attribute_not_exists`, or still `SENDING` by the attempt the reader
//! saw), so two deliveries of one event can never both send it: one Kafka partition is handled by
//! one invocation at a time and every copy of an event has the same key, so that does not happen
//! in the normal course, but the condition makes it a fact rather than an assumption. Each claim
//! carries a random `claim_id`: the SDK retries a write whose answer was lost, and that retry
//! meets its own claim; the id, returned with the refusal (`ReturnValuesOnConditionCheckFailure`),
//! tells "ours, written the first time" from another's (which would leave the e-mail unsent and
//! its claim behind). A claim costs one write per e-mail, like the record after it.
//!
//! A batch's records are read with one `BatchGetItem` (strongly consistent, 100 keys at a time)
//! before sending. Each outcome is written as soon as SES answered (the notifier records e-mail by
//! e-mail), with a `BatchWriteItem` that is tried again, as is what it leaves unprocessed, with a
//! backoff, for up to [`RETRY_FOR`] while DynamoDB throttles or fails it
//! (`ProvisionedThroughputExceededException`, `InternalServerError`: after the SDK's own three
//! attempts); a record given up on leaves the claim, i.e. an unknown outcome for the redelivery,
//! never a silent duplicate. That budget stays within the time the notifier keeps free for its
//! records at the end of an invocation (`email::pace::END_RESERVE`).

use super::{DynamoStore, applied, decode_error, keys, store_error};
use crate::store::{EmailRecord, EmailState, SentEmails, StoreError};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use serde::Deserialize;
use std::collections::HashMap;
use uuid::Uuid;

/// How long an e-mail record is kept: longer than Kafka keeps a record (7 days by default on
/// MSK) and the sweeper redrives an event, so a late copy still finds it.
pub const RETENTION: time::Duration = time::Duration::days(14);
const SENDING: &str = "SENDING";
const SENT: &str = "SENT";
const REFUSED: &str = "REFUSED";
const UNKNOWN: &str = "UNKNOWN";
/// How long a batch's records are tried again while DynamoDB throttles or fails their writes (as
/// a whole, or leaving items unprocessed), counted from the first attempt.
pub const RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(5);
/// The first wait before trying again; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: std::time::Duration = std::time::Duration::from_millis(50);
const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_millis(800);

#[derive(Deserialize)]
struct RecordItem {
    pk: String,
    #[serde(default)]
    status: Option<String>,
    /// Absent on records written before claims existed: attempt 1.
    #[serde(default)]
    attempt: Option<u32>,
}

fn n(v: u32) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

impl SentEmails for DynamoStore {
    async fn states(&self, events: &[Uuid]) -> Result<HashMap<Uuid, EmailState>, StoreError> {
        let mut states = HashMap::new();
        let keys = events.iter().map(|id| keys::key(keys::email_sent(*id))).collect();
        for item in self.batch_get_projected(keys, true, None).await? {
            let r: RecordItem = serde_dynamo::from_item(item).map_err(decode_error)?;
            let Some(id) = r.pk.strip_prefix("EMAIL_SENT#").and_then(|id| Uuid::parse_str(id).ok()) else {
                continue;
            };
            let state = match r.status.as_deref() {
                Some(SENDING) => EmailState::Claimed { attempt: r.attempt.unwrap_or(1) },
                _ => EmailState::Settled,
            };
            states.insert(id, state);
        }
        Ok(states)
    }

    async fn claim(
        &self,
        event: Uuid,
        after: Option<u32>,
        now: time::OffsetDateTime,
    ) -> Result<Option<u32>, StoreError> {
        let attempt = after.map_or(1, |a| a.saturating_add(1));
        let mut item = keys::key(keys::email_sent(event));
        item.insert("status".into(), AttributeValue::S(SENDING.into()));
        item.insert("attempt".into(), n(attempt));
        // Tells this write from any other: see below.
        let claim_id = Uuid::new_v4().to_string();
        item.insert("claim_id".into(), AttributeValue::S(claim_id.clone()));
        item.insert("at".into(), AttributeValue::S(keys::rfc3339(now)?));
        item.insert(keys::TTL.into(), keys::expires_at(now + RETENTION));
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let put = match after {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(seen) => put
                .condition_expression("#s = :sending AND attempt = :seen")
                .expression_attribute_names("#s", "status")
                .expression_attribute_values(":sending", AttributeValue::S(SENDING.into()))
                .expression_attribute_values(":seen", n(seen)),
        };
        match put.send().await {
            Ok(_) => Ok(Some(attempt)),
            // The SDK retries a write whose answer was lost (a reset connection, a 500 after the
            // write): its retry then meets its own claim and fails the condition. Only the claim's
            // id tells "ours, written the first time" from "someone else's".
            Err(SdkError::ServiceError(refused))
                if matches!(refused.err(), PutItemError::ConditionalCheckFailedException(_)) =>
            {
                let ours = match refused.into_err() {
                    PutItemError::ConditionalCheckFailedException(c) => {
                        c.item.and_then(|old| old.get("claim_id").and_then(|v| v.as_s().ok()).cloned())
                            == Some(claim_id)
                    }
                    _ => false,
                };
                Ok(ours.then_some(attempt))
            }
            Err(e) => Err(store_error(e)),
        }
    }

    async fn release(&self, event: Uuid, attempt: u32) -> Result<(), StoreError> {
        let (pk, sk) = keys::email_sent(event);
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk))
            .key("sk", AttributeValue::S(sk.into()))
            .condition_expression("#s = :sending AND attempt = :attempt")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":sending", AttributeValue::S(SENDING.into()))
            .expression_attribute_values(":attempt", n(attempt))
            .send()
            .await;
        // Not ours any more (recorded, or claimed again): nothing to release.
        applied(deleted).map(|_| ())
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
                let (status, attempt) = match record {
                    EmailRecord::Sent { message_id, attempt } => {
                        item.insert("message_id".into(), AttributeValue::S(message_id.clone()));
                        (SENT, attempt)
                    }
                    EmailRecord::Refused { reason, attempt } => {
                        item.insert("reason".into(), AttributeValue::S(reason.clone()));
                        (REFUSED, attempt)
                    }
                    EmailRecord::Unknown { attempt } => (UNKNOWN, attempt),
                };
                item.insert("status".into(), AttributeValue::S(status.into()));
                item.insert("attempt".into(), n(*attempt));
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
