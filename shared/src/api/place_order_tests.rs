//! `PlaceOrder`'s decisions around the store's answers, against the in-memory fake: replays of an
//! idempotency key, the cart path, and the second try where the stock buckets hold the units.
//! The private `place` is driven directly: no HTTP request, no token.

use super::*;
use crate::domain::buckets::Share;
use crate::domain::money::{Currency, Money};
use crate::domain::stock::Stock;
use crate::domain::user::Role;
use crate::store::fake::FakeStore;
use secrecy::SecretString;

fn eur(amount: i64) -> Money {
    Money { amount, currency: Currency::parse("EUR").unwrap() }
}

fn quote(name: &str, amount: i64, buckets: u16) -> PriceQuote {
    PriceQuote { name: name.into(), price: eur(amount), stock_buckets: StockBuckets::try_from(buckets).unwrap() }
}

/// A bucket with `sellable` units (and none reserved).
fn bucket(sellable: i64) -> Stock {
    Stock::new(sellable)
}

fn line(product_id: Uuid, quantity: u32) -> RequestedLine {
    RequestedLine { product_id, quantity }
}

fn shop() -> (PlaceOrder<FakeStore>, Principal) {
    let tokens = Tokens::new(&SecretString::from("0123456789abcdef0123456789abcdef"), "shop-test", "shop-test-api");
    let handler = PlaceOrder { store: FakeStore::default(), tokens, reservation_window: time::Duration::minutes(15) };
    let me =
        Principal { user_id: Uuid::now_v7(), role: Role::Customer, email: "buyer@example.com".into(), generation: 0 };
    (handler, me)
}

/// A shop selling one single-bucket product at 2.50 EUR.
fn shop_with_product() -> (PlaceOrder<FakeStore>, Principal, Uuid) {
    let (handler, me) = shop();
    let product = Uuid::now_v7();
    handler.store.add_quote(product, quote("Mug", 250, 1));
    (handler, me, product)
}

/// The line of `product` in a placement.
fn shares_of(placement: &Placement, product: Uuid) -> Vec<Share> {
    placement.order.lines.iter().find(|l| l.product_id == product).unwrap().buckets.clone()
}

fn key(k: &str) -> IdempotencyKey {
    IdempotencyKey::parse(k).unwrap()
}

/// The request's ids, as `http::trace` reads them off API Gateway's event.
fn trace() -> crate::trace::Trace {
    crate::trace::Trace {
        request_id: "AbCdEfGhIjKlMg=".into(),
        trace_id: Some("1-6751a2b3-0123456789abcdef01234567".into()),
    }
}

#[tokio::test]
async fn the_placed_event_carries_the_requests_ids() {
    let (handler, me, product) = shop_with_product();
    handler.place(&me, key("key-1"), Some(vec![line(product, 1)]), &trace()).await.unwrap();
    let placements = handler.store.placements();
    assert_eq!(placements.len(), 1);
    assert_eq!(placements[0].event.trace, Some(trace()));
}

#[tokio::test]
async fn a_repeated_key_with_the_same_request_replays_the_first_order_with_200() {
    let (handler, me, product) = shop_with_product();

    let (created, first) = handler.place(&me, key("key-1"), Some(vec![line(product, 2)]), &trace()).await.unwrap();
    let (replayed, again) = handler.place(&me, key("key-1"), Some(vec![line(product, 2)]), &trace()).await.unwrap();

    assert_eq!(created, StatusCode::CREATED);
    assert_eq!(replayed, StatusCode::OK);
    assert_eq!(again, first, "the first order, as stored");
    assert_eq!(first.total, eur(500));
    let s = handler.store.state();
    assert_eq!(s.orders.len(), 1, "nothing placed twice");
    assert_eq!(s.placements.len(), 2, "the repeat is caught by the transaction's marker, not before");
    assert_eq!(s.outbox.len(), 1, "one order.placed event");
}

#[tokio::test]
async fn a_repeated_key_with_another_request_is_refused_with_422() {
    let (handler, me, product) = shop_with_product();
    handler.place(&me, key("key-1"), Some(vec![line(product, 2)]), &trace()).await.unwrap();

    let err = handler.place(&me, key("key-1"), Some(vec![line(product, 3)]), &trace()).await.unwrap_err();

    assert!(matches!(err, PlaceOrderError::KeyReused), "{err:?}");
    let api = ApiError::from(err);
    assert_eq!((api.status, api.code), (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"));
    assert_eq!(handler.store.state().orders.len(), 1);
}

#[tokio::test]
async fn the_same_key_of_another_user_is_another_order() {
    let (handler, me, product) = shop_with_product();
    let other = Principal { user_id: Uuid::now_v7(), ..me.clone() };

    let (_, mine) = handler.place(&me, key("key-1"), Some(vec![line(product, 1)]), &trace()).await.unwrap();
    let (status, theirs) = handler.place(&other, key("key-1"), Some(vec![line(product, 1)]), &trace()).await.unwrap();

    assert_eq!(status, StatusCode::CREATED);
    assert_ne!(mine.id, theirs.id);
}

#[tokio::test]
async fn key_used_in_the_transaction_is_answered_with_the_concurrent_requests_order() {
    // Another request with this key committed after this one started: the transaction answers
    // KeyUsed, and the order that request placed is the answer.
    let (handler, me, product) = shop_with_product();
    let lines = vec![line(product, 2)];
    let (_, theirs) = handler.place(&me, key("seed"), Some(lines.clone()), &trace()).await.unwrap();
    handler.store.add_marker(me.user_id, "key-1", theirs.id, &fingerprint(Some(&lines)));
    handler.store.script_place([Err(PlaceError::KeyUsed)]);

    let (status, order) = handler.place(&me, key("key-1"), Some(lines), &trace()).await.unwrap();

    assert_eq!((status, order), (StatusCode::OK, theirs));
    let calls = handler.store.calls();
    assert_eq!((calls.prior_placement, calls.get_order), (1, 1), "one marker read, one order read");
    let s = handler.store.state();
    assert_eq!((s.placements.len(), s.orders.len()), (2, 1), "one transaction each, one order");
}

#[tokio::test]
async fn the_cart_becomes_an_order_and_a_retry_on_the_emptied_cart_replays_it() {
    let (handler, me) = shop();
    let product = Uuid::now_v7();
    let cart_line = CartLine {
        product_id: product,
        quantity: 3,
        name: "Mug".into(),
        unit_price: eur(250),
        stock_buckets: StockBuckets::ONE,
    };
    handler.store.add_cart_line(me.user_id, cart_line);

    let (created, first) = handler.place(&me, key("key-1"), None, &trace()).await.unwrap();
    assert_eq!(created, StatusCode::CREATED);
    assert_eq!(first.total, eur(750));
    assert!(handler.store.state().carts[&me.user_id].is_empty(), "the transaction cleared the cart");
    assert_eq!(handler.store.placements()[0].clear_cart, [(product, 3)]);

    let (replayed, again) = handler.place(&me, key("key-1"), None, &trace()).await.unwrap();

    assert_eq!((replayed, again), (StatusCode::OK, first));
    let calls = handler.store.calls();
    assert_eq!(calls.quotes, 0, "the cart's prices are used, not the catalog's");
    assert_eq!(handler.store.placements().len(), 1, "the empty cart is answered from the marker");
}

#[tokio::test]
async fn an_empty_cart_replays_a_prior_placement_of_the_cart() {
    let (handler, me, product) = shop_with_product();
    let (_, prior) = handler.place(&me, key("seed"), Some(vec![line(product, 1)]), &trace()).await.unwrap();
    handler.store.add_marker(me.user_id, "key-1", prior.id, &fingerprint(None));

    let (status, order) = handler.place(&me, key("key-1"), None, &trace()).await.unwrap();

    assert_eq!((status, order), (StatusCode::OK, prior));
}

#[tokio::test]
async fn an_empty_cart_with_a_key_used_for_lines_is_refused_with_422() {
    let (handler, me, product) = shop_with_product();
    handler.place(&me, key("key-1"), Some(vec![line(product, 1)]), &trace()).await.unwrap();

    let err = handler.place(&me, key("key-1"), None, &trace()).await.unwrap_err();

    assert!(matches!(err, PlaceOrderError::KeyReused), "{err:?}");
}

#[tokio::test]
async fn an_empty_cart_without_a_prior_placement_is_cart_empty() {
    let (handler, me) = shop();

    let err = handler.place(&me, key("key-1"), None, &trace()).await.unwrap_err();

    assert!(matches!(err, PlaceOrderError::CartEmpty), "{err:?}");
    assert_eq!(handler.store.calls().prior_placement, 1);
    assert!(handler.store.placements().is_empty());
}

#[tokio::test]
async fn a_retry_after_the_product_left_the_catalog_still_replays_the_first_order() {
    let (handler, me, product) = shop_with_product();
    let (_, first) = handler.place(&me, key("key-1"), Some(vec![line(product, 1)]), &trace()).await.unwrap();
    handler.store.state().quotes.clear();

    let (status, order) = handler.place(&me, key("key-1"), Some(vec![line(product, 1)]), &trace()).await.unwrap();
    assert_eq!((status, order), (StatusCode::OK, first));

    let err = handler.place(&me, key("key-2"), Some(vec![line(product, 1)]), &trace()).await.unwrap_err();
    assert!(matches!(err, PlaceOrderError::Pricing(PricingError::UnknownProducts(ref p)) if *p == [product]));
}

#[tokio::test]
async fn a_short_bucket_is_tried_again_where_the_units_are() {
    let (handler, me) = shop();
    let (whole, split, plain) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    handler.store.add_quote(whole, quote("Mug", 250, 4));
    handler.store.add_quote(split, quote("Cup", 100, 3));
    handler.store.add_quote(plain, quote("Pot", 900, 1));
    // Only bucket 2 holds 3 units of `whole`; no bucket holds 3 of `split`, buckets 0 and 2 together do.
    handler.store.add_buckets(whole, vec![(0, bucket(1)), (1, bucket(0)), (2, bucket(5)), (3, bucket(0))]);
    handler.store.add_buckets(split, vec![(0, bucket(2)), (1, bucket(0)), (2, bucket(2))]);
    handler.store.script_place([Err(PlaceError::BucketsShort(vec![whole, split]))]);

    let lines = vec![line(whole, 3), line(split, 3), line(plain, 1)];
    let (status, order) = handler.place(&me, key("key-1"), Some(lines), &trace()).await.unwrap();

    assert_eq!(status, StatusCode::CREATED);
    let s = handler.store.state();
    assert_eq!(s.bucket_reads, [vec![whole, split]], "one consistent read of the short products' buckets");
    let [first, second] = &s.placements[..] else { panic!("expected two transactions, got {}", s.placements.len()) };
    let picked = shares_of(first, whole);
    assert!(
        matches!(picked[..], [Share { bucket: 0..=3, quantity: 3 }]),
        "first choice: one active bucket, {picked:?}"
    );
    assert_eq!(shares_of(second, whole), [Share { bucket: 2, quantity: 3 }]);
    assert_eq!(shares_of(second, split), [Share { bucket: 0, quantity: 2 }, Share { bucket: 2, quantity: 1 }]);
    assert_eq!(shares_of(second, plain), [], "a product with one bucket keeps the plain layout");
    assert_eq!(second.order.id, first.order.id, "the same order, tried again");
    assert_eq!(order, second.order);
    assert_eq!(s.orders[&order.id], order, "the order as placed records where its units are");
}

#[tokio::test]
async fn buckets_short_together_is_out_of_stock() {
    let (handler, me) = shop();
    let (short, fine) = (Uuid::now_v7(), Uuid::now_v7());
    handler.store.add_quote(short, quote("Mug", 250, 3));
    handler.store.add_quote(fine, quote("Cup", 100, 2));
    handler.store.add_buckets(short, vec![(0, bucket(1)), (1, bucket(0)), (2, bucket(1))]);
    handler.store.add_buckets(fine, vec![(0, bucket(9)), (1, bucket(9))]);
    handler.store.script_place([Err(PlaceError::BucketsShort(vec![short]))]);

    let err = handler.place(&me, key("key-1"), Some(vec![line(short, 3), line(fine, 1)]), &trace()).await.unwrap_err();

    assert!(matches!(err, PlaceOrderError::Place(PlaceError::OutOfStock(ref p)) if *p == [short]), "{err:?}");
    let api = ApiError::from(err);
    assert_eq!((api.status, api.code), (StatusCode::CONFLICT, "out_of_stock"));
    let s = handler.store.state();
    assert_eq!(s.placements.len(), 1, "no second transaction when the units are not there");
    assert_eq!(s.bucket_reads, [vec![short]]);
    assert!(s.orders.is_empty());
}

#[tokio::test]
async fn reserve_gives_up_as_unavailable_when_the_buckets_keep_changing() {
    let (handler, me) = shop();
    let product = Uuid::now_v7();
    handler.store.add_quote(product, quote("Mug", 250, 2));
    handler.store.add_buckets(product, vec![(0, bucket(5)), (1, bucket(5))]);
    handler.store.script_place((0..PLACE_ATTEMPTS).map(|_| Err(PlaceError::BucketsShort(vec![product]))));
    handler.store.script_place([Ok(())]);

    let err = handler.place(&me, key("key-1"), Some(vec![line(product, 1)]), &trace()).await.unwrap_err();

    assert!(matches!(err, PlaceOrderError::Place(PlaceError::Store(StoreError::Unavailable(_)))), "{err:?}");
    assert_eq!(ApiError::from(err).status, StatusCode::SERVICE_UNAVAILABLE);
    let s = handler.store.state();
    assert_eq!(s.placements.len(), PLACE_ATTEMPTS, "bounded");
    assert_eq!(s.place_script.len(), 1, "the transaction that would have succeeded was never tried");
    assert!(s.orders.is_empty());
}

#[tokio::test]
async fn a_price_change_on_the_cart_path_refreshes_the_cart() {
    let (handler, me) = shop();
    let (changed, same) = (Uuid::now_v7(), Uuid::now_v7());
    for (product, price) in [(changed, 250), (same, 100)] {
        let cart_line = CartLine {
            product_id: product,
            quantity: 1,
            name: "Old".into(),
            unit_price: eur(price),
            stock_buckets: StockBuckets::ONE,
        };
        handler.store.add_cart_line(me.user_id, cart_line);
    }
    handler.store.add_quote(changed, quote("Mug", 300, 1));
    handler.store.add_quote(same, quote("Cup", 100, 1));
    handler.store.script_place([Err(PlaceError::PriceChanged(vec![changed]))]);

    let err = handler.place(&me, key("key-1"), None, &trace()).await.unwrap_err();

    assert!(matches!(err, PlaceOrderError::Place(PlaceError::PriceChanged(ref p)) if *p == [changed]), "{err:?}");
    assert_eq!(handler.store.calls().put_cart_line, 1, "only the repriced line is rewritten");
    let s = handler.store.state();
    let line = s.carts[&me.user_id].iter().find(|l| l.product_id == changed).unwrap();
    assert_eq!((line.name.as_str(), line.unit_price, line.quantity), ("Mug", eur(300), 1));
}
