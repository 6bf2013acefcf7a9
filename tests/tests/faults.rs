//! The order race again, with DynamoDB misbehaving as it does under load.
//!
//! DynamoDB Local serialises transactions and never answers `TransactionConflict`; the local
//! stack's DynamoDB proxy makes 30% of the functions' `TransactWriteItems` answer exactly what
//! DynamoDB answers then. The shared code retries those with jittered backoff (7 attempts), so
//! the outcome must be the same as without faults: exactly as many orders as units, no oversell.
//! An order unlucky enough to conflict 7 times in a row (0.3^7: about one run in 25 has one)
//! gets 503 `unavailable`, which the buyers retry with the same Idempotency-Key as a real
//! client would; that must not change the outcome either.
//! The fault switch is global to the stack: this test runs alone (.config/nextest.toml).

use serde_json::json;
use shop_tests::*;

#[tokio::test]
async fn two_hundred_buyers_for_twenty_units_with_30_percent_transaction_conflicts() {
    // Faults only during the race: the set-up's sign-ups are transactions too.
    let race = Race::set_up("conflicted", 20, 50).await;
    let id = race.product.as_str();
    let faults = inject_dynamodb_faults(json!({ "transaction_conflict_rate": 0.3 })).await;
    reset_dynamodb_stats().await;

    let by_status = race.run(200).await;
    drop(faults);

    let stats = dynamodb_stats().await;
    assert_eq!(by_status.get(&201), Some(&20), "{by_status:?} (DynamoDB calls: {stats})");
    assert_eq!(by_status.get(&409), Some(&180), "{by_status:?} (DynamoDB calls: {stats})");
    assert_eq!(stock(id).await, (20, 20, 0));
    assert_units_conserved(&[id]).await;
    let injected = stats["injected_conflicts"].as_u64().unwrap_or(0);
    assert!(injected > 0, "no conflict was injected: {stats}");
    eprintln!("DynamoDB calls during the race: {stats}");
}
