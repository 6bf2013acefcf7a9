//! The mock gateway's storage port: what it keeps of charges, refunds and webhooks to deliver.
//!
//! It lives next to the mock, not with the shop's ports in `store`: only the mock gateway's
//! functions use it, and the shop's store never needs the gateway's types. The DynamoDB adapter
//! implements it in `store::dynamo::charges`.

use crate::domain::idempotency::IdempotencyKey;
use crate::domain::payment::ChargeStatus;
use crate::payments::gateway::{Charge, GatewayRefund};
use crate::store::StoreError;
use std::future::Future;
use uuid::Uuid;

/// What the mock gateway keeps of a charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCharge {
    pub charge: Charge,
    /// What the charge settles to, and when (unix seconds); until then it reads as `pending`.
    pub final_status: ChargeStatus,
    pub settles_at: i64,
    /// Fingerprint of the creating request: the same key with another request is refused.
    pub request_hash: String,
}

/// A webhook the mock gateway still has to deliver. The body is fixed when the charge is made, so
/// redeliveries are byte-identical; the signature is made fresh at each attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: Uuid,
    pub url: String,
    pub body: String,
    pub due_at: time::OffsetDateTime,
    pub attempts: u32,
}

/// What asking the mock gateway for a refund found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateRefund {
    Created,
    /// The idempotency key was used before: the refund it made.
    Existing(GatewayRefund),
    /// The charge was refunded before, under another key.
    AlreadyRefunded,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateCharge {
    Created,
    /// The idempotency key was used before: the charge it made.
    Existing(StoredCharge),
}

pub trait GatewayStore: Send + Sync {
    /// The charge, its idempotency-key claim and its pending deliveries, atomically.
    fn create_charge(
        &self,
        idempotency_key: &IdempotencyKey,
        charge: &StoredCharge,
        deliveries: &[Delivery],
    ) -> impl Future<Output = Result<CreateCharge, StoreError>> + Send;
    fn get_charge(&self, id: &str) -> impl Future<Output = Result<Option<StoredCharge>, StoreError>> + Send;
    /// The refund, its idempotency-key claim and the charge's "refunded" mark, atomically: a charge
    /// is refunded once.
    fn create_refund(
        &self,
        idempotency_key: &IdempotencyKey,
        refund: &GatewayRefund,
    ) -> impl Future<Output = Result<CreateRefund, StoreError>> + Send;
    /// Up to `limit` undelivered webhooks due before `now`, oldest first (sparse index, no scan).
    fn due_deliveries(
        &self,
        now: time::OffsetDateTime,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Delivery>, StoreError>> + Send;
    /// Marks it delivered: out of the due index for good.
    fn delivered(&self, id: Uuid, now: time::OffsetDateTime) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Records a failed attempt and when to try next.
    fn reschedule(
        &self,
        id: Uuid,
        attempts: u32,
        due_at: time::OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
