//! `POST /orders`: turn the cart (no body) or the given lines (`{"lines": [{"product_id", "quantity"}]}`)
//! into an order that holds its units until the reservation deadline.
//!
//! Requires an `Idempotency-Key` header. The same key again returns the first order (200), even if
//! the first response was lost on the way; the same key with a different body is a 422. Prices are
//! the server's. On the happy path this is two DynamoDB round trips: one read (the products, or the
//! cart) and one transaction (see `store::dynamo::reserve`), which also writes the `order.placed`
//! event to the outbox; the table's stream carries it on, so the buyer never waits for Kafka. The
//! request's ids (`crate::trace`) go on the event and on the order item, so the order's whole path
//! can be found from the `x-request-id` its buyer got. The buyer's session (`auth::session`) is
//! checked by the transaction itself, so it costs no round trip of its own.
//!
//! A product whose stock is spread over buckets (`domain::buckets`) is reserved from one bucket
//! picked at random. If that bucket is short, the order is not refused yet: every bucket of the
//! product is read strongly consistent, the line is allocated where units are (split if it must
//! be) and the transaction is tried again, a bounded number of times. `out_of_stock` is only
//! answered when the buckets together are short.

use crate::auth::jwt::{Principal, Tokens};
use crate::domain::buckets::{self, StockBuckets};
use crate::domain::order::{self, LinesError, Order, OrderState, PriceQuote, PricingError, RequestedLine};
use crate::error::ApiError;
use crate::events::event::{Event, OrderPlaced, Payload};
use crate::http::{authenticate, json, json_body};
use crate::store::{CartLine, CartStore, OrderStore, PlaceError, Placement, PlacementStore, SessionStore, StoreError};
use http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use uuid::Uuid;

use crate::domain::idempotency::{IdempotencyKey, MAX_LEN as MAX_KEY_LEN};

/// Transactions one order may try when the buckets it picked were short: the first pick, then
/// after a consistent look at every bucket, again and again while a sell-out outruns it.
const PLACE_ATTEMPTS: usize = 4;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlaceOrderRequest {
    lines: Vec<RequestedLine>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlaceOrderError {
    #[error("missing or invalid Idempotency-Key")]
    BadKey,
    #[error("the cart is empty")]
    CartEmpty,
    #[error(transparent)]
    Lines(#[from] LinesError),
    #[error(transparent)]
    Pricing(#[from] PricingError),
    #[error("idempotency key reused with another request")]
    KeyReused,
    #[error(transparent)]
    Place(#[from] PlaceError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn ids(ids: &[Uuid]) -> serde_json::Value {
    json!({ "products": ids })
}

impl From<PlaceOrderError> for ApiError {
    fn from(e: PlaceOrderError) -> Self {
        use PlaceOrderError as E;
        match e {
            E::BadKey => ApiError::bad_request(
                "idempotency_key_required",
                format!("send an Idempotency-Key header of 1 to {MAX_KEY_LEN} visible ASCII characters"),
            ),
            E::CartEmpty => ApiError::bad_request("cart_empty", "the cart is empty; add items or send lines"),
            E::Lines(LinesError::TooMany { max, got }) => ApiError::bad_request(
                "too_many_lines",
                format!("an order can have at most {max} lines (one transaction), this one has {got}"),
            ),
            E::Lines(other) => ApiError::bad_request("invalid_lines", other.to_string()),
            E::Pricing(PricingError::UnknownProducts(missing)) => {
                ApiError::new(StatusCode::NOT_FOUND, "product_not_found", "some products do not exist")
                    .with_details(ids(&missing))
            }
            E::Pricing(PricingError::MixedCurrencies) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "mixed_currencies",
                "all products of one order must be priced in one currency",
            ),
            E::Pricing(PricingError::Overflow) => ApiError::bad_request("invalid_lines", "order total is too large"),
            E::KeyReused => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different order request",
            ),
            E::Place(PlaceError::OutOfStock(short)) => {
                ApiError::conflict("out_of_stock", "not enough stock for some products; nothing was reserved")
                    .with_details(ids(&short))
            }
            E::Place(PlaceError::PriceChanged(changed)) => ApiError::conflict(
                "price_changed",
                "prices changed since they were shown; the cart now has the current prices, review and order again",
            )
            .with_details(ids(&changed)),
            E::Place(PlaceError::Unavailable(gone)) => {
                ApiError::conflict("product_unavailable", "some products are no longer sold").with_details(ids(&gone))
            }
            E::Place(PlaceError::CartChanged) => {
                ApiError::conflict("cart_changed", "the cart changed while ordering; review it and order again")
            }
            E::Place(PlaceError::KeyUsed) => ApiError::internal(&"idempotency key conflict not resolved"),
            E::Place(PlaceError::SessionEnded) => crate::auth::session::ended(),
            E::Place(cause @ PlaceError::BucketsShort(_)) => ApiError::unavailable(&cause),
            E::Place(PlaceError::Store(cause)) | E::Store(cause) => cause.into(),
        }
    }
}

fn idempotency_key(req: &Request) -> Result<IdempotencyKey, PlaceOrderError> {
    crate::http::idempotency_key(req).ok_or(PlaceOrderError::BadKey)
}

/// What the client asked for, for comparing a repeated key's requests.
fn fingerprint(lines: Option<&[RequestedLine]>) -> String {
    let canonical = match lines {
        None => "cart".to_owned(),
        Some(lines) => lines.iter().map(|l| format!("{}x{}", l.product_id, l.quantity)).collect::<Vec<_>>().join(","),
    };
    format!("{:x}", Sha256::digest(canonical.as_bytes()))
}

pub struct PlaceOrder<S> {
    pub store: S,
    pub tokens: Tokens,
    pub reservation_window: time::Duration,
}

impl<S: PlacementStore + OrderStore + CartStore + SessionStore + 'static> crate::http::HttpHandler for PlaceOrder<S> {
    fn count(&self, status: StatusCode, code: Option<&'static str>) {
        use crate::metrics::{count, count_labelled, names};
        match code {
            None if status.is_success() => count(names::ORDERS_PLACED, 1),
            None => {}
            Some(reason) => count_labelled(names::ORDERS_REFUSED, "Reason", reason),
        }
    }

    async fn handle(&self, req: Request) -> Result<Response<Body>, ApiError> {
        let me = authenticate(&req, &self.tokens)?;
        let key = idempotency_key(&req)?;
        let has_body = match req.body() {
            Body::Text(t) => !t.trim().is_empty(),
            Body::Binary(b) => !b.iter().all(u8::is_ascii_whitespace),
            _ => false,
        };
        let requested = if has_body { Some(json_body::<PlaceOrderRequest>(&req)?.lines) } else { None };
        let (status, order) = self.place(&me, key, requested, &crate::http::trace(&req)).await?;
        Ok(json(status, &order))
    }
}

impl<S: PlacementStore + OrderStore + CartStore + SessionStore> PlaceOrder<S> {
    async fn place(
        &self,
        me: &Principal,
        key: IdempotencyKey,
        requested: Option<Vec<RequestedLine>>,
        trace: &crate::trace::Trace,
    ) -> Result<(StatusCode, Order), PlaceOrderError> {
        let request_hash = fingerprint(requested.as_deref());
        let from_cart = requested.is_none();
        let mut cart = Vec::new();
        let (lines, quotes) = match requested {
            Some(lines) => {
                order::check_lines(&lines, false)?;
                let ids: Vec<Uuid> = lines.iter().map(|l| l.product_id).collect();
                let quotes = self.store.quotes(&ids).await?;
                (lines, quotes)
            }
            None => {
                cart = self.store.cart(me.user_id).await?;
                if cart.is_empty() {
                    // Perhaps this very request already turned the cart into an order.
                    return self.replay(me, &key, &request_hash).await?.ok_or(PlaceOrderError::CartEmpty);
                }
                let lines: Vec<RequestedLine> =
                    cart.iter().map(|l| RequestedLine { product_id: l.product_id, quantity: l.quantity }).collect();
                order::check_lines(&lines, true)?;
                let quotes: HashMap<Uuid, PriceQuote> = cart
                    .iter()
                    .map(|l| {
                        let quote =
                            PriceQuote { name: l.name.clone(), price: l.unit_price, stock_buckets: l.stock_buckets };
                        (l.product_id, quote)
                    })
                    .collect();
                (lines, quotes)
            }
        };
        let (mut priced, total) = match order::price(&lines, &quotes) {
            Ok(p) => p,
            // A retry after the first request succeeded is answered with that order, whatever changed since.
            Err(e) => return self.replay(me, &key, &request_hash).await?.ok_or(e.into()),
        };

        for line in &mut priced {
            let n = quotes.get(&line.product_id).map_or(StockBuckets::ONE, |q| q.stock_buckets);
            if n != StockBuckets::ONE {
                line.buckets = buckets::first_choice(line.quantity, n, rand::random());
            }
        }
        let now = time::OffsetDateTime::now_utc();
        let order = Order {
            id: Uuid::now_v7(),
            user_id: me.user_id,
            email: me.email.clone(),
            state: OrderState::PendingPayment,
            lines: priced,
            total,
            created_at: now,
            updated_at: now,
            reservation_deadline: now + self.reservation_window,
            charge_id: None,
        };
        let event = Event::new(
            now,
            Payload::OrderPlaced(OrderPlaced {
                order: (&order).into(),
                reservation_deadline: order.reservation_deadline,
            }),
        )
        .with_trace(trace);
        let mut placement = Placement {
            order,
            idempotency_key: key.clone(),
            request_hash: request_hash.clone(),
            event,
            clear_cart: if from_cart { lines.iter().map(|l| (l.product_id, l.quantity)).collect() } else { Vec::new() },
            generation: me.generation,
        };
        match self.reserve(&mut placement).await {
            Ok(()) => {
                tracing::info!(order_id = %placement.order.id, lines = placement.order.lines.len(), "order placed");
                Ok((StatusCode::CREATED, placement.order))
            }
            // The key's marker exists (the transaction said so): its order is the answer. Gone by
            // the time we read it (its TTL ran out in between) leaves nothing to say but a 500.
            Err(PlaceError::KeyUsed) => {
                self.replay(me, &key, &request_hash).await?.ok_or(PlaceOrderError::Place(PlaceError::KeyUsed))
            }
            Err(PlaceError::PriceChanged(changed)) if from_cart => {
                self.refresh_cart(me.user_id, &cart).await?;
                Err(PlaceError::PriceChanged(changed).into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Places the order; when a bucket it picked was short, looks at every bucket of the short
    /// products and tries again where the units are.
    async fn reserve(&self, placement: &mut Placement) -> Result<(), PlaceError> {
        for attempt in 1..=PLACE_ATTEMPTS {
            let short = match self.store.place_order(placement).await {
                Err(PlaceError::BucketsShort(short)) => short,
                other => return other,
            };
            let stock = self.store.bucket_stock(&short).await?;
            let mut none_fit = Vec::new();
            for line in placement.order.lines.iter_mut().filter(|l| short.contains(&l.product_id)) {
                match stock.get(&line.product_id).and_then(|b| buckets::allocate(line.quantity, b, rand::random())) {
                    Some(shares) => line.buckets = shares,
                    None => none_fit.push(line.product_id),
                }
            }
            if !none_fit.is_empty() {
                return Err(PlaceError::OutOfStock(none_fit));
            }
            tracing::debug!(attempt, products = ?short, "picked stock buckets were short, trying where the units are");
        }
        Err(StoreError::Unavailable("stock buckets kept changing under the order".into()).into())
    }

    /// The order an earlier request with this key placed: `Ok(None)` if there is none,
    /// `Err(KeyReused)` if it was placed for a different request.
    async fn replay(
        &self,
        me: &Principal,
        key: &IdempotencyKey,
        hash: &str,
    ) -> Result<Option<(StatusCode, Order)>, PlaceOrderError> {
        // The transaction checks the session on the way in; an answer from the past must too.
        let (prior, session) =
            tokio::join!(self.store.prior_placement(me.user_id, key), self.store.session(me.user_id));
        if !crate::auth::session::honours(session?, me.generation) {
            return Err(PlaceError::SessionEnded.into());
        }
        let Some(prior) = prior? else { return Ok(None) };
        if prior.request_hash != hash {
            return Err(PlaceOrderError::KeyReused);
        }
        let order = self
            .store
            .get_order(prior.order_id)
            .await?
            .ok_or_else(|| StoreError::Other(format!("marker points at missing order {}", prior.order_id)))?;
        Ok(Some((StatusCode::OK, order)))
    }

    /// After a price change, updates the cart's remembered prices so the next attempt can succeed.
    async fn refresh_cart(&self, user_id: Uuid, cart: &[CartLine]) -> Result<(), StoreError> {
        let ids: Vec<Uuid> = cart.iter().map(|l| l.product_id).collect();
        let quotes = self.store.quotes(&ids).await?;
        for line in cart {
            if let Some(q) = quotes.get(&line.product_id).filter(|q| q.price != line.unit_price) {
                let fresh = CartLine { name: q.name.clone(), unit_price: q.price, ..line.clone() };
                self.store.put_cart_line(user_id, &fresh).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_tells_requests_apart() {
        let a = RequestedLine { product_id: Uuid::nil(), quantity: 1 };
        let b = RequestedLine { quantity: 2, ..a };
        assert_eq!(fingerprint(Some(&[a])), fingerprint(Some(&[a])));
        assert_ne!(fingerprint(Some(&[a])), fingerprint(Some(&[b])));
        assert_ne!(fingerprint(None), fingerprint(Some(&[a])));
    }
}
#[cfg(test)]
#[path = "place_order_tests.rs"]
mod place_order_tests;
