//! Order items and the reads around placing an order.
//!
//! An order is one item, `ORDER#<id>` / `ORDER`, lines included. Two sparse index entries make
//! its access patterns queries, never scans:
//! - `gsi1`: `ORDERS#<user id>` / `<order id>` — a user's orders, newest first (ids are UUIDv7);
//! - `gsi2`: `PENDING#<shard>` / `<deadline ms>#<order id>` — present only while the order holds
//!   a reservation, so the sweeper reads exactly the orders it may have to expire (16 shards, so
//!   that a flash sale's orders do not make one index partition hot; see `keys::PENDING_SHARDS`).
//!
//! The item also keeps `trace`, the ids of the request that placed it (the same as on its
//! `order.placed` event, see `crate::trace`), so a support question about an order leads to its
//! logs.

use super::index::{Listing, Partition};
use super::{DynamoStore, decode_error, keys};
use crate::domain::buckets::Share;
use crate::domain::money::{Currency, Money};
use crate::domain::order::{Order, OrderLine, OrderState};
use crate::store::{ListError, OrderStore, Page, StoreError};
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use uuid::Uuid;

#[derive(Serialize, Deserialize)]
pub(super) struct LineItem {
    product_id: Uuid,
    name: String,
    quantity: u32,
    price_amount: i64,
    currency: Currency,
    /// Units per stock bucket; absent = all in bucket 0 (the product item).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    buckets: Vec<Share>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct OrderItem {
    pk: String,
    sk: String,
    gsi1pk: String,
    gsi1sk: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi2pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi2sk: Option<String>,
    id: Uuid,
    user_id: Uuid,
    email: String,
    pub(super) state: OrderState,
    lines: Vec<LineItem>,
    total_amount: i64,
    currency: Currency,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    charge_id: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    reservation_deadline: time::OffsetDateTime,
    /// The ids of the request that placed it (`crate::trace`); absent on older orders. Written
    /// once with the order and never read back into [`Order`]: it is for the people who look.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trace: Option<crate::trace::Trace>,
}

impl OrderItem {
    /// The item of a new order placed by the request `trace` names.
    pub(super) fn from_order(o: &Order, trace: Option<&crate::trace::Trace>) -> Self {
        let (pk, sk) = keys::order(o.id);
        let pending = o.state.holds_reservation();
        Self {
            pk,
            sk: sk.to_owned(),
            gsi1pk: keys::user_orders(o.user_id),
            gsi1sk: o.id.to_string(),
            gsi2pk: pending.then(|| keys::pending(o.id)),
            gsi2sk: pending.then(|| format!("{}#{}", keys::instant(o.reservation_deadline), o.id)),
            id: o.id,
            user_id: o.user_id,
            email: o.email.clone(),
            state: o.state,
            lines: o
                .lines
                .iter()
                .map(|l| LineItem {
                    product_id: l.product_id,
                    name: l.name.clone(),
                    quantity: l.quantity,
                    price_amount: l.unit_price.amount,
                    currency: l.unit_price.currency,
                    buckets: l.buckets.clone(),
                })
                .collect(),
            total_amount: o.total.amount,
            currency: o.total.currency,
            charge_id: o.charge_id.clone(),
            created_at: o.created_at,
            updated_at: o.updated_at,
            reservation_deadline: o.reservation_deadline,
            trace: trace.cloned(),
        }
    }

    pub(super) fn into_order(self) -> Order {
        Order {
            id: self.id,
            user_id: self.user_id,
            email: self.email,
            state: self.state,
            lines: self
                .lines
                .into_iter()
                .map(|l| OrderLine {
                    product_id: l.product_id,
                    name: l.name,
                    quantity: l.quantity,
                    unit_price: Money { amount: l.price_amount, currency: l.currency },
                    buckets: l.buckets,
                })
                .collect(),
            total: Money { amount: self.total_amount, currency: self.currency },
            charge_id: self.charge_id,
            created_at: self.created_at,
            updated_at: self.updated_at,
            reservation_deadline: self.reservation_deadline,
        }
    }
}

pub(super) fn decode_order(item: HashMap<String, AttributeValue>) -> Result<Order, StoreError> {
    serde_dynamo::from_item::<_, OrderItem>(item).map(OrderItem::into_order).map_err(decode_error)
}

#[derive(Serialize, Deserialize)]
pub(super) struct MarkerItem {
    pub(super) pk: String,
    pub(super) sk: String,
    pub(super) order_id: Uuid,
    pub(super) request_hash: String,
    /// TTL (epoch seconds): a key is only worth remembering while a client may still retry with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) expires_at: Option<i64>,
}

impl OrderStore for DynamoStore {
    async fn get_order(&self, id: Uuid) -> Result<Option<Order>, StoreError> {
        self.get_item(keys::order(id)).await?.map(decode_order).transpose()
    }

    async fn list_orders(&self, user_id: Uuid, limit: u32, cursor: Option<&str>) -> Result<Page<Order>, ListError> {
        let listing = Listing {
            partition: Partition::gsi1(keys::user_orders(user_id)),
            newest_first: true,
            key: keys::order,
            decode: decode_order,
            id: |o: &Order| o.id,
        };
        self.page(&listing, limit, cursor).await
    }
}
