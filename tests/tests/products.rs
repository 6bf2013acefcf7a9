//! The catalog through the API: CRUD as admin, who may write, stock adjustment rules, pagination.

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::json;
use shop_tests::*;
use std::collections::HashSet;

#[tokio::test]
async fn admin_creates_reads_updates_and_deletes_a_product() {
    let admin = admin_token().await;
    let p = new_product(&admin, "Espresso cup", 1299, 10).await;
    let id = p["id"].as_str().unwrap();
    assert_eq!(p["price"], json!({"amount": 1299, "currency": "EUR"}));
    assert_eq!(p["stock"], json!({"available": 10, "reserved": 0, "sellable": 10}));

    let r = call(Method::GET, &format!("/products/{id}"), None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["name"], "Espresso cup");

    let r = call(
        Method::PUT,
        &format!("/products/{id}"),
        Some(&admin),
        Some(json!({"name": "Espresso cup (set of 2)", "price": {"amount": 1999, "currency": "EUR"}, "stock_adjustment": 5})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["name"], "Espresso cup (set of 2)");
    assert_eq!(r.body["price"]["amount"], 1999);
    assert_eq!(r.body["stock"], json!({"available": 15, "reserved": 0, "sellable": 15}));

    let r = call(Method::PUT, &format!("/products/{id}"), Some(&admin), Some(json!({"stock_adjustment": -15}))).await;
    assert_eq!(r.body["stock"], json!({"available": 0, "reserved": 0, "sellable": 0}));

    let r = call(Method::DELETE, &format!("/products/{id}"), Some(&admin), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = call(Method::GET, &format!("/products/{id}"), None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error_code(), "not_found");
    let r = call(Method::DELETE, &format!("/products/{id}"), Some(&admin), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "second delete");
    let r = call(Method::PUT, &format!("/products/{id}"), Some(&admin), Some(json!({"name": "back"}))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "a deleted product cannot be edited");
}

#[tokio::test]
async fn anonymous_and_customer_writes_are_refused_and_change_nothing() {
    let admin = admin_token().await;
    let (_, customer) = new_customer("shopper").await;
    let p = new_product(&admin, "Guarded", 500, 3).await;
    let id = p["id"].as_str().unwrap();
    let body = json!({"name": "Hacked", "price": {"amount": 1, "currency": "EUR"}, "stock": 1000});
    for (token, status) in [(None, StatusCode::UNAUTHORIZED), (Some(customer.as_str()), StatusCode::FORBIDDEN)] {
        let r = call(Method::POST, "/products", token, Some(body.clone())).await;
        assert_eq!(r.status, status);
        let r = call(Method::PUT, &format!("/products/{id}"), token, Some(json!({"stock_adjustment": 100}))).await;
        assert_eq!(r.status, status);
        let r = call(Method::DELETE, &format!("/products/{id}"), token, None).await;
        assert_eq!(r.status, status);
        r.error_code();
    }
    let r = call(Method::GET, &format!("/products/{id}"), None, None).await;
    assert_eq!(r.body, p, "unchanged");
}

#[tokio::test]
async fn stock_cannot_go_below_zero_and_concurrent_adjustments_all_count() {
    let admin = admin_token().await;
    let p = new_product(&admin, "Adjustable", 700, 5).await;
    let path = format!("/products/{}", p["id"].as_str().unwrap());

    let r = call(Method::PUT, &path, Some(&admin), Some(json!({"stock_adjustment": -6}))).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.error_code(), "insufficient_stock");
    assert_eq!(r.body["error"]["details"]["sellable"], 5);

    // 20 admins' +3 and 10 of -1 at once: the counters are updated in place, never overwritten.
    let adds = (0..20).map(|_| call(Method::PUT, &path, Some(&admin), Some(json!({"stock_adjustment": 3}))));
    let removes = (0..10).map(|_| call(Method::PUT, &path, Some(&admin), Some(json!({"stock_adjustment": -1}))));
    let replies = join_all(adds.chain(removes)).await;
    assert!(replies.iter().all(|r| r.status == StatusCode::OK));
    let r = call(Method::GET, &path, None, None).await;
    assert_eq!(r.body["stock"], json!({"available": 55, "reserved": 0, "sellable": 55}));
}

#[tokio::test]
async fn pagination_walks_every_product_exactly_once() {
    let admin = admin_token().await;
    let created: HashSet<String> =
        join_all(
            (0..23).map(|i| {
                let admin = admin.clone();
                async move {
                    new_product(&admin, &format!("Paged {i}"), 100 + i, 1).await["id"].as_str().unwrap().to_owned()
                }
            }),
        )
        .await
        .into_iter()
        .collect();

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/products?limit=7&cursor={c}"),
            None => "/products?limit=7".to_owned(),
        };
        let r = call(Method::GET, &path, None, None).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let items = r.body["items"].as_array().unwrap();
        assert!(items.len() <= 7);
        seen.extend(items.iter().map(|p| p["id"].as_str().unwrap().to_owned()));
        pages += 1;
        assert!(pages < 10_000, "pagination does not end");
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let unique: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "a product appeared twice");
    assert!(created.is_subset(&unique), "missing: {:?}", created.difference(&unique).collect::<Vec<_>>());
}

#[tokio::test]
async fn deleted_products_leave_the_listing() {
    let admin = admin_token().await;
    let p = new_product(&admin, "Soon gone", 100, 1).await;
    let id = p["id"].as_str().unwrap();
    call(Method::DELETE, &format!("/products/{id}"), Some(&admin), None).await;
    let mut cursor = String::new();
    loop {
        let r = call(Method::GET, &format!("/products?limit=100{cursor}"), None, None).await;
        assert!(r.body["items"].as_array().unwrap().iter().all(|p| p["id"] != id));
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
}
