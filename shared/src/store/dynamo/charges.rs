//! The mock gateway's own items, in the shop's table (it is a development tool, not a provider):
//!
//! | item | pk / sk | gsi1 |
//! |---|---|---|
//! | charge | `CHARGE#<id>` / `CHARGE` | |
//! | idempotency-key claim | `CHARGE_KEY#<key>` / `CHARGE_KEY` | |
//! | refund (its idempotency-key claim holds it) | `GATEWAY_REFUND_KEY#<key>` / `GATEWAY_REFUND_KEY` | |
//! | webhook delivery | `WEBHOOK_DELIVERY#<id>` / `DELIVERY` | `DELIVERIES` / `<due ms>#<id>` while undelivered |
//!
//! A charge, its key claim and its deliveries are written in one transaction, so a delivery can
//! never exist without its charge, and a crash between "charged" and "will notify" cannot happen:
//! the schedule finds every undelivered webhook on the sparse index after a restart.

use super::index::Partition;
use super::transact::TransactError;
use super::transition::{built, put_new};
use super::{DynamoStore, applied, decode_error, keys, store_error};
use crate::domain::money::Currency;
use crate::domain::payment::ChargeStatus;
use crate::mock_gateway::store::{CreateCharge, CreateRefund, Delivery, GatewayStore, StoredCharge};
use crate::payments::gateway::{Charge, GatewayRefund};
use crate::store::StoreError;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Serialize, Deserialize)]
struct ChargeItem {
    pk: String,
    sk: String,
    id: String,
    amount: i64,
    currency: Currency,
    reference: String,
    status: ChargeStatus,
    created: i64,
    final_status: ChargeStatus,
    settles_at: i64,
    request_hash: String,
    /// Set once, by the one refund of this charge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refund_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    amount_refunded: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct RefundKeyItem {
    pk: String,
    sk: String,
    /// The refund, as JSON.
    refund: String,
}

#[derive(Serialize, Deserialize)]
struct KeyItem {
    pk: String,
    sk: String,
    charge_id: String,
}

#[derive(Serialize, Deserialize)]
struct DeliveryItem {
    #[serde(flatten)]
    keys: keys::Listed,
    id: Uuid,
    url: String,
    body: String,
    #[serde(with = "time::serde::rfc3339")]
    due_at: time::OffsetDateTime,
    attempts: u32,
}

fn due_key(due_at: time::OffsetDateTime, id: Uuid) -> String {
    format!("{}#{id}", keys::instant(due_at))
}

impl GatewayStore for DynamoStore {
    async fn create_charge(
        &self,
        idempotency_key: &crate::domain::idempotency::IdempotencyKey,
        c: &StoredCharge,
        deliveries: &[Delivery],
    ) -> Result<CreateCharge, StoreError> {
        let (pk, sk) = keys::charge_key(idempotency_key);
        let claim = KeyItem { pk, sk: sk.to_owned(), charge_id: c.charge.id.clone() };
        let (pk, sk) = keys::charge(&c.charge.id);
        let charge = ChargeItem {
            pk,
            sk: sk.to_owned(),
            id: c.charge.id.clone(),
            amount: c.charge.amount,
            currency: c.charge.currency,
            reference: c.charge.reference.clone(),
            status: c.charge.status,
            created: c.charge.created,
            final_status: c.final_status,
            settles_at: c.settles_at,
            request_hash: c.request_hash.clone(),
            refund_id: None,
            amount_refunded: None,
        };
        let mut items = vec![
            put_new(&self.table, serde_dynamo::to_item(claim).map_err(decode_error)?)?,
            put_new(&self.table, serde_dynamo::to_item(charge).map_err(decode_error)?)?,
        ];
        for d in deliveries {
            let item = DeliveryItem {
                keys: keys::Listed::on(keys::delivery(d.id), keys::DELIVERIES, due_key(d.due_at, d.id)),
                id: d.id,
                url: d.url.clone(),
                body: d.body.clone(),
                due_at: d.due_at,
                attempts: d.attempts,
            };
            items.push(put_new(&self.table, serde_dynamo::to_item(item).map_err(decode_error)?)?);
        }
        match self.transact(items).await {
            Ok(()) => Ok(CreateCharge::Created),
            Err(e) if e.failed_conditions().first() == Some(&0) => {
                let claim: KeyItem = self
                    .get(keys::charge_key(idempotency_key))
                    .await?
                    .ok_or_else(|| StoreError::Other("charge key claim vanished".into()))?;
                let prior = self
                    .get_charge(&claim.charge_id)
                    .await?
                    .ok_or_else(|| StoreError::Other(format!("key points at missing charge {}", claim.charge_id)))?;
                Ok(CreateCharge::Existing(prior))
            }
            Err(TransactError::Store(e)) => Err(e),
            Err(e) => Err(StoreError::Other(format!("charge transaction cancelled: {e}"))),
        }
    }

    async fn get_charge(&self, id: &str) -> Result<Option<StoredCharge>, StoreError> {
        let item: Option<ChargeItem> = self.get(keys::charge(id)).await?;
        Ok(item.map(|c| StoredCharge {
            charge: Charge {
                id: c.id,
                amount: c.amount,
                currency: c.currency,
                reference: c.reference,
                status: c.status,
                created: c.created,
                amount_refunded: c.amount_refunded,
            },
            final_status: c.final_status,
            settles_at: c.settles_at,
            request_hash: c.request_hash,
        }))
    }

    async fn create_refund(
        &self,
        idempotency_key: &crate::domain::idempotency::IdempotencyKey,
        refund: &GatewayRefund,
    ) -> Result<CreateRefund, StoreError> {
        let (pk, sk) = keys::refund_key(idempotency_key);
        let json = serde_json::to_string(refund).map_err(|e| StoreError::Other(e.to_string()))?;
        let claim = RefundKeyItem { pk, sk: sk.to_owned(), refund: json };
        let mark = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::key(keys::charge(&refund.charge_id))))
            .update_expression("SET refund_id = :r, amount_refunded = :a")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(refund_id)")
            .expression_attribute_values(":r", AttributeValue::S(refund.id.clone()))
            .expression_attribute_values(":a", AttributeValue::N(refund.amount.to_string()));
        let items = vec![
            put_new(&self.table, serde_dynamo::to_item(claim).map_err(decode_error)?)?,
            TransactWriteItem::builder().update(built(mark.build())?).build(),
        ];
        match self.transact(items).await {
            Ok(()) => Ok(CreateRefund::Created),
            Err(e) if e.failed_conditions().first() == Some(&0) => {
                let claim: RefundKeyItem = self
                    .get(keys::refund_key(idempotency_key))
                    .await?
                    .ok_or_else(|| StoreError::Other("refund key claim vanished".into()))?;
                let prior = serde_json::from_str(&claim.refund).map_err(|e| StoreError::Other(e.to_string()))?;
                Ok(CreateRefund::Existing(prior))
            }
            Err(e) if e.failed_conditions().contains(&1) => Ok(CreateRefund::AlreadyRefunded),
            Err(TransactError::Store(e)) => Err(e),
            Err(e) => Err(StoreError::Other(format!("refund transaction cancelled: {e}"))),
        }
    }

    async fn due_deliveries(&self, now: time::OffsetDateTime, limit: u32) -> Result<Vec<Delivery>, StoreError> {
        let due = self.due(&Partition::gsi1(keys::DELIVERIES), keys::instant(now), None, limit, None).await?;
        due.into_iter()
            .map(|i| {
                let d: DeliveryItem = serde_dynamo::from_item(i).map_err(decode_error)?;
                Ok(Delivery { id: d.id, url: d.url, body: d.body, due_at: d.due_at, attempts: d.attempts })
            })
            .collect()
    }

    async fn delivered(&self, id: Uuid, now: time::OffsetDateTime) -> Result<(), StoreError> {
        let now = keys::rfc3339(now)?;
        self.update(keys::delivery(id))
            .update_expression("SET delivered_at = :now REMOVE gsi1pk, gsi1sk")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":now", AttributeValue::S(now))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn reschedule(&self, id: Uuid, attempts: u32, due_at: time::OffsetDateTime) -> Result<(), StoreError> {
        let due = keys::rfc3339(due_at)?;
        // Only while undelivered: a concurrent successful attempt must not be put back in the index.
        let result = self
            .update(keys::delivery(id))
            .update_expression("SET attempts = :a, due_at = :due, gsi1sk = :sk")
            .condition_expression("attribute_exists(gsi1pk)")
            .expression_attribute_values(":a", AttributeValue::N(attempts.to_string()))
            .expression_attribute_values(":due", AttributeValue::S(due))
            .expression_attribute_values(":sk", AttributeValue::S(due_key(due_at, id)))
            .send()
            .await;
        applied(result).map(drop)
    }
}
