//! Payments end to end: the real `payments`, `payment-webhook` and `mock-gateway` functions on the
//! local stack, the gateway delivering real signed webhooks through the local API.
//!
//! Every test here runs alone (`.config/nextest.toml`): some run the sweeper or the gateway's
//! delivery schedule "in the future", which acts on every order and webhook in the table.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::json;
use shop_tests::payments::*;
use shop_tests::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

fn later(minutes: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::minutes(minutes)
}

#[tokio::test]
async fn a_successful_payment_deducts_the_reserved_units() {
    let o = pending_order("pay-ok", 10, 3).await;
    assert_eq!(stock(&o.product).await, (10, 3, 7));
    let r = pay(&o.token, json!({"order_id": o.order, "token": "tok_success"})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["state"], "PAID");
    assert_eq!(r.body["charge"]["status"], "succeeded");
    assert_eq!(order_state(&o.token, &o.order).await, "PAID");
    // available and reserved both down by q, sellable unchanged.
    assert_eq!(stock(&o.product).await, (7, 0, 7));
    // The gateway's webhook and the payments function's own settle both saw the success: applied once.
    assert_eq!(settlements(&o.order).await, [("PENDING_PAYMENT".into(), "PAID".into())]);

    // Paying again: not payable, and nothing moves.
    let again = pay(&o.token, json!({"order_id": o.order, "token": "tok_success"})).await;
    assert_eq!((again.status, again.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "not_payable"));
    assert_eq!(stock(&o.product).await, (7, 0, 7));
}

#[tokio::test]
async fn a_declined_payment_releases_the_units() {
    let o = pending_order("pay-fail", 10, 4).await;
    let r = pay(&o.token, json!({"order_id": o.order, "token": "tok_fail"})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["state"], "PAYMENT_FAILED");
    assert_eq!(stock(&o.product).await, (10, 0, 10));
    assert_eq!(settlements(&o.order).await, [("PENDING_PAYMENT".into(), "PAYMENT_FAILED".into())]);
}

#[tokio::test]
async fn paying_is_for_the_owner_only_and_needs_one_way_to_pay() {
    let o = pending_order("pay-owner", 5, 1).await;
    let (_, stranger) = new_customer("stranger").await;
    let r = pay(&stranger, json!({"order_id": o.order, "token": "tok_success"})).await;
    assert_eq!((r.status, r.error_code()), (StatusCode::NOT_FOUND, "not_found"));
    let r = pay(&o.token, json!({"order_id": o.order})).await;
    assert_eq!((r.status, r.error_code()), (StatusCode::BAD_REQUEST, "invalid_body"));
    let r = pay(&o.token, json!({"order_id": o.order, "token": "tok_success", "transaction_id": "ch_x"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = pay(&o.token, json!({"order_id": o.order, "token": "tok_nonsense"})).await;
    assert_eq!((r.status, r.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "payment_rejected"));
    let r = call(Method::POST, "/payments", None, Some(json!({"order_id": o.order, "token": "tok_success"}))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(order_state(&o.token, &o.order).await, "PENDING_PAYMENT");
    assert_eq!(stock(&o.product).await, (5, 1, 4));
}

/// A client-side payment: the client charged the gateway itself and sends only the charge id.
/// The charge's webhooks go to a sink that accepts and drops them, so only the confirmation settles.
#[tokio::test]
async fn a_client_side_payment_is_confirmed_with_the_gateway_not_the_client() {
    let sink = WebhookProxy::start(0, false).await;
    let o = pending_order("confirm", 10, 2).await;
    let charge = |token: &str, reference: &str| json!({"amount": o.total, "currency": "EUR", "token": token, "reference": reference, "webhook_url": sink.url});
    // A charge for another order cannot pay this one.
    let other = pending_order("confirm-other", 10, 2).await;
    let foreign = gateway_charge(&charge("tok_success", &other.order)).await;
    let r = pay(&o.token, json!({"order_id": o.order, "transaction_id": foreign["id"]})).await;
    assert_eq!((r.status, r.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "charge_mismatch"));
    let r = pay(&o.token, json!({"order_id": o.order, "transaction_id": "ch_doesnotexist"})).await;
    assert_eq!((r.status, r.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "unknown_transaction"));
    assert_eq!(order_state(&o.token, &o.order).await, "PENDING_PAYMENT");

    let ch = gateway_charge(&charge("tok_success", &o.order)).await;
    assert_eq!(order_state(&o.token, &o.order).await, "PENDING_PAYMENT", "the sink swallowed the webhook");
    let r = pay(&o.token, json!({"order_id": o.order, "transaction_id": ch["id"]})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!((r.body["state"].as_str(), r.body["result"].as_str()), (Some("PAID"), Some("paid")));
    assert_eq!(stock(&o.product).await, (8, 0, 8));
    // Confirming again is a no-op.
    let r = pay(&o.token, json!({"order_id": o.order, "transaction_id": ch["id"]})).await;
    assert_eq!((r.status, r.body["result"].as_str()), (StatusCode::OK, Some("unchanged")));
    assert_eq!(stock(&o.product).await, (8, 0, 8));
    assert!(sink.hits() >= 2, "the gateway delivered to the sink");
}

#[tokio::test]
async fn tok_delay_settles_later_through_the_scheduled_delivery() {
    let o = pending_order("delay", 10, 2).await;
    let r = pay(&o.token, json!({"order_id": o.order, "token": "tok_delay"})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.body["charge"]["status"], "pending");
    assert_eq!(order_state(&o.token, &o.order).await, "PENDING_PAYMENT");
    assert_eq!(stock(&o.product).await, (10, 2, 8));
    // The charge, read from the gateway now, is still pending.
    let id = r.body["charge"]["id"].as_str().unwrap();
    let ch = gateway(Method::GET, &format!("/gateway/charges/{id}"), None, None).await;
    assert_eq!((ch.status, ch.body["status"].as_str()), (StatusCode::OK, Some("pending")));

    let report = deliver_webhooks_at(later(2)).await;
    assert!(report["delivered"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(order_state(&o.token, &o.order).await, "PAID");
    assert_eq!(stock(&o.product).await, (8, 0, 8));
}

#[tokio::test]
async fn tok_duplicate_delivers_one_event_twice_and_it_applies_once() {
    let o = pending_order("dup", 10, 3).await;
    let r = pay(&o.token, json!({"order_id": o.order, "token": "tok_duplicate"})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(order_state(&o.token, &o.order).await, "PAID");
    assert_eq!(stock(&o.product).await, (7, 0, 7));
    assert_eq!(settlements(&o.order).await.len(), 1);
}

/// The stale `charge.failed` arrives first; the webhook asks the gateway, which says the charge
/// succeeded, so the reserved units are deducted at once and never released.
#[tokio::test]
async fn tok_out_of_order_failure_then_success_ends_paid_with_units_taken_once() {
    let o = pending_order("ooo", 10, 3).await;
    let r = pay(&o.token, json!({"order_id": o.order, "token": "tok_out_of_order"})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(order_state(&o.token, &o.order).await, "PAID");
    assert_eq!(settlements(&o.order).await, [("PENDING_PAYMENT".into(), "PAID".into())]);
    assert_eq!(stock(&o.product).await, (7, 0, 7));
}

/// Webhooks are notifications, not the truth: a stale `charge.failed` of a charge that in fact
/// succeeded must not release units that other buyers then take. Tried where it hurts: every unit
/// is reserved by buyers paying with `tok_out_of_order` while a crowd keeps trying to order.
#[tokio::test]
async fn a_stale_failure_webhook_never_loses_a_paid_order_under_scarcity() {
    let admin = admin_token().await;
    let product = new_product(&admin, "scarce", UNIT_PRICE, 4).await["id"].as_str().unwrap().to_owned();
    let mut payers = Vec::new();
    for _ in 0..4 {
        let (_, token) = new_customer("scarce-payer").await;
        let r = place_order(&token, &uuid::Uuid::new_v4().to_string(), Some(&[(&product, 1)])).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        payers.push((token, r.body["id"].as_str().unwrap().to_owned()));
    }
    let crowd = join_all((0..12).map(|_| new_customer("scarce-crowd"))).await;
    let done = std::sync::atomic::AtomicBool::new(false);
    let payments = async {
        let paid = join_all(payers.iter().map(|(token, order)| async move {
            pay(token, json!({"order_id": order, "token": "tok_out_of_order"})).await
        }))
        .await;
        done.store(true, Ordering::SeqCst);
        paid
    };
    let rush = join_all(crowd.iter().map(|(_, token)| async {
        let mut created = 0;
        while !done.load(Ordering::SeqCst) {
            let r = place_order(token, &uuid::Uuid::new_v4().to_string(), Some(&[(&product, 1)])).await;
            if r.status == StatusCode::CREATED {
                created += 1;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        created
    }));
    let (paid, taken) = futures::join!(payments, rush);
    for r in &paid {
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
    assert_eq!(taken.iter().sum::<usize>(), 0, "no unit of a paid order went to someone else");
    for (token, order) in &payers {
        assert_eq!(order_state(token, order).await, "PAID");
        assert_eq!(settlements(order).await, [("PENDING_PAYMENT".into(), "PAID".into())]);
    }
    assert_eq!(stock(&product).await, (0, 0, 0));
}

#[tokio::test]
async fn tok_late_after_expiry_retakes_the_units_if_it_can_else_asks_for_a_refund() {
    // Enough stock left: the late success takes the units again.
    let o = pending_order("late", 10, 3).await;
    let r = pay(&o.token, json!({"order_id": o.order, "token": "tok_late"})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    // Meanwhile the last units of another product sell out, so a second late payment cannot retake.
    let short = pending_order("late-short", 2, 2).await;
    let r = pay(&short.token, json!({"order_id": short.order, "token": "tok_late"})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);

    sweep_at(later(16)).await;
    assert_eq!(order_state(&o.token, &o.order).await, "EXPIRED");
    assert_eq!(stock(&o.product).await, (10, 0, 10));
    assert_eq!(order_state(&short.token, &short.order).await, "EXPIRED");
    let (_, rival) = new_customer("rival").await;
    let r = place_order(&rival, &uuid::Uuid::new_v4().to_string(), Some(&[(&short.product, 2)])).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);

    // The gateway's late delay (20 minutes by default) passes.
    deliver_webhooks_at(later(21)).await;
    assert_eq!(order_state(&o.token, &o.order).await, "PAID");
    assert_eq!(stock(&o.product).await, (7, 0, 7));
    assert_eq!(order_state(&short.token, &short.order).await, "REFUND_REQUIRED");
    assert_eq!(stock(&short.product).await, (2, 2, 0), "the rival's reservation is untouched");
    assert_units_conserved(&[&o.product, &short.product]).await;
}

#[tokio::test]
async fn expiry_racing_late_successes_deducts_each_order_once() {
    let admin = admin_token().await;
    let product = new_product(&admin, "race-late", UNIT_PRICE, 40).await["id"].as_str().unwrap().to_owned();
    let mut orders = Vec::new();
    for _ in 0..10 {
        let (_, token) = new_customer("race-late").await;
        let r = place_order(&token, &uuid::Uuid::new_v4().to_string(), Some(&[(&product, 2)])).await;
        assert_eq!(r.status, StatusCode::CREATED);
        orders.push((token, r.body["id"].as_str().unwrap().to_owned()));
    }
    let webhooks = orders.iter().map(|(_, order)| async move {
        let body = webhook_body(&format!("evt_race_{}", uuid::Uuid::new_v4().simple()), order, 2 * UNIT_PRICE, true);
        let r = post_webhook(&body, Some(&signature(&body, now()))).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    });
    let sweeps = (0..3).map(|_| sweep_at(later(16)));
    futures::join!(join_all(webhooks), join_all(sweeps));

    for (token, order) in &orders {
        let state = order_state(token, order).await;
        assert!(state == "PAID" || state == "REFUND_REQUIRED", "{state}");
        let path = settlements(order).await;
        assert!(
            path == [("PENDING_PAYMENT".to_owned(), "PAID".to_owned())]
                || path == [("EXPIRED".to_owned(), "PAID".to_owned())],
            "{path:?}"
        );
    }
    // Enough stock for all: every order paid, 2 units each, taken once.
    assert_eq!(stock(&product).await, (20, 0, 20));
}

#[tokio::test]
async fn forged_stale_altered_and_malformed_webhooks_change_nothing() {
    let o = pending_order("forged", 10, 3).await;
    let body = webhook_body(&format!("evt_{}", uuid::Uuid::new_v4().simple()), &o.order, o.total, true);
    let forged = shop::payments::signature::sign(
        &[secrecy::SecretString::from("not-the-secret-0123456789abc")],
        now(),
        body.as_bytes(),
    );
    let stale = signature(&body, now() - 301);
    let altered = body.replace(&format!("\"amount\":{}", o.total), "\"amount\":1");
    assert_ne!(altered, body);

    let before = items_of(&o).await;
    for (what, b, sig, status, code) in [
        ("forged", &body, Some(forged.as_str()), StatusCode::UNAUTHORIZED, "invalid_signature"),
        ("stale", &body, Some(stale.as_str()), StatusCode::UNAUTHORIZED, "invalid_signature"),
        (
            "altered after signing",
            &altered,
            Some(&signature(&body, now())),
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
        ),
        ("no signature", &body, None, StatusCode::BAD_REQUEST, "invalid_signature_header"),
        ("garbage signature", &body, Some("sha256=abc"), StatusCode::BAD_REQUEST, "invalid_signature_header"),
        (
            "malformed body",
            &"{not json".to_owned(),
            Some(&signature("{not json", now())),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
    ] {
        let r = post_webhook(b, sig).await;
        assert_eq!((r.status, r.error_code()), (status, code), "{what}: {:?}", r.body);
    }
    assert_eq!(items_of(&o).await, before, "a rejected webhook changed the order or its stock");
    assert!(settlements(&o.order).await.is_empty());

    // The genuine one pays; replaying it later, freshly signed, is a no-op.
    let r = post_webhook(&body, Some(&signature(&body, now()))).await;
    assert_eq!((r.status, r.body["result"].as_str()), (StatusCode::OK, Some("paid")), "{:?}", r.body);
    assert_eq!(stock(&o.product).await, (7, 0, 7));
    let before = items_of(&o).await;
    let r = post_webhook(&body, Some(&signature(&body, now()))).await;
    assert_eq!((r.status, r.body["result"].as_str()), (StatusCode::OK, Some("unchanged")), "{:?}", r.body);
    // And a failure after the success changes nothing either (the gateway cannot confirm it).
    let failed = webhook_body(&format!("evt_{}", uuid::Uuid::new_v4().simple()), &o.order, o.total, false);
    let r = post_webhook(&failed, Some(&signature(&failed, now()))).await;
    assert_eq!((r.status, r.body["result"].as_str()), (StatusCode::OK, Some("ignored")));
    assert_eq!(items_of(&o).await, before);
    assert_eq!(settlements(&o.order).await.len(), 1);
}

/// What a settlement would change: the order's state, version and pending-index entry, and the
/// product's counters. (Not the whole table: the e-mail pipeline writes to it in the background.)
async fn items_of(o: &Pending) -> String {
    let order = get_item(&format!("ORDER#{}", o.order), "ORDER").await.expect("order item");
    let field = |k: &str| order.get(k).map(|v| format!("{v:?}")).unwrap_or_default();
    format!("{} {} {} {:?}", field("state"), field("updated_at"), field("gsi2sk"), stock(&o.product).await)
}

#[tokio::test]
async fn concurrent_deliveries_of_one_event_apply_once() {
    let o = pending_order("concurrent", 10, 3).await;
    let body = webhook_body(&format!("evt_{}", uuid::Uuid::new_v4().simple()), &o.order, o.total, true);
    let replies = join_all((0..12).map(|_| async { post_webhook(&body, Some(&signature(&body, now()))).await })).await;
    let mut paid = 0;
    for r in &replies {
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        match r.body["result"].as_str().unwrap() {
            "paid" => paid += 1,
            "duplicate" | "unchanged" => {}
            other => panic!("{other}"),
        }
    }
    assert_eq!(paid, 1);
    assert_eq!(stock(&o.product).await, (7, 0, 7));
    assert_eq!(settlements(&o.order).await.len(), 1);
}

#[tokio::test]
async fn a_webhook_refused_with_5xx_is_delivered_again_until_accepted() {
    // The proxy answers 503 to the first three deliveries (the gateway's quick retries), then
    // forwards to the real webhook.
    let proxy = WebhookProxy::start(3, true).await;
    let o = pending_order("retry", 10, 2).await;
    let charge = json!({"amount": o.total, "currency": "EUR", "token": "tok_success", "reference": o.order,
                        "webhook_url": proxy.url});
    gateway_charge(&charge).await;
    assert_eq!(proxy.hits(), 3, "three quick attempts, all refused");
    assert_eq!(order_state(&o.token, &o.order).await, "PENDING_PAYMENT");
    assert_eq!(stock(&o.product).await, (10, 2, 8));

    // The stored delivery is due again after its backoff; the schedule delivers it.
    let report = deliver_webhooks_at(later(2)).await;
    assert!(report["delivered"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(proxy.hits(), 4);
    assert_eq!(order_state(&o.token, &o.order).await, "PAID");
    assert_eq!(stock(&o.product).await, (8, 0, 8));
    // Delivered: the schedule does not send it again.
    deliver_webhooks_at(later(120)).await;
    assert_eq!(proxy.hits(), 4);
}

/// The refund record of a charge, if there is one.
async fn refund_of(
    charge_id: &str,
) -> Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    get_item(&format!("REFUND#{charge_id}"), "REFUND").await
}

fn s(item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>, k: &str) -> String {
    item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
}

/// Runs the refund worker's schedule once.
async fn pay_back_refunds() -> serde_json::Value {
    invoke("RefundsFunction", &event("schedule.json")).await
}

/// A second charge for a paid order is not kept: the settlement writes a refund record in its own
/// transaction, the admin sees it as open, the worker pays it back once, and the customer is told.
#[tokio::test]
async fn a_second_charge_for_a_paid_order_is_refunded_exactly_once() {
    let o = pending_order("second-charge", 10, 2).await;
    let r = pay(&o.token, json!({"order_id": o.order, "token": "tok_success"})).await;
    assert_eq!(r.body["state"], "PAID", "{:?}", r.body);
    // The customer pays again on their side: the gateway delivers its success to the webhook.
    let second =
        gateway_charge(&json!({"amount": o.total, "currency": "EUR", "token": "tok_success", "reference": o.order}))
            .await;
    let second = second["id"].as_str().unwrap().to_owned();
    assert_eq!(order_state(&o.token, &o.order).await, "PAID");
    assert_eq!(stock(&o.product).await, (8, 0, 8), "a second charge moves no stock");
    let refund = refund_of(&second).await.expect("a refund record for the second charge");
    assert_eq!((s(&refund, "state"), s(&refund, "reason")), ("REQUESTED".into(), "duplicate_charge".into()));
    assert_eq!(refund["amount"].as_n().unwrap(), &o.total.to_string());
    // Confirming that charge too, or the webhook again: still one refund.
    let r = pay(&o.token, json!({"order_id": o.order, "transaction_id": second})).await;
    assert_eq!((r.status, r.body["result"].as_str()), (StatusCode::OK, Some("duplicate")), "{:?}", r.body);

    let admin = admin_token().await;
    let open = call(Method::GET, "/refunds", Some(&admin), None).await;
    assert_eq!(open.status, StatusCode::OK, "{:?}", open.body);
    assert!(open.body["open"].as_array().unwrap().iter().any(|r| r["charge_id"] == second.as_str()), "{:?}", open.body);
    let r = call(Method::GET, "/refunds", Some(&o.token), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    let report = pay_back_refunds().await;
    assert!(report["refunded"].as_u64().unwrap() >= 1, "{report}");
    let refund = refund_of(&second).await.unwrap();
    assert_eq!(s(&refund, "state"), "REFUNDED");
    assert!(s(&refund, "gateway_refund_id").starts_with("re_"), "{refund:?}");
    let ch = gateway(Method::GET, &format!("/gateway/charges/{second}"), None, None).await;
    assert_eq!(ch.body["amount_refunded"], o.total, "{:?}", ch.body);
    // Once: the next run has nothing of it, and the gateway holds one refund.
    pay_back_refunds().await;
    let again = refund_of(&second).await.unwrap();
    assert_eq!(s(&again, "gateway_refund_id"), s(&refund, "gateway_refund_id"));
    let open = call(Method::GET, "/refunds", Some(&admin), None).await;
    assert!(!open.body["open"].as_array().unwrap().iter().any(|r| r["charge_id"] == second.as_str()));

    let mail = shop_tests::mail::expect_mail(&o.email, 5).await;
    for subject in ["Payment received: your receipt", "We are paying back a charge", "Your refund has been issued"] {
        assert_eq!(mail.iter().filter(|m| m.subject == subject).count(), 1, "{subject}: {mail:?}");
    }
}

/// A charge for another amount than the order's total pays nothing and goes back.
#[tokio::test]
async fn a_charge_for_the_wrong_amount_pays_nothing_and_is_refunded() {
    let o = pending_order("wrong-amount", 10, 2).await;
    let ch = gateway_charge(
        &json!({"amount": o.total - 1, "currency": "EUR", "token": "tok_success", "reference": o.order}),
    )
    .await;
    let id = ch["id"].as_str().unwrap();
    assert_eq!(order_state(&o.token, &o.order).await, "PENDING_PAYMENT");
    assert_eq!(stock(&o.product).await, (10, 2, 8));
    let refund = refund_of(id).await.expect("a refund record");
    assert_eq!(s(&refund, "reason"), "wrong_amount");
    assert_eq!(refund["amount"].as_n().unwrap(), &(o.total - 1).to_string());
    let r = pay(&o.token, json!({"order_id": o.order, "transaction_id": id})).await;
    assert_eq!((r.status, r.error_code()), (StatusCode::UNPROCESSABLE_ENTITY, "charge_mismatch"));
    assert_eq!(order_state(&o.token, &o.order).await, "PENDING_PAYMENT");
}

/// The customer cancelled; the payment arrives anyway: it goes back, the units are not taken again.
#[tokio::test]
async fn a_payment_after_the_customer_cancelled_is_refunded_not_retaken() {
    let o = pending_order("cancel-then-pay", 10, 2).await;
    let r = call(Method::POST, &format!("/orders/{}/cancel", o.order), Some(&o.token), None).await;
    assert_eq!(r.body["state"], "CANCELLED", "{:?}", r.body);
    assert_eq!(stock(&o.product).await, (10, 0, 10));
    let ch =
        gateway_charge(&json!({"amount": o.total, "currency": "EUR", "token": "tok_success", "reference": o.order}))
            .await;
    assert_eq!(order_state(&o.token, &o.order).await, "CANCELLED");
    assert_eq!(stock(&o.product).await, (10, 0, 10), "not re-reserved");
    let refund = refund_of(ch["id"].as_str().unwrap()).await.expect("a refund record");
    assert_eq!(s(&refund, "reason"), "order_cancelled");
}

/// A late payment for an expired order whose product has left the catalog: nothing is sold, the
/// money goes back.
#[tokio::test]
async fn a_late_payment_never_sells_a_deleted_product() {
    let o = pending_order("late-deleted", 10, 2).await;
    let r = pay(&o.token, json!({"order_id": o.order, "token": "tok_late"})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    sweep_at(later(16)).await;
    assert_eq!(order_state(&o.token, &o.order).await, "EXPIRED");
    let admin = admin_token().await;
    let r = call(Method::DELETE, &format!("/products/{}", o.product), Some(&admin), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    deliver_webhooks_at(later(21)).await;
    assert_eq!(order_state(&o.token, &o.order).await, "REFUND_REQUIRED");
    assert_eq!(stock(&o.product).await, (10, 0, 10), "nothing taken from a deleted product");
    let order = get_item(&format!("ORDER#{}", o.order), "ORDER").await.unwrap();
    let refund = refund_of(&s(&order, "charge_id")).await.expect("a refund record for the late charge");
    assert_eq!(s(&refund, "reason"), "out_of_stock");
}

/// The mock gateway is a development tool that signs payments: it wants the API key, and a charge
/// may name its own webhook URL only where the stack allows it (locally).
#[tokio::test]
async fn the_mock_gateway_wants_its_api_key() {
    let body = json!({"amount": 100, "currency": "EUR", "token": "tok_success", "reference": uuid::Uuid::new_v4()});
    let r = client()
        .post(format!("{}/gateway/charges", stack().api))
        .header("idempotency-key", uuid::Uuid::new_v4().to_string())
        .json(&body)
        .send()
        .await
        .unwrap();
    let r = into_reply(r).await;
    assert_eq!((r.status, r.error_code()), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let r = client()
        .get(format!("{}/gateway/charges/ch_x", stack().api))
        .bearer_auth("a-wrong-key-of-some-length-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(into_reply(r).await.status, StatusCode::UNAUTHORIZED);
}

/// Creates a charge at the mock gateway directly, as a client-side payment would.
async fn gateway_charge(body: &serde_json::Value) -> serde_json::Value {
    let key = uuid::Uuid::new_v4().to_string();
    let r = gateway(Method::POST, "/gateway/charges", Some(&key), Some(body.clone())).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body
}

/// A webhook endpoint in front of the real one: refuses the first `fail_first` deliveries with
/// 503, then forwards them (or, with `forward = false`, accepts and drops them).
struct WebhookProxy {
    url: String,
    state: Arc<ProxyState>,
}

struct ProxyState {
    hits: AtomicUsize,
    fail_first: usize,
    forward: bool,
}

impl WebhookProxy {
    async fn start(fail_first: usize, forward: bool) -> Self {
        let state = Arc::new(ProxyState { hits: AtomicUsize::new(0), fail_first, forward });
        let app = axum::Router::new().route("/", axum::routing::post(proxy)).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, state }
    }

    fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }
}

async fn proxy(State(state): State<Arc<ProxyState>>, headers: HeaderMap, body: String) -> AxumStatus {
    if state.hits.fetch_add(1, Ordering::SeqCst) < state.fail_first {
        return AxumStatus::SERVICE_UNAVAILABLE;
    }
    if !state.forward {
        return AxumStatus::OK;
    }
    let signature = headers.get("payment-signature").and_then(|v| v.to_str().ok());
    let r = post_webhook(&body, signature).await;
    AxumStatus::from_u16(r.status.as_u16()).unwrap()
}
