//! Every sample event in `events/` goes through the real function via the local Invoke API,
//! as `sam local invoke <Function> -e events/<file>` would send it, so none of them goes stale.
//!
//! The samples carry placeholder identities (an e-mail, a product id, a token); each test swaps
//! in fresh ones so it can run any number of times against one stack.

use reqwest::StatusCode;
use serde_json::{Value, json};
use shop_tests::*;

/// The function's HTTP result: status and parsed JSON body.
fn http_result(result: &Value) -> (StatusCode, Value) {
    let status = StatusCode::from_u16(result["statusCode"].as_u64().expect("statusCode") as u16).unwrap();
    let body = match result["body"].as_str() {
        None | Some("") => Value::Null,
        Some(b) => serde_json::from_str(b).expect("JSON body"),
    };
    (status, body)
}

fn with_body(mut event: Value, body: Value) -> Value {
    event["body"] = Value::String(body.to_string());
    event
}

fn with_token(mut event: Value, token: &str) -> Value {
    event["headers"]["authorization"] = Value::String(format!("Bearer {token}"));
    event
}

fn with_product(mut event: Value, id: &str) -> Value {
    let path = format!("/products/{id}");
    event["rawPath"] = json!(path);
    event["requestContext"]["http"]["path"] = json!(path);
    event["pathParameters"]["id"] = json!(id);
    event
}

#[tokio::test]
async fn signup_and_login_events() {
    let email = unique_email("event");
    let mut body: Value = serde_json::from_str(event("signup.json")["body"].as_str().unwrap()).unwrap();
    body["email"] = json!(email);
    let (status, created) =
        http_result(&invoke("SignupFunction", &with_body(event("signup.json"), body.clone())).await);
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["email"], email);

    // The sample logs in the seeded admin as is.
    let (status, reply) = http_result(&invoke("LoginFunction", &event("login.json")).await);
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert!(reply["token"].as_str().is_some());
}

#[tokio::test]
async fn product_events() {
    let admin = admin_token().await;
    let (status, created) =
        http_result(&invoke("ProductsFunction", &with_token(event("products-create.json"), &admin)).await);
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["name"], "Pour-over kettle");
    let id = created["id"].as_str().unwrap();

    let (status, got) = http_result(&invoke("ProductsFunction", &with_product(event("products-get.json"), id)).await);
    assert_eq!((status, got["id"].as_str()), (StatusCode::OK, Some(id)));

    let (status, page) = http_result(&invoke("ProductsFunction", &event("products-list.json")).await);
    assert_eq!(status, StatusCode::OK);
    assert!(page["items"].as_array().unwrap().len() <= 5);

    let update = with_token(with_product(event("products-update.json"), id), &admin);
    let (status, updated) = http_result(&invoke("ProductsFunction", &update).await);
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["price"]["amount"], 3900);
    assert_eq!(updated["stock"]["available"], 17);

    let delete = with_token(with_product(event("products-delete.json"), id), &admin);
    let (status, _) = http_result(&invoke("ProductsFunction", &delete).await);
    assert_eq!(status, StatusCode::NO_CONTENT);

    // Unedited, the samples' placeholder token is refused, as it should be.
    let (status, _) = http_result(&invoke("ProductsFunction", &event("products-create.json")).await);
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

fn with_path(mut event: Value, path: &str, params: Value) -> Value {
    event["rawPath"] = json!(path);
    event["requestContext"]["http"]["path"] = json!(path);
    event["pathParameters"] = params;
    event
}

#[tokio::test]
async fn payment_events() {
    use shop_tests::payments::*;
    // POST /payments, with a fresh order in place of the sample's.
    let o = pending_order("event-pay", 5, 1).await;
    let mut body: Value = serde_json::from_str(event("payments.json")["body"].as_str().unwrap()).unwrap();
    body["order_id"] = json!(o.order);
    let (status, paid) =
        http_result(&invoke("PaymentsFunction", &with_token(with_body(event("payments.json"), body), &o.token)).await);
    assert_eq!(status, StatusCode::OK, "{paid}");
    assert_eq!(paid["state"], "PAID");

    // The gateway's two routes.
    let other = pending_order("event-charge", 5, 1).await;
    let mut charge: Value =
        serde_json::from_str(event("mock-gateway-create-charge.json")["body"].as_str().unwrap()).unwrap();
    charge["reference"] = json!(other.order);
    charge["amount"] = json!(other.total);
    let mut create = with_body(event("mock-gateway-create-charge.json"), charge);
    create["headers"]["idempotency-key"] = json!(uuid::Uuid::new_v4().to_string());
    let (status, created) = http_result(&invoke("MockGatewayFunction", &create).await);
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    let get = with_path(event("mock-gateway-get-charge.json"), &format!("/gateway/charges/{id}"), json!({"id": id}));
    let (status, got) = http_result(&invoke("MockGatewayFunction", &get).await);
    assert_eq!((status, got["status"].as_str()), (StatusCode::OK, Some("succeeded")), "{got}");
    assert_eq!(order_state(&other.token, &other.order).await, "PAID", "its webhook was delivered");

    // POST /webhooks/payment, re-signed for a fresh order; the sample's placeholder signature is refused.
    let third = pending_order("event-webhook", 5, 1).await;
    let mut hook: Value = serde_json::from_str(event("payment-webhook.json")["body"].as_str().unwrap()).unwrap();
    hook["id"] = json!(format!("evt_{}", uuid::Uuid::new_v4().simple()));
    hook["data"]["charge"]["reference"] = json!(third.order);
    hook["data"]["charge"]["amount"] = json!(third.total);
    let raw = hook.to_string();
    let mut signed = event("payment-webhook.json");
    signed["body"] = json!(raw);
    signed["headers"]["payment-signature"] = json!(signature(&raw, now()));
    let (status, received) = http_result(&invoke("PaymentWebhookFunction", &signed).await);
    assert_eq!((status, received["result"].as_str()), (StatusCode::OK, Some("paid")), "{received}");
    let (status, _) = http_result(&invoke("PaymentWebhookFunction", &event("payment-webhook.json")).await);
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // The delivery schedule, with the sample schedule event at the current time.
    let report = deliver_webhooks_at(time::OffsetDateTime::now_utc()).await;
    assert!(report["delivered"].is_u64() && report["failed"].is_u64(), "{report}");
}

#[tokio::test]
async fn account_events() {
    // Asking for a reset answers the same whatever the address: the sample's is nobody's.
    let (status, reply) = http_result(&invoke("AccountFunction", &event("password-reset.json")).await);
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");

    let (email, token) = new_customer("event-export").await;
    let (status, export) = http_result(&invoke("AccountFunction", &with_token(event("me-export.json"), &token)).await);
    assert_eq!(status, StatusCode::OK, "{export}");
    assert_eq!(export["account"]["email"], email);
    assert_eq!(export["orders"], json!([]));
}
