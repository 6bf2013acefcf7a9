//! DynamoDB's index partitions, taught to the local stack: the proxy limits the writes of each
//! partition key of the table's global secondary indexes as it limits the table's
//! (`local/src/emulators/dynamodb_proxy/index_partitions.rs`, docs/capacity.md), and when an
//! index partition is short DynamoDB throttles the *base-table* write.
//!
//! The shared keys here are one customer's: the `ORDERS#<user>` partition of `gsi1`, which every
//! order they place enters whatever the product (1 unit each), and their profile item, which every
//! order's transaction checks (`auth::session`: a `ConditionCheck`, 2 units, so it is the tighter
//! of the two). Many orders of one customer at once are throttled although every product has a
//! partition of its own. What must hold: the throttled orders are `503 unavailable` with nothing
//! reserved, the others reserved exactly once, and the index partition is charged for each.
//! These tests switch the stack's fault injection and read its counters: they run alone
//! (.config/nextest.toml).

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::json;
use shop_tests::*;

#[tokio::test]
async fn orders_of_one_customer_at_once_are_throttled_by_their_own_partitions() {
    let admin = admin_token().await;
    let mut products = Vec::new();
    for i in 0..30 {
        let p = new_product(&admin, &format!("Index partition product {i}"), 990, 3).await;
        products.push(p["id"].as_str().expect("product id").to_owned());
    }
    let (_, token) = new_customer("index-partition").await;

    // AWS's 1,000 write units/s per partition at 1/200: 5 units/s. Each order costs its product's
    // partition 2 units (one transactional write), its customer's profile 2 (the session check)
    // and its customer's ORDERS# index partition 1.
    let faults =
        inject_dynamodb_faults(json!({ "partition_write_units_per_second": 1000, "capacity_scale": 0.005 })).await;
    reset_dynamodb_stats().await;
    let results = join_all(products.iter().map(|id| {
        let token = token.clone();
        async move { place_order(&token, &uuid::Uuid::new_v4().to_string(), Some(&[(id.as_str(), 1)])).await }
    }))
    .await;
    let stats = dynamodb_stats().await;
    drop(faults);

    let mut created = 0;
    let mut unavailable = 0;
    for (r, id) in results.iter().zip(&products) {
        match r.status {
            StatusCode::CREATED => created += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(r.error_code(), "unavailable");
                unavailable += 1;
            }
            other => panic!("unexpected {other}: {:?}", r.body),
        }
        let reserved = i64::from(r.status == StatusCode::CREATED);
        assert_eq!(stock(id).await, (3, reserved, 3 - reserved), "product {id}: {}", r.status);
    }
    assert!(created > 0, "the index partition takes some orders: {stats}");
    assert!(unavailable > 0, "30 orders at once exceed 5 units/s: {stats}");
    assert!(stats["partition_throttles"].as_u64().unwrap_or(0) > 0, "{stats}");
    let gsi1 = &stats["index_partitions"][format!("{}/gsi1", stack().table)];
    let orders_key = gsi1
        .as_object()
        .and_then(|keys| keys.iter().find(|(k, _)| k.starts_with("ORDERS#")))
        .unwrap_or_else(|| panic!("no ORDERS# partition counted: {stats}"));
    // Spent: one unit per order placed (an order item is under 1 KB).
    assert_eq!(orders_key.1["write_units"].as_f64(), Some(f64::from(created)), "{stats}");
    let ids: Vec<&str> = products.iter().map(String::as_str).collect();
    assert_units_conserved(&ids).await;
}
