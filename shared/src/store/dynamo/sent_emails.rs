//! The notifier's e-mail markers, one item per event: `pk = EMAIL_SENT#<event id>`, `sk = EMAIL`.
//!
//! Claim, send, confirm:
//! 1. `PutItem {status: SENDING, lease_until}` if no item exists, or the existing one is a
//!    `SENDING` claim whose lease ran out (its sender died);
//! 2. the e-mail is sent;
//! 3. `UpdateItem status = SENT` (forever; a redelivery finds it and sends nothing).
//!
//! A failed send deletes the claim so the redelivered batch can send at once. Concurrent
//! deliveries of the same event (Lambda can run a retry while the first attempt is still going)
//! meet at step 1: exactly one claims, the other sees `InFlight`. The one gap left is a crash
//! between 2 and 3: after the lease the e-mail is sent again. That duplicate is chosen over the
//! alternative (mark first, lose the e-mail if the send then dies) — see `docs/events.md`.

use super::{DynamoStore, applied, keys, store_error};
use crate::store::{EmailClaim, SentEmails, StoreError};
use aws_sdk_dynamodb::types::AttributeValue;
use uuid::Uuid;

const SENDING: &str = "SENDING";
const SENT: &str = "SENT";

impl SentEmails for DynamoStore {
    async fn claim_email(
        &self,
        event_id: Uuid,
        now: time::OffsetDateTime,
        lease: time::Duration,
    ) -> Result<EmailClaim, StoreError> {
        let mut item = keys::key(keys::email_sent(event_id));
        item.insert("status".into(), AttributeValue::S(SENDING.into()));
        item.insert("lease_until".into(), AttributeValue::N((now + lease).unix_timestamp().to_string()));
        item.insert("claimed_at".into(), AttributeValue::S(keys::rfc3339(now)?));
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR (#s = :sending AND lease_until < :now)")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":sending", AttributeValue::S(SENDING.into()))
            .expression_attribute_values(":now", AttributeValue::N(now.unix_timestamp().to_string()))
            .send()
            .await;
        if applied(put)? {
            return Ok(EmailClaim::Claimed);
        }
        let existing = self.get_item(keys::email_sent(event_id)).await?;
        let status = existing.as_ref().and_then(|i| i.get("status")).and_then(|s| s.as_s().ok());
        Ok(if status.map(String::as_str) == Some(SENT) { EmailClaim::AlreadySent } else { EmailClaim::InFlight })
    }

    async fn mark_sent(&self, event_id: Uuid, message_id: &str, now: time::OffsetDateTime) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::key(keys::email_sent(event_id))))
            .update_expression("SET #s = :sent, sent_at = :t, message_id = :m REMOVE lease_until")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":sent", AttributeValue::S(SENT.into()))
            .expression_attribute_values(":t", AttributeValue::S(keys::rfc3339(now)?))
            .expression_attribute_values(":m", AttributeValue::S(message_id.to_owned()))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn release_claim(&self, event_id: Uuid) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(keys::key(keys::email_sent(event_id))))
            .condition_expression("#s = :sending")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":sending", AttributeValue::S(SENDING.into()))
            .send()
            .await;
        // Refused: not a claim any more (sent by another delivery after our lease ran out): keep it.
        applied(result).map(drop)
    }
}
