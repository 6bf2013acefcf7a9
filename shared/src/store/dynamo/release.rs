//! Releasing a reservation: an order leaves `PENDING_PAYMENT` (cancelled, expired, payment failed)
//! and gives its units back, in one transaction:
//! 1. the order: new state, out of the pending index, **if its state is still `PENDING_PAYMENT`**;
//! 2. per line, the product: `reserved -= q, sellable += q` if `reserved >= q`;
//! 3. the outbox event.
//!
//! The state condition is what makes a second cancel, two sweepers, or a cancel racing the
//! sweeper harmless: only one transaction can move the order, so units are released once.

use super::stock::stock_write;
use super::transact::TransactError;
use super::{DynamoStore, keys, outbox};
use crate::domain::order::{Order, OrderState, Release};
use crate::domain::stock::Transition;
use crate::events::event::Event;
use crate::store::StoreError;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};

fn built<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, StoreError> {
    r.map_err(|e| StoreError::Other(e.to_string()))
}

impl DynamoStore {
    pub(super) async fn release_order_impl(
        &self,
        order: &Order,
        release: Release,
        event: &Event,
        now: time::OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let now = built(now.format(&time::format_description::well_known::Rfc3339))?;
        let order_update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::key(keys::order(order.id))))
            .update_expression("SET #state = :to, updated_at = :now REMOVE gsi2pk, gsi2sk")
            .condition_expression("#state = :from")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":to", AttributeValue::S(release.target().as_str().into()))
            .expression_attribute_values(":from", AttributeValue::S(OrderState::PendingPayment.as_str().into()))
            .expression_attribute_values(":now", AttributeValue::S(now));
        let mut items = vec![TransactWriteItem::builder().update(built(order_update.build())?).build()];
        for line in &order.lines {
            let w = stock_write(Transition::Release(i64::from(line.quantity)));
            let mut update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(keys::key(keys::product(line.product_id))))
                .update_expression(format!("SET {}", w.assignments.join(", ")))
                .condition_expression(w.condition);
            for (k, v) in w.values {
                update = update.expression_attribute_values(k, v);
            }
            items.push(TransactWriteItem::builder().update(built(update.build())?).build());
        }
        items.push(outbox::put_event(&self.table, event)?);

        match self.transact(items).await {
            Ok(()) => Ok(true),
            // The order already left PENDING_PAYMENT: someone else released it. (Its products'
            // conditions may fail too, since that release already took the units back.)
            Err(e) if e.failed_conditions().first() == Some(&0) => Ok(false),
            Err(TransactError::Store(e)) => Err(e),
            // A product had fewer reserved units than the order holds: the invariant is broken
            // somewhere. Refuse loudly rather than release what is not reserved.
            Err(e) => Err(StoreError::Other(format!("release of order {} refused: {e}", order.id))),
        }
    }
}
