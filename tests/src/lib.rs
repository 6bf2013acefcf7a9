//! Helpers for the black-box tests in `tests/tests/`.
//!
//! The tests talk to the stack that `cargo local test` started (real function binaries behind
//! the local API Gateway, DynamoDB Local underneath), found through the `SHOP_*` variables it sets.
//! They never mock a part of the stack: assertions read the API's answers and the table itself.
//! Every test makes its own users and products (unique e-mails, fresh ids), so tests can run in
//! parallel against one stack.

pub mod mail;

pub mod payments;

use aws_sdk_dynamodb::types::AttributeValue;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;
use std::time::Duration;

/// The running stack, from the environment `cargo local test` provides.
pub struct Stack {
    pub api: String,
    pub invoke: String,
    pub table: String,
    pub admin_email: String,
    pub admin_password: String,
    pub jwt_secret: String,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub workspace: std::path::PathBuf,
    dynamodb_endpoint: String,
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: these tests run against the local stack. Run `cargo local test`, \
             or `cargo local up` and then `set -a; . target/local-stack.env; cargo nextest run --cargo-profile local`"
        )
    })
}

pub fn stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| Stack {
        api: var("SHOP_API_URL"),
        invoke: var("SHOP_INVOKE_URL"),
        table: var("SHOP_TABLE_NAME"),
        admin_email: var("SHOP_ADMIN_EMAIL"),
        admin_password: var("SHOP_ADMIN_PASSWORD"),
        jwt_secret: var("SHOP_JWT_SECRET"),
        jwt_issuer: var("SHOP_JWT_ISSUER"),
        jwt_audience: var("SHOP_JWT_AUDIENCE"),
        workspace: var("SHOP_WORKSPACE").into(),
        dynamodb_endpoint: var("SHOP_DYNAMODB_ENDPOINT"),
    })
}

/// One HTTP response: status, headers and parsed JSON body (`Value::Null` when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// Asserts the API's error shape (README, "The HTTP API") and returns the error code.
    pub fn error_code(&self) -> &str {
        let e = &self.body["error"];
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "no error message in {}", self.body);
        assert!(e["request_id"].as_str().is_some(), "no request id in {}", self.body);
        e["code"].as_str().unwrap_or_else(|| panic!("no error code in {}", self.body))
    }
}

/// The HTTP client, one per thread. Pooled connections belong to the tokio runtime that opened
/// them, and each `#[tokio::test]` has a runtime of its own: under nextest (a process per test)
/// that is one client per test anyway, and under plain `cargo test` (a thread per test) a
/// process-wide client would hand a test the connections of a test whose runtime is gone.
pub fn client() -> reqwest::Client {
    thread_local! {
        static CLIENT: reqwest::Client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .build()
            .expect("http client");
    }
    CLIENT.with(reqwest::Client::clone)
}

/// Sends a request to the API. `body` is sent as JSON when `Some`.
pub async fn call(method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
    let mut req = client().request(method, format!("{}{path}", stack().api));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    into_reply(req.send().await.expect("request to the local API")).await
}

/// Sends raw bytes (for malformed JSON and oversized bodies).
pub async fn call_raw(method: Method, path: &str, token: Option<&str>, body: Vec<u8>) -> Reply {
    let mut req = client().request(method, format!("{}{path}", stack().api)).header("content-type", "application/json");
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    into_reply(req.body(body).send().await.expect("request to the local API")).await
}

pub async fn into_reply(resp: reqwest::Response) -> Reply {
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("response body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("response is not JSON ({status}): {}", String::from_utf8_lossy(&bytes)))
    };
    Reply { status, headers, body }
}

/// An address no other test uses.
pub fn unique_email(tag: &str) -> String {
    format!("{tag}-{}@test.shop.local", uuid::Uuid::new_v4().simple())
}

pub const PASSWORD: &str = "correct horse battery";

/// Signs up a new customer and returns (email, token).
pub async fn new_customer(tag: &str) -> (String, String) {
    let email = unique_email(tag);
    let r = call(Method::POST, "/auth/signup", None, Some(json!({"email": email, "password": PASSWORD}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    (email.clone(), login(&email, PASSWORD).await)
}

pub async fn login(email: &str, password: &str) -> String {
    let r = call(Method::POST, "/auth/login", None, Some(json!({"email": email, "password": password}))).await;
    assert_eq!(r.status, StatusCode::OK, "login {email}: {:?}", r.body);
    r.body["token"].as_str().expect("token").to_owned()
}

/// A token of the admin the local stack seeded.
pub async fn admin_token() -> String {
    login(&stack().admin_email, &stack().admin_password).await
}

/// Runs the operator's `shop-admin` command (the real binary, with the local stack's DynamoDB as
/// an operator's AWS credentials would reach the real one): `(succeeded, stdout + stderr)`.
pub fn shop_admin(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(var("SHOP_ADMIN_COMMAND"))
        .args(["--table", &stack().table])
        .args(args)
        .env("AWS_ENDPOINT_URL_DYNAMODB", &stack().dynamodb_endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .output()
        .expect("running shop-admin");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Creates a product as admin and returns its JSON.
pub async fn new_product(admin: &str, name: &str, price: i64, stock: i64) -> Value {
    new_product_in_buckets(admin, name, price, stock, 1).await
}

/// Creates a product whose stock is spread over `buckets` stock buckets.
pub async fn new_product_in_buckets(admin: &str, name: &str, price: i64, stock: i64, buckets: u16) -> Value {
    let mut body = json!({"name": name, "price": {"amount": price, "currency": "EUR"}, "stock": stock});
    if buckets != 1 {
        body["stock_buckets"] = json!(buckets);
    }
    let r = call(Method::POST, "/products", Some(admin), Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["stock_buckets"], buckets);
    r.body
}

/// Invokes a function through the local Lambda Invoke API, as `sam local invoke` would.
/// Returns the function's result (for HTTP functions: `{statusCode, headers, body}`).
pub async fn invoke(function: &str, event: &Value) -> Value {
    let url = format!("{}/2015-03-31/functions/{function}/invocations", stack().invoke);
    let resp = client().post(url).json(event).send().await.expect("invoke");
    assert!(resp.status().is_success(), "invoke {function}: {}", resp.status());
    assert!(resp.headers().get("x-amz-function-error").is_none(), "function {function} failed");
    resp.json().await.expect("invoke result is JSON")
}

/// Reads an event file from `events/`.
pub fn event(file: &str) -> Value {
    let path = stack().workspace.join("events").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub async fn dynamodb() -> aws_sdk_dynamodb::Client {
    use aws_sdk_dynamodb::config::{Credentials, Region};
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(shop::aws::behavior_version())
        .endpoint_url(&stack().dynamodb_endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "tests"))
        .http_client(shop::aws::https_client(shop::aws::TrustRoots::System))
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// The whole table, as a sorted map `pk|sk → item`, for "nothing changed" assertions
/// (without the notifier's asynchronous e-mail markers).
pub async fn table_snapshot() -> BTreeMap<String, String> {
    let db = dynamodb().await;
    let mut out = BTreeMap::new();
    let mut start: Option<HashMap<String, AttributeValue>> = None;
    loop {
        let page = db.scan().table_name(&stack().table).set_exclusive_start_key(start).send().await.expect("scan");
        for item in page.items() {
            let key = format!("{}|{}", s(item, "pk"), s(item, "sk"));
            // The notifier writes its once-per-event e-mail records asynchronously (MSK trigger),
            // for events of earlier requests; a refused request writes no event, so none of these.
            if key.starts_with("EMAIL_SENT#") {
                continue;
            }
            // The outbox relay marks the events of earlier requests published, asynchronously: an
            // outbox item is compared by its presence and content, not by its delivery state.
            let delivery = ["gsi1pk", "gsi1sk", "published_at", "expires_at", "redrives", "redriven_at"];
            let outbox = key.starts_with("EVENT#");
            let mut fields: Vec<_> = item
                .iter()
                .filter(|(k, _)| !(outbox && delivery.contains(&k.as_str())))
                .map(|(k, v)| format!("{k}={}", canonical(v)))
                .collect();
            fields.sort();
            out.insert(key, fields.join(","));
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            return out;
        }
    }
}

/// An attribute value as text, the same every time: a map's members sorted by name (`{:?}` of a
/// map follows its `HashMap`'s order, which differs between two reads of the same item).
fn canonical(v: &AttributeValue) -> String {
    match v {
        AttributeValue::M(m) => {
            let mut members: Vec<String> = m.iter().map(|(k, v)| format!("{k:?}: {}", canonical(v))).collect();
            members.sort();
            format!("M({{{}}})", members.join(", "))
        }
        AttributeValue::L(l) => format!("L([{}])", l.iter().map(canonical).collect::<Vec<_>>().join(", ")),
        other => format!("{other:?}"),
    }
}

/// One item by key, if present.
pub async fn get_item(pk: &str, sk: &str) -> Option<HashMap<String, AttributeValue>> {
    dynamodb()
        .await
        .get_item()
        .table_name(&stack().table)
        .key("pk", AttributeValue::S(pk.into()))
        .key("sk", AttributeValue::S(sk.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("get_item")
        .item
}

fn s(item: &HashMap<String, AttributeValue>, k: &str) -> String {
    item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default()
}

/// `POST /orders` with an Idempotency-Key; `lines` as `[(product id, quantity)]`, or the cart when `None`.
pub async fn place_order(token: &str, key: &str, lines: Option<&[(&str, u32)]>) -> Reply {
    let mut req = client().post(format!("{}/orders", stack().api)).bearer_auth(token).header("idempotency-key", key);
    if let Some(lines) = lines {
        let lines: Vec<Value> = lines.iter().map(|(id, q)| json!({"product_id": id, "quantity": q})).collect();
        req = req.json(&json!({ "lines": lines }));
    }
    into_reply(req.send().await.expect("request to the local API")).await
}

/// A product's stock as `(available, reserved, sellable)`, summed over its stock buckets, read
/// from the table (deleted ones too); the invariant is checked per bucket.
pub async fn stock(product_id: &str) -> (i64, i64, i64) {
    bucket_stocks(product_id).await.into_iter().fold((0, 0, 0), |t, (_, s)| (t.0 + s.0, t.1 + s.1, t.2 + s.2))
}

/// Every stock bucket of a product, `(bucket, (available, reserved, sellable))`, each checked
/// against `0 <= reserved <= available`, `sellable = available - reserved`.
pub async fn bucket_stocks(product_id: &str) -> Vec<(u16, (i64, i64, i64))> {
    let product = get_item(&format!("PRODUCT#{product_id}"), "PRODUCT").await.expect("product item");
    let slots: u16 = product.get("bucket_slots").map_or(1, |v| v.as_n().unwrap().parse().unwrap());
    let mut out = Vec::new();
    for k in 0..slots {
        let item = if k == 0 {
            product.clone()
        } else {
            get_item(&format!("PRODUCT#{product_id}#STOCK#{k}"), "STOCK").await.expect("stock bucket item")
        };
        let n = |k: &str| item[k].as_n().unwrap().parse::<i64>().unwrap();
        let s = (n("available_stock"), n("reserved_stock"), n("sellable_stock"));
        assert!(
            0 <= s.1 && s.1 <= s.0 && s.2 == s.0 - s.1,
            "stock invariant broken for {product_id} bucket {k}: {s:?}"
        );
        out.push((k, s));
    }
    out
}

/// Runs the sweeper as the schedule would, at `at` (its "now").
pub async fn sweep_at(at: time::OffsetDateTime) -> Value {
    let mut event = event("schedule.json");
    event["time"] = json!(at.format(&time::format_description::well_known::Rfc3339).unwrap());
    invoke("SweeperFunction", &event).await
}

/// Every order item in the table, as `(state, [(product id, quantity)])`.
pub async fn all_orders() -> Vec<(String, Vec<(String, i64)>)> {
    all_orders_by_bucket()
        .await
        .into_iter()
        .map(|(state, lines)| {
            (state, lines.into_iter().map(|(p, shares)| (p, shares.iter().map(|(_, q)| q).sum())).collect())
        })
        .collect()
}

/// Every order item in the table, as `(state, [(product id, [(bucket, quantity)])])`.
pub async fn all_orders_by_bucket() -> Vec<(String, Vec<(String, Vec<(u16, i64)>)>)> {
    let db = dynamodb().await;
    let mut out = Vec::new();
    let mut start: Option<HashMap<String, AttributeValue>> = None;
    loop {
        let page = db
            .scan()
            .table_name(&stack().table)
            .filter_expression("sk = :o")
            .expression_attribute_values(":o", AttributeValue::S("ORDER".into()))
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan orders");
        for item in page.items() {
            let lines = item["lines"]
                .as_l()
                .unwrap()
                .iter()
                .map(|l| {
                    let m = l.as_m().unwrap();
                    let quantity: i64 = m["quantity"].as_n().unwrap().parse().unwrap();
                    let shares = match m.get("buckets") {
                        None => vec![(0, quantity)],
                        Some(b) => b
                            .as_l()
                            .unwrap()
                            .iter()
                            .map(|s| {
                                let s = s.as_m().unwrap();
                                (
                                    s["bucket"].as_n().unwrap().parse().unwrap(),
                                    s["quantity"].as_n().unwrap().parse().unwrap(),
                                )
                            })
                            .collect(),
                    };
                    assert_eq!(shares.iter().map(|(_, q)| q).sum::<i64>(), quantity, "a line's shares add up");
                    (m["product_id"].as_s().unwrap().clone(), shares)
                })
                .collect();
            out.push((s(item, "state"), lines));
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            return out;
        }
    }
}

/// Asserts, for each product and each of its stock buckets, that the units held there by live
/// (`PENDING_PAYMENT`) orders are exactly its `reserved_stock`: no unit lost, none counted twice.
pub async fn assert_units_conserved(product_ids: &[&str]) {
    let orders = all_orders_by_bucket().await;
    for id in product_ids {
        let mut held: HashMap<u16, i64> = HashMap::new();
        for (_, shares) in orders
            .iter()
            .filter(|(state, _)| state == "PENDING_PAYMENT")
            .flat_map(|(_, lines)| lines.iter())
            .filter(|(p, _)| p == id)
        {
            for (bucket, q) in shares {
                *held.entry(*bucket).or_default() += q;
            }
        }
        for (bucket, (_, reserved, _)) in bucket_stocks(id).await {
            let h = held.remove(&bucket).unwrap_or(0);
            assert_eq!(reserved, h, "product {id} bucket {bucket}: reserved_stock {reserved} but live orders hold {h}");
        }
        assert!(held.is_empty(), "product {id}: live orders hold units in buckets that do not exist: {held:?}");
    }
}

// The functions' DynamoDB traffic, through the local stack's proxy (local/src/emulators/dynamodb_proxy.rs).
// Its counters and fault switch are global to the stack: tests that use them run alone
// (.config/nextest.toml).

async fn invoke_api(method: Method, path: &str, body: Option<Value>) -> Value {
    let mut req = client().request(method, format!("{}{path}", stack().invoke));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request to the Invoke API");
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.json().await.expect("JSON from the Invoke API")
}

/// The functions' DynamoDB requests since the last reset:
/// `{"<Operation>": n, ..., "total": n, "injected_conflicts": n, "injected_throttles": n}`.
pub async fn dynamodb_stats() -> Value {
    invoke_api(Method::GET, "/_local/dynamodb/stats", None).await
}

pub async fn reset_dynamodb_stats() {
    invoke_api(Method::POST, "/_local/dynamodb/stats/reset", None).await;
}

/// Switches DynamoDB fault injection on (e.g. `{"transaction_conflict_rate": 0.3}`) until the
/// returned guard is dropped, which switches it off again, also when the test panics.
pub async fn inject_dynamodb_faults(faults: Value) -> FaultsOff {
    invoke_api(Method::POST, "/_local/dynamodb/faults", Some(faults)).await;
    FaultsOff
}

#[must_use = "faults are switched off when this guard is dropped"]
pub struct FaultsOff;

impl Drop for FaultsOff {
    fn drop(&mut self) {
        delete_from_drop("/_local/dynamodb/faults", "switch DynamoDB faults off");
    }
}

/// `DELETE <path>` on the Invoke API from a `Drop`: Drop cannot await, and may run inside the
/// test's runtime, so a plain blocking HTTP/1.0 request on a thread of its own.
pub(crate) fn delete_from_drop(path: &'static str, what: &str) {
    let host = stack().invoke.trim_start_matches("http://").trim_end_matches('/').to_owned();
    let sent = std::thread::spawn(move || -> std::io::Result<String> {
        use std::io::{Read, Write};
        let mut conn = std::net::TcpStream::connect(&host)?;
        write!(conn, "DELETE {path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
        let mut answer = String::new();
        conn.read_to_string(&mut answer)?;
        Ok(answer)
    })
    .join();
    match sent {
        Ok(Ok(answer)) if answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200") => {}
        other => eprintln!("could not {what}: {other:?}"),
    }
}

/// Has the stack judge IAM with the roles of `template` (YAML text) until the returned guard is
/// dropped, which goes back to template.yaml's, also when the test panics. Denials meanwhile are
/// reported apart and do not fail the run (see the local stack's `emulators::iam::control`).
pub async fn judge_with_template(template: &str) -> TemplateRestored {
    let url = format!("{}/_local/iam/template", stack().invoke);
    let r = client().put(url).body(template.to_owned()).send().await.expect("PUT /_local/iam/template");
    assert!(r.status().is_success(), "the stack refused the template: {}", r.text().await.unwrap_or_default());
    TemplateRestored
}

#[must_use = "template.yaml's roles come back when this guard is dropped"]
pub struct TemplateRestored;

impl Drop for TemplateRestored {
    fn drop(&mut self) {
        delete_from_drop("/_local/iam/template", "restore template.yaml's roles");
    }
}

/// One alarm of template.yaml as the local stack evaluates it (`GET /_local/alarms`): its
/// `state`, how often it `fired`, its history.
pub async fn alarm(id: &str) -> Value {
    let url = format!("{}/_local/alarms", stack().invoke);
    let all: Value = client().get(url).send().await.expect("alarms").json().await.expect("alarms JSON");
    all["alarms"]
        .as_array()
        .expect("alarms")
        .iter()
        .find(|a| a["alarm"] == id)
        .unwrap_or_else(|| panic!("{id} is evaluated locally: {all}"))
        .clone()
}

/// The stack's least-privilege report so far (`GET /_local/iam/report`).
pub async fn iam_report() -> Value {
    invoke_api(Method::GET, "/_local/iam/report", None).await
}

/// Places an order as a well-behaved client does: a 503 (`unavailable`, "retry shortly") is
/// retried after a pause with the *same* Idempotency-Key, so an order that was in fact created
/// comes back as its replay (200) and is never placed twice. Any other answer is final.
pub async fn place_order_retrying(token: &str, key: &str, lines: Option<&[(&str, u32)]>) -> Reply {
    let mut pause = Duration::from_millis(100);
    for _ in 0..5 {
        let r = place_order(token, key, lines).await;
        if r.status != StatusCode::SERVICE_UNAVAILABLE {
            return r;
        }
        assert_eq!(r.error_code(), "unavailable", "a 503 that is not the API's own");
        eprintln!("place order: 503 unavailable, retrying with the same Idempotency-Key");
        tokio::time::sleep(pause).await;
        pause *= 2;
    }
    place_order(token, key, lines).await
}

/// A race's set-up: a new product with `units` in stock and `buyers` signed-up customers.
pub struct Race {
    pub product: String,
    buyers: Vec<String>,
}

impl Race {
    pub async fn set_up(tag: &str, units: i64, buyers: usize) -> Self {
        Self::set_up_in_buckets(tag, units, buyers, 1).await
    }

    /// [`Race::set_up`] with the product's stock spread over `buckets` stock buckets.
    pub async fn set_up_in_buckets(tag: &str, units: i64, buyers: usize, buckets: u16) -> Self {
        let admin = admin_token().await;
        let product =
            new_product_in_buckets(&admin, &format!("{tag} limited edition"), 4900, units, buckets).await["id"]
                .as_str()
                .expect("product id")
                .to_owned();
        let buyers = futures::future::join_all((0..buyers).map(|_| new_customer(tag))).await;
        Self { product, buyers: buyers.into_iter().map(|(_, token)| token).collect() }
    }

    /// The token of buyer `i` (wrapping around).
    pub fn buyer(&self, i: usize) -> &str {
        &self.buyers[i % self.buyers.len()]
    }

    /// `attempts` one-unit orders from the buyers, all at once; each buyer retries a 503 like a
    /// real client ([`place_order_retrying`]). Every refusal must be `out_of_stock` naming the
    /// product. Returns the count of final answers per HTTP status, a replayed order (200)
    /// counted as created (201).
    pub async fn run(&self, attempts: usize) -> HashMap<u16, usize> {
        let id = self.product.as_str();
        let orders = (0..attempts).map(|i| {
            let token = &self.buyers[i % self.buyers.len()];
            async move { place_order_retrying(token, &uuid::Uuid::new_v4().to_string(), Some(&[(id, 1)])).await }
        });
        let mut by_status: HashMap<u16, usize> = HashMap::new();
        for r in futures::future::join_all(orders).await {
            let status = if r.status == StatusCode::OK { StatusCode::CREATED } else { r.status };
            *by_status.entry(status.as_u16()).or_default() += 1;
            if r.status == StatusCode::CONFLICT {
                assert_eq!(r.error_code(), "out_of_stock");
                assert_eq!(r.body["error"]["details"]["products"][0], id);
            }
        }
        by_status
    }
}

/// [`Race::set_up`] then [`Race::run`]: returns the product id and the answers per status.
pub async fn race_for_units(tag: &str, units: i64, buyers: usize, attempts: usize) -> (String, HashMap<u16, usize>) {
    let race = Race::set_up(tag, units, buyers).await;
    let by_status = race.run(attempts).await;
    (race.product, by_status)
}

/// The functions' log lines (`GET /_local/logs`), in time order, about `trace` (a request or
/// trace id) when given, as `(function, line)`.
pub async fn log_lines(trace: Option<&str>) -> Vec<(String, Value)> {
    let mut req = client().get(format!("{}/_local/logs", stack().invoke));
    if let Some(t) = trace {
        req = req.query(&[("trace", t)]);
    }
    let resp = req.send().await.expect("GET /_local/logs");
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.expect("logs JSON");
    body["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| (l["function"].as_str().unwrap_or_default().to_owned(), l["line"].clone()))
        .collect()
}

/// A JSON log line's message.
pub fn log_message(line: &Value) -> &str {
    line.pointer("/fields/message").and_then(Value::as_str).unwrap_or_default()
}
