//! A DynamoDB wire proxy between the functions and DynamoDB Local: counts calls, injects faults.
//!
//! The functions' `AWS_ENDPOINT_URL_DYNAMODB` points here (loopback, random port); every request
//! is forwarded unchanged to DynamoDB Local and its answer returned unchanged. On the way it
//!
//! * **counts** requests per operation (the `X-Amz-Target` header, e.g.
//!   `DynamoDB_20120810.TransactWriteItems` → `TransactWriteItems`), so a test can assert how
//!   many round trips a request costs: `GET /_local/dynamodb/stats` on the Invoke API answers
//!   `{"TransactWriteItems": n, ..., "total": n, "injected_conflicts": n, "injected_throttles": n,
//!   "by_function": {"PlaceOrderFunction": {"TransactWriteItems": n, ..., "total": n}, ...}}`,
//!   `POST /_local/dynamodb/stats/reset` zeroes it. Injected answers count as round trips too
//!   (the function made them). The caller is the SDK's user agent `app/<LogicalId>`: the stack
//!   gives every function `AWS_SDK_UA_APP_ID=<LogicalId>`, so a test can count one function's calls
//!   while others (the notifier claiming an e-mail, say) work in the background;
//! * **injects faults** DynamoDB Local never produces (it serialises transactions): with
//!   `POST /_local/dynamodb/faults` `{"transaction_conflict_rate": 0.3}` that fraction of
//!   `TransactWriteItems` is answered, without forwarding, exactly as DynamoDB cancels a
//!   transaction for a conflict (HTTP 400 `TransactionCanceledException`, one cancellation reason
//!   per item: `TransactionConflict` on the first, `None` on the rest); `{"throttle_rate": x}`
//!   answers that fraction of *all* requests with `ProvisionedThroughputExceededException`
//!   (which the SDK retries itself). A POST replaces the whole configuration (absent = 0);
//!   `GET` shows it, `DELETE /_local/dynamodb/faults` switches everything off. At start-up,
//!   `LOCAL_DDB_FAULTS=transaction_conflict_rate=0.3,throttle_rate=0.01` does the same.
//!
//! Tests and tools that read the table directly (`SHOP_DYNAMODB_ENDPOINT`) bypass the proxy:
//! their calls are neither counted nor faulted.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// The largest request DynamoDB accepts is 16 MB; anything bigger is not a DynamoDB request.
const MAX_BODY: usize = 16 * 1024 * 1024;
const AMZ_JSON: &str = "application/x-amz-json-1.0";

/// Fault injection settings: probabilities in `0.0..=1.0`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Fraction of `TransactWriteItems` cancelled with `TransactionConflict`.
    pub transaction_conflict_rate: f64,
    /// Fraction of all requests answered with `ProvisionedThroughputExceededException`.
    pub throttle_rate: f64,
}

impl Faults {
    /// `transaction_conflict_rate=0.3,throttle_rate=0.01` (the `LOCAL_DDB_FAULTS` format).
    pub fn parse(spec: &str) -> Result<Self> {
        let mut faults = Self::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').with_context(|| format!("`{part}`: expected key=value"))?;
            let value: f64 = value.trim().parse().with_context(|| format!("`{part}`: not a number"))?;
            match key.trim() {
                "transaction_conflict_rate" => faults.transaction_conflict_rate = value,
                "throttle_rate" => faults.throttle_rate = value,
                other => bail!("unknown fault `{other}` (known: transaction_conflict_rate, throttle_rate)"),
            }
        }
        faults.validate()?;
        Ok(faults)
    }

    fn validate(&self) -> Result<()> {
        for (name, rate) in
            [("transaction_conflict_rate", self.transaction_conflict_rate), ("throttle_rate", self.throttle_rate)]
        {
            if !(0.0..=1.0).contains(&rate) {
                bail!("{name} must be between 0 and 1, got {rate}");
            }
        }
        Ok(())
    }

    pub fn is_off(&self) -> bool {
        *self == Self::default()
    }
}

#[derive(Default)]
struct Counters {
    per_operation: Mutex<BTreeMap<String, u64>>,
    /// caller (`app/<id>` of the user agent, else `unknown`) → operation → calls
    per_function: Mutex<BTreeMap<String, BTreeMap<String, u64>>>,
    total: AtomicU64,
    injected_conflicts: AtomicU64,
    injected_throttles: AtomicU64,
}

struct Shared {
    upstream: String,
    client: reqwest::Client,
    counters: Counters,
    faults: Mutex<Faults>,
}

/// The running proxy. Cheap to clone; the server stops with [`DynamoDbProxy::stop`].
#[derive(Clone)]
pub struct DynamoDbProxy {
    /// What the functions get as `AWS_ENDPOINT_URL_DYNAMODB`.
    pub endpoint: String,
    shared: Arc<Shared>,
    server: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl DynamoDbProxy {
    /// Starts the proxy on a random loopback port in front of `upstream` (DynamoDB Local).
    pub async fn start(upstream: &str, faults: Faults) -> Result<Self> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .build()
            .context("building the proxy's HTTP client")?;
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client,
            counters: Counters::default(),
            faults: Mutex::new(faults),
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.context("binding the DynamoDB proxy")?;
        let addr = listener.local_addr()?;
        let app = Router::new().fallback(forward).with_state(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("DynamoDB proxy on {addr} stopped: {e}");
            }
        });
        if !faults.is_off() {
            tracing::warn!("DynamoDB fault injection on: {faults:?}");
        }
        Ok(Self { endpoint: format!("http://{addr}"), shared, server: Arc::new(Mutex::new(Some(server))) })
    }

    /// Faults from `LOCAL_DDB_FAULTS`, if set.
    pub fn faults_from_env() -> Result<Faults> {
        match std::env::var("LOCAL_DDB_FAULTS") {
            Ok(spec) => Faults::parse(&spec).context("LOCAL_DDB_FAULTS"),
            Err(_) => Ok(Faults::default()),
        }
    }

    /// The control endpoints, served on the Invoke API.
    pub fn control_router(&self) -> Router {
        Router::new()
            .route("/_local/dynamodb/stats", get(stats))
            .route("/_local/dynamodb/stats/reset", post(reset))
            .route("/_local/dynamodb/faults", get(get_faults).post(set_faults).delete(clear_faults))
            .with_state(self.shared.clone())
    }

    pub fn stop(&self) {
        if let Some(server) = self.server.lock().unwrap().take() {
            server.abort();
        }
    }
}

impl Shared {
    fn stats(&self) -> Value {
        let c = &self.counters;
        let mut out: serde_json::Map<String, Value> =
            c.per_operation.lock().unwrap().iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        out.insert("total".into(), json!(c.total.load(Ordering::SeqCst)));
        out.insert("injected_conflicts".into(), json!(c.injected_conflicts.load(Ordering::SeqCst)));
        out.insert("injected_throttles".into(), json!(c.injected_throttles.load(Ordering::SeqCst)));
        let by_function: serde_json::Map<String, Value> = c
            .per_function
            .lock()
            .unwrap()
            .iter()
            .map(|(function, ops)| {
                let mut calls: serde_json::Map<String, Value> =
                    ops.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
                calls.insert("total".into(), json!(ops.values().sum::<u64>()));
                (function.clone(), Value::Object(calls))
            })
            .collect();
        out.insert("by_function".into(), Value::Object(by_function));
        Value::Object(out)
    }

    fn reset(&self) {
        let c = &self.counters;
        let mut per_operation = c.per_operation.lock().unwrap();
        per_operation.clear();
        c.per_function.lock().unwrap().clear();
        c.total.store(0, Ordering::SeqCst);
        c.injected_conflicts.store(0, Ordering::SeqCst);
        c.injected_throttles.store(0, Ordering::SeqCst);
    }
}

async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.stats()).into_response()
}

async fn reset(State(shared): State<Arc<Shared>>) -> Response {
    shared.reset();
    axum::Json(shared.stats()).into_response()
}

async fn get_faults(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(*shared.faults.lock().unwrap()).into_response()
}

async fn set_faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let faults =
        serde_json::from_slice::<Faults>(&body).map_err(anyhow::Error::from).and_then(|f| f.validate().map(|()| f));
    match faults {
        Ok(f) => {
            *shared.faults.lock().unwrap() = f;
            tracing::info!("DynamoDB fault injection: {f:?}");
            axum::Json(f).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, axum::Json(json!({ "message": format!("{e:#}") }))).into_response(),
    }
}

async fn clear_faults(State(shared): State<Arc<Shared>>) -> Response {
    *shared.faults.lock().unwrap() = Faults::default();
    axum::Json(Faults::default()).into_response()
}

/// A uniform number in `[0, 1)` (uuid's v4 generator is the only randomness we link).
fn uniform() -> f64 {
    (uuid::Uuid::new_v4().as_u128() >> 75) as f64 / (1u64 << 53) as f64
}

fn operation(headers: &HeaderMap) -> String {
    headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(|t| t.rsplit('.').next().unwrap_or(t).to_owned())
        .unwrap_or_else(|| "Unknown".to_owned())
}

/// The calling function, from the SDK's user agent (`... app/PlaceOrderFunction`).
fn caller(headers: &HeaderMap) -> String {
    ["x-amz-user-agent", "user-agent"]
        .iter()
        .filter_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
        .flat_map(str::split_whitespace)
        .find_map(|token| token.strip_prefix("app/"))
        .unwrap_or("unknown")
        .to_owned()
}

/// Headers that describe one hop, not the message: never copied across the proxy.
fn hop_by_hop(name: &header::HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "upgrade"
            | "te"
            | "trailer"
            | "content-length"
    )
}

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return (StatusCode::PAYLOAD_TOO_LARGE, e.to_string()).into_response(),
    };
    let op = operation(&parts.headers);
    let counters = &shared.counters;
    *counters.per_operation.lock().unwrap().entry(op.clone()).or_default() += 1;
    *counters.per_function.lock().unwrap().entry(caller(&parts.headers)).or_default().entry(op.clone()).or_default() +=
        1;
    counters.total.fetch_add(1, Ordering::SeqCst);

    let faults = *shared.faults.lock().unwrap();
    if faults.throttle_rate > 0.0 && uniform() < faults.throttle_rate {
        counters.injected_throttles.fetch_add(1, Ordering::SeqCst);
        return throttled();
    }
    if op == "TransactWriteItems"
        && faults.transaction_conflict_rate > 0.0
        && uniform() < faults.transaction_conflict_rate
    {
        counters.injected_conflicts.fetch_add(1, Ordering::SeqCst);
        return transaction_conflict(&body);
    }

    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut upstream = shared.client.request(parts.method, format!("{}{path}", shared.upstream)).body(body);
    for (name, value) in &parts.headers {
        if !hop_by_hop(name) {
            upstream = upstream.header(name, value);
        }
    }
    let answer = match upstream.send().await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!("DynamoDB proxy: {op} to {}: {e}", shared.upstream);
            return (StatusCode::BAD_GATEWAY, format!("DynamoDB Local unreachable: {e}")).into_response();
        }
    };
    let status = answer.status();
    let mut headers = HeaderMap::new();
    for (name, value) in answer.headers() {
        if !hop_by_hop(name) {
            headers.append(name, value.clone());
        }
    }
    let bytes = match answer.bytes().await {
        Ok(b) => b,
        Err(e) => return (StatusCode::BAD_GATEWAY, format!("reading DynamoDB Local's answer: {e}")).into_response(),
    };
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

fn amz_error(body: Value) -> Response {
    let mut response = (StatusCode::BAD_REQUEST, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(AMZ_JSON));
    if let Ok(id) = HeaderValue::from_str(&uuid::Uuid::new_v4().simple().to_string().to_uppercase()) {
        headers.insert("x-amzn-requestid", id);
    }
    response
}

/// DynamoDB's answer to a transaction cancelled because another one touched its first item.
fn transaction_conflict(request: &[u8]) -> Response {
    let items = serde_json::from_slice::<Value>(request)
        .ok()
        .and_then(|v| v.get("TransactItems").and_then(Value::as_array).map(Vec::len))
        .unwrap_or(1)
        .max(1);
    let mut reasons = vec![json!({ "Code": "TransactionConflict", "Message": "Transaction is ongoing for the item" })];
    reasons.extend((1..items).map(|_| json!({ "Code": "None" })));
    let codes: Vec<&str> = std::iter::once("TransactionConflict").chain((1..items).map(|_| "None")).collect();
    amz_error(json!({
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        "message": format!(
            "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
            codes.join(", ")
        ),
        "CancellationReasons": reasons,
    }))
}

/// DynamoDB's answer when a table's (or partition's) throughput is exceeded.
fn throttled() -> Response {
    amz_error(json!({
        "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        "message": "The level of configured provisioned throughput for the table was exceeded. \
                    Consider increasing your provisioning level with the UpdateTable API.",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_env_format() {
        let f = Faults::parse("transaction_conflict_rate=0.3, throttle_rate=0.01").unwrap();
        assert_eq!(f, Faults { transaction_conflict_rate: 0.3, throttle_rate: 0.01 });
        assert!(Faults::parse("").unwrap().is_off());
        assert!(Faults::parse("transaction_conflict_rate=2").is_err());
        assert!(Faults::parse("conflicts=0.1").is_err());
    }

    #[tokio::test]
    async fn conflict_answer_has_one_reason_per_item() {
        let request = br#"{"TransactItems":[{"Put":{}},{"Put":{}},{"Update":{}}]}"#;
        let response = transaction_conflict(request);
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[header::CONTENT_TYPE], AMZ_JSON);
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["__type"], "com.amazonaws.dynamodb.v20120810#TransactionCanceledException");
        assert_eq!(
            v["message"],
            "Transaction cancelled, please refer cancellation reasons for specific reasons \
             [TransactionConflict, None, None]"
        );
        assert_eq!(
            v["CancellationReasons"],
            json!([
                { "Code": "TransactionConflict", "Message": "Transaction is ongoing for the item" },
                { "Code": "None" },
                { "Code": "None" },
            ])
        );
    }

    #[test]
    fn uniform_is_in_range() {
        assert!((0..1000).map(|_| uniform()).all(|x| (0.0..1.0).contains(&x)));
    }
}
