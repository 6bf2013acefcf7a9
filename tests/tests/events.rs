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
