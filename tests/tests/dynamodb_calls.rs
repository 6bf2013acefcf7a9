//! What one request costs in DynamoDB round trips, counted by the local stack's DynamoDB proxy.
//!
//! On Lambda, latency and cost follow the number of round trips, so the happy path of
//! `POST /orders` is pinned here: one read (the products, or the cart) and one transaction place
//! the order; after the commit, once the `order.placed` event is on Kafka, one `UpdateItem` marks
//! it published (DESIGN §6) — the only other call.
//! The proxy counts per calling function, and these tests read place-order's counts only: the
//! notifier may meanwhile be claiming the set-up's welcome e-mails. The counters are still global
//! to the stack, so these tests run alone (.config/nextest.toml), resetting after their set-up.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shop_tests::*;

fn count(stats: &Value, operation: &str) -> u64 {
    stats[operation].as_u64().unwrap_or(0)
}

/// Two products with stock and a signed-in customer: `(product a, product b, customer token)`.
async fn set_up(tag: &str) -> (String, String, String) {
    let admin = admin_token().await;
    let a = new_product(&admin, &format!("{tag} A"), 1200, 10).await["id"].as_str().unwrap().to_owned();
    let b = new_product(&admin, &format!("{tag} B"), 800, 10).await["id"].as_str().unwrap().to_owned();
    let (_, me) = new_customer(tag).await;
    (a, b, me)
}

#[tokio::test]
async fn an_order_with_lines_is_one_batch_read_and_one_transaction() {
    let (a, b, me) = set_up("calls-lines").await;

    reset_dynamodb_stats().await;
    let r = place_order(&me, &uuid::Uuid::new_v4().to_string(), Some(&[(&a, 1), (&b, 2)])).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    // Only place-order's calls: the notifier may be claiming earlier e-mails meanwhile.
    let stats = dynamodb_stats().await["by_function"]["PlaceOrderFunction"].clone();

    assert_eq!(count(&stats, "BatchGetItem"), 1, "{stats}");
    assert_eq!(count(&stats, "TransactWriteItems"), 1, "{stats}");
    assert_published_mark_only(&stats);
}

#[tokio::test]
async fn an_order_from_the_cart_is_one_query_and_one_transaction() {
    let (a, b, me) = set_up("calls-cart").await;
    for (id, quantity) in [(&a, 1), (&b, 3)] {
        let r = call(Method::PUT, &format!("/cart/items/{id}"), Some(&me), Some(json!({ "quantity": quantity }))).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }

    reset_dynamodb_stats().await;
    let r = place_order(&me, &uuid::Uuid::new_v4().to_string(), None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    // Only place-order's calls: the notifier may be claiming earlier e-mails meanwhile.
    let stats = dynamodb_stats().await["by_function"]["PlaceOrderFunction"].clone();

    assert_eq!(count(&stats, "Query"), 1, "{stats}");
    assert_eq!(count(&stats, "TransactWriteItems"), 1, "{stats}");
    assert_published_mark_only(&stats);
}

/// Besides the read and the transaction, the only call is marking the `order.placed` event
/// published, and only when Kafka acknowledged it within the publish timeout (otherwise the
/// sweeper's relay publishes it later), which an instance thawed on a busy machine can miss.
fn assert_published_mark_only(stats: &Value) {
    let marked = count(stats, "UpdateItem");
    assert!(marked <= 1, "at most the outbox event marked published: {stats}");
    assert_eq!(count(stats, "total"), 2 + marked, "{stats}");
}
