//! Settling a payment: what one gateway outcome does to one order. Pure, and the only place the
//! rules below are written down.
//!
//! A success for the charge that already paid (or was already refunded for) the order is a
//! duplicate and changes nothing. Any other success took money, so it either pays the order or
//! goes back:
//!
//! | order is | success, right amount | success, wrong amount | failure |
//! |---|---|---|---|
//! | `PENDING_PAYMENT` | [`Settlement::Pay`]: deduct the reserved units, `PAID` | refund | [`Settlement::Fail`]: release them, `PAYMENT_FAILED` |
//! | `EXPIRED`, `PAYMENT_FAILED` | [`Settlement::Retake`]: take the units again if they are still sellable and the products still sold, `PAID`; else [`Settlement::RefundRequired`] | refund | nothing |
//! | `CANCELLED` | refund: the customer cancelled, the units are not taken back | refund | nothing |
//! | `PAID`, `REFUND_REQUIRED` | refund: a second charge for one order | refund | nothing |
//!
//! "Refund" is [`Settlement::Refund`]: the order stays as it is, and a refund record for the charge
//! is written with the decision (see `store::dynamo::settle`); the refund worker asks the gateway to
//! pay it back. `RefundRequired` is the same for an order that cannot be fulfilled, which moves to
//! `REFUND_REQUIRED`. Money taken is never kept without a trace: every success ends in `PAID` or
//! in a refund record. "Nothing" is what makes duplicates, replays and out-of-order deliveries
//! harmless; the store applies a settlement only if the order is still in the state it was decided
//! on, so two deliveries racing each other cannot both apply.

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

/// One settled outcome of one charge: which charge, its status and the money it was for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub charge_id: String,
    pub status: ChargeStatus,
    pub amount: Money,
}

/// Why a charge is paid back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundReason {
    /// The order was already paid (or refunded) by another charge.
    DuplicateCharge,
    /// The charge is not for the order's total.
    WrongAmount,
    /// The customer cancelled before the payment arrived.
    OrderCancelled,
    /// The payment came after the order gave its units back, and they are sold (or no longer sold).
    OutOfStock,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Settlement {
    Pay,
    Fail,
    Retake,
    /// The order cannot be fulfilled after all: `REFUND_REQUIRED`, and the charge goes back.
    RefundRequired,
    /// The charge goes back; the order stays as it is.
    Refund(RefundReason),
    /// Duplicate, failure after the order left `PENDING_PAYMENT`, or a charge still pending.
    Nothing,
}

/// What `payment` does to `order` in its current state.
pub fn decide(order: &Order, payment: &Payment) -> Settlement {
    use ChargeStatus::{Failed, Pending, Succeeded};
    use OrderState::*;
    let this_charge_settled_it = order.charge_id.as_deref() == Some(payment.charge_id.as_str());
    let right_amount = payment.amount == order.total;
    match (order.state, payment.status) {
        (_, Pending) => Settlement::Nothing,
        (PendingPayment, Failed) => Settlement::Fail,
        (Expired | Cancelled | PaymentFailed | Paid | RefundRequired, Failed) => Settlement::Nothing,
        (_, Succeeded) if this_charge_settled_it => Settlement::Nothing,
        (_, Succeeded) if !right_amount => Settlement::Refund(RefundReason::WrongAmount),
        (PendingPayment, Succeeded) => Settlement::Pay,
        (Expired | PaymentFailed, Succeeded) => Settlement::Retake,
        (Cancelled, Succeeded) => Settlement::Refund(RefundReason::OrderCancelled),
        (Paid | RefundRequired, Succeeded) => Settlement::Refund(RefundReason::DuplicateCharge),
    }
}

impl Settlement {
    /// The state the order moves to: `None` where it stays as it is.
    pub fn target(self) -> Option<OrderState> {
        match self {
            Self::Pay | Self::Retake => Some(OrderState::Paid),
            Self::Fail => Some(Release::PaymentFailed.target()),
            Self::RefundRequired => Some(OrderState::RefundRequired),
            Self::Refund(_) | Self::Nothing => None,
        }
    }

    /// Whether the order records this charge as its own (the one that paid it, or the one it must
    /// give back because it could not be fulfilled): a later duplicate of it is then recognised.
    pub fn records_charge(self) -> bool {
        matches!(self, Self::Pay | Self::Retake | Self::RefundRequired)
    }

    /// Why the charge goes back, for the settlements that write a refund record.
    pub fn refund(self) -> Option<RefundReason> {
        match self {
            Self::Refund(reason) => Some(reason),
            Self::RefundRequired => Some(RefundReason::OutOfStock),
            Self::Pay | Self::Fail | Self::Retake | Self::Nothing => None,
        }
    }

    /// Whether there is anything to write.
    pub fn writes(self) -> bool {
        self != Self::Nothing
    }

    /// The stock change for a line of `q` units, in the same transaction as the state change.
    pub fn stock(self, q: i64) -> Option<Transition> {
        match self {
            Self::Pay => Some(Transition::Deduct(q)),
            Self::Fail => Some(Transition::Release(q)),
            Self::Retake => Some(Transition::Take(q)),
            Self::RefundRequired | Self::Refund(_) | Self::Nothing => None,
        }
    }

    /// What to do instead when a line's stock condition failed: only a retake can run short
    /// (someone bought the units the order gave back, or the product left the catalog), and then
    /// the money must go back.
    pub fn when_short(self) -> Option<Self> {
        (self == Self::Retake).then_some(Self::RefundRequired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::money::Currency;
    use crate::domain::order::fixtures::{eur, order};
    use crate::domain::stock::Stock;

    const ALL: [OrderState; 6] = [
        OrderState::PendingPayment,
        OrderState::Paid,
        OrderState::PaymentFailed,
        OrderState::Cancelled,
        OrderState::Expired,
        OrderState::RefundRequired,
    ];

    fn charge(id: &str, status: ChargeStatus) -> Payment {
        Payment { charge_id: id.into(), status, amount: eur(1500) }
    }

    fn ok(status: ChargeStatus) -> Payment {
        charge("ch_1", status)
    }

    #[test]
    fn a_pending_order_is_paid_or_failed() {
        assert_eq!(decide(&order(OrderState::PendingPayment), &ok(ChargeStatus::Succeeded)), Settlement::Pay);
        assert_eq!(decide(&order(OrderState::PendingPayment), &ok(ChargeStatus::Failed)), Settlement::Fail);
        assert_eq!(decide(&order(OrderState::PendingPayment), &ok(ChargeStatus::Pending)), Settlement::Nothing);
    }

    #[test]
    fn a_success_after_the_units_went_back_retakes_them_or_asks_for_a_refund() {
        for state in [OrderState::Expired, OrderState::PaymentFailed] {
            let s = decide(&order(state), &ok(ChargeStatus::Succeeded));
            assert_eq!(s, Settlement::Retake, "{state:?}");
            assert_eq!(s.when_short(), Some(Settlement::RefundRequired));
            assert_eq!(Settlement::RefundRequired.target(), Some(OrderState::RefundRequired));
            assert_eq!(Settlement::RefundRequired.refund(), Some(RefundReason::OutOfStock));
        }
        assert_eq!(Settlement::Pay.when_short(), None, "reserved units cannot run short");
    }

    #[test]
    fn a_success_after_the_customer_cancelled_is_refunded_not_retaken() {
        let s = decide(&order(OrderState::Cancelled), &ok(ChargeStatus::Succeeded));
        assert_eq!(s, Settlement::Refund(RefundReason::OrderCancelled));
        assert_eq!((s.target(), s.stock(1)), (None, None), "the order and its stock stay as they are");
    }

    #[test]
    fn a_second_charge_for_a_settled_order_goes_back_and_a_duplicate_of_the_first_changes_nothing() {
        for state in [OrderState::Paid, OrderState::RefundRequired] {
            let settled = Order { charge_id: Some("ch_1".into()), ..order(state) };
            assert_eq!(decide(&settled, &ok(ChargeStatus::Succeeded)), Settlement::Nothing, "{state:?}");
            let second = charge("ch_2", ChargeStatus::Succeeded);
            assert_eq!(decide(&settled, &second), Settlement::Refund(RefundReason::DuplicateCharge), "{state:?}");
        }
    }

    #[test]
    fn failures_after_the_fact_change_nothing() {
        for state in ALL {
            if state != OrderState::PendingPayment {
                assert_eq!(decide(&order(state), &ok(ChargeStatus::Failed)), Settlement::Nothing, "{state:?}");
            }
        }
    }

    #[test]
    fn a_success_for_another_amount_is_refunded_in_every_state() {
        for state in ALL {
            let wrong = Payment { amount: eur(1), ..ok(ChargeStatus::Succeeded) };
            assert_eq!(decide(&order(state), &wrong), Settlement::Refund(RefundReason::WrongAmount), "{state:?}");
            let other_currency =
                Payment { amount: Money { currency: Currency::parse("USD").unwrap(), ..eur(1500) }, ..wrong };
            assert_eq!(decide(&order(state), &other_currency), Settlement::Refund(RefundReason::WrongAmount));
        }
    }

    #[test]
    fn every_success_ends_paid_or_in_a_refund_and_every_stock_move_keeps_the_invariant() {
        // From every state, a success then any number of further outcomes of the same charge:
        // money is never kept without a trace, units move at most once, each move allowed.
        for state in ALL {
            let mut o = order(state);
            let mut stock = Stock::new(5);
            if state == OrderState::PendingPayment {
                stock = stock.apply(Transition::Reserve(2)).unwrap();
            }
            let mut refunds = 0;
            for status in [ChargeStatus::Succeeded, ChargeStatus::Failed, ChargeStatus::Succeeded] {
                let s = decide(&o, &ok(status));
                if let Some(t) = s.stock(2) {
                    stock = stock.apply(t).expect("allowed by the stock conditions");
                    assert!(stock.holds_invariant());
                }
                refunds += usize::from(s.refund().is_some());
                if let Some(next) = s.target() {
                    o.state = next;
                }
                if s.records_charge() {
                    o.charge_id = Some("ch_1".into());
                }
            }
            match state {
                OrderState::PendingPayment | OrderState::Expired | OrderState::PaymentFailed => {
                    assert_eq!((o.state, refunds), (OrderState::Paid, 0), "from {state:?}");
                    assert_eq!(
                        stock,
                        Stock { available: 3, reserved: 0, sellable: 3 },
                        "deducted once, from {state:?}"
                    );
                }
                // No charge recorded on these: the success goes back, once per charge (the
                // store's refund record is keyed by the charge, so the repeat is a duplicate).
                OrderState::Cancelled | OrderState::Paid | OrderState::RefundRequired => {
                    assert_eq!(o.state, state);
                    assert!(refunds >= 1, "from {state:?}");
                }
            }
        }
    }
}
