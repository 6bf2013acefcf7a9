//! Helpers for the payment tests: an order waiting for payment, signed webhooks made with the
//! local stack's secret (from `env.local.json`, as the functions get it), and running the mock
//! gateway's delivery schedule "in the future".

use crate::{Reply, admin_token, call, client, into_reply, invoke, new_customer, new_product, place_order, stack};
use aws_sdk_dynamodb::types::AttributeValue;
use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::{Value, json};

pub const UNIT_PRICE: i64 = 1250;

/// A customer with one order for `quantity` of a fresh product with `units` in stock.
pub struct Pending {
    pub email: String,
    pub token: String,
    pub product: String,
    pub order: String,
    pub total: i64,
}

pub async fn pending_order(tag: &str, units: i64, quantity: u32) -> Pending {
    let admin = admin_token().await;
    let product = new_product(&admin, tag, UNIT_PRICE, units).await["id"].as_str().unwrap().to_owned();
    let (email, token) = new_customer(tag).await;
    let r = place_order(&token, &uuid::Uuid::new_v4().to_string(), Some(&[(&product, quantity)])).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    Pending {
        email,
        token,
        product,
        order: r.body["id"].as_str().unwrap().to_owned(),
        total: r.body["total"]["amount"].as_i64().unwrap(),
    }
}

pub async fn pay(token: &str, body: Value) -> Reply {
    call(Method::POST, "/payments", Some(token), Some(body)).await
}

pub async fn order_state(token: &str, order: &str) -> String {
    let r = call(Method::GET, &format!("/orders/{order}"), Some(token), None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body["state"].as_str().unwrap().to_owned()
}

/// A value `env.local.json` gives the functions.
fn local_parameter(name: &str) -> String {
    let path = stack().workspace.join("env.local.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    doc["Parameters"][name].as_str().unwrap_or_else(|| panic!("{name} in env.local.json")).to_owned()
}

/// The mock gateway's API key (the shop's `GATEWAY_API_KEY`), as `env.local.json` gives it.
pub fn gateway_api_key() -> String {
    local_parameter("GATEWAY_API_KEY")
}

/// A call to the mock gateway, with its API key, as the shop makes it.
pub async fn gateway(method: Method, path: &str, key: Option<&str>, body: Option<Value>) -> Reply {
    let mut req = client().request(method, format!("{}{path}", stack().api)).bearer_auth(gateway_api_key());
    if let Some(k) = key {
        req = req.header("idempotency-key", k);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    into_reply(req.send().await.expect("request to the mock gateway")).await
}

/// The secrets the webhook accepts, as `env.local.json` gives them to the functions.
pub fn webhook_secrets() -> Vec<SecretString> {
    local_parameter("WEBHOOK_SECRETS").split(',').map(|s| SecretString::from(s.trim().to_owned())).collect()
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// `Payment-Signature` for `body` at unix time `t`, made like the gateway makes it.
pub fn signature(body: &str, t: i64) -> String {
    shop::payments::signature::sign(&webhook_secrets(), t, body.as_bytes())
}

/// A webhook body saying `charge_id` for `order` ended `status` for `amount` EUR cents.
pub fn webhook_body(event_id: &str, order: &str, amount: i64, succeeded: bool) -> String {
    let (kind, status) = if succeeded { ("charge.succeeded", "succeeded") } else { ("charge.failed", "failed") };
    json!({ "id": event_id, "type": kind, "created": now(), "data": { "charge": {
        "id": format!("ch_test_{}", uuid::Uuid::new_v4().simple()), "amount": amount, "currency": "EUR",
        "reference": order, "status": status, "created": now() } } })
    .to_string()
}

/// POSTs `body` to the webhook, exactly as given, with `signature` (if any).
pub async fn post_webhook(body: &str, signature: Option<&str>) -> Reply {
    let mut req = client()
        .post(format!("{}/webhooks/payment", stack().api))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(s) = signature {
        req = req.header("payment-signature", s);
    }
    into_reply(req.send().await.expect("request to the local API")).await
}

/// Runs the mock gateway's delivery schedule as if it were `at`.
pub async fn deliver_webhooks_at(at: time::OffsetDateTime) -> Value {
    let mut event = crate::event("schedule.json");
    event["time"] = json!(at.format(&time::format_description::well_known::Rfc3339).unwrap());
    invoke("MockGatewayDeliveriesFunction", &event).await
}

/// The settlements recorded for `order` (dedupe markers), as `(from, to)` in the order they happened.
pub async fn settlements(order: &str) -> Vec<(String, String)> {
    let db = crate::dynamodb().await;
    let mut found = Vec::new();
    let mut start = None;
    loop {
        let page = db
            .scan()
            .table_name(&stack().table)
            .filter_expression("begins_with(pk, :p) AND order_id = :o")
            .expression_attribute_values(":p", AttributeValue::S("PAYMENT_EVENT#".into()))
            .expression_attribute_values(":o", AttributeValue::S(order.into()))
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan settlements");
        for item in page.items() {
            let s = |k: &str| item[k].as_s().unwrap().clone();
            // The outbox event id is a UUIDv7: time-ordered.
            found.push((s("event_id"), s("from_state"), s("to_state")));
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    found.sort();
    found.into_iter().map(|(_, from, to)| (from, to)).collect()
}
