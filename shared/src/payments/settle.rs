//! **The one `settle`**: every payment outcome, from a webhook or from asking the gateway, ends here.
//!
//! It reads the order, lets `domain::payment::decide` say what the outcome does to it, and writes
//! that in one conditional transaction (`store::dynamo::settle`). The transaction applies only if
//! the order is still in the state the decision was made on, and only once per dedupe key, so:
//! - two deliveries of one event at once: one applies, the other is a `Duplicate`;
//! - a webhook racing the `payments` confirmation, or the sweeper expiring the order: the loser
//!   reads the new state and decides again (a success after expiry then retakes the units);
//! - a retake that finds too few sellable units, or a product no longer sold, becomes
//!   `REFUND_REQUIRED`;
//! - every charge that must go back (that one, a second charge, the wrong amount, a payment after a
//!   cancel) gets a **refund record in the same transaction**, keyed by the charge, so it is paid
//!   back once (`api::refunds`) however often its outcome arrives. Money taken is never kept
//!   without a trace.

use crate::domain::order::{Order, OrderState};
use crate::domain::payment::{Payment, Settlement, decide};
use crate::domain::refund::Refund;
use crate::events::event::{
    Event, OrderPaid, OrderPaymentFailed, OrderRefundRequired, OrderSummary, Payload, RefundRequested,
};
use crate::store::{PaymentStore, SettleWrite, SettleWriteResult, StoreError};
use serde::Serialize;
use uuid::Uuid;

/// Rounds of read → decide → write in all (so at most 4 retries on a fresh read; each retry means
/// another writer moved the order, which can happen only a few times in its life).
const MAX_ROUNDS: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Settled {
    /// This call wrote the settlement (pay, fail, retake, refund-required, or a refund).
    Applied(Settlement),
    /// This outcome was applied before (or this charge is already being refunded).
    Duplicate,
    /// Nothing to do in the order's state.
    Unchanged(Settlement),
}

impl Settled {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied(Settlement::Pay | Settlement::Retake) => "paid",
            Self::Applied(Settlement::Fail) => "payment_failed",
            Self::Applied(Settlement::RefundRequired) => "refund_required",
            Self::Applied(Settlement::Refund(_)) => "refund_requested",
            Self::Duplicate => "duplicate",
            Self::Applied(Settlement::Nothing) | Self::Unchanged(_) => "unchanged",
        }
    }
}

/// What [`settle`] did, the order's state afterwards, and the outbox event it wrote (only when
/// this call applied the change; the table's stream carries it on).
#[derive(Debug)]
pub struct SettleOutcome {
    pub settled: Settled,
    pub state: OrderState,
    pub event: Option<Event>,
}

impl SettleOutcome {
    fn unchanged(settled: Settled, state: OrderState) -> Self {
        Self { settled, state, event: None }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    #[error("order not found")]
    OrderNotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The event a settlement records in the outbox; `None` for the settlements that write nothing.
fn settle_event(
    order: &Order,
    settlement: Settlement,
    payment: &Payment,
    refund: Option<&Refund>,
    now: time::OffsetDateTime,
    trace: &crate::trace::Trace,
) -> Option<Event> {
    let (summary, charge_id, previous_state) = (OrderSummary::from(order), payment.charge_id.clone(), order.state);
    let payload = match (settlement, refund) {
        (Settlement::Pay | Settlement::Retake, _) => {
            Payload::OrderPaid(OrderPaid { order: summary, charge_id, previous_state })
        }
        (Settlement::Fail, _) => Payload::OrderPaymentFailed(OrderPaymentFailed { order: summary, charge_id }),
        (Settlement::RefundRequired, Some(r)) => Payload::OrderRefundRequired(OrderRefundRequired {
            order: summary,
            charge_id,
            previous_state,
            refund_id: r.id,
        }),
        (Settlement::Refund(reason), Some(r)) => Payload::RefundRequested(RefundRequested {
            order: summary,
            refund_id: r.id,
            charge_id,
            amount: payment.amount,
            reason,
        }),
        (Settlement::RefundRequired | Settlement::Refund(_), None) | (Settlement::Nothing, _) => return None,
    };
    Some(Event::new(now, payload).with_trace(trace))
}

/// Applies `payment` to the order, once per `dedupe_key` (the gateway's event id, or the charge
/// and its status when we asked the gateway ourselves). `trace` names the request that brought
/// the outcome: its event and refund carry it (see [`crate::trace`]).
pub async fn settle<S: PaymentStore>(
    store: &S,
    order_id: Uuid,
    payment: &Payment,
    dedupe_key: &str,
    trace: &crate::trace::Trace,
) -> Result<SettleOutcome, SettleError> {
    let charge_id = payment.charge_id.as_str();
    for _ in 0..MAX_ROUNDS {
        let order = store.get_order(order_id).await?.ok_or(SettleError::OrderNotFound)?;
        let mut settlement = decide(&order, payment);
        loop {
            if !settlement.writes() {
                return Ok(SettleOutcome::unchanged(Settled::Unchanged(settlement), order.state));
            }
            let now = time::OffsetDateTime::now_utc();
            let refund = settlement
                .refund()
                .map(|reason| Refund::request(&order, charge_id, payment.amount, reason, now, trace));
            let event = settle_event(&order, settlement, payment, refund.as_ref(), now, trace)
                .ok_or_else(|| StoreError::Other(format!("{settlement:?} has no event")))?;
            let write = SettleWrite {
                order: &order,
                settlement,
                charge_id,
                dedupe_key,
                event: &event,
                refund: refund.as_ref(),
                now,
            };
            match store.settle_order(&write).await? {
                SettleWriteResult::Applied => {
                    let to = settlement.target().unwrap_or(order.state);
                    tracing::info!(%order_id, charge_id, from = order.state.as_str(), to = to.as_str(), ?settlement, "payment settled");
                    if let Some(r) = &refund {
                        tracing::warn!(%order_id, charge_id, refund_id = %r.id, reason = ?r.reason, amount = ?r.amount,
                            metric = "refund_requested", "a charge goes back");
                    }
                    return Ok(SettleOutcome { settled: Settled::Applied(settlement), state: to, event: Some(event) });
                }
                SettleWriteResult::Duplicate => {
                    let state = store.get_order(order_id).await?.map_or(order.state, |o| o.state);
                    return Ok(SettleOutcome::unchanged(Settled::Duplicate, state));
                }
                SettleWriteResult::StateChanged => break,
                SettleWriteResult::Short => {
                    settlement = settlement.when_short().ok_or_else(|| {
                        StoreError::Other(format!("order {order_id}: {settlement:?} ran short of reserved units"))
                    })?;
                    tracing::warn!(%order_id, charge_id, "the units of a late payment are gone: refund required");
                }
            }
        }
    }
    Err(StoreError::Unavailable(format!("order {order_id} kept changing while settling")).into())
}
#[cfg(test)]
#[path = "settle_tests.rs"]
mod settle_tests;
