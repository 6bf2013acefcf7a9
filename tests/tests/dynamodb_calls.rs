//! What one request costs in DynamoDB round trips, counted by the local stack's DynamoDB proxy.
//!
//! On Lambda, latency and cost follow the number of round trips, so the happy paths are pinned
//! here exactly: `POST /orders` is one read (the products, or the cart) and one transaction, which
//! also writes the `order.placed` event to the outbox; a signed webhook that pays an order is one
//! read of the order and one transaction. API functions never publish or mark events themselves:
//! the table's stream carries them to the outbox relay (see docs/events.md), whose calls are its own.
//! The proxy counts per calling function, and these tests read the function under test only: the
//! relay and the notifier may meanwhile be working on the set-up's events. The counters are still
//! global to the stack, so these tests run alone (.config/nextest.toml), resetting after their set-up.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shop_tests::payments::{now, pending_order, post_webhook, signature, webhook_body};
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
    assert_eq!(count(&stats, "total"), 2, "nothing else: {stats}");
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
    assert_eq!(count(&stats, "total"), 2, "nothing else: {stats}");
}

#[tokio::test]
async fn a_webhook_that_pays_an_order_is_one_read_and_one_transaction() {
    let order = pending_order("calls-webhook", 5, 2).await;
    let body = webhook_body(&format!("evt_{}", uuid::Uuid::new_v4().simple()), &order.order, order.total, true);

    reset_dynamodb_stats().await;
    let r = post_webhook(&body, Some(&signature(&body, now()))).await;
    assert_eq!((r.status, r.body["result"].as_str()), (StatusCode::OK, Some("paid")), "{:?}", r.body);
    let stats = dynamodb_stats().await["by_function"]["PaymentWebhookFunction"].clone();

    assert_eq!(count(&stats, "GetItem"), 1, "{stats}");
    assert_eq!(count(&stats, "TransactWriteItems"), 1, "{stats}");
    assert_eq!(count(&stats, "total"), 2, "nothing else: {stats}");
}
