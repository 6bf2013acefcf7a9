//! Placing an order: **where stock is reserved**.
//!
//! One `TransactWriteItems`, all or nothing:
//! 1. the idempotency marker, `attribute_not_exists` — a repeated key fails here, not later;
//! 2. the order, `attribute_not_exists`;
//! 3. the `order.placed` outbox event;
//! 4. per line, and per stock bucket the line takes units from (bucket 0 is the product item,
//!    see [`super::buckets`]): `reserved += q, sellable -= q` if the product is live, still has
//!    the price the order was priced at, and `sellable >= q` (see [`super::stock`]);
//! 5. per cart line used, its delete, if the quantity is still the one ordered;
//! 6. a `ConditionCheck` of the buyer's profile: open, and still at the session generation of the
//!    buyer's token (`auth::session`). A signed-out token places nothing, and an account closed
//!    while its order was being placed cannot end up with units reserved: the closing and the
//!    order are serialised on the profile item.
//!
//! If any condition fails nothing is written, and the per-item cancellation reasons (with the
//! product as it was) say which products were short, repriced or gone. A short bucket of a
//! product with several is [`PlaceError::BucketsShort`], not out of stock: its other buckets may
//! hold the units, and the use case looks.

use super::buckets::Slots;
use super::orders::{MarkerItem, OrderItem};
use super::stock::{LIVE, stock_update};
use super::transact::{MAX_TRANSACT_ITEMS, Reason, TransactError};
use super::transition::{built, put_new};
use super::{DynamoStore, decode_error, keys, outbox};
use crate::domain::money::{Currency, Money};
use crate::domain::order::PriceQuote;
use crate::domain::stock::{Stock, Transition};
use crate::store::{PlaceError, Placement, PlacementStore, PriorPlacement, StoreError};
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use serde::Deserialize;
use std::collections::HashMap;
use uuid::Uuid;

/// The part of a product item pricing reads.
#[derive(Deserialize)]
struct QuoteItem {
    id: Uuid,
    name: String,
    price_amount: i64,
    currency: Currency,
    #[serde(default)]
    stock_buckets: crate::domain::buckets::StockBuckets,
    #[serde(default)]
    deleted_at: Option<String>,
}

/// Why a product line's condition failed, judged from the bucket as it was.
enum LineFailure {
    Gone,
    PriceChanged,
    OutOfStock,
    BucketShort,
}

fn judge(reason: &Reason, bucket: u16, expected_amount: i64, expected_currency: &str) -> LineFailure {
    let item = reason.item.as_ref().filter(|i| !i.is_empty());
    let Some(item) = item else {
        // The product item is missing: no such product. A missing bucket item: the order picked
        // a bucket from a count that has shrunk since (a cart's), which says nothing of the others.
        return if bucket == 0 { LineFailure::Gone } else { LineFailure::BucketShort };
    };
    if item.contains_key("deleted_at") {
        return LineFailure::Gone;
    }
    let amount = item.get("price_amount").and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<i64>().ok());
    let currency = item.get("currency").and_then(|v| v.as_s().ok());
    if amount != Some(expected_amount) || currency.map(String::as_str) != Some(expected_currency) {
        return LineFailure::PriceChanged;
    }
    let slots = item.get("bucket_slots").and_then(|v| v.as_n().ok()).map_or("1", String::as_str);
    if bucket == 0 && slots == "1" { LineFailure::OutOfStock } else { LineFailure::BucketShort }
}

impl PlacementStore for DynamoStore {
    async fn place_order(&self, p: &Placement) -> Result<(), PlaceError> {
        let order = &p.order;
        let (pk, sk) = keys::idempotency(order.user_id, &p.idempotency_key);
        let marker = MarkerItem {
            pk,
            sk: sk.to_owned(),
            order_id: order.id,
            request_hash: p.request_hash.clone(),
            expires_at: Some((order.created_at + super::MARKER_RETENTION).unix_timestamp()),
        };
        let mut items = vec![
            put_new(&self.table, serde_dynamo::to_item(marker).map_err(decode_error)?)?,
            // The order keeps the ids of the request that placed it: its `order.placed` event's.
            put_new(
                &self.table,
                serde_dynamo::to_item(OrderItem::from_order(order, p.event.trace.as_ref())).map_err(decode_error)?,
            )?,
            outbox::put_event(&self.table, &p.event)?,
        ];
        let first_line = items.len();
        // (line, bucket) of each stock item, in item order.
        let mut stock_items = Vec::new();
        for (i, line) in order.lines.iter().enumerate() {
            for share in line.shares() {
                stock_items.push((i, share.bucket));
                let reserve = Transition::Reserve(i64::from(share.quantity));
                let update = stock_update(
                    &self.table,
                    line.product_id,
                    share.bucket,
                    reserve,
                    &[LIVE, "price_amount = :price AND currency = :currency"],
                )
                .expression_attribute_values(":price", AttributeValue::N(line.unit_price.amount.to_string()))
                .expression_attribute_values(":currency", AttributeValue::S(line.unit_price.currency.to_string()))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
                items.push(TransactWriteItem::builder().update(built(update.build())?).build());
            }
        }
        let first_cart = items.len();
        for (product_id, quantity) in &p.clear_cart {
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(keys::key(keys::cart_line(order.user_id, *product_id))))
                .condition_expression("quantity = :q")
                .expression_attribute_values(":q", AttributeValue::N(quantity.to_string()));
            items.push(TransactWriteItem::builder().delete(built(delete.build())?).build());
        }

        let session = items.len();
        let at_generation = if p.generation == 0 {
            "(attribute_not_exists(session_gen) OR session_gen = :gen)"
        } else {
            "session_gen = :gen"
        };
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(keys::key(keys::user(order.user_id))))
            .condition_expression(format!(
                "attribute_exists(pk) AND attribute_not_exists(closed_at) AND {at_generation}"
            ))
            .expression_attribute_values(":gen", AttributeValue::N(p.generation.to_string()));
        items.push(TransactWriteItem::builder().condition_check(built(check.build())?).build());

        if items.len() > MAX_TRANSACT_ITEMS {
            return Err(StoreError::Unavailable(format!(
                "the order needs {} writes, more than one transaction takes: its stock is spread too thin",
                items.len()
            ))
            .into());
        }
        let reasons = match self.transact(items).await {
            Ok(()) => return Ok(()),
            Err(TransactError::Store(e)) => return Err(e.into()),
            Err(TransactError::Cancelled(reasons)) => reasons,
        };
        let failed = |i: usize| reasons.get(i).is_some_and(|r| r.code.as_deref() == Some("ConditionalCheckFailed"));
        // A token whose session ended is told so before anything else (even a replay).
        if failed(session) {
            return Err(PlaceError::SessionEnded);
        }
        if failed(0) {
            return Err(PlaceError::KeyUsed);
        }
        let (mut gone, mut repriced, mut short, mut buckets_short) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (j, (i, bucket)) in stock_items.into_iter().enumerate() {
            if failed(first_line + j) {
                let line = &order.lines[i];
                let price = &line.unit_price;
                let list = match judge(&reasons[first_line + j], bucket, price.amount, price.currency.as_str()) {
                    LineFailure::Gone => &mut gone,
                    LineFailure::PriceChanged => &mut repriced,
                    LineFailure::OutOfStock => &mut short,
                    LineFailure::BucketShort => &mut buckets_short,
                };
                if !list.contains(&line.product_id) {
                    list.push(line.product_id);
                }
            }
        }
        // Report what the customer can act on first: missing products, then prices, then stock.
        if !gone.is_empty() {
            return Err(PlaceError::Unavailable(gone));
        }
        if !repriced.is_empty() {
            return Err(PlaceError::PriceChanged(repriced));
        }
        if !short.is_empty() {
            return Err(PlaceError::OutOfStock(short));
        }
        if !buckets_short.is_empty() {
            return Err(PlaceError::BucketsShort(buckets_short));
        }
        if (first_cart..session).any(failed) {
            return Err(PlaceError::CartChanged);
        }
        Err(StoreError::Other(format!(
            "order transaction cancelled unexpectedly: {:?}",
            reasons.iter().map(|r| &r.code).collect::<Vec<_>>()
        ))
        .into())
    }

    async fn quotes(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, PriceQuote>, StoreError> {
        // Orders are bounded below 100 lines (see domain::order::max_lines): one BatchGetItem.
        // Eventually consistent (half a read unit, on the product's partition at every order): the
        // transaction checks the price and that the product is sold, so a stale read costs at most
        // a `price_changed` answer, never a wrong order.
        let keys = ids.iter().map(|id| keys::key(keys::product(*id))).collect();
        let mut quotes = HashMap::new();
        for item in self.batch_get(keys, false).await? {
            let q: QuoteItem = serde_dynamo::from_item(item).map_err(decode_error)?;
            if q.deleted_at.is_none() {
                let price = Money { amount: q.price_amount, currency: q.currency };
                quotes.insert(q.id, PriceQuote { name: q.name, price, stock_buckets: q.stock_buckets });
            }
        }
        Ok(quotes)
    }

    async fn prior_placement(
        &self,
        user_id: Uuid,
        key: &crate::domain::idempotency::IdempotencyKey,
    ) -> Result<Option<PriorPlacement>, StoreError> {
        let marker: Option<MarkerItem> = self.get(keys::idempotency(user_id, key)).await?;
        Ok(marker.map(|m| PriorPlacement { order_id: m.order_id, request_hash: m.request_hash }))
    }

    /// Every bucket of these products, read strongly consistent (the product items first: they
    /// say how many buckets exist).
    async fn bucket_stock(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Vec<(u16, Stock)>>, StoreError> {
        let items = self.batch_get(ids.iter().map(|id| keys::key(keys::product(*id))).collect(), true).await?;
        let slots: Vec<Slots> =
            items.into_iter().map(|i| serde_dynamo::from_item(i).map_err(decode_error)).collect::<Result<_, _>>()?;
        let mut extra =
            self.extra_buckets(&slots.iter().map(|s| (s.id, s.bucket_slots)).collect::<Vec<_>>(), true).await?;
        Ok(slots
            .into_iter()
            .map(|s| {
                let own =
                    Stock { available: s.available_stock, reserved: s.reserved_stock, sellable: s.sellable_stock };
                let mut all = vec![(0, own)];
                all.extend(extra.remove(&s.id).unwrap_or_default());
                all.sort_by_key(|(k, _)| *k);
                (s.id, all)
            })
            .collect())
    }
}
