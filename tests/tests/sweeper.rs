//! The sweeper never stalls: one overdue order it cannot expire (its item does not decode, or its
//! release is refused because the stock says its units are not reserved) is counted and logged,
//! the other overdue orders are expired, and the outbox redrive after them still runs.
//!
//! Exclusive (see `.config/nextest.toml`): the sweep "an hour from now" expires every order of
//! the stack that is pending.

use aws_sdk_dynamodb::types::AttributeValue;
use reqwest::StatusCode;
use shop_tests::*;

#[tokio::test]
async fn one_bad_order_never_stops_the_sweep_nor_the_redrive() {
    let admin = admin_token().await;
    let product = new_product(&admin, "sweep", 1000, 5).await["id"].as_str().unwrap().to_owned();
    let (_, token) = new_customer("sweep").await;
    let r = place_order(&token, &uuid::Uuid::new_v4().to_string(), Some(&[(&product, 1)])).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let good = r.body["id"].as_str().unwrap().to_owned();

    // Two overdue orders that sort first in the sweeper's index: one that is not an order at all,
    // and a copy of the good one that claims 99 units the product never reserved.
    let db = dynamodb().await;
    let (garbage, refused) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let early = |id: uuid::Uuid| AttributeValue::S(format!("{:015}#{id}", 1));
    db.put_item()
        .table_name(&stack().table)
        .item("pk", AttributeValue::S(format!("ORDER#{garbage}")))
        .item("sk", AttributeValue::S("ORDER".into()))
        .item("gsi2pk", AttributeValue::S("PENDING".into()))
        .item("gsi2sk", early(garbage))
        .item("state", AttributeValue::S("PENDING_PAYMENT".into()))
        .send()
        .await
        .unwrap();
    let mut copy = get_item(&format!("ORDER#{good}"), "ORDER").await.unwrap();
    copy.insert("pk".into(), AttributeValue::S(format!("ORDER#{refused}")));
    copy.insert("id".into(), AttributeValue::S(refused.to_string()));
    copy.insert("gsi1sk".into(), AttributeValue::S(refused.to_string()));
    copy.insert("gsi2sk".into(), early(refused));
    let mut line = copy["lines"].as_l().unwrap()[0].as_m().unwrap().clone();
    line.insert("quantity".into(), AttributeValue::N("99".into()));
    copy.insert("lines".into(), AttributeValue::L(vec![AttributeValue::M(line)]));
    db.put_item().table_name(&stack().table).set_item(Some(copy)).send().await.unwrap();

    let report = sweep_at(time::OffsetDateTime::now_utc() + time::Duration::hours(1)).await;
    for id in [garbage, refused] {
        db.delete_item()
            .table_name(&stack().table)
            .key("pk", AttributeValue::S(format!("ORDER#{id}")))
            .key("sk", AttributeValue::S("ORDER".into()))
            .send()
            .await
            .unwrap();
    }
    assert!(report["failed"].as_u64().unwrap() >= 2, "both bad orders counted: {report}");
    assert!(report["expired"].as_u64().unwrap() >= 1, "{report}");
    assert!(report["outbox"].is_object(), "the redrive ran: {report}");
    let r = call(reqwest::Method::GET, &format!("/orders/{good}"), Some(&token), None).await;
    assert_eq!(r.body["state"], "EXPIRED", "the good order behind them was expired");
    assert_eq!(stock(&product).await, (5, 0, 5));
}
