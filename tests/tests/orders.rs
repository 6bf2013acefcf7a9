//! Cart, placing orders, idempotency, cancelling: one customer at a time.
//! (Races between many customers are in `races.rs`.)

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::json;
use shop_tests::*;

fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[tokio::test]
async fn cart_to_order_to_cancel_moves_every_unit_back() {
    let admin = admin_token().await;
    let (_, me) = new_customer("buyer").await;
    let mug = new_product(&admin, "Mug", 1250, 10).await;
    let tea = new_product(&admin, "Tea", 400, 5).await;
    let (mug_id, tea_id) = (mug["id"].as_str().unwrap(), tea["id"].as_str().unwrap());

    let r = call(Method::PUT, &format!("/cart/items/{mug_id}"), Some(&me), Some(json!({"quantity": 3}))).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = call(Method::PUT, &format!("/cart/items/{tea_id}"), Some(&me), Some(json!({"quantity": 2}))).await;
    assert_eq!(r.body["total"], json!({"amount": 3 * 1250 + 2 * 400, "currency": "EUR"}));
    let cart = call(Method::GET, "/cart", Some(&me), None).await;
    assert_eq!(cart.body["items"].as_array().unwrap().len(), 2);

    let placed = place_order(&me, &key(), None).await;
    assert_eq!(placed.status, StatusCode::CREATED, "{:?}", placed.body);
    let order = &placed.body;
    assert_eq!(order["state"], "PENDING_PAYMENT");
    assert_eq!(order["total"], json!({"amount": 4550, "currency": "EUR"}));
    assert_eq!(stock(mug_id).await, (10, 3, 7));
    assert_eq!(stock(tea_id).await, (5, 2, 3));
    let cart = call(Method::GET, "/cart", Some(&me), None).await;
    assert_eq!(cart.body["items"], json!([]), "placing from the cart empties it");

    let id = order["id"].as_str().unwrap();
    let mine = call(Method::GET, "/orders", Some(&me), None).await;
    assert_eq!(mine.body["items"][0]["id"], id);
    let got = call(Method::GET, &format!("/orders/{id}"), Some(&me), None).await;
    assert_eq!(got.body["lines"].as_array().unwrap().len(), 2);
    let (_, stranger) = new_customer("stranger").await;
    let theirs = call(Method::GET, &format!("/orders/{id}"), Some(&stranger), None).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND, "someone else's order looks missing");
    let r = call(Method::POST, &format!("/orders/{id}/cancel"), Some(&stranger), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(stock(mug_id).await, (10, 3, 7));

    let cancelled = call(Method::POST, &format!("/orders/{id}/cancel"), Some(&me), None).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{:?}", cancelled.body);
    assert_eq!(cancelled.body["state"], "CANCELLED");
    assert_eq!(stock(mug_id).await, (10, 0, 10));
    assert_eq!(stock(tea_id).await, (5, 0, 5));

    // A second cancel, and ten more at once, release nothing more.
    let cancel = format!("/orders/{id}/cancel");
    let again = join_all((0..10).map(|_| call(Method::POST, &cancel, Some(&me), None))).await;
    assert!(again.iter().all(|r| r.status == StatusCode::OK && r.body["state"] == "CANCELLED"));
    assert_eq!(stock(mug_id).await, (10, 0, 10));
}

#[tokio::test]
async fn same_key_returns_the_same_order_and_another_body_is_refused() {
    let admin = admin_token().await;
    let (_, me) = new_customer("retry").await;
    let p = new_product(&admin, "Kettle", 3000, 4).await;
    let id = p["id"].as_str().unwrap();
    let k = key();
    let first = place_order(&me, &k, Some(&[(id, 2)])).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = place_order(&me, &k, Some(&[(id, 2)])).await;
    assert_eq!(again.status, StatusCode::OK, "a retry is answered with the first order");
    assert_eq!(again.body["id"], first.body["id"]);
    let other = place_order(&me, &k, Some(&[(id, 1)])).await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(other.error_code(), "idempotency_key_reused");
    assert_eq!(stock(id).await, (4, 2, 2), "reserved once");

    // Keys are per user: another customer's identical key is theirs.
    let (_, other_user) = new_customer("retry2").await;
    let theirs = place_order(&other_user, &k, Some(&[(id, 1)])).await;
    assert_eq!(theirs.status, StatusCode::CREATED);
    assert_ne!(theirs.body["id"], first.body["id"]);
}

#[tokio::test]
async fn twenty_simultaneous_requests_with_one_key_make_one_order() {
    let admin = admin_token().await;
    let (_, me) = new_customer("burst").await;
    let p = new_product(&admin, "Burst", 100, 50).await;
    let id = p["id"].as_str().unwrap();
    let k = key();
    let lines = [(id, 3)];
    let replies = join_all((0..20).map(|_| place_order(&me, &k, Some(&lines)))).await;
    let ids: std::collections::HashSet<_> = replies.iter().map(|r| r.body["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), 1, "{:?}", replies.iter().map(|r| (r.status, &r.body)).collect::<Vec<_>>());
    assert_eq!(replies.iter().filter(|r| r.status == StatusCode::CREATED).count(), 1);
    assert!(replies.iter().all(|r| r.status.is_success()));
    assert_eq!(stock(id).await, (50, 3, 47));
}

#[tokio::test]
async fn out_of_stock_names_every_short_product_and_reserves_nothing() {
    let admin = admin_token().await;
    let (_, me) = new_customer("short").await;
    let a = new_product(&admin, "Scarce A", 100, 1).await;
    let b = new_product(&admin, "Scarce B", 100, 1).await;
    let c = new_product(&admin, "Plenty", 100, 100).await;
    let (a, b, c) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap(), c["id"].as_str().unwrap());
    let r = place_order(&me, &key(), Some(&[(c, 5), (a, 2), (b, 3)])).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert_eq!(r.error_code(), "out_of_stock");
    let mut short: Vec<_> =
        r.body["error"]["details"]["products"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    short.sort();
    let mut expected = vec![a, b];
    expected.sort();
    assert_eq!(short, expected);
    assert_eq!(stock(c).await, (100, 0, 100), "no partial reservation");
    assert_eq!(stock(a).await, (1, 0, 1));
}

/// A flash-sale product (its stock in buckets) goes through the cart like any other: the cart
/// reads its buckets (`BatchGetItem`, which the cart's role must be granted: IAM is enforced).
#[tokio::test]
async fn a_bucketed_product_goes_through_the_cart_to_an_order() {
    let admin = admin_token().await;
    let (_, me) = new_customer("bucket-cart").await;
    let p = new_product_in_buckets(&admin, "Launch sneaker", 15000, 12, 4).await;
    let id = p["id"].as_str().unwrap();
    let r = call(Method::PUT, &format!("/cart/items/{id}"), Some(&me), Some(json!({"quantity": 2}))).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["total"], json!({"amount": 30000, "currency": "EUR"}));
    let cart = call(Method::GET, "/cart", Some(&me), None).await;
    assert_eq!(cart.body["items"].as_array().unwrap().len(), 1, "{:?}", cart.body);
    let placed = place_order(&me, &key(), None).await;
    assert_eq!(placed.status, StatusCode::CREATED, "{:?}", placed.body);
    assert_eq!(stock(id).await, (12, 2, 10));
}

#[tokio::test]
async fn a_price_change_after_adding_to_cart_is_caught_and_the_cart_updated() {
    let admin = admin_token().await;
    let (_, me) = new_customer("reprice").await;
    let p = new_product(&admin, "Grinder", 9900, 3).await;
    let id = p["id"].as_str().unwrap();
    call(Method::PUT, &format!("/cart/items/{id}"), Some(&me), Some(json!({"quantity": 1}))).await;
    let r = call(
        Method::PUT,
        &format!("/products/{id}"),
        Some(&admin),
        Some(json!({"price": {"amount": 10900, "currency": "EUR"}})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);

    let r = place_order(&me, &key(), None).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.error_code(), "price_changed");
    assert_eq!(stock(id).await, (3, 0, 3));
    let cart = call(Method::GET, "/cart", Some(&me), None).await;
    assert_eq!(cart.body["items"][0]["unit_price"]["amount"], 10900, "the cart shows the new price");
    let r = place_order(&me, &key(), None).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["total"]["amount"], 10900);
}

#[tokio::test]
async fn deleted_products_cannot_be_ordered_but_their_reservations_still_release() {
    let admin = admin_token().await;
    let (_, me) = new_customer("deleted").await;
    let p = new_product(&admin, "Discontinued", 500, 5).await;
    let id = p["id"].as_str().unwrap();
    let order = place_order(&me, &key(), Some(&[(id, 2)])).await;
    assert_eq!(order.status, StatusCode::CREATED);
    call(Method::DELETE, &format!("/products/{id}"), Some(&admin), None).await;

    let r = place_order(&me, &key(), Some(&[(id, 1)])).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error_code(), "product_not_found");
    let oid = order.body["id"].as_str().unwrap();
    let r = call(Method::POST, &format!("/orders/{oid}/cancel"), Some(&me), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(stock(id).await, (5, 0, 5));
}

#[tokio::test]
async fn orders_are_listed_newest_first_across_pages() {
    let admin = admin_token().await;
    let (_, me) = new_customer("history").await;
    let p = new_product(&admin, "Pages", 100, 100).await;
    let id = p["id"].as_str().unwrap();
    let mut placed = Vec::new();
    for _ in 0..5 {
        placed.push(place_order(&me, &key(), Some(&[(id, 1)])).await.body["id"].as_str().unwrap().to_owned());
    }
    placed.reverse();
    let mut seen = Vec::new();
    let mut path = "/orders?limit=2".to_owned();
    loop {
        let r = call(Method::GET, &path, Some(&me), None).await;
        seen.extend(r.body["items"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap().to_owned()));
        match r.body["next_cursor"].as_str() {
            Some(c) => path = format!("/orders?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, placed);
}
