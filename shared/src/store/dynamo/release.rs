//! Releasing a reservation: an order leaves `PENDING_PAYMENT` (cancelled, expired) and gives its
//! units back, in one transaction:
//! 1. the order: new state, out of the pending index, **if its state is still `PENDING_PAYMENT`**;
//! 2. per line, the product: `reserved -= q, sellable += q` if `reserved >= q`;
//! 3. the outbox event.
//!
//! The state condition is what makes a second cancel, two sweepers, or a cancel racing the
//! sweeper harmless: only one transaction can move the order, so units are released once.
//! A failed payment releases the same way, with a dedupe marker added (see [`super::settle`]).

use super::index::Partition;
use super::orders::decode_order;
use super::transact::TransactError;
use super::transition::{order_state, stock_updates};
use super::{DynamoStore, keys, outbox};
use crate::domain::order::{Order, OrderState, Release};
use crate::domain::stock::Transition;
use crate::events::event::Event;
use crate::store::{ReleaseStore, StoreError};

impl ReleaseStore for DynamoStore {
    async fn release_order(
        &self,
        order: &Order,
        release: Release,
        event: &Event,
        now: time::OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut items =
            vec![order_state(&self.table, order.id, OrderState::PendingPayment, release.target(), None, now)?];
        items.extend(stock_updates(&self.table, &order.lines, false, Transition::Release)?);
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

    async fn overdue_orders(
        &self,
        now: time::OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Result<Order, StoreError>>, StoreError> {
        let partitions = keys::queue_partitions(keys::PENDING, keys::PENDING_SHARDS);
        let due = self.due_sharded(&partitions, Partition::gsi2, keys::instant(now), None, limit, None).await?;
        Ok(due
            .into_iter()
            .map(|item| {
                let key = item.get(keys::PK).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                decode_order(item).map_err(|e| StoreError::Other(format!("{key}: {e}")))
            })
            .collect())
    }
}
