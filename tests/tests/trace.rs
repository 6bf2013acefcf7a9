//! One id from click to e-mail (`shop::trace`): the `x-request-id` the API answers a sign-up, an
//! order and a payment with is on the order item and on the events the requests wrote, and it finds,
//! in the functions' logs, the request itself, the relay's "event relayed" (the relay sends it on
//! as Kafka record headers) and the notifier's "e-mail sent" for exactly that e-mail.
//!
//! The logs are read through `GET /_local/logs?trace=<id>` on the Invoke API port: the same
//! search over `target/local-logs/<Function>.log` as `cargo local logs --trace <id>`, which is
//! also what to run when an assertion here fails.

use aws_sdk_dynamodb::types::AttributeValue;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shop_tests::mail::expect_mail;
use shop_tests::payments::pay;
use shop_tests::*;
use std::time::Duration;

/// The request id the API answered with.
fn request_id(reply: &Reply) -> String {
    let id = reply.headers.get("x-request-id").and_then(|v| v.to_str().ok()).expect("x-request-id header");
    assert_eq!(reply.headers.get("apigw-requestid").and_then(|v| v.to_str().ok()), Some(id));
    id.to_owned()
}

/// The `trace` of the outbox event of `event_type` about `aggregate` (there is one).
async fn event_trace(aggregate: &str, event_type: &str) -> Value {
    // Every page: a filter is applied to each 1 MB page read, so the event may be on any of them.
    let items: Vec<_> = dynamodb()
        .await
        .scan()
        .table_name(&stack().table)
        .filter_expression("sk = :event AND aggregate_id = :aggregate")
        .expression_attribute_values(":event", AttributeValue::S("EVENT".into()))
        .expression_attribute_values(":aggregate", AttributeValue::S(aggregate.into()))
        .consistent_read(true)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("scan");
    let events: Vec<Value> = items
        .iter()
        .filter_map(|i| i.get("payload").and_then(|p| p.as_s().ok()))
        .map(|p| serde_json::from_str::<Value>(p).expect("payload JSON"))
        .filter(|e| e["type"] == event_type)
        .collect();
    assert_eq!(events.len(), 1, "{event_type} events of {aggregate}: {events:?}");
    events[0]["trace"].clone()
}

/// Waits (the log lines are written as the functions print them, a moment after the e-mail is in
/// the mailbox) until the lines about `id` include the request's own line (`function`'s), a
/// relayed event and the notifier's "e-mail sent" for an event of `event_type`; returns them.
async fn path_of(id: &str, function: &str, event_type: &str) -> Vec<(String, Value)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let lines = log_lines(Some(id)).await;
        let has = |f: &str, m: &str| lines.iter().any(|(lf, l)| lf == f && log_message(l) == m);
        let emailed = lines.iter().any(|(f, l)| {
            f == "NotifierFunction"
                && log_message(l) == "e-mail sent"
                && l.pointer("/fields/event_type").and_then(Value::as_str) == Some(event_type)
        });
        if (has(function, "request done") && has("OutboxRelayFunction", "event relayed") && emailed)
            || tokio::time::Instant::now() > deadline
        {
            let shown: Vec<String> = lines.iter().map(|(f, l)| format!("{f}: {}", log_message(l))).collect();
            assert!(has(function, "request done"), "no line of {function} for {id}: {shown:#?}");
            assert!(has("OutboxRelayFunction", "event relayed"), "the relay logged no event of {id}: {shown:#?}");
            assert!(emailed, "the notifier logged no {event_type} e-mail of {id}: {shown:#?}");
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn one_request_id_finds_the_order_its_events_and_their_emails() {
    let admin = admin_token().await;
    let product = new_product(&admin, "Traced mug", 1299, 5).await;
    let product = product["id"].as_str().unwrap();

    let email = unique_email("trace");
    let signup = call(Method::POST, "/auth/signup", None, Some(json!({"email": email, "password": PASSWORD}))).await;
    assert_eq!(signup.status, StatusCode::CREATED, "{:?}", signup.body);
    let token = login(&email, PASSWORD).await;
    let placed = place_order(&token, &uuid::Uuid::new_v4().to_string(), Some(&[(product, 1)])).await;
    assert_eq!(placed.status, StatusCode::CREATED, "{:?}", placed.body);
    let order_id = placed.body["id"].as_str().unwrap().to_owned();
    let paid = pay(&token, json!({"order_id": order_id, "token": "tok_success"})).await;
    assert_eq!(paid.body["state"], "PAID", "{:?}", paid.body);
    let (signup_id, order_request, pay_request) = (request_id(&signup), request_id(&placed), request_id(&paid));
    assert!(signup_id != order_request && order_request != pay_request);

    expect_mail(&email, 3).await;

    // The order item keeps the id of the request that placed it.
    let item = get_item(&format!("ORDER#{order_id}"), "ORDER").await.expect("order item");
    let trace = item.get("trace").and_then(|t| t.as_m().ok()).expect("trace on the order item");
    assert_eq!(trace.get("request_id"), Some(&AttributeValue::S(order_request.clone())), "{trace:?}");

    // The events carry the ids of the requests that wrote them. The payment is settled by
    // `POST /payments` or by the gateway's webhook, whichever comes first (the other is a
    // duplicate): `order.paid` carries that request's id.
    assert_eq!(event_trace(&order_id, "order.placed").await["request_id"], order_request);
    let paid_by = event_trace(&order_id, "order.paid").await["request_id"].as_str().unwrap().to_owned();
    let pay_function = if paid_by == pay_request { "PaymentsFunction" } else { "PaymentWebhookFunction" };

    // Each request's id finds its own line, the relayed event and the e-mail it caused: and only
    // its own e-mail (the sign-up's id does not find the order's).
    let welcome = path_of(&signup_id, "SignupFunction", "user.signed_up").await;
    let order = path_of(&order_request, "PlaceOrderFunction", "order.placed").await;
    let payment = path_of(&paid_by, pay_function, "order.paid").await;
    let types = |lines: &[(String, Value)]| -> Vec<String> {
        lines
            .iter()
            .filter_map(|(_, l)| l.pointer("/fields/event_type").and_then(Value::as_str).map(str::to_owned))
            .collect()
    };
    assert_eq!(types(&welcome), ["user.signed_up"]);
    assert_eq!(types(&order), ["order.placed"]);
    assert_eq!(types(&payment), ["order.paid"]);
    // In time order: the request before the relay, the relay before the e-mail.
    let at = |lines: &[(String, Value)], m: &str| lines.iter().position(|(_, l)| log_message(l) == m).unwrap();
    assert!(at(&order, "order placed") < at(&order, "event relayed"), "{order:#?}");
    assert!(at(&order, "event relayed") < at(&order, "e-mail sent"), "{order:#?}");
    // The e-mail's line names the order's event, relayed under the same id.
    let relayed: Vec<&Value> = order
        .iter()
        .filter(|(_, l)| log_message(l) == "event relayed")
        .map(|(_, l)| &l["fields"]["event_id"])
        .collect();
    let sent = order.iter().find(|(_, l)| log_message(l) == "e-mail sent").map(|(_, l)| &l["fields"]["event_id"]);
    assert!(sent.is_some_and(|id| relayed.contains(&id)), "{order:#?}");
}
