//! Many buyers at once, through the local API Gateway, on a pool of function processes, against
//! DynamoDB Local: real concurrency, no oversell, every unit accounted for.
//!
//! These tests run alone (`.config/nextest.toml`): the sweeper they run expires every overdue order
//! in the table, and the stock figures they assert must not be disturbed by other tests.

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use shop_tests::*;
use std::collections::HashMap;

/// Signs up `n` customers concurrently.
async fn customers(n: usize, tag: &str) -> Vec<String> {
    join_all((0..n).map(|_| new_customer(tag))).await.into_iter().map(|(_, token)| token).collect()
}

#[tokio::test]
async fn two_hundred_buyers_for_twenty_units_get_exactly_twenty_orders() {
    let (id, by_status) = race_for_units("racer", 20, 50, 200).await;
    assert_eq!(by_status.get(&201), Some(&20), "{by_status:?}");
    assert_eq!(by_status.get(&409), Some(&180), "{by_status:?}");
    assert_eq!(stock(&id).await, (20, 20, 0));
    assert_units_conserved(&[&id]).await;
}

#[tokio::test]
async fn overlapping_multi_line_orders_never_reserve_partially() {
    let admin = admin_token().await;
    let mut ids = Vec::new();
    for name in ["Red", "Green", "Blue"] {
        ids.push(new_product(&admin, name, 1000, 10).await["id"].as_str().unwrap().to_owned());
    }
    let buyers = customers(30, "multi").await;
    // Every order takes two of the three products, listed in both orders, so transactions
    // overlap on every product pair.
    let pairs = [(0, 1), (1, 2), (2, 0), (1, 0), (2, 1), (0, 2)];
    let attempts = (0..150).map(|i| {
        let token = buyers[i % buyers.len()].clone();
        let (a, b) = pairs[i % pairs.len()];
        let (a, b) = (ids[a].clone(), ids[b].clone());
        async move {
            let r = place_order(&token, &uuid::Uuid::new_v4().to_string(), Some(&[(&a, 1), (&b, 2)])).await;
            (r, a, b)
        }
    });
    let results = join_all(attempts).await;

    let mut expected: HashMap<&str, i64> = HashMap::new();
    for (r, a, b) in &results {
        match r.status {
            StatusCode::CREATED => {
                *expected.entry(a.as_str()).or_default() += 1;
                *expected.entry(b.as_str()).or_default() += 2;
            }
            StatusCode::CONFLICT => assert_eq!(r.error_code(), "out_of_stock"),
            other => panic!("unexpected {other}: {:?}", r.body),
        }
    }
    assert!(results.iter().any(|(r, ..)| r.status == StatusCode::CREATED));
    let mut sellable: HashMap<&str, i64> = HashMap::new();
    for id in &ids {
        let (available, reserved, left) = stock(id).await;
        assert_eq!(available, 10);
        assert_eq!(reserved, expected.get(id.as_str()).copied().unwrap_or(0), "product {id}");
        sellable.insert(id.as_str(), left);
    }
    // Stock only shrinks during the race, so an order refused as out of stock must still not fit
    // at the end; otherwise it was refused while its units were there.
    for (r, a, b) in results.iter().filter(|(r, ..)| r.status == StatusCode::CONFLICT) {
        let fits = sellable[a.as_str()] >= 1 && sellable[b.as_str()] >= 2;
        assert!(!fits, "refused although 1 × {a} and 2 × {b} are still sellable ({sellable:?}): {:?}", r.body);
    }
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert_units_conserved(&refs).await;
}

#[tokio::test]
async fn cancels_sweeps_and_new_orders_at_once_conserve_every_unit() {
    let admin = admin_token().await;
    let a = new_product(&admin, "Mixed A", 500, 40).await["id"].as_str().unwrap().to_owned();
    let b = new_product(&admin, "Mixed B", 700, 40).await["id"].as_str().unwrap().to_owned();
    let buyers = customers(20, "mixed").await;

    // Round one: 40 orders hold units.
    let first = join_all((0..40).map(|i| {
        let (token, a, b) = (buyers[i % 20].clone(), a.clone(), b.clone());
        async move {
            let r = place_order(&token, &uuid::Uuid::new_v4().to_string(), Some(&[(&a, 1), (&b, 1)])).await;
            (token, r)
        }
    }))
    .await;
    let placed: Vec<(String, String)> = first
        .iter()
        .filter(|(_, r)| r.status == StatusCode::CREATED)
        .map(|(t, r)| (t.clone(), r.body["id"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(placed.len(), 40);

    // Round two, all at once: cancel half, run the sweeper twice as if the deadline had passed,
    // and place 40 more orders.
    let later = time::OffsetDateTime::now_utc() + time::Duration::hours(2);
    let cancels = placed.iter().step_by(2).map(|(token, id)| {
        let (token, path) = (token.clone(), format!("/orders/{id}/cancel"));
        async move {
            let r = call(Method::POST, &path, Some(&token), None).await;
            // Either this cancel won, or the sweeper expired the order first.
            assert!(
                r.status == StatusCode::OK
                    || (r.status == StatusCode::UNPROCESSABLE_ENTITY
                        && r.body["error"]["details"]["state"] == "EXPIRED"),
                "{:?}",
                r.body
            );
        }
    });
    let sweeps = (0..2).map(|_| async move {
        sweep_at(later).await;
    });
    let news = (0..40).map(|i| {
        let (token, a, b) = (buyers[i % 20].clone(), a.clone(), b.clone());
        async move {
            let r = place_order(&token, &uuid::Uuid::new_v4().to_string(), Some(&[(&a, 2), (&b, 1)])).await;
            assert!(r.status == StatusCode::CREATED || r.status == StatusCode::CONFLICT, "{:?}", r.body);
        }
    });
    futures::join!(join_all(cancels), join_all(sweeps), join_all(news));

    assert_units_conserved(&[&a, &b]).await;
    // No order of round one still holds units: each was cancelled or expired, exactly once.
    for (token, id) in &placed {
        let r = call(Method::GET, &format!("/orders/{id}"), Some(token), None).await;
        assert!(["CANCELLED", "EXPIRED"].contains(&r.body["state"].as_str().unwrap()), "{:?}", r.body);
    }
    // A last sweep expires whatever round two left: every unit is back.
    sweep_at(later).await;
    assert_eq!(stock(&a).await, (40, 0, 40));
    assert_eq!(stock(&b).await, (40, 0, 40));
}
