//! Settling a payment: **where paid orders deduct their stock** (and failed ones release it, and
//! late ones take it again), and where a charge that must go back gets its refund record. One
//! `TransactWriteItems`, all or nothing:
//! 1. the order: `from → to` (recording the paying charge), **if its state is still the one the
//!    settlement was decided on**; for a refund that leaves the order as it is, a `ConditionCheck`
//!    of that same state;
//! 2. the dedupe marker `PAYMENT_EVENT#<gateway event id | charge id>`, `attribute_not_exists`;
//! 3. the outbox event (`order.paid`, `order.payment_failed`, `order.refund_required`,
//!    `refund.requested`);
//! 4. the refund record `REFUND#<charge id>` (a refund or refund-required settlement),
//!    `attribute_not_exists`: a charge is refunded once, whatever delivered its outcome how often;
//! 5. per line, the stock move of the settlement (see `domain::payment::Settlement::stock`):
//!    deduct `available -= q, reserved -= q` if `reserved >= q`; release; or take
//!    `available -= q, sellable -= q` if `sellable >= q` **and the product is still sold**.
//!
//! Which condition failed tells the caller what happened: the marker or the refund → a duplicate;
//! the order → someone moved it first (decide again on the fresh state); a product → too few
//! units, or a deleted product, to take again.

use super::refunds::put_refund;
use super::transact::TransactError;
use super::transition::{built, order_state, put_new, stock_updates};
use super::{DynamoStore, keys, outbox};
use crate::store::{SettleWrite, SettleWriteResult, StoreError};
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, TransactWriteItem};
use std::collections::HashMap;

const ORDER: usize = 0;
const MARKER: usize = 1;
const REFUND: usize = 3;

impl crate::store::PaymentStore for DynamoStore {
    async fn settle_order(&self, w: &SettleWrite<'_>) -> Result<SettleWriteResult, StoreError> {
        let order = w.order;
        let (pk, sk) = keys::payment_event(w.dedupe_key);
        let to = w.settlement.target().unwrap_or(order.state);
        let marker = HashMap::from([
            (keys::PK.to_owned(), AttributeValue::S(pk)),
            (keys::SK.to_owned(), AttributeValue::S(sk.to_owned())),
            ("order_id".to_owned(), AttributeValue::S(order.id.to_string())),
            ("from_state".to_owned(), AttributeValue::S(order.state.as_str().into())),
            ("to_state".to_owned(), AttributeValue::S(to.as_str().into())),
            ("event_id".to_owned(), AttributeValue::S(w.event.id.to_string())),
            (keys::TTL.to_owned(), keys::expires_at(w.now + super::MARKER_RETENTION)),
        ]);
        let order_item = match w.settlement.target() {
            Some(to) => {
                let charge = w.settlement.records_charge().then_some(w.charge_id);
                order_state(&self.table, order.id, order.state, to, charge, w.now)?
            }
            None => {
                let check = ConditionCheck::builder()
                    .table_name(&self.table)
                    .set_key(Some(keys::key(keys::order(order.id))))
                    .condition_expression("#state = :from")
                    .expression_attribute_names("#state", "state")
                    .expression_attribute_values(":from", AttributeValue::S(order.state.as_str().into()));
                TransactWriteItem::builder().condition_check(built(check.build())?).build()
            }
        };
        let mut items = vec![order_item, put_new(&self.table, marker)?, outbox::put_event(&self.table, w.event)?];
        let mut first_line = items.len();
        if let Some(refund) = w.refund {
            debug_assert_eq!(items.len(), REFUND);
            items.push(put_refund(&self.table, refund)?);
            first_line += 1;
        }
        if w.settlement.stock(0).is_some() {
            let settlement = w.settlement;
            // A late payment may only take units of a product that is still sold.
            let live = matches!(settlement, crate::domain::payment::Settlement::Retake);
            items.extend(stock_updates(&self.table, &order.lines, live, |q| {
                settlement.stock(q).expect("checked above: this settlement moves stock")
            })?);
        }

        match self.transact(items).await {
            Ok(()) => Ok(SettleWriteResult::Applied),
            Err(TransactError::Store(e)) => Err(e),
            Err(e) => {
                let failed = e.failed_conditions();
                if failed.contains(&MARKER) || (w.refund.is_some() && failed.contains(&REFUND)) {
                    Ok(SettleWriteResult::Duplicate)
                } else if failed.contains(&ORDER) {
                    Ok(SettleWriteResult::StateChanged)
                } else if failed.iter().any(|i| *i >= first_line) {
                    Ok(SettleWriteResult::Short)
                } else {
                    Err(StoreError::Other(format!("settlement of order {} cancelled: {e}", order.id)))
                }
            }
        }
    }
}
