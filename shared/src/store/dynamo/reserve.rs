//! Placing an order: **where stock is reserved**.
//!
//! One `TransactWriteItems`, all or nothing:
//! 1. the idempotency marker, `attribute_not_exists` — a repeated key fails here, not later;
//! 2. the order, `attribute_not_exists`;
//! 3. the `order.placed` outbox event;
//! 4. per line, the product: `reserved += q, sellable -= q` if the product is live, still has the
//!    price the order was priced at, and `sellable >= q` (see [`super::stock`]);
//! 5. per cart line used, its delete, if the quantity is still the one ordered.
//!
//! If any condition fails nothing is written, and the per-item cancellation reasons (with the
//! product as it was) say which products were short, repriced or gone.

use super::orders::{MarkerItem, OrderItem};
use super::stock::stock_write;
use super::transact::{Reason, TransactError};
use super::transition::{built, put_new};
use super::{DynamoStore, decode_error, keys, outbox};
use crate::domain::stock::Transition;
use crate::store::{PlaceError, Placement, StoreError};
use aws_sdk_dynamodb::types::{AttributeValue, Delete, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};

/// Why a product line's condition failed, judged from the product as it was.
enum LineFailure {
    Gone,
    PriceChanged,
    OutOfStock,
}

fn judge(reason: &Reason, expected_amount: i64, expected_currency: &str) -> LineFailure {
    let Some(item) = &reason.item else { return LineFailure::Gone };
    if item.is_empty() || item.contains_key("deleted_at") {
        return LineFailure::Gone;
    }
    let amount = item.get("price_amount").and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<i64>().ok());
    let currency = item.get("currency").and_then(|v| v.as_s().ok());
    if amount != Some(expected_amount) || currency.map(String::as_str) != Some(expected_currency) {
        return LineFailure::PriceChanged;
    }
    LineFailure::OutOfStock
}

impl DynamoStore {
    pub(super) async fn place_order_impl(&self, p: &Placement) -> Result<(), PlaceError> {
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
            put_new(&self.table, serde_dynamo::to_item(OrderItem::from_order(order)).map_err(decode_error)?)?,
            outbox::put_event(&self.table, &p.event)?,
        ];
        let first_line = items.len();
        for line in &order.lines {
            let w = stock_write(Transition::Reserve(i64::from(line.quantity)));
            let mut update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(keys::key(keys::product(line.product_id))))
                .update_expression(format!("SET {}", w.assignments.join(", ")))
                .condition_expression(format!(
                    "{} AND price_amount = :price AND currency = :currency AND {}",
                    super::stock::LIVE,
                    w.condition
                ))
                .expression_attribute_values(":price", AttributeValue::N(line.unit_price.amount.to_string()))
                .expression_attribute_values(":currency", AttributeValue::S(line.unit_price.currency.to_string()))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
            for (k, v) in w.values {
                update = update.expression_attribute_values(k, v);
            }
            items.push(TransactWriteItem::builder().update(built(update.build())?).build());
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

        let reasons = match self.transact(items).await {
            Ok(()) => return Ok(()),
            Err(TransactError::Store(e)) => return Err(e.into()),
            Err(TransactError::Cancelled(reasons)) => reasons,
        };
        let failed = |i: usize| reasons.get(i).is_some_and(|r| r.code.as_deref() == Some("ConditionalCheckFailed"));
        if failed(0) {
            return Err(PlaceError::KeyUsed);
        }
        let (mut gone, mut repriced, mut short) = (Vec::new(), Vec::new(), Vec::new());
        for (i, line) in order.lines.iter().enumerate() {
            if failed(first_line + i) {
                let bucket =
                    match judge(&reasons[first_line + i], line.unit_price.amount, line.unit_price.currency.as_str()) {
                        LineFailure::Gone => &mut gone,
                        LineFailure::PriceChanged => &mut repriced,
                        LineFailure::OutOfStock => &mut short,
                    };
                bucket.push(line.product_id);
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
        if (first_cart..reasons.len()).any(failed) {
            return Err(PlaceError::CartChanged);
        }
        Err(StoreError::Other(format!(
            "order transaction cancelled unexpectedly: {:?}",
            reasons.iter().map(|r| &r.code).collect::<Vec<_>>()
        ))
        .into())
    }
}
