//! `settle`'s decisions around the store's answers, against the in-memory fake: the retry when the
//! order moved under the write, its bound, duplicates and a retake that ran short.

use super::*;
use crate::domain::payment::{ChargeStatus, RefundReason};
use crate::store::fake::FakeStore;

use crate::domain::order::fixtures::{eur, order};

fn success() -> Payment {
    Payment { charge_id: "ch_1".into(), status: ChargeStatus::Succeeded, amount: eur(1500) }
}

/// The ids of the request that brought the outcome (the webhook's).
fn trace() -> crate::trace::Trace {
    crate::trace::Trace { request_id: "WhK3bQ9xZ1mPq3A=".into(), trace_id: None }
}

/// A store holding one order in `state`.
fn store_with(state: OrderState) -> (FakeStore, Uuid) {
    let store = FakeStore::default();
    let o = order(state);
    let id = o.id;
    store.add_order(o);
    (store, id)
}

fn results(store: &FakeStore) -> Vec<(OrderState, Settlement, SettleWriteResult)> {
    store.settle_calls().into_iter().map(|c| (c.decided_on, c.settlement, c.result)).collect()
}

#[tokio::test]
async fn a_write_that_lost_to_the_sweeper_reads_the_order_again_and_retakes() {
    let (store, id) = store_with(OrderState::PendingPayment);
    store.move_before_next_settle(OrderState::Expired);

    let out = settle(&store, id, &success(), "evt_1", &trace()).await.unwrap();

    assert_eq!(
        results(&store),
        [
            (OrderState::PendingPayment, Settlement::Pay, SettleWriteResult::StateChanged),
            (OrderState::Expired, Settlement::Retake, SettleWriteResult::Applied),
        ],
        "decided again on the state the other writer left"
    );
    assert_eq!(store.calls().get_order, 2, "one fresh read per round");
    for call in store.settle_calls() {
        assert_eq!((call.order_id, call.dedupe_key.as_str()), (id, "evt_1"), "the same outcome, the same order");
        assert!(call.refund.is_none(), "paying writes no refund record");
    }
    assert_eq!(out.settled, Settled::Applied(Settlement::Retake));
    assert_eq!(out.state, OrderState::Paid);
    match out.event.map(|e| e.payload) {
        Some(Payload::OrderPaid(paid)) => assert_eq!(paid.previous_state, OrderState::Expired),
        other => panic!("expected order.paid, got {other:?}"),
    }
    let stored = store.order(id).unwrap();
    assert_eq!((stored.state, stored.charge_id.as_deref()), (OrderState::Paid, Some("ch_1")));
}

#[tokio::test]
async fn a_payment_that_lost_to_a_cancel_is_refunded_and_the_order_stays_cancelled() {
    let (store, id) = store_with(OrderState::PendingPayment);
    store.move_before_next_settle(OrderState::Cancelled);

    let out = settle(&store, id, &success(), "evt_1", &trace()).await.unwrap();

    let refund = Settlement::Refund(RefundReason::OrderCancelled);
    assert_eq!(out.settled, Settled::Applied(refund));
    assert_eq!(out.state, OrderState::Cancelled);
    assert!(matches!(out.event.map(|e| e.payload), Some(Payload::RefundRequested(_))));
    let calls = store.settle_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].refund.as_ref().map(|r| r.reason), Some(RefundReason::OrderCancelled), "written with it");
    let s = store.state();
    assert_eq!(s.orders[&id].state, OrderState::Cancelled);
    let record = &s.refunds["ch_1"];
    assert_eq!((record.order_id, record.reason, record.amount), (id, RefundReason::OrderCancelled, eur(1500)));
}

#[tokio::test]
async fn a_settlement_succeeds_after_fewer_state_changes_than_the_bound() {
    for k in 0..MAX_ROUNDS - 1 {
        let (store, id) = store_with(OrderState::PendingPayment);
        store.script_settle(std::iter::repeat_n(SettleWriteResult::StateChanged, k));

        let out = settle(&store, id, &success(), "evt_1", &trace()).await.unwrap();

        assert_eq!(out.settled, Settled::Applied(Settlement::Pay), "after {k} state changes");
        assert_eq!(out.state, OrderState::Paid);
        assert_eq!(store.settle_calls().len(), k + 1, "one write per round");
        assert_eq!(store.calls().get_order, k + 1, "one fresh read per round");
        assert_eq!(store.order(id).unwrap().state, OrderState::Paid);
    }
}

#[tokio::test]
async fn the_last_round_may_still_apply() {
    let (store, id) = store_with(OrderState::PendingPayment);
    store.script_settle(std::iter::repeat_n(SettleWriteResult::StateChanged, MAX_ROUNDS - 1));

    let out = settle(&store, id, &success(), "evt_1", &trace()).await.unwrap();

    assert_eq!(out.settled, Settled::Applied(Settlement::Pay));
    assert_eq!(store.settle_calls().len(), MAX_ROUNDS);
}

#[tokio::test]
async fn a_settlement_gives_up_as_unavailable_when_the_order_keeps_changing() {
    let (store, id) = store_with(OrderState::PendingPayment);
    store.script_settle(std::iter::repeat_n(SettleWriteResult::StateChanged, MAX_ROUNDS));
    store.script_settle([SettleWriteResult::Applied]);

    let err = settle(&store, id, &success(), "evt_1", &trace()).await.unwrap_err();

    match err {
        SettleError::Store(StoreError::Unavailable(why)) => assert!(why.contains("kept changing"), "{why}"),
        other => panic!("expected Store(Unavailable), got {other:?}"),
    }
    assert_eq!(store.settle_calls().len(), MAX_ROUNDS, "no write past the bound");
    assert_eq!(store.calls().get_order, MAX_ROUNDS);
    assert_eq!(store.state().settle_script.len(), 1, "the write that would have applied was never made");
    assert_eq!(store.order(id).unwrap().state, OrderState::PendingPayment);
}

#[tokio::test]
async fn a_duplicate_write_is_reported_with_the_state_the_other_delivery_left() {
    // The same event delivered twice at once: the other delivery paid the order between this
    // one's read and its write.
    let (store, id) = store_with(OrderState::PendingPayment);
    store.move_before_next_settle(OrderState::Paid);
    store.script_settle([SettleWriteResult::Duplicate]);

    let out = settle(&store, id, &success(), "evt_1", &trace()).await.unwrap();

    assert_eq!(out.settled, Settled::Duplicate);
    assert_eq!(out.settled.as_str(), "duplicate");
    assert_eq!(out.state, OrderState::Paid, "the state read after the duplicate, not the one decided on");
    assert!(out.event.is_none(), "this call wrote nothing");
    assert_eq!(store.settle_calls().len(), 1, "a duplicate is not retried");
    assert_eq!(store.calls().get_order, 2);
}

#[tokio::test]
async fn a_second_outcome_of_a_charge_already_being_refunded_is_a_duplicate() {
    // The webhook and the confirmation of one charge (different dedupe keys) for a cancelled
    // order: the refund record, keyed by the charge, makes the second a duplicate.
    let (store, id) = store_with(OrderState::Cancelled);

    let first = settle(&store, id, &success(), "evt_1", &trace()).await.unwrap();
    let second = settle(&store, id, &success(), "ch_1:succeeded", &trace()).await.unwrap();

    assert_eq!(first.settled, Settled::Applied(Settlement::Refund(RefundReason::OrderCancelled)));
    assert_eq!((second.settled, second.state), (Settled::Duplicate, OrderState::Cancelled));
    let s = store.state();
    assert_eq!(s.refunds.len(), 1);
    assert_eq!(s.outbox.len(), 1, "one refund.requested event");
    // The request that opened the refund is on it and on its event: the worker logs under it.
    assert_eq!(s.refunds.values().next().unwrap().trace, Some(trace()));
    assert_eq!(s.outbox[0].trace, Some(trace()));
}

#[tokio::test]
async fn a_retake_that_runs_short_becomes_refund_required_in_the_same_round() {
    let (store, id) = store_with(OrderState::Expired);
    store.script_settle([SettleWriteResult::Short]);

    let out = settle(&store, id, &success(), "evt_1", &trace()).await.unwrap();

    assert_eq!(
        results(&store),
        [
            (OrderState::Expired, Settlement::Retake, SettleWriteResult::Short),
            (OrderState::Expired, Settlement::RefundRequired, SettleWriteResult::Applied),
        ]
    );
    assert_eq!(store.calls().get_order, 1, "no fresh read: the order did not move");
    assert_eq!((out.settled, out.state), (Settled::Applied(Settlement::RefundRequired), OrderState::RefundRequired));
    assert!(matches!(out.event.map(|e| e.payload), Some(Payload::OrderRefundRequired(_))));
    let s = store.state();
    assert_eq!(s.refunds["ch_1"].reason, RefundReason::OutOfStock);
    assert_eq!(s.orders[&id].charge_id.as_deref(), Some("ch_1"), "the charge being refunded is the order's");
}

#[tokio::test]
async fn an_outcome_that_changes_nothing_writes_nothing() {
    let (store, id) = store_with(OrderState::PendingPayment);
    let pending = Payment { status: ChargeStatus::Pending, ..success() };

    let out = settle(&store, id, &pending, "evt_1", &trace()).await.unwrap();

    assert_eq!((out.settled, out.state), (Settled::Unchanged(Settlement::Nothing), OrderState::PendingPayment));
    assert!(store.settle_calls().is_empty());
}

#[tokio::test]
async fn an_unknown_order_is_not_found() {
    let store = FakeStore::default();
    let err = settle(&store, Uuid::now_v7(), &success(), "evt_1", &trace()).await.unwrap_err();
    assert!(matches!(err, SettleError::OrderNotFound), "{err:?}");
}
