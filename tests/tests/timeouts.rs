//! Functions that stand still: slow, or past their `Timeout`, ended as Lambda ends them.
//!
//! The local Runtime API's stall switch stops the next invocation's process (SIGSTOP) early or as
//! it answers, holding the answer; past the function's `Timeout` (10 s for the API functions) the
//! timeout kills the instance and fails the invocation (`Sandbox.Timedout`), which API Gateway
//! answers with a 500. What the function committed before it stood still stays committed: a
//! client that retries with the same `Idempotency-Key` must get that order, not a second one.
//! The switch takes the function's *next* invocation, whoever makes it: these tests run alone
//! (.config/nextest.toml).

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use shop_tests::mail::{function_stats, stall_next_invocation};
use shop_tests::*;

#[tokio::test]
async fn an_order_whose_answer_the_timeout_took_is_placed_once_and_the_retry_gets_it() {
    let admin = admin_token().await;
    let product = new_product(&admin, "timeout", 500, 5).await;
    let id = product["id"].as_str().unwrap();
    let (_, me) = new_customer("timeout").await;
    let key = uuid::Uuid::new_v4().to_string();
    let lines = [(id, 2)];
    let before = function_stats("PlaceOrderFunction").await;

    // Standing still from its answer on, for longer than its 10 s Timeout.
    stall_next_invocation("PlaceOrderFunction", 60_000, 25_000).await;
    let lost = place_order(&me, &key, Some(&lines)).await;
    assert_eq!(lost.status, StatusCode::INTERNAL_SERVER_ERROR, "the timed-out invocation fails: {:?}", lost.body);
    assert_eq!(stock(id).await, (5, 2, 3), "the order was committed before the timeout");

    let again = place_order(&me, &key, Some(&lines)).await;
    assert_eq!(again.status, StatusCode::OK, "the retry gets the order the lost answer carried: {:?}", again.body);
    assert_eq!(stock(id).await, (5, 2, 3), "and reserves nothing more");
    let orders = call(Method::GET, "/orders", Some(&me), None).await;
    let listed: Vec<&Value> = orders.body["items"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
    assert_eq!(listed.len(), 1, "one order: {:?}", orders.body);
    assert_eq!(listed[0]["id"], again.body["id"]);

    let after = function_stats("PlaceOrderFunction").await;
    let timeouts = |s: &Value| s["timeouts"].as_u64().unwrap_or(0);
    assert_eq!(timeouts(&after), timeouts(&before) + 1, "the timeout ended the invocation: {after}");
    assert_eq!(after["unexpected_exits"], before["unexpected_exits"], "and nothing else did: {after}");
}

#[tokio::test]
async fn a_function_standing_still_for_a_while_answers_late_and_whole() {
    let admin = admin_token().await;
    let product = new_product(&admin, "slow", 700, 3).await;
    let id = product["id"].as_str().unwrap();
    let before = function_stats("ProductsFunction").await;

    stall_next_invocation("ProductsFunction", 1, 1_500).await;
    let started = Instant::now();
    let r = call(Method::GET, &format!("/products/{id}"), None, None).await;
    assert!(started.elapsed() >= Duration::from_millis(1_500), "the answer waited for the stall");
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["id"], id);
    assert_eq!(r.body["stock"]["available"], 3);

    let after = function_stats("ProductsFunction").await;
    assert_eq!(after["timeouts"], before["timeouts"], "a stall inside the Timeout is no timeout: {after}");
}

/// `PUT /products/{id}` with an `Idempotency-Key`.
async fn put_product(admin: &str, id: &str, key: &str, body: &Value) -> Reply {
    let url = format!("{}/products/{id}", stack().api);
    let r = client().put(url).bearer_auth(admin).header("idempotency-key", key).json(body).send().await;
    into_reply(r.expect("request to the local API")).await
}

#[tokio::test]
async fn a_restock_whose_answer_the_timeout_took_is_applied_once_when_retried_with_its_key() {
    let admin = admin_token().await;
    let product = new_product(&admin, "restock-timeout", 900, 10).await;
    let id = product["id"].as_str().unwrap();
    let key = uuid::Uuid::new_v4().to_string();
    let restock = serde_json::json!({ "stock_adjustment": 5 });

    stall_next_invocation("ProductsFunction", 60_000, 25_000).await;
    let lost = put_product(&admin, id, &key, &restock).await;
    assert_eq!(lost.status, StatusCode::INTERNAL_SERVER_ERROR, "the timed-out invocation fails: {:?}", lost.body);
    assert_eq!(stock(id).await, (15, 0, 15), "the restock was committed before the timeout");

    let again = put_product(&admin, id, &key, &restock).await;
    assert_eq!(again.status, StatusCode::OK, "{:?}", again.body);
    assert_eq!(again.body["stock"]["available"], 15, "the retry answers the product as it is: {:?}", again.body);
    assert_eq!(stock(id).await, (15, 0, 15), "and adds nothing");

    let other = put_product(&admin, id, &key, &serde_json::json!({ "stock_adjustment": 7 })).await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", other.body);
    assert_eq!(other.error_code(), "idempotency_key_reused");
    let bad = put_product(&admin, id, "a key with spaces", &restock).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{:?}", bad.body);
    assert_eq!(bad.error_code(), "invalid_idempotency_key");
    assert_eq!(stock(id).await, (15, 0, 15), "neither changed anything");

    // A new key is a new restock, in buckets too.
    let rebucket =
        put_product(&admin, id, &uuid::Uuid::new_v4().to_string(), &serde_json::json!({ "stock_buckets": 4 })).await;
    assert_eq!(rebucket.status, StatusCode::OK, "{:?}", rebucket.body);
    let more = uuid::Uuid::new_v4().to_string();
    for _ in 0..2 {
        let r = put_product(&admin, id, &more, &restock).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
    assert_eq!(stock(id).await, (20, 0, 20), "a bucketed product's restock, sent twice with one key, applies once");
    assert_units_conserved(&[id]).await;
}
