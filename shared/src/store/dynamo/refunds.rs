//! Refund records: `REFUND#<charge id>` / `REFUND`, created by the settlement that decided the
//! charge goes back ([`put_refund`], in its transaction), then moved on by the refund worker.
//!
//! While requested the item carries `gsi1pk = REFUNDS`, `gsi1sk = <refund id>` (UUIDv7: oldest
//! first), the worker's queue. Completed, it leaves the index; refused by the gateway, it moves to
//! `gsi1pk = REFUNDS_FAILED`, where the admin's list finds it.

use super::index::Partition;
use super::transact::TransactError;
use super::transition::built;
use super::{DynamoStore, applied, decode_error, keys, outbox};
use crate::domain::money::{Currency, Money};
use crate::domain::payment::RefundReason;
use crate::domain::refund::{Refund, RefundState};
use crate::events::event::Event;
use crate::store::{RefundStore, StoreError};
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Serialize, Deserialize)]
struct RefundItem {
    #[serde(flatten)]
    keys: keys::Listed,
    id: Uuid,
    charge_id: String,
    order_id: Uuid,
    user_id: Uuid,
    email: String,
    amount: i64,
    currency: Currency,
    reason: RefundReason,
    state: RefundState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway_refund_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failure: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: time::OffsetDateTime,
    /// The request that opened it (`crate::trace`); absent on older refunds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trace: Option<crate::trace::Trace>,
}

impl RefundItem {
    fn into_refund(self) -> Refund {
        Refund {
            id: self.id,
            charge_id: self.charge_id,
            order_id: self.order_id,
            user_id: self.user_id,
            email: self.email,
            amount: Money { amount: self.amount, currency: self.currency },
            reason: self.reason,
            state: self.state,
            gateway_refund_id: self.gateway_refund_id,
            failure: self.failure,
            created_at: self.created_at,
            updated_at: self.updated_at,
            trace: self.trace,
        }
    }
}

/// The `Put` of a new, requested refund, for the settlement's transaction: it fails (as a
/// condition) if this charge already has a refund.
pub(super) fn put_refund(table: &str, r: &Refund) -> Result<TransactWriteItem, StoreError> {
    let item = RefundItem {
        keys: keys::Listed::on(keys::refund(&r.charge_id), keys::REFUNDS, r.id.to_string()),
        id: r.id,
        charge_id: r.charge_id.clone(),
        order_id: r.order_id,
        user_id: r.user_id,
        email: r.email.clone(),
        amount: r.amount.amount,
        currency: r.amount.currency,
        reason: r.reason,
        state: RefundState::Requested,
        gateway_refund_id: None,
        failure: None,
        created_at: r.created_at,
        updated_at: r.updated_at,
        trace: r.trace.clone(),
    };
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(serde_dynamo::to_item(item).map_err(decode_error)?))
        .condition_expression("attribute_not_exists(pk)");
    Ok(TransactWriteItem::builder().put(built(put.build())?).build())
}

fn state_value(s: RefundState) -> Result<AttributeValue, StoreError> {
    serde_dynamo::to_attribute_value(s).map_err(decode_error)
}

impl DynamoStore {
    async fn refunds_in(&self, partition: &str, limit: u32) -> Result<Vec<Refund>, StoreError> {
        // Sort keys are v7 ids: "below" `~` covers the whole partition.
        let items = self.due(&Partition::gsi1(partition), "~".into(), None, limit, None).await?;
        items
            .into_iter()
            .map(|i| serde_dynamo::from_item::<_, RefundItem>(i).map(RefundItem::into_refund).map_err(decode_error))
            .collect()
    }
}

impl RefundStore for DynamoStore {
    async fn open_refunds(&self, limit: u32) -> Result<Vec<Refund>, StoreError> {
        self.refunds_in(keys::REFUNDS, limit).await
    }

    async fn failed_refunds(&self, limit: u32) -> Result<Vec<Refund>, StoreError> {
        self.refunds_in(keys::REFUNDS_FAILED, limit).await
    }

    async fn complete_refund(
        &self,
        refund: &Refund,
        gateway_refund_id: &str,
        event: &Event,
        now: time::OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::key(keys::refund(&refund.charge_id))))
            .update_expression("SET #state = :done, gateway_refund_id = :g, updated_at = :now REMOVE gsi1pk, gsi1sk")
            .condition_expression("#state = :requested")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":done", state_value(RefundState::Refunded)?)
            .expression_attribute_values(":requested", state_value(RefundState::Requested)?)
            .expression_attribute_values(":g", AttributeValue::S(gateway_refund_id.to_owned()))
            .expression_attribute_values(":now", AttributeValue::S(keys::rfc3339(now)?));
        let items = vec![
            TransactWriteItem::builder().update(built(update.build())?).build(),
            outbox::put_event(&self.table, event)?,
        ];
        match self.transact(items).await {
            Ok(()) => Ok(true),
            Err(e) if e.failed_conditions().contains(&0) => Ok(false),
            Err(TransactError::Store(e)) => Err(e),
            Err(e) => Err(StoreError::Other(format!("refund {} not completed: {e}", refund.id))),
        }
    }

    async fn fail_refund(&self, refund: &Refund, why: &str, now: time::OffsetDateTime) -> Result<(), StoreError> {
        let result = self
            .update(keys::refund(&refund.charge_id))
            .update_expression("SET #state = :failed, failure = :why, updated_at = :now, gsi1pk = :queue")
            .condition_expression("#state = :requested")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":failed", state_value(RefundState::Failed)?)
            .expression_attribute_values(":requested", state_value(RefundState::Requested)?)
            .expression_attribute_values(":why", AttributeValue::S(why.to_owned()))
            .expression_attribute_values(":now", AttributeValue::S(keys::rfc3339(now)?))
            .expression_attribute_values(":queue", AttributeValue::S(keys::REFUNDS_FAILED.into()))
            .send()
            .await;
        // Not `REQUESTED` any more: another run settled it first.
        applied(result).map(drop)
    }
}
