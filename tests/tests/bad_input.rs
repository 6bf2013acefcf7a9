//! Every malformed request gets a clear JSON 4xx and writes nothing.
//!
//! "Writes nothing" is checked on the whole table, so these tests run alone: `.config/nextest.toml`
//! gives them every test thread, and nothing else runs while they compare before and after.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shop_tests::*;

struct Case {
    name: &'static str,
    method: Method,
    path: String,
    token: Option<String>,
    body: Vec<u8>,
    status: StatusCode,
    code: &'static str,
}

fn case(
    name: &'static str,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Value,
    status: u16,
    code: &'static str,
) -> Case {
    let body = if body.is_null() { Vec::new() } else { body.to_string().into_bytes() };
    Case {
        name,
        method,
        path: path.into(),
        token: token.map(String::from),
        body,
        status: StatusCode::from_u16(status).unwrap(),
        code,
    }
}

fn raw(
    name: &'static str,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: &[u8],
    status: u16,
    code: &'static str,
) -> Case {
    Case { body: body.to_vec(), ..case(name, method, path, token, Value::Null, status, code) }
}

/// Runs every case, asserting status, error code and that the table did not change.
async fn assert_refused_without_writes(cases: Vec<Case>) {
    let before = table_snapshot().await;
    for c in &cases {
        let r = call_raw(c.method.clone(), &c.path, c.token.as_deref(), c.body.clone()).await;
        assert_eq!(r.status, c.status, "{}: {:?}", c.name, r.body);
        assert_eq!(r.error_code(), c.code, "{}: {:?}", c.name, r.body);
    }
    let after = table_snapshot().await;
    let changed: Vec<_> = after.iter().filter(|(k, v)| before.get(*k) != Some(v)).map(|(k, _)| k).collect();
    assert!(changed.is_empty() && before.len() == after.len(), "items written or changed: {changed:?}");
}

#[tokio::test]
async fn bad_signups_and_logins_are_refused_without_writes() {
    let email = unique_email("bad");
    let big = format!(r#"{{"email":"{email}","password":"{}"}}"#, "x".repeat(70_000));
    let signup = "/auth/signup";
    let login = "/auth/login";
    let ok_pw = PASSWORD;
    assert_refused_without_writes(vec![
        raw("not json", Method::POST, signup, None, b"{\"email\":", 400, "invalid_json"),
        raw("empty body", Method::POST, signup, None, b"", 400, "invalid_json"),
        case("array body", Method::POST, signup, None, json!([email, ok_pw]), 400, "invalid_body"),
        case("missing password", Method::POST, signup, None, json!({"email": email}), 400, "invalid_body"),
        case("missing email", Method::POST, signup, None, json!({"password": ok_pw}), 400, "invalid_body"),
        case(
            "email not a string",
            Method::POST,
            signup,
            None,
            json!({"email": 42, "password": ok_pw}),
            400,
            "invalid_body",
        ),
        case(
            "unknown field",
            Method::POST,
            signup,
            None,
            json!({"email": email, "password": ok_pw, "role": "admin"}),
            400,
            "invalid_body",
        ),
        case(
            "bad email",
            Method::POST,
            signup,
            None,
            json!({"email": "not-an-email", "password": ok_pw}),
            400,
            "invalid_input",
        ),
        case(
            "an address SES cannot send to (non-ASCII local part)",
            Method::POST,
            signup,
            None,
            json!({"email": format!("josé-{email}"), "password": ok_pw}),
            400,
            "invalid_input",
        ),
        case(
            "short password",
            Method::POST,
            signup,
            None,
            json!({"email": email, "password": "short"}),
            400,
            "invalid_input",
        ),
        case(
            "name too long",
            Method::POST,
            signup,
            None,
            json!({"email": email, "password": ok_pw, "name": "n".repeat(101)}),
            400,
            "invalid_input",
        ),
        raw("oversized body", Method::POST, signup, None, big.as_bytes(), 413, "payload_too_large"),
        raw("login not json", Method::POST, login, None, b"email=a&password=b", 400, "invalid_json"),
        case("login missing password", Method::POST, login, None, json!({"email": email}), 400, "invalid_body"),
    ])
    .await;
}

#[tokio::test]
async fn bad_product_writes_are_refused_without_writes() {
    let admin = admin_token().await;
    let p = new_product(&admin, "Target", 1000, 4).await;
    let one = format!("/products/{}", p["id"].as_str().unwrap());
    let missing = format!("/products/{}", uuid::Uuid::now_v7());
    let a = Some(admin.as_str());
    let price = json!({"amount": 100, "currency": "EUR"});
    let big = json!({"name": "x", "price": price, "description": "d".repeat(70_000)});
    assert_refused_without_writes(vec![
        raw("not json", Method::POST, "/products", a, b"{name: 1}", 400, "invalid_json"),
        case("missing price", Method::POST, "/products", a, json!({"name": "A"}), 400, "invalid_body"),
        case(
            "price is a string",
            Method::POST,
            "/products",
            a,
            json!({"name": "A", "price": "12.99"}),
            400,
            "invalid_body",
        ),
        case(
            "amount is a float",
            Method::POST,
            "/products",
            a,
            json!({"name": "A", "price": {"amount": 12.5, "currency": "EUR"}}),
            400,
            "invalid_body",
        ),
        case(
            "negative price",
            Method::POST,
            "/products",
            a,
            json!({"name": "A", "price": {"amount": -1, "currency": "EUR"}}),
            400,
            "invalid_input",
        ),
        case(
            "lower-case currency",
            Method::POST,
            "/products",
            a,
            json!({"name": "A", "price": {"amount": 1, "currency": "eur"}}),
            400,
            "invalid_input",
        ),
        case(
            "negative stock",
            Method::POST,
            "/products",
            a,
            json!({"name": "A", "price": price, "stock": -1}),
            400,
            "invalid_input",
        ),
        case(
            "stock is text",
            Method::POST,
            "/products",
            a,
            json!({"name": "A", "price": price, "stock": "ten"}),
            400,
            "invalid_body",
        ),
        case("blank name", Method::POST, "/products", a, json!({"name": "   ", "price": price}), 400, "invalid_input"),
        case(
            "unknown field",
            Method::POST,
            "/products",
            a,
            json!({"name": "A", "price": price, "available_stock": 5}),
            400,
            "invalid_body",
        ),
        case("oversized", Method::POST, "/products", a, big, 413, "payload_too_large"),
        case("empty update", Method::PUT, &one, a, json!({}), 400, "invalid_input"),
        case("zero adjustment", Method::PUT, &one, a, json!({"stock_adjustment": 0}), 400, "invalid_input"),
        case("adjustment is text", Method::PUT, &one, a, json!({"stock_adjustment": "5"}), 400, "invalid_body"),
        case("adjustment i64::MIN", Method::PUT, &one, a, json!({"stock_adjustment": i64::MIN}), 400, "invalid_input"),
        case("adjustment i64::MAX", Method::PUT, &one, a, json!({"stock_adjustment": i64::MAX}), 400, "invalid_input"),
        case("overwrite stock", Method::PUT, &one, a, json!({"available_stock": 99}), 400, "invalid_body"),
        case("zero buckets", Method::PUT, &one, a, json!({"stock_buckets": 0}), 400, "invalid_input"),
        case("33 buckets", Method::PUT, &one, a, json!({"stock_buckets": 33}), 400, "invalid_input"),
        case("buckets i64::MIN", Method::PUT, &one, a, json!({"stock_buckets": i64::MIN}), 400, "invalid_input"),
        case("buckets i64::MAX", Method::PUT, &one, a, json!({"stock_buckets": i64::MAX}), 400, "invalid_input"),
        case("buckets are text", Method::PUT, &one, a, json!({"stock_buckets": "16"}), 400, "invalid_body"),
        case(
            "create with 65536 buckets",
            Method::POST,
            "/products",
            a,
            json!({"name": "A", "price": price, "stock_buckets": 65536}),
            400,
            "invalid_input",
        ),
        case(
            "remove reserved-or-missing units",
            Method::PUT,
            &one,
            a,
            json!({"stock_adjustment": -5}),
            409,
            "insufficient_stock",
        ),
        case("unknown product", Method::PUT, &missing, a, json!({"name": "B"}), 404, "not_found"),
        case("malformed id", Method::PUT, "/products/not-a-uuid", a, json!({"name": "B"}), 404, "not_found"),
        case("delete unknown", Method::DELETE, &missing, a, Value::Null, 404, "not_found"),
        case("limit zero", Method::GET, "/products?limit=0", None, Value::Null, 400, "invalid_limit"),
        case("limit text", Method::GET, "/products?limit=ten", None, Value::Null, 400, "invalid_limit"),
        case("limit too big", Method::GET, "/products?limit=101", None, Value::Null, 400, "invalid_limit"),
        case(
            "forged cursor",
            Method::GET,
            "/products?cursor=eyJwayI6IlVTRVIjMSJ9",
            None,
            Value::Null,
            400,
            "invalid_cursor",
        ),
        case("get unknown", Method::GET, &missing, None, Value::Null, 404, "not_found"),
    ])
    .await;
}

#[tokio::test]
async fn unknown_routes_get_a_json_404() {
    let r = call(Method::GET, "/no/such/route", None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body.is_object());
}

#[tokio::test]
async fn bad_cart_and_order_requests_are_refused_without_writes() {
    let admin = admin_token().await;
    let (_, me) = new_customer("badorder").await;
    let eur = new_product(&admin, "Euro thing", 1000, 5).await;
    let usd = call(
        Method::POST,
        "/products",
        Some(&admin),
        Some(json!({"name": "Dollar thing", "price": {"amount": 1000, "currency": "USD"}, "stock": 5})),
    )
    .await
    .body;
    let (e, u) = (eur["id"].as_str().unwrap(), usd["id"].as_str().unwrap());
    let missing = uuid::Uuid::now_v7().to_string();
    let t = Some(me.as_str());
    let line = |id: &str, q: i64| json!({"product_id": id, "quantity": q});
    let too_many: Vec<Value> = (0..98).map(|_| line(&uuid::Uuid::now_v7().to_string(), 1)).collect();
    let cart_item = |id: &str| format!("/cart/items/{id}");

    // POST /orders needs an Idempotency-Key; `call_raw` sends none, so those cases go first.
    let mut cases = vec![
        case(
            "no idempotency key",
            Method::POST,
            "/orders",
            t,
            json!({"lines": [line(e, 1)]}),
            400,
            "idempotency_key_required",
        ),
        case("cart quantity zero", Method::PUT, &cart_item(e), t, json!({"quantity": 0}), 400, "invalid_input"),
        case("cart quantity 100", Method::PUT, &cart_item(e), t, json!({"quantity": 100}), 400, "invalid_input"),
        case("cart quantity negative", Method::PUT, &cart_item(e), t, json!({"quantity": -1}), 400, "invalid_body"),
        case("cart quantity text", Method::PUT, &cart_item(e), t, json!({"quantity": "2"}), 400, "invalid_body"),
        case("cart unknown product", Method::PUT, &cart_item(&missing), t, json!({"quantity": 1}), 404, "not_found"),
        case("cart malformed id", Method::PUT, "/cart/items/xyz", t, json!({"quantity": 1}), 404, "not_found"),
        case("cart without token", Method::PUT, &cart_item(e), None, json!({"quantity": 1}), 401, "unauthorized"),
        case("remove line not in cart", Method::DELETE, &cart_item(e), t, Value::Null, 404, "not_found"),
        case(
            "cancel unknown order",
            Method::POST,
            &format!("/orders/{missing}/cancel"),
            t,
            Value::Null,
            404,
            "not_found",
        ),
        case("orders limit zero", Method::GET, "/orders?limit=0", t, Value::Null, 400, "invalid_limit"),
        case("orders forged cursor", Method::GET, "/orders?cursor=!!", t, Value::Null, 400, "invalid_cursor"),
    ];
    let before = table_snapshot().await;
    for c in cases.drain(..) {
        let r = call_raw(c.method.clone(), &c.path, c.token.as_deref(), c.body.clone()).await;
        assert_eq!(r.status, c.status, "{}: {:?}", c.name, r.body);
        assert_eq!(r.error_code(), c.code, "{}: {:?}", c.name, r.body);
    }
    // With a key: every malformed order, refused before the transaction.
    let orders: Vec<(&str, Option<Value>, u16, &str)> = vec![
        ("empty cart", None, 400, "cart_empty"),
        ("no lines", Some(json!({"lines": []})), 400, "invalid_lines"),
        ("quantity zero", Some(json!({"lines": [line(e, 0)]})), 400, "invalid_lines"),
        ("quantity 100", Some(json!({"lines": [line(e, 100)]})), 400, "invalid_lines"),
        ("duplicate product", Some(json!({"lines": [line(e, 1), line(e, 2)]})), 400, "invalid_lines"),
        ("too many lines for one transaction", Some(json!({ "lines": too_many })), 400, "too_many_lines"),
        ("product id not a uuid", Some(json!({"lines": [{"product_id": "p1", "quantity": 1}]})), 400, "invalid_body"),
        ("unknown field", Some(json!({"lines": [line(e, 1)], "total": 1})), 400, "invalid_body"),
        ("unknown product", Some(json!({"lines": [line(&missing, 1)]})), 404, "product_not_found"),
        ("mixed currencies", Some(json!({"lines": [line(e, 1), line(u, 1)]})), 422, "mixed_currencies"),
        ("more than in stock", Some(json!({"lines": [line(e, 6)]})), 409, "out_of_stock"),
    ];
    for (name, body, status, code) in orders {
        let mut req = client()
            .post(format!("{}/orders", stack().api))
            .bearer_auth(&me)
            .header("idempotency-key", uuid::Uuid::new_v4().to_string());
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{name}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{name}: {body}");
    }
    for key in ["", &"k".repeat(129), "has space"] {
        let r = client()
            .post(format!("{}/orders", stack().api))
            .bearer_auth(&me)
            .header("idempotency-key", key)
            .json(&json!({"lines": [line(e, 1)]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "key {key:?}");
    }
    let after = table_snapshot().await;
    assert_eq!(before, after, "a refused cart or order request wrote something");
}
