//! **The one `settle`**: every payment outcome, from a webhook or from asking the gateway, ends here.
//!
//! It reads the order, lets `domain::payment::decide` say what the outcome does to it, and writes
//! that in one conditional transaction (`store::dynamo::settle`). The transaction applies only if
//! the order is still in the state the decision was made on, and only once per dedupe key, so:
//! - two deliveries of one event at once: one applies, the other is a `Duplicate`;
//! - a webhook racing the `payments` confirmation, or the sweeper expiring the order: the loser
//!   reads the new state and decides again (a success after expiry then retakes the units);
//! - a retake that finds too few sellable units becomes `REFUND_REQUIRED`: money taken is never
//!   silently lost.

use crate::domain::order::{Order, OrderState};
use crate::domain::payment::{Payment, Settlement, decide};
use crate::events::event::{Event, OrderPaid, OrderPaymentFailed, OrderRefundRequired, OrderSummary, Payload};
use crate::store::{PaymentStore, SettleWrite, SettleWriteResult, StoreError};
use serde::Serialize;
use uuid::Uuid;

/// A decision is retried on a fresh read at most this often (each retry means another writer
/// moved the order, which can happen only a few times in its life).
const MAX_ROUNDS: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Settled {
    /// This call changed the order (pay, fail, retake or refund-required).
    Applied(Settlement),
    /// This outcome was applied before.
    Duplicate,
    /// Nothing to do in the order's state (or not this order's amount).
    Unchanged(Settlement),
}

impl Settled {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied(Settlement::Pay | Settlement::Retake) => "paid",
            Self::Applied(Settlement::Fail) => "payment_failed",
            Self::Applied(Settlement::RefundRequired) => "refund_required",
            Self::Duplicate => "duplicate",
            Self::Unchanged(Settlement::AmountMismatch) => "amount_mismatch",
            Self::Applied(_) | Self::Unchanged(_) => "unchanged",
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
fn settle_event(order: &Order, settlement: Settlement, charge_id: &str, now: time::OffsetDateTime) -> Option<Event> {
    let (summary, charge_id, previous_state) = (OrderSummary::from(order), charge_id.to_owned(), order.state);
    let payload = match settlement {
        Settlement::Pay | Settlement::Retake => {
            Payload::OrderPaid(OrderPaid { order: summary, charge_id, previous_state })
        }
        Settlement::Fail => Payload::OrderPaymentFailed(OrderPaymentFailed { order: summary, charge_id }),
        Settlement::RefundRequired => {
            Payload::OrderRefundRequired(OrderRefundRequired { order: summary, charge_id, previous_state })
        }
        Settlement::Nothing | Settlement::AmountMismatch => return None,
    };
    Some(Event::new(now, payload))
}

/// Applies `payment` of charge `charge_id` to the order, once per `dedupe_key`.
pub async fn settle<S: PaymentStore>(
    store: &S,
    order_id: Uuid,
    charge_id: &str,
    payment: Payment,
    dedupe_key: &str,
) -> Result<SettleOutcome, SettleError> {
    for _ in 0..MAX_ROUNDS {
        let order = store.get_order(order_id).await?.ok_or(SettleError::OrderNotFound)?;
        let mut settlement = decide(&order, payment);
        if settlement == Settlement::AmountMismatch {
            tracing::error!(%order_id, charge_id, paid = ?payment.amount, total = ?order.total,
                "a successful charge does not match the order total: not applied, needs a human");
        }
        loop {
            let Some(target) = settlement.target() else {
                return Ok(SettleOutcome::unchanged(Settled::Unchanged(settlement), order.state));
            };
            let now = time::OffsetDateTime::now_utc();
            let event = settle_event(&order, settlement, charge_id, now)
                .ok_or_else(|| StoreError::Other(format!("{settlement:?} has no event")))?;
            let write = SettleWrite { order: &order, settlement, dedupe_key, event: &event, now };
            match store.settle_order(&write).await? {
                SettleWriteResult::Applied => {
                    tracing::info!(%order_id, charge_id, from = order.state.as_str(), to = target.as_str(), ?settlement, "payment settled");
                    return Ok(SettleOutcome {
                        settled: Settled::Applied(settlement),
                        state: target,
                        event: Some(event),
                    });
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
                    tracing::warn!(%order_id, charge_id, "too few units to retake after a late payment: refund required");
                }
            }
        }
    }
    Err(StoreError::Unavailable(format!("order {order_id} kept changing while settling")).into())
}
