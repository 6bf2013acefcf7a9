//! Settling a payment: **where paid orders deduct their stock** (and failed ones release it, and
//! late ones take it again). One `TransactWriteItems`, all or nothing:
//! 1. the order: `from → to`, **if its state is still the one the settlement was decided on**;
//! 2. the dedupe marker `PAYMENT_EVENT#<gateway event id | charge id>`, `attribute_not_exists`;
//! 3. the outbox event (`order.paid`, `order.payment_failed`, `order.refund_required`);
//! 4. per line, the stock move of the settlement (see `domain::payment::Settlement::stock`):
//!    deduct `available -= q, reserved -= q` if `reserved >= q`; release; or take
//!    `available -= q, sellable -= q` if `sellable >= q`.
//!
//! Which condition failed tells the caller what happened: the marker → a duplicate; the order →
//! someone moved it first (decide again on the fresh state); a product → too few units to retake.

use super::transact::TransactError;
use super::transition::{order_state, put_new, stock_updates};
use super::{DynamoStore, keys, outbox};
use crate::store::{SettleWrite, SettleWriteResult, StoreError};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

const ORDER: usize = 0;
const MARKER: usize = 1;
const FIRST_LINE: usize = 3;

impl DynamoStore {
    pub(super) async fn settle_order_impl(&self, w: &SettleWrite<'_>) -> Result<SettleWriteResult, StoreError> {
        let order = w.order;
        let Some(to) = w.settlement.target() else {
            return Err(StoreError::Other(format!("settlement {:?} writes nothing", w.settlement)));
        };
        let (pk, sk) = keys::payment_event(w.dedupe_key);
        let marker = HashMap::from([
            (keys::PK.to_owned(), AttributeValue::S(pk)),
            (keys::SK.to_owned(), AttributeValue::S(sk.to_owned())),
            ("order_id".to_owned(), AttributeValue::S(order.id.to_string())),
            ("from_state".to_owned(), AttributeValue::S(order.state.as_str().into())),
            ("to_state".to_owned(), AttributeValue::S(to.as_str().into())),
            ("event_id".to_owned(), AttributeValue::S(w.event.id.to_string())),
        ]);
        let mut items = vec![
            order_state(&self.table, order.id, order.state, to, w.now)?,
            put_new(&self.table, marker)?,
            outbox::put_event(&self.table, w.event)?,
        ];
        if w.settlement.stock(0).is_some() {
            let settlement = w.settlement;
            items.extend(stock_updates(&self.table, &order.lines, |q| {
                settlement.stock(q).expect("checked above: this settlement moves stock")
            })?);
        }
        debug_assert_eq!(items.len(), FIRST_LINE + if w.settlement.stock(0).is_some() { order.lines.len() } else { 0 });

        match self.transact(items).await {
            Ok(()) => Ok(SettleWriteResult::Applied),
            Err(TransactError::Store(e)) => Err(e),
            Err(e) => {
                let failed = e.failed_conditions();
                if failed.contains(&MARKER) {
                    Ok(SettleWriteResult::Duplicate)
                } else if failed.contains(&ORDER) {
                    Ok(SettleWriteResult::StateChanged)
                } else if failed.iter().any(|i| *i >= FIRST_LINE) {
                    Ok(SettleWriteResult::Short)
                } else {
                    Err(StoreError::Other(format!("settlement of order {} cancelled: {e}", order.id)))
                }
            }
        }
    }
}
