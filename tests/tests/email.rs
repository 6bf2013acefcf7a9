//! Events to e-mail, end to end: the real functions publish to the real broker (tansu), the MSK
//! trigger invokes the real notifier, which sends through the SES emulator (moto); every
//! assertion reads the mail moto accepted. "Exactly once" means: the expected number arrives, and
//! a few seconds later there is still no other.
//!
//! Exclusive (see `.config/nextest.toml`): these tests take Kafka and SES down for everyone, and
//! the sweeper they run expires every overdue order and republishes every pending event.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shop_tests::mail::*;
use shop_tests::payments::{deliver_webhooks_at, order_state, pay, pending_order};
use shop_tests::*;
use std::time::Duration;

async fn order_of(token: &str, product: &str, quantity: u32) -> Value {
    let r = place_order(token, &uuid::Uuid::new_v4().to_string(), Some(&[(product, quantity)])).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body
}

#[tokio::test]
async fn signup_sends_exactly_one_welcome_email() {
    let (email, _) = new_customer("welcome").await;
    let mail = expect_mail(&email, 1).await;
    assert_eq!(mail[0].subject, "Welcome to the shop");
    assert_eq!(mail[0].from, "no-reply@shop.example.com");
    assert!(mail[0].body.contains(&email), "{}", mail[0].body);
}

#[tokio::test]
async fn placed_cancelled_and_expired_orders_each_send_their_email_once() {
    let admin = admin_token().await;
    let product = new_product(&admin, "Teapot", 1299, 10).await;
    let id = product["id"].as_str().unwrap();
    let (email, token) = new_customer("orders-mail").await;

    let cancelled = order_of(&token, id, 2).await;
    let r =
        call(Method::POST, &format!("/orders/{}/cancel", cancelled["id"].as_str().unwrap()), Some(&token), None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let expired = order_of(&token, id, 1).await;
    // The sweeper "an hour later": the second order is past its reservation deadline.
    sweep_at(time::OffsetDateTime::now_utc() + time::Duration::hours(1)).await;

    let mail = expect_mail(&email, 5).await;
    let with = |subject: &str, order: &Value| {
        let order_id = order["id"].as_str().unwrap();
        mail.iter().filter(|m| m.subject == subject && m.body.contains(order_id)).count()
    };
    assert_eq!(with("Welcome to the shop", &json!({"id": ""})), 1);
    assert_eq!(with("We received your order", &cancelled), 1);
    assert_eq!(with("Your order was cancelled", &cancelled), 1);
    assert_eq!(with("We received your order", &expired), 1);
    assert_eq!(with("Your order expired", &expired), 1);
    let placed = mail.iter().find(|m| m.subject == "We received your order" && m.body.contains("25.98 EUR"));
    assert!(placed.is_some_and(|m| m.body.contains("UTC")), "order placed mail shows amount and deadline");
}

/// The payment outcomes are published by `payments` and `payment-webhook` themselves, right after
/// the settle transaction: no sweeper runs after the payments here, so nothing could relay them.
#[tokio::test]
async fn paid_failed_and_refund_required_orders_each_send_their_email_once() {
    let later = |minutes| time::OffsetDateTime::now_utc() + time::Duration::minutes(minutes);
    // Taken late, after the order expired and its units sold to someone else: a refund is due.
    let refund = pending_order("mail-refund", 2, 2).await;
    let r = pay(&refund.token, json!({"order_id": refund.order, "token": "tok_late"})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    sweep_at(later(16)).await;
    let (_, rival) = new_customer("mail-rival").await;
    let r = place_order(&rival, &uuid::Uuid::new_v4().to_string(), Some(&[(&refund.product, 2)])).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);

    let paid = pending_order("mail-paid", 10, 3).await;
    let r = pay(&paid.token, json!({"order_id": paid.order, "token": "tok_success"})).await;
    assert_eq!(r.body["state"], "PAID", "{:?}", r.body);
    let failed = pending_order("mail-failed", 10, 1).await;
    let r = pay(&failed.token, json!({"order_id": failed.order, "token": "tok_fail"})).await;
    assert_eq!(r.body["state"], "PAYMENT_FAILED", "{:?}", r.body);
    deliver_webhooks_at(later(21)).await;
    assert_eq!(order_state(&refund.token, &refund.order).await, "REFUND_REQUIRED");

    // Welcome + placed + the outcome (+ expired, for the refund).
    for (order, count, subject, amount) in [
        (&paid, 3, "Payment received: your receipt", "37.50 EUR"),
        (&failed, 3, "Your payment did not go through", "12.50 EUR"),
        (&refund, 4, "A refund is on its way", "25.00 EUR"),
    ] {
        let mail = expect_mail(&order.email, count).await;
        let outcome: Vec<_> = mail.iter().filter(|m| m.subject == subject).collect();
        assert_eq!(outcome.len(), 1, "{subject}: {mail:?}");
        assert!(outcome[0].body.contains(&order.order) && outcome[0].body.contains(amount), "{}", outcome[0].body);
    }
}

#[tokio::test]
async fn a_kafka_outage_delays_email_but_loses_and_duplicates_nothing() {
    let admin = admin_token().await;
    let product = new_product(&admin, "Kettle", 4500, 10).await;
    let id = product["id"].as_str().unwrap();

    set_service("kafka", false).await;
    let restore = Restore("kafka");
    let (first, token) = new_customer("outage").await;
    let order = order_of(&token, id, 1).await;
    let r = pay(&token, json!({"order_id": order["id"], "token": "tok_success"})).await;
    assert_eq!(r.body["state"], "PAID", "the payment succeeds without Kafka: {:?}", r.body);
    let (second, _) = new_customer("outage").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(mail_to(&first).await.is_empty() && mail_to(&second).await.is_empty(), "nothing can be sent yet");

    set_service("kafka", true).await;
    drop(restore);
    // The relay republishes what is pending (the schedule's "now" is past the republish threshold).
    // The sweeper's producer reconnects after the outage, and an event it could not publish in
    // time stays pending for the next run, as the schedule would do: sweep until none is left.
    let mut republished = 0;
    for _ in 0..5 {
        let report = sweep_at(time::OffsetDateTime::now_utc() + time::Duration::minutes(2)).await;
        republished += report["outbox"]["republished"].as_u64().unwrap();
        if report["outbox"]["still_pending"] == 0 && republished > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(republished >= 4, "signed up twice, placed and paid: {republished} republished");

    let mail = expect_mail(&first, 3).await;
    let order_id = order["id"].as_str().unwrap();
    for subject in ["We received your order", "Payment received: your receipt"] {
        assert!(mail.iter().any(|m| m.subject == subject && m.body.contains(order_id)), "{subject}: {mail:?}");
    }
    expect_mail(&second, 1).await;
}

#[tokio::test]
async fn an_ses_outage_is_retried_until_the_email_goes_out_once() {
    set_service("ses", false).await;
    let restore = Restore("ses");
    let (email, _) = new_customer("ses-down").await;
    // The trigger keeps redelivering the failing batch meanwhile.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(mail_to(&email).await.is_empty());
    set_service("ses", true).await;
    drop(restore);
    expect_mail(&email, 1).await;
}

#[tokio::test]
async fn a_batch_delivered_twice_sends_nothing_twice() {
    let email = unique_email("redelivery");
    let batch = msk_event(&[
        event_json("user.signed_up", json!({ "email": email, "name": "Twice" })),
        event_json(
            "order.cancelled",
            json!({ "email": email, "order_id": "o-1", "total": {"amount": 100, "currency": "EUR"} }),
        ),
    ]);
    let first = invoke("NotifierFunction", &batch).await;
    assert_eq!(first["sent"], 2, "{first}");
    let second = invoke("NotifierFunction", &batch).await;
    assert_eq!((second["sent"].as_u64(), second["already_sent"].as_u64()), (Some(0), Some(2)), "{second}");
    expect_mail(&email, 2).await;
}

#[tokio::test]
async fn a_failed_send_fails_the_batch_and_the_retry_sends_once() {
    let email = unique_email("retry");
    let batch = msk_event(&[event_json("user.signed_up", json!({ "email": email }))]);
    set_service("ses", false).await;
    let restore = Restore("ses");
    let (result, failed) = invoke_outcome("NotifierFunction", &batch).await;
    assert!(failed, "a send failure must fail the invocation: {result}");
    set_service("ses", true).await;
    drop(restore);
    let retried = invoke("NotifierFunction", &batch).await;
    assert_eq!(retried["sent"], 1, "{retried}");
    expect_mail(&email, 1).await;
}

#[tokio::test]
async fn poison_records_are_skipped_and_later_records_still_processed() {
    let email = unique_email("poison");
    let batch = msk_event(&[
        b"not json at all".to_vec(),
        br#"{"some": "json", "but": "no event"}"#.to_vec(),
        event_json("order.teleported", json!({ "email": email })),
        event_json("user.signed_up", json!({ "email": email })),
    ]);
    let report = invoke("NotifierFunction", &batch).await;
    assert_eq!((report["skipped"].as_u64(), report["sent"].as_u64()), (Some(3), Some(1)), "{report}");
    expect_mail(&email, 1).await;
}

#[tokio::test]
async fn the_sample_msk_event_is_handled() {
    let report = invoke("NotifierFunction", &event("msk.json")).await;
    let done = report["sent"].as_u64().unwrap() + report["already_sent"].as_u64().unwrap();
    assert_eq!(done, 2, "{report}");
    let mail = expect_mail("msk-sample@example.com", 2).await;
    assert!(mail.iter().any(|m| m.subject == "We received your order" && m.body.contains("25.98 EUR")));
}
