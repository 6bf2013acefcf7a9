//! Flash sales: a hot product whose stock is spread over stock buckets (`domain::buckets`), raced
//! by many buyers through the local API Gateway, and DynamoDB's per-partition write limit taught
//! to the local stack (the proxy's partition budget, `local/src/emulators/dynamodb_proxy.rs`).
//!
//! What must hold whatever the buckets do: exactly as many orders as units, never a false
//! `out_of_stock` while units are left anywhere, and per bucket `0 <= reserved <= available`
//! with the units live orders hold there equal to its `reserved_stock`.
//! These tests run the sweeper and switch the stack's fault injection: they run alone
//! (.config/nextest.toml).

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::json;
use shop_tests::payments::{deliver_webhooks_at, order_state, pay};
use shop_tests::*;
use std::collections::HashMap;

fn later(minutes: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::minutes(minutes)
}

#[tokio::test]
async fn five_hundred_buyers_for_fifty_units_over_sixteen_buckets_get_exactly_fifty_orders() {
    let race = Race::set_up_in_buckets("flash", 50, 50, 16).await;
    let id = race.product.as_str();
    let spread = bucket_stocks(id).await;
    assert_eq!(spread.len(), 16);
    assert!(spread.iter().all(|(_, (a, _, _))| *a == 3 || *a == 4), "50 units spread evenly: {spread:?}");

    let by_status = race.run(500).await;
    assert_eq!(by_status.get(&201), Some(&50), "{by_status:?}");
    assert_eq!(by_status.get(&409), Some(&450), "{by_status:?}");
    assert_eq!(stock(id).await, (50, 50, 0));
    assert_units_conserved(&[id]).await;
}

#[tokio::test]
async fn units_left_in_other_buckets_are_never_refused_and_a_line_may_split() {
    let admin = admin_token().await;
    // 3 units over 16 buckets: 13 buckets are empty, so most first picks miss.
    let product = new_product_in_buckets(&admin, "scattered", 990, 3, 16).await;
    let id = product["id"].as_str().unwrap();
    assert_eq!(product["stock"], json!({"available": 3, "reserved": 0, "sellable": 3}));
    let (_, buyer) = new_customer("scattered").await;

    // 2 units: no bucket holds both, so the line splits over two.
    let r = place_order(&buyer, &uuid::Uuid::new_v4().to_string(), Some(&[(id, 2)])).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let order = get_item(&format!("ORDER#{}", r.body["id"].as_str().unwrap()), "ORDER").await.unwrap();
    let shares = order["lines"].as_l().unwrap()[0].as_m().unwrap()["buckets"].as_l().unwrap().len();
    assert_eq!(shares, 2, "{order:?}");
    // The last unit, wherever it is.
    let r = place_order(&buyer, &uuid::Uuid::new_v4().to_string(), Some(&[(id, 1)])).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = place_order(&buyer, &uuid::Uuid::new_v4().to_string(), Some(&[(id, 1)])).await;
    assert_eq!((r.status, r.error_code()), (StatusCode::CONFLICT, "out_of_stock"), "{:?}", r.body);
    assert_eq!(stock(id).await, (3, 3, 0));
    assert_units_conserved(&[id]).await;

    // Reads show the totals.
    let r = call(Method::GET, &format!("/products/{id}"), None, None).await;
    assert_eq!(r.body["stock"], json!({"available": 3, "reserved": 3, "sellable": 0}));
    assert_eq!(r.body["stock_buckets"], 16);
}

#[tokio::test]
async fn going_from_one_bucket_to_sixteen_during_a_race_loses_nothing() {
    let race = Race::set_up("rebucket", 50, 50).await;
    let id = race.product.clone();
    let admin = admin_token().await;
    let rebucket = async {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        // The admin retries a 503 ("stock kept changing") like any client.
        for n in [16, 4, 16] {
            loop {
                let r = call(Method::PUT, &format!("/products/{id}"), Some(&admin), Some(json!({"stock_buckets": n})))
                    .await;
                if r.status == StatusCode::OK {
                    assert_eq!(r.body["stock_buckets"], n);
                    break;
                }
                assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.body);
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    };
    let (by_status, ()) = futures::join!(race.run(300), rebucket);
    assert_eq!(by_status.get(&201), Some(&50), "{by_status:?}");
    assert_eq!(by_status.get(&409), Some(&250), "{by_status:?}");
    assert_eq!(stock(&id).await, (50, 50, 0));
    assert_eq!(bucket_stocks(&id).await.len(), 16, "buckets stay once made");
    assert_units_conserved(&[&id]).await;

    // Everything expires: every unit is back, in the 16 buckets' totals.
    sweep_at(later(16)).await;
    assert_eq!(stock(&id).await, (50, 0, 50));
    assert_units_conserved(&[&id]).await;
}

#[tokio::test]
async fn cancels_payments_declines_expiry_and_late_payments_over_buckets_conserve_every_unit() {
    let admin = admin_token().await;
    let product = new_product_in_buckets(&admin, "busy buckets", 1250, 60, 8).await;
    let id = product["id"].as_str().unwrap().to_owned();
    let buyers: Vec<String> =
        join_all((0..30).map(|_| new_customer("busy"))).await.into_iter().map(|(_, token)| token).collect();
    let placed: Vec<(String, String)> = join_all(buyers.iter().map(|token| {
        let id = id.clone();
        async move {
            // Sold out to the last unit by 30 buyers at once: a buyer may get a 503 ("the buckets
            // kept changing") and retries it like any client.
            let r = place_order_retrying(token, &uuid::Uuid::new_v4().to_string(), Some(&[(&id, 2)])).await;
            assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
            (token.clone(), r.body["id"].as_str().unwrap().to_owned())
        }
    }))
    .await;
    assert_eq!(stock(&id).await, (60, 60, 0));

    // All at once: cancel 6, pay 6, decline 6, pay 6 late (after expiry), leave 6 to expire; new
    // buyers try for whatever comes free; the sweeper runs as if the deadline had passed.
    let settle = placed.iter().enumerate().map(|(i, (token, order))| async move {
        let token_kind = match i % 5 {
            0 => None,
            1 => Some("tok_success"),
            2 => Some("tok_fail"),
            3 => Some("tok_late"),
            _ => return,
        };
        match token_kind {
            None => {
                let r = call(Method::POST, &format!("/orders/{order}/cancel"), Some(token), None).await;
                assert!(r.status == StatusCode::OK || r.status == StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
            }
            Some(kind) => {
                let r = pay(token, json!({"order_id": order, "token": kind})).await;
                assert!(r.status.is_success() || r.status == StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
            }
        }
    });
    let newcomers = (0..30).map(|i| {
        let (token, id) = (buyers[i].clone(), id.clone());
        async move {
            let r = place_order_retrying(&token, &uuid::Uuid::new_v4().to_string(), Some(&[(&id, 1)])).await;
            assert!(r.status == StatusCode::CREATED || r.error_code() == "out_of_stock", "{:?}", r.body);
        }
    });
    let sweeps = (0..2).map(|_| sweep_at(later(16)));
    futures::join!(join_all(settle), join_all(newcomers), join_all(sweeps));
    assert_units_conserved(&[&id]).await;

    // The late payments arrive; then everything left expires.
    deliver_webhooks_at(later(21)).await;
    sweep_at(later(40)).await;
    assert_units_conserved(&[&id]).await;

    let mut states: HashMap<String, usize> = HashMap::new();
    for (token, order) in &placed {
        *states.entry(order_state(token, order).await).or_default() += 1;
    }
    let paid_units: i64 = all_orders()
        .await
        .iter()
        .filter(|(state, _)| state == "PAID")
        .flat_map(|(_, lines)| lines.iter())
        .filter(|(p, _)| *p == id)
        .map(|(_, q)| q)
        .sum();
    assert!(states.get("PAID").copied().unwrap_or(0) >= 6, "{states:?}");
    assert!(states.get("PAYMENT_FAILED").copied().unwrap_or(0) >= 1, "{states:?}");
    // Every unit is either sold (a paid order took it, in its buckets) or back on sale.
    assert_eq!(stock(&id).await, (60 - paid_units, 0, 60 - paid_units), "{states:?}");
}

#[tokio::test]
async fn a_hot_product_over_its_partition_limit_is_throttled_never_oversold() {
    // AWS's 1,000 write units/s per partition at 1/100: 10 units/s, 5 transactional writes of
    // one product item per second (after a burst of one second's worth).
    let race = Race::set_up("throttled", 20, 50).await;
    let id = race.product.as_str();
    let faults =
        inject_dynamodb_faults(json!({ "partition_write_units_per_second": 1000, "capacity_scale": 0.01 })).await;
    reset_dynamodb_stats().await;
    let results = join_all((0..60).map(|i| {
        let token = race_token(&race, i);
        async move { place_order(&token, &uuid::Uuid::new_v4().to_string(), Some(&[(id, 1)])).await }
    }))
    .await;
    let stats = dynamodb_stats().await;
    drop(faults);

    let mut by_status: HashMap<u16, usize> = HashMap::new();
    for r in &results {
        *by_status.entry(r.status.as_u16()).or_default() += 1;
        match r.status {
            StatusCode::CREATED => {}
            StatusCode::CONFLICT => assert_eq!(r.error_code(), "out_of_stock"),
            StatusCode::SERVICE_UNAVAILABLE => assert_eq!(r.error_code(), "unavailable"),
            other => panic!("unexpected {other}: {:?}", r.body),
        }
    }
    assert!(stats["partition_throttles"].as_u64().unwrap_or(0) > 0, "nothing was throttled: {stats}");
    let created = by_status.get(&201).copied().unwrap_or(0);
    assert!(by_status.get(&503).copied().unwrap_or(0) > 0, "{by_status:?}: the limit must show ({stats})");
    assert!(created <= 20, "{by_status:?}");
    let (available, reserved, sellable) = stock(id).await;
    assert_eq!((available, reserved, sellable), (20, created as i64, 20 - created as i64));
    assert_units_conserved(&[id]).await;
}

/// One of the race's buyers' tokens (the race keeps them private to its own runs).
fn race_token(race: &Race, i: usize) -> String {
    race.buyer(i).to_owned()
}
