//! Building blocks of the transactions: a conditional "create" `Put`, and the two parts of every
//! order transition after placement (cancel, expire, pay, fail, retake, refund): the order's
//! conditional state change and its lines' stock updates. Each caller puts them in one
//! `TransactWriteItems` with its own extras (outbox event, dedupe marker, idempotency claim).

use super::keys;
use super::stock::stock_update;
use crate::domain::order::{OrderLine, OrderState};
use crate::domain::stock::Transition;
use crate::store::StoreError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use std::collections::HashMap;

pub(super) fn built<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, StoreError> {
    r.map_err(|e| StoreError::Other(e.to_string()))
}

/// A `Put` of a new item: fails (as a condition) if an item with its key exists.
pub(super) fn put_new(table: &str, item: HashMap<String, AttributeValue>) -> Result<TransactWriteItem, StoreError> {
    let put = built(
        Put::builder().table_name(table).set_item(Some(item)).condition_expression("attribute_not_exists(pk)").build(),
    )?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// `from → to` on the order, **if its state is still `from`**; it leaves the pending index. With
/// `charge`, the order records it as its own (the one that paid it, or is refunded for it).
pub(super) fn order_state(
    table: &str,
    order_id: uuid::Uuid,
    from: OrderState,
    to: OrderState,
    charge: Option<&str>,
    now: time::OffsetDateTime,
) -> Result<TransactWriteItem, StoreError> {
    let now = keys::rfc3339(now)?;
    let set_charge = if charge.is_some() { ", charge_id = :charge" } else { "" };
    let update = Update::builder()
        .table_name(table)
        .set_key(Some(keys::key(keys::order(order_id))))
        .update_expression(format!("SET #state = :to, updated_at = :now{set_charge} REMOVE gsi2pk, gsi2sk"))
        .condition_expression("#state = :from")
        .expression_attribute_names("#state", "state")
        .expression_attribute_values(":to", AttributeValue::S(to.as_str().into()))
        .expression_attribute_values(":from", AttributeValue::S(from.as_str().into()))
        .expression_attribute_values(":now", AttributeValue::S(now));
    let update = match charge {
        Some(c) => update.expression_attribute_values(":charge", AttributeValue::S(c.to_owned())),
        None => update,
    };
    Ok(TransactWriteItem::builder().update(built(update.build())?).build())
}

/// One guarded stock update per line and stock bucket it holds units in (see [`super::stock`],
/// [`super::buckets`]); `transition` maps those units to their move. `live`: only while the
/// product is still sold (not deleted).
pub(super) fn stock_updates(
    table: &str,
    lines: &[OrderLine],
    live: bool,
    transition: impl Fn(i64) -> Transition,
) -> Result<Vec<TransactWriteItem>, StoreError> {
    lines
        .iter()
        .flat_map(|line| line.shares().into_iter().map(move |share| (line.product_id, share)))
        .map(|(product_id, share)| {
            let also: &[&str] = if live { &[super::stock::LIVE] } else { &[] };
            let update = stock_update(table, product_id, share.bucket, transition(i64::from(share.quantity)), also);
            Ok(TransactWriteItem::builder().update(built(update.build())?).build())
        })
        .collect()
}
