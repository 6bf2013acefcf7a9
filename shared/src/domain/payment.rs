//! Settling a payment: what one gateway outcome does to one order. Pure, and the only place the
//! rules below are written down.
//!
//! | order is | payment succeeded | payment failed |
//! |---|---|---|
//! | `PENDING_PAYMENT` | [`Settlement::Pay`]: deduct the reserved units, `PAID` | [`Settlement::Fail`]: release them, `PAYMENT_FAILED` |
//! | `EXPIRED`, `CANCELLED`, `PAYMENT_FAILED` | [`Settlement::Retake`]: take the units again if they are still sellable, `PAID`; else [`Settlement::RefundRequired`] | nothing |
//! | `PAID`, `REFUND_REQUIRED` | nothing (a duplicate) | nothing (failure after success) |
//!
//! Money taken is never silently lost: a success always ends in `PAID` or `REFUND_REQUIRED`.
//! "Nothing" is what makes duplicates, replays and out-of-order deliveries harmless; the store
//! applies a settlement only if the order is still in the state it was decided on, so two
//! deliveries racing each other cannot both apply (see `store::dynamo::settle`).

use super::money::Money;
use super::order::{Order, OrderState, Release};
use super::stock::Transition;
use serde::{Deserialize, Serialize};

/// What the gateway says happened to a charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChargeStatus {
    Succeeded,
    Failed,
    /// Not settled yet: nothing to do until it is.
    Pending,
}

/// One settled outcome for an order: the status and the money it was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payment {
    pub status: ChargeStatus,
    pub amount: Money,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Settlement {
    Pay,
    Fail,
    Retake,
    RefundRequired,
    /// Duplicate, failure after success, failure after the order left `PENDING_PAYMENT`, or a
    /// charge still pending: nothing changes.
    Nothing,
    /// A success for another amount than the order's total: not this order's payment. Nothing
    /// changes; it is logged as an error for a human (the signature says it came from the gateway).
    AmountMismatch,
}

/// What `payment` does to `order` in its current state.
pub fn decide(order: &Order, payment: Payment) -> Settlement {
    use ChargeStatus::{Failed, Pending, Succeeded};
    use OrderState::*;
    if payment.status == Succeeded && payment.amount != order.total {
        return Settlement::AmountMismatch;
    }
    match (order.state, payment.status) {
        (_, Pending) => Settlement::Nothing,
        (PendingPayment, Succeeded) => Settlement::Pay,
        (PendingPayment, Failed) => Settlement::Fail,
        (Expired | Cancelled | PaymentFailed, Succeeded) => Settlement::Retake,
        (Expired | Cancelled | PaymentFailed | Paid | RefundRequired, Failed) => Settlement::Nothing,
        (Paid | RefundRequired, Succeeded) => Settlement::Nothing,
    }
}

impl Settlement {
    /// The state the order moves to, `None` for the settlements that change nothing.
    pub fn target(self) -> Option<OrderState> {
        match self {
            Self::Pay | Self::Retake => Some(OrderState::Paid),
            Self::Fail => Some(Release::PaymentFailed.target()),
            Self::RefundRequired => Some(OrderState::RefundRequired),
            Self::Nothing | Self::AmountMismatch => None,
        }
    }

    /// The stock change for a line of `q` units, in the same transaction as the state change.
    pub fn stock(self, q: i64) -> Option<Transition> {
        match self {
            Self::Pay => Some(Transition::Deduct(q)),
            Self::Fail => Some(Transition::Release(q)),
            Self::Retake => Some(Transition::Take(q)),
            Self::RefundRequired | Self::Nothing | Self::AmountMismatch => None,
        }
    }

    /// What to do instead when a line's stock condition failed: only a retake can run short
    /// (someone bought the units the order gave back), and then the money must go back.
    pub fn when_short(self) -> Option<Self> {
        (self == Self::Retake).then_some(Self::RefundRequired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::money::Currency;
    use crate::domain::stock::Stock;
    use uuid::Uuid;

    fn eur(amount: i64) -> Money {
        Money { amount, currency: Currency::parse("EUR").unwrap() }
    }

    fn order(state: OrderState) -> Order {
        let now = time::OffsetDateTime::now_utc();
        Order {
            id: Uuid::now_v7(),
            user_id: Uuid::now_v7(),
            email: "a@b.c".into(),
            state,
            lines: vec![],
            total: eur(1500),
            created_at: now,
            updated_at: now,
            reservation_deadline: now,
        }
    }

    const ALL: [OrderState; 6] = [
        OrderState::PendingPayment,
        OrderState::Paid,
        OrderState::PaymentFailed,
        OrderState::Cancelled,
        OrderState::Expired,
        OrderState::RefundRequired,
    ];

    fn ok(status: ChargeStatus) -> Payment {
        Payment { status, amount: eur(1500) }
    }

    #[test]
    fn a_pending_order_is_paid_or_failed() {
        assert_eq!(decide(&order(OrderState::PendingPayment), ok(ChargeStatus::Succeeded)), Settlement::Pay);
        assert_eq!(decide(&order(OrderState::PendingPayment), ok(ChargeStatus::Failed)), Settlement::Fail);
        assert_eq!(decide(&order(OrderState::PendingPayment), ok(ChargeStatus::Pending)), Settlement::Nothing);
    }

    #[test]
    fn a_success_after_the_units_went_back_retakes_them_or_asks_for_a_refund() {
        for state in [OrderState::Expired, OrderState::Cancelled, OrderState::PaymentFailed] {
            let s = decide(&order(state), ok(ChargeStatus::Succeeded));
            assert_eq!(s, Settlement::Retake, "{state:?}");
            assert_eq!(s.when_short(), Some(Settlement::RefundRequired));
            assert_eq!(Settlement::RefundRequired.target(), Some(OrderState::RefundRequired));
        }
        assert_eq!(Settlement::Pay.when_short(), None, "reserved units cannot run short");
    }

    #[test]
    fn duplicates_and_failures_after_the_fact_change_nothing() {
        for state in ALL {
            if state != OrderState::PendingPayment {
                assert_eq!(decide(&order(state), ok(ChargeStatus::Failed)), Settlement::Nothing, "{state:?}");
            }
        }
        for state in [OrderState::Paid, OrderState::RefundRequired] {
            assert_eq!(decide(&order(state), ok(ChargeStatus::Succeeded)), Settlement::Nothing);
        }
    }

    #[test]
    fn a_success_for_another_amount_is_not_this_orders_payment() {
        for state in ALL {
            let wrong = Payment { status: ChargeStatus::Succeeded, amount: eur(1) };
            assert_eq!(decide(&order(state), wrong), Settlement::AmountMismatch);
            let other_currency = Payment {
                status: ChargeStatus::Succeeded,
                amount: Money { currency: Currency::parse("USD").unwrap(), ..eur(1500) },
            };
            assert_eq!(decide(&order(state), other_currency), Settlement::AmountMismatch);
        }
    }

    #[test]
    fn every_success_ends_paid_or_refund_required_and_every_stock_move_keeps_the_invariant() {
        // From every state, a success then any number of further outcomes: money is never lost,
        // units move at most once, and each move is one the stock model allows.
        for state in ALL {
            let mut o = order(state);
            // Stock as this order's history would have left it: 2 units held while pending.
            let mut stock = Stock::new(5);
            if state == OrderState::PendingPayment {
                stock = stock.apply(Transition::Reserve(2)).unwrap();
            }
            for status in [ChargeStatus::Succeeded, ChargeStatus::Failed, ChargeStatus::Succeeded] {
                let s = decide(&o, ok(status));
                if let Some(t) = s.stock(2) {
                    stock = stock.apply(t).expect("allowed by the stock conditions");
                    assert!(stock.holds_invariant());
                }
                if let Some(next) = s.target() {
                    o.state = next;
                }
            }
            if [OrderState::PendingPayment, OrderState::Expired, OrderState::Cancelled, OrderState::PaymentFailed]
                .contains(&state)
            {
                assert_eq!(o.state, OrderState::Paid, "from {state:?}");
                assert_eq!(stock, Stock { available: 3, reserved: 0, sellable: 3 }, "deducted once, from {state:?}");
            } else {
                assert_eq!(o.state, state);
            }
        }
    }
}
