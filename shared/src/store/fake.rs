//! An in-memory fake of the ports `api::place_order` and `payments::settle` use ([`PlacementStore`],
//! [`OrderStore`], [`PaymentStore`], [`CartStore`]), for unit tests only.
//!
//! Why it exists: the decisions those use cases make around the store (settle's retry when the
//! order moved under it, place-order's replay of an idempotency key and its second try where the
//! stock buckets hold units) are otherwise exercised only against DynamoDB Local by the integration
//! tests (`tests/`), which are slow and cannot make a race happen on cue. Against this fake they are
//! millisecond tests, and a script says what the "transaction" answers. The real adapter,
//! `store::dynamo`, is still what the integration tests check: nothing here says it behaves like
//! this fake.
//!
//! What the fake models, when no script says otherwise:
//! - `place_order`: the idempotency marker (`KeyUsed` when the user's key was used), the cart lines
//!   to clear (`CartChanged` when one is missing or has another quantity), then writes the order,
//!   the marker and the event, and deletes the cart lines. **Stock is not modelled**: a placement
//!   never runs short unless scripted ([`FakeStore::script_place`]);
//! - `settle_order`: the dedupe marker and the refund record keyed by the charge (`Duplicate`), the
//!   order's state as the settlement's condition (`StateChanged`), then the state change, the
//!   charge recorded, the marker, the refund record and the event. Stock is not modelled: `Short`
//!   only when scripted ([`FakeStore::script_settle`]);
//! - reads (`quotes`, `bucket_stock`, `prior_placement`, `get_order`, `cart`) answer what was
//!   preloaded or written; `session` says every account is open at generation 0.
//!
//! What it does not model panics: `list_orders` and `remove_cart_line` are not used by these use
//! cases (nor is `ReleaseStore`, which it does not implement).

use super::{
    CartLine, CartStore, ListError, OrderStore, Page, PaymentStore, PlaceError, Placement, PlacementStore,
    PriorPlacement, SettleWrite, SettleWriteResult, StoreError,
};
use crate::domain::order::{Order, OrderState, PriceQuote};
use crate::domain::payment::Settlement;
use crate::domain::refund::Refund;
use crate::domain::stock::Stock;
use crate::events::event::Event;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use uuid::Uuid;

/// How often each read was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Calls {
    pub quotes: usize,
    pub get_order: usize,
    pub prior_placement: usize,
    pub cart: usize,
    pub put_cart_line: usize,
}

/// One `settle_order` call, as the use case asked for it and as the fake answered.
#[derive(Debug, Clone)]
pub(crate) struct SettleCall {
    pub order_id: Uuid,
    /// The state the settlement was decided on (the write's condition).
    pub decided_on: OrderState,
    pub settlement: Settlement,
    pub dedupe_key: String,
    pub refund: Option<Refund>,
    pub result: SettleWriteResult,
}

/// Everything the fake holds. Reach it with [`FakeStore::state`] (never across an `.await`).
#[derive(Debug, Default)]
pub(crate) struct State {
    // Data.
    pub orders: HashMap<Uuid, Order>,
    /// Idempotency markers by `(user, key)`.
    pub markers: HashMap<(Uuid, String), PriorPlacement>,
    pub quotes: HashMap<Uuid, PriceQuote>,
    pub buckets: HashMap<Uuid, Vec<(u16, Stock)>>,
    pub carts: HashMap<Uuid, Vec<CartLine>>,
    /// Settlement dedupe keys applied.
    pub payment_events: HashSet<String>,
    /// Refund records by charge id.
    pub refunds: HashMap<String, Refund>,
    /// Outbox events written, in order.
    pub outbox: Vec<Event>,

    // Scripts, consumed one entry per call.
    /// `place_order` answers: `Err` is returned with nothing written; `Ok(())` runs the modelled
    /// transaction (which may still answer `KeyUsed` or `CartChanged`). Empty: modelled.
    pub place_script: VecDeque<Result<(), PlaceError>>,
    /// `settle_order` answers: `Applied` writes the settlement unconditionally, the others write
    /// nothing. Empty: modelled.
    pub settle_script: VecDeque<SettleWriteResult>,
    /// Another writer moves the order to this state just before the next `settle_order` call
    /// (one entry per call, before its script entry).
    pub moves_before_settle: VecDeque<OrderState>,

    // What was asked.
    /// Every placement `place_order` was given, in order, whatever it answered.
    pub placements: Vec<Placement>,
    pub settle_calls: Vec<SettleCall>,
    /// The products of each `bucket_stock` call.
    pub bucket_reads: Vec<Vec<Uuid>>,
    pub calls: Calls,
}

/// The fake store: one [`State`] behind a mutex.
#[derive(Debug, Default)]
pub(crate) struct FakeStore(Mutex<State>);

impl FakeStore {
    /// The fake's state, to preload or inspect. A panicking test elsewhere does not poison it.
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn add_order(&self, order: Order) {
        self.state().orders.insert(order.id, order);
    }

    /// The marker an earlier placement of `order_id` left for `(user_id, key)`.
    pub(crate) fn add_marker(&self, user_id: Uuid, key: &str, order_id: Uuid, request_hash: &str) {
        let prior = PriorPlacement { order_id, request_hash: request_hash.to_owned() };
        self.state().markers.insert((user_id, key.to_owned()), prior);
    }

    pub(crate) fn add_quote(&self, product_id: Uuid, quote: PriceQuote) {
        self.state().quotes.insert(product_id, quote);
    }

    /// Every stock bucket of a product, as `bucket_stock` answers it.
    pub(crate) fn add_buckets(&self, product_id: Uuid, buckets: Vec<(u16, Stock)>) {
        self.state().buckets.insert(product_id, buckets);
    }

    pub(crate) fn add_cart_line(&self, user_id: Uuid, line: CartLine) {
        let mut s = self.state();
        let cart = s.carts.entry(user_id).or_default();
        cart.retain(|l| l.product_id != line.product_id);
        cart.push(line);
    }

    /// Queues `place_order` answers (see [`State::place_script`]).
    pub(crate) fn script_place(&self, outcomes: impl IntoIterator<Item = Result<(), PlaceError>>) {
        self.state().place_script.extend(outcomes);
    }

    /// Queues `settle_order` answers (see [`State::settle_script`]).
    pub(crate) fn script_settle(&self, results: impl IntoIterator<Item = SettleWriteResult>) {
        self.state().settle_script.extend(results);
    }

    /// Another writer moves the order to `state` just before the next `settle_order`.
    pub(crate) fn move_before_next_settle(&self, state: OrderState) {
        self.state().moves_before_settle.push_back(state);
    }

    pub(crate) fn order(&self, id: Uuid) -> Option<Order> {
        self.state().orders.get(&id).cloned()
    }

    pub(crate) fn calls(&self) -> Calls {
        self.state().calls
    }

    pub(crate) fn placements(&self) -> Vec<Placement> {
        self.state().placements.clone()
    }

    pub(crate) fn settle_calls(&self) -> Vec<SettleCall> {
        self.state().settle_calls.clone()
    }
}

impl State {
    /// The placement transaction as modelled (stock aside).
    fn place(&mut self, p: &Placement) -> Result<(), PlaceError> {
        let user = p.order.user_id;
        let marker = (user, p.idempotency_key.as_str().to_owned());
        if self.markers.contains_key(&marker) {
            return Err(PlaceError::KeyUsed);
        }
        let cart = self.carts.get(&user).map_or(&[][..], Vec::as_slice);
        let cart_as_ordered = p
            .clear_cart
            .iter()
            .all(|(product, quantity)| cart.iter().any(|l| l.product_id == *product && l.quantity == *quantity));
        if !cart_as_ordered {
            return Err(PlaceError::CartChanged);
        }
        if let Some(cart) = self.carts.get_mut(&user) {
            cart.retain(|l| !p.clear_cart.iter().any(|(product, _)| *product == l.product_id));
        }
        self.markers.insert(marker, PriorPlacement { order_id: p.order.id, request_hash: p.request_hash.clone() });
        self.orders.insert(p.order.id, p.order.clone());
        self.outbox.push(p.event.clone());
        Ok(())
    }

    /// The settlement transaction as modelled (stock aside): its conditions, then its writes.
    fn settle(&mut self, w: &SettleWrite<'_>) -> SettleWriteResult {
        let charge_refunded = w.refund.is_some() && self.refunds.contains_key(w.charge_id);
        if self.payment_events.contains(w.dedupe_key) || charge_refunded {
            return SettleWriteResult::Duplicate;
        }
        if self.orders.get(&w.order.id).map(|o| o.state) != Some(w.order.state) {
            return SettleWriteResult::StateChanged;
        }
        self.apply_settlement(w);
        SettleWriteResult::Applied
    }

    fn apply_settlement(&mut self, w: &SettleWrite<'_>) {
        if let Some(order) = self.orders.get_mut(&w.order.id) {
            if let Some(to) = w.settlement.target() {
                order.state = to;
                order.updated_at = w.now;
            }
            if w.settlement.records_charge() {
                order.charge_id = Some(w.charge_id.to_owned());
            }
        }
        self.payment_events.insert(w.dedupe_key.to_owned());
        if let Some(refund) = w.refund {
            self.refunds.insert(w.charge_id.to_owned(), refund.clone());
        }
        self.outbox.push(w.event.clone());
    }
}

impl PlacementStore for FakeStore {
    async fn quotes(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, PriceQuote>, StoreError> {
        let mut s = self.state();
        s.calls.quotes += 1;
        Ok(ids.iter().filter_map(|id| s.quotes.get(id).map(|q| (*id, q.clone()))).collect())
    }

    async fn place_order(&self, placement: &Placement) -> Result<(), PlaceError> {
        let mut s = self.state();
        s.placements.push(placement.clone());
        match s.place_script.pop_front() {
            Some(Err(scripted)) => Err(scripted),
            Some(Ok(())) | None => s.place(placement),
        }
    }

    async fn bucket_stock(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Vec<(u16, Stock)>>, StoreError> {
        let mut s = self.state();
        s.bucket_reads.push(ids.to_vec());
        Ok(ids.iter().filter_map(|id| s.buckets.get(id).map(|b| (*id, b.clone()))).collect())
    }

    async fn prior_placement(
        &self,
        user_id: Uuid,
        idempotency_key: &crate::domain::idempotency::IdempotencyKey,
    ) -> Result<Option<PriorPlacement>, StoreError> {
        let mut s = self.state();
        s.calls.prior_placement += 1;
        Ok(s.markers.get(&(user_id, idempotency_key.as_str().to_owned())).cloned())
    }
}

impl OrderStore for FakeStore {
    async fn get_order(&self, id: Uuid) -> Result<Option<Order>, StoreError> {
        let mut s = self.state();
        s.calls.get_order += 1;
        Ok(s.orders.get(&id).cloned())
    }

    async fn list_orders(&self, _: Uuid, _: u32, _: Option<&str>) -> Result<Page<Order>, ListError> {
        unimplemented!("FakeStore does not model list_orders: no use case under unit test needs it")
    }
}

impl PaymentStore for FakeStore {
    async fn settle_order(&self, write: &SettleWrite<'_>) -> Result<SettleWriteResult, StoreError> {
        let mut s = self.state();
        if let Some(moved_to) = s.moves_before_settle.pop_front()
            && let Some(order) = s.orders.get_mut(&write.order.id)
        {
            order.state = moved_to;
        }
        let result = match s.settle_script.pop_front() {
            Some(SettleWriteResult::Applied) => {
                s.apply_settlement(write);
                SettleWriteResult::Applied
            }
            Some(scripted) => scripted,
            None => s.settle(write),
        };
        s.settle_calls.push(SettleCall {
            order_id: write.order.id,
            decided_on: write.order.state,
            settlement: write.settlement,
            dedupe_key: write.dedupe_key.to_owned(),
            refund: write.refund.cloned(),
            result,
        });
        Ok(result)
    }
}

impl CartStore for FakeStore {
    async fn cart(&self, user_id: Uuid) -> Result<Vec<CartLine>, StoreError> {
        let mut s = self.state();
        s.calls.cart += 1;
        Ok(s.carts.get(&user_id).cloned().unwrap_or_default())
    }

    async fn put_cart_line(&self, user_id: Uuid, line: &CartLine) -> Result<(), StoreError> {
        self.state().calls.put_cart_line += 1;
        self.add_cart_line(user_id, line.clone());
        Ok(())
    }

    async fn remove_cart_line(&self, _: Uuid, _: Uuid) -> Result<bool, StoreError> {
        unimplemented!("FakeStore does not model remove_cart_line: no use case under unit test needs it")
    }
}

/// Every account is open, a customer, at generation 0 (the tokens the unit tests make).
impl super::SessionStore for FakeStore {
    async fn session(&self, _: Uuid) -> Result<Option<super::SessionState>, StoreError> {
        Ok(Some(super::SessionState { role: crate::domain::user::Role::Customer, generation: 0, closed: false }))
    }
}
