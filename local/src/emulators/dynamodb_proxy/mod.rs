//! A DynamoDB wire proxy between the functions and DynamoDB Local: counts calls, injects faults.
//!
//! The functions' `AWS_ENDPOINT_URL_DYNAMODB` points here (loopback, random port); every request
//! is forwarded unchanged to DynamoDB Local and its answer returned unchanged. On the way it
//!
//! * **counts** requests per operation (the `X-Amz-Target` header, e.g.
//!   `DynamoDB_20120810.TransactWriteItems` → `TransactWriteItems`), so a test can assert how
//!   many round trips a request costs: `GET /_local/dynamodb/stats` on the Invoke API answers
//!   `{"TransactWriteItems": n, ..., "total": n, "injected_conflicts": n, "injected_throttles": n,
//!   "injected_internal_errors": n,
//!   "by_function": {"PlaceOrderFunction": {"TransactWriteItems": n, ..., "total": n}, ...}}`,
//!   `POST /_local/dynamodb/stats/reset` zeroes it. Injected answers count as round trips too
//!   (the function made them). The caller is the function whose credentials signed the request
//!   (see [`crate::emulators::iam::authorizer`]), so a test can count one function's calls while
//!   others (the notifier claiming an e-mail, say) work in the background; a request signed with
//!   any other key is counted as `operator`;
//! * **authorizes** every request as IAM would, with the caller's role from template.yaml
//!   ([`actions`] says which actions and resources one request is: a transaction is one per
//!   item, an index query is on the index): denied, it is answered as DynamoDB answers it (HTTP
//!   400 `AccessDeniedException`, AWS's message), before any fault or forwarding;
//! * **injects faults** DynamoDB Local never produces (it serialises transactions): with
//!   `POST /_local/dynamodb/faults` `{"transaction_conflict_rate": 0.3}` that fraction of
//!   `TransactWriteItems` is answered, without forwarding, exactly as DynamoDB cancels a
//!   transaction for a conflict (HTTP 400 `TransactionCanceledException`, one cancellation reason
//!   per item: `TransactionConflict` on the first, `None` on the rest); `{"throttle_rate": x}`
//!   answers that fraction of *all* requests with `ProvisionedThroughputExceededException`
//!   (which the SDK retries itself); `{"internal_error_rate": x}` answers that fraction of all
//!   requests, without forwarding them, as DynamoDB answers a failure on its side (HTTP 500
//!   `InternalServerError`, "Internal server error"; the SDK retries it too, and the shop reads
//!   it as transient). A POST replaces the whole configuration (absent = off);
//!   `GET` shows it, `DELETE /_local/dynamodb/faults` switches everything off. At start-up,
//!   `LOCAL_DDB_FAULTS=transaction_conflict_rate=0.3,throttle_rate=0.01` does the same;
//! * **limits each partition's writes** as AWS does, which DynamoDB Local never does (it has no
//!   partitions): with `{"partition_write_units_per_second": 1000, "capacity_scale": 0.01}` every
//!   partition key gets a token bucket of `1000 × 0.01` write units per second (capacity: one
//!   second's worth). A write item costs 1 unit, a transaction's item 2 (items up to 1 KB, the
//!   shop's), a `ConditionCheck` too. A transaction that would overdraw one of its partitions is
//!   cancelled like DynamoDB cancels it — `TransactionCanceledException` with reason
//!   `ThrottlingError` on that item, `None` on the others — and a single or batch write is
//!   answered `ProvisionedThroughputExceededException` with the reason
//!   `TableWriteKeyRangeThroughputExceeded`; nothing is consumed then. 1,000 units/s is AWS's
//!   per-partition limit; the scale factor shrinks it so that the effect shows below DynamoDB
//!   Local's own ceiling (it runs transactions one at a time). Reads are not limited.
//!   Throttled requests are counted in `partition_throttles`;
//! * **limits each index partition's writes** the same way, with the same switch and scale
//!   ([`index_partitions`]): the table's global secondary indexes (from template.yaml) have
//!   partitions too, and a base write costs an index write units only when it changes that
//!   index's entry (enters, leaves, moves — old and new entry — or changes a projected
//!   attribute), 1 per KB of the entry. To know what a write changes, the proxy reads the items
//!   it names from DynamoDB Local first (one `BatchGetItem`, only while the limits are on).
//!   A write whose index partition is short is throttled like a table's — a transaction with
//!   `ThrottlingError` on that item, a single write with the reason
//!   `IndexWriteKeyRangeThroughputExceeded` on the index's ARN — and counted in
//!   `index_throttles`; `index_partitions` in the stats has, per `<table>/<index>` and index
//!   partition key, the `write_units` it spent and the `throttles` it caused.
//!
//! Tests and tools that read the table directly (`SHOP_DYNAMODB_ENDPOINT`) bypass the proxy:
//! their calls are neither counted nor faulted.
//!
//! **Call timeline** (off by default; `cargo local bench` switches it on): with
//! [`DynamoDbProxy::record_calls`], every forwarded call leaves a [`CallTimes`] (caller,
//! operation, when its head arrived, how long DynamoDB Local took, when the answer left) in a
//! bounded ring, so the benchmark can set each call a function made against the same call made
//! raw. Off, it costs one uncontended lock per call.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

use crate::emulators::iam::authorizer::{Authorizer, Caller};

pub mod actions;
pub mod index_partitions;
pub mod item_images;

use index_partitions::Indexes;

/// The largest request DynamoDB accepts is 16 MB; anything bigger is not a DynamoDB request.
const MAX_BODY: usize = 16 * 1024 * 1024;
const AMZ_JSON: &str = "application/x-amz-json-1.0";

/// Fault injection settings: probabilities in `0.0..=1.0`, and the partition write budget.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Fraction of `TransactWriteItems` cancelled with `TransactionConflict`.
    pub transaction_conflict_rate: f64,
    /// Fraction of all requests answered with `ProvisionedThroughputExceededException`.
    pub throttle_rate: f64,
    /// Fraction of all requests answered HTTP 500 `InternalServerError` (not forwarded).
    pub internal_error_rate: f64,
    /// Write units per second each partition key may spend (AWS: 1,000); 0 = unlimited.
    pub partition_write_units_per_second: f64,
    /// Multiplies `partition_write_units_per_second` (e.g. 0.01: AWS's limit at 1/100 scale).
    pub capacity_scale: f64,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            transaction_conflict_rate: 0.0,
            throttle_rate: 0.0,
            internal_error_rate: 0.0,
            partition_write_units_per_second: 0.0,
            capacity_scale: 1.0,
        }
    }
}

/// AWS's write limit of one partition (DynamoDB developer guide, "partition key design").
pub const AWS_PARTITION_WRITE_UNITS: f64 = 1000.0;

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
                "internal_error_rate" => faults.internal_error_rate = value,
                "partition_write_units_per_second" => faults.partition_write_units_per_second = value,
                "capacity_scale" => faults.capacity_scale = value,
                other => bail!(
                    "unknown fault `{other}` (known: transaction_conflict_rate, throttle_rate, \
                     internal_error_rate, partition_write_units_per_second, capacity_scale)"
                ),
            }
        }
        faults.validate()?;
        Ok(faults)
    }

    fn validate(&self) -> Result<()> {
        for (name, rate) in [
            ("transaction_conflict_rate", self.transaction_conflict_rate),
            ("throttle_rate", self.throttle_rate),
            ("internal_error_rate", self.internal_error_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                bail!("{name} must be between 0 and 1, got {rate}");
            }
        }
        if !(self.partition_write_units_per_second >= 0.0 && self.partition_write_units_per_second.is_finite()) {
            bail!("partition_write_units_per_second must be 0 (unlimited) or more");
        }
        if !(self.capacity_scale > 0.0 && self.capacity_scale <= 1.0) {
            bail!("capacity_scale must be in (0, 1], got {}", self.capacity_scale);
        }
        Ok(())
    }

    /// Write units per second of one partition, if limited.
    pub fn partition_budget(&self) -> Option<f64> {
        (self.partition_write_units_per_second > 0.0)
            .then_some(self.partition_write_units_per_second * self.capacity_scale)
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
    injected_internal_errors: AtomicU64,
    partition_throttles: AtomicU64,
    /// Requests refused because an index partition was short (also in `partition_throttles`).
    index_throttles: AtomicU64,
    /// `<table>/<index>` → index partition key → what it spent and how often it refused.
    index_partitions: Mutex<BTreeMap<String, BTreeMap<String, IndexKeyStats>>>,
}

/// One index partition key's figures while the partition limits were on.
#[derive(Default, Clone, Copy)]
struct IndexKeyStats {
    write_units: f64,
    throttles: u64,
}

struct Shared {
    upstream: String,
    client: reqwest::Client,
    counters: Counters,
    faults: Mutex<Faults>,
    partitions: Mutex<Partitions>,
    /// The tables' global secondary indexes (template.yaml), for the index write budget.
    indexes: Indexes,
    iam: Authorizer,
    /// The call timeline, `None` while off (see [`DynamoDbProxy::record_calls`]).
    timeline: Mutex<Option<std::collections::VecDeque<CallTimes>>>,
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
    pub async fn start(upstream: &str, faults: Faults, iam: Authorizer, indexes: Indexes) -> Result<Self> {
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
            partitions: Mutex::new(Partitions::default()),
            indexes,
            iam,
            timeline: Mutex::default(),
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
        out.insert("injected_internal_errors".into(), json!(c.injected_internal_errors.load(Ordering::SeqCst)));
        out.insert("partition_throttles".into(), json!(c.partition_throttles.load(Ordering::SeqCst)));
        out.insert("index_throttles".into(), json!(c.index_throttles.load(Ordering::SeqCst)));
        let index_partitions: serde_json::Map<String, Value> = c
            .index_partitions
            .lock()
            .unwrap()
            .iter()
            .map(|(index, keys)| {
                let keys: serde_json::Map<String, Value> = keys
                    .iter()
                    .map(|(key, s)| (key.clone(), json!({ "write_units": s.write_units, "throttles": s.throttles })))
                    .collect();
                (index.clone(), Value::Object(keys))
            })
            .collect();
        out.insert("index_partitions".into(), Value::Object(index_partitions));
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
        c.injected_internal_errors.store(0, Ordering::SeqCst);
        c.partition_throttles.store(0, Ordering::SeqCst);
        c.index_throttles.store(0, Ordering::SeqCst);
        c.index_partitions.lock().unwrap().clear();
    }

    /// Counts what index partitions spent (`throttled`: the write at that position was refused).
    fn count_index_writes(&self, writes: &[PartitionWrite], throttled: Option<usize>) {
        let mut stats = self.counters.index_partitions.lock().unwrap();
        let counted = match throttled {
            Some(at) => &writes[at..=at],
            None => writes,
        };
        for w in counted {
            let Some(index) = &w.index else { continue };
            let s = stats.entry(format!("{}/{index}", w.table)).or_default().entry(w.partition.clone()).or_default();
            match throttled {
                Some(_) => s.throttles += 1,
                None => s.write_units += w.units,
            }
        }
    }

    /// Index entry writes of a write request (see [`index_partitions`]): reads the items it
    /// names from DynamoDB Local first (their image before), in one `BatchGetItem`.
    async fn index_writes(&self, request: &Value, op: &str, headers: &HeaderMap) -> Vec<PartitionWrite> {
        let actions = write_actions(op, request);
        let with_indexes: Vec<(usize, &WriteAction, &index_partitions::TableIndexes, item_images::Image)> = actions
            .iter()
            .enumerate()
            .filter_map(|(i, a)| {
                let t = self.indexes.of(&a.table)?;
                Some((i, a, t, item_images::item_key(a.kind, a.action, &t.keys)?))
            })
            .collect();
        if with_indexes.is_empty() {
            return Vec::new();
        }
        let mut request_items = serde_json::Map::new();
        for (_, a, _, key) in &with_indexes {
            let table =
                request_items.entry(a.table.clone()).or_insert_with(|| json!({ "Keys": [], "ConsistentRead": true }));
            if let Some(keys) = table["Keys"].as_array_mut() {
                keys.push(Value::Object(key.clone()));
            }
        }
        let before = self.read_items(json!({ "RequestItems": request_items }), headers).await;
        let mut writes = Vec::new();
        for (i, a, t, key) in with_indexes {
            let old = before
                .get(&a.table)
                .and_then(|items| items.iter().find(|item| key.iter().all(|(k, v)| item.get(k) == Some(v))))
                .cloned();
            let change = item_images::change(a.kind, a.action, old);
            writes.extend(t.writes(&change).into_iter().map(|w| PartitionWrite {
                table: a.table.clone(),
                index: Some(w.index),
                partition: w.partition,
                units: w.units,
                item: i,
            }));
        }
        writes
    }

    /// `BatchGetItem` to DynamoDB Local with the caller's headers (DynamoDB Local checks no
    /// signature): table → items found. Nothing on any error (the write then costs no index).
    async fn read_items(&self, request: Value, headers: &HeaderMap) -> BTreeMap<String, Vec<item_images::Image>> {
        let mut call = self
            .client
            .post(format!("{}/", self.upstream))
            .header(header::CONTENT_TYPE, AMZ_JSON)
            .header("x-amz-target", "DynamoDB_20120810.BatchGetItem")
            .body(request.to_string());
        for name in [header::AUTHORIZATION.as_str(), "x-amz-date", "x-amz-security-token"] {
            if let Some(v) = headers.get(name) {
                call = call.header(name, v);
            }
        }
        let answer: Option<Value> = match call.send().await {
            Ok(r) if r.status().is_success() => r.json().await.ok(),
            Ok(r) => {
                tracing::warn!("DynamoDB proxy: reading items before a write: {}", r.status());
                None
            }
            Err(e) => {
                tracing::warn!("DynamoDB proxy: reading items before a write: {e}");
                None
            }
        };
        let mut out = BTreeMap::new();
        for (table, items) in answer.as_ref().and_then(|a| a["Responses"].as_object()).into_iter().flatten() {
            let items = items.as_array().into_iter().flatten().filter_map(|i| i.as_object().cloned()).collect();
            out.insert(table.clone(), items);
        }
        out
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
            *shared.partitions.lock().unwrap() = Partitions::default();
            tracing::info!("DynamoDB fault injection: {f:?}");
            axum::Json(f).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, axum::Json(json!({ "message": format!("{e:#}") }))).into_response(),
    }
}

async fn clear_faults(State(shared): State<Arc<Shared>>) -> Response {
    *shared.faults.lock().unwrap() = Faults::default();
    *shared.partitions.lock().unwrap() = Partitions::default();
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
    let received = Instant::now();
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return (StatusCode::PAYLOAD_TOO_LARGE, e.to_string()).into_response(),
    };
    let op = operation(&parts.headers);
    let caller = shared.iam.caller(&parts.headers, parts.uri.query());
    let counters = &shared.counters;
    *counters.per_operation.lock().unwrap().entry(op.clone()).or_default() += 1;
    let name = match &caller {
        Caller::Function(f) => f.as_str(),
        Caller::BadToken => "invalid-token",
        Caller::Operator => "operator",
    };
    *counters.per_function.lock().unwrap().entry(name.to_owned()).or_default().entry(op.clone()).or_default() += 1;
    counters.total.fetch_add(1, Ordering::SeqCst);
    match &caller {
        Caller::BadToken => return unrecognized_client(),
        // A body DynamoDB cannot read goes on: DynamoDB Local answers its own validation error.
        Caller::Function(f) => {
            if let Ok(accesses) = actions::accesses(&op, &body)
                && let Err(denied) = shared.iam.authorize(f, &accesses)
            {
                return access_denied(&denied.message);
            }
        }
        Caller::Operator => {}
    }

    let faults = *shared.faults.lock().unwrap();
    if faults.throttle_rate > 0.0 && uniform() < faults.throttle_rate {
        counters.injected_throttles.fetch_add(1, Ordering::SeqCst);
        return throttled();
    }
    if faults.internal_error_rate > 0.0 && uniform() < faults.internal_error_rate {
        counters.injected_internal_errors.fetch_add(1, Ordering::SeqCst);
        return internal_error();
    }
    if op == "TransactWriteItems"
        && faults.transaction_conflict_rate > 0.0
        && uniform() < faults.transaction_conflict_rate
    {
        counters.injected_conflicts.fetch_add(1, Ordering::SeqCst);
        return transaction_conflict(&body);
    }
    if let Some(rate) = faults.partition_budget()
        && let Ok(request) = serde_json::from_slice::<Value>(&body)
        && let Some(mut writes) = partition_writes(&op, &request)
    {
        writes.extend(shared.index_writes(&request, &op, &parts.headers).await);
        let spent = shared.partitions.lock().unwrap().spend(&writes, rate, std::time::Instant::now());
        if let Err(throttled) = spent {
            counters.partition_throttles.fetch_add(1, Ordering::SeqCst);
            let w = &writes[throttled];
            if w.index.is_some() {
                counters.index_throttles.fetch_add(1, Ordering::SeqCst);
                shared.count_index_writes(&writes, Some(throttled));
            }
            return if op == "TransactWriteItems" {
                transaction_throttled(write_actions(&op, &request).len(), w.item)
            } else {
                key_range_throttled(&w.table, w.index.as_deref())
            };
        }
        shared.count_index_writes(&writes, None);
    }

    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let sent = Instant::now();
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
    let upstream = sent.elapsed();
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    shared.record(CallTimes { caller: name.to_owned(), operation: op, received, upstream, answered: Instant::now() });
    response
}

// ---- Call timeline (see the module docs): records for `cargo local bench`, off by default. ----

/// Calls a timeline holds at most; the oldest are dropped first.
const TIMELINE_CAPACITY: usize = 65_536;

/// One call forwarded to DynamoDB Local, as the proxy saw it.
#[derive(Debug, Clone)]
pub struct CallTimes {
    /// The function's logical id, or `operator` (any other key, the benchmark's raw client too).
    pub caller: String,
    /// `BatchGetItem`, `TransactWriteItems`, ...
    pub operation: String,
    /// The request's head had arrived (the proxy's handler started).
    pub received: Instant,
    /// Request sent upstream → DynamoDB Local's whole answer read.
    pub upstream: Duration,
    /// The answer is handed back to the HTTP server.
    pub answered: Instant,
}

impl DynamoDbProxy {
    /// Starts (`true`, with an empty ring) or stops recording the call timeline.
    pub fn record_calls(&self, on: bool) {
        *self.shared.timeline.lock().unwrap() = on.then(std::collections::VecDeque::new);
    }

    /// Takes what the timeline holds (oldest first), leaving it empty and recording.
    pub fn take_calls(&self) -> Vec<CallTimes> {
        self.shared.timeline.lock().unwrap().as_mut().map(|t| t.drain(..).collect()).unwrap_or_default()
    }
}

impl Shared {
    fn record(&self, call: CallTimes) {
        if let Some(ring) = self.timeline.lock().unwrap().as_mut() {
            if ring.len() == TIMELINE_CAPACITY {
                ring.pop_front();
            }
            ring.push_back(call);
        }
    }
}

/// DynamoDB's answer to a request IAM denies (HTTP 400, like every DynamoDB client error).
fn access_denied(message: &str) -> Response {
    amz_error(json!({ "__type": "com.amazon.coral.service#AccessDeniedException", "Message": message }))
}

/// DynamoDB's answer to a known key id with a session token that is not its own.
fn unrecognized_client() -> Response {
    amz_error(json!({
        "__type": "com.amazon.coral.service#UnrecognizedClientException",
        "message": "The security token included in the request is invalid."
    }))
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
        .unwrap_or(1);
    transaction_cancelled(items, 0, "TransactionConflict", "Transaction is ongoing for the item")
}

/// A `TransactionCanceledException` as DynamoDB words it: one reason per item, `code` with its
/// `message` on item `at`, `None` on the others.
fn transaction_cancelled(items: usize, at: usize, code: &str, message: &str) -> Response {
    let codes: Vec<&str> = (0..items.max(1)).map(|i| if i == at { code } else { "None" }).collect();
    let reasons: Vec<Value> = codes
        .iter()
        .map(|c| if *c == "None" { json!({ "Code": "None" }) } else { json!({ "Code": c, "Message": message }) })
        .collect();
    amz_error(json!({
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        "message": format!(
            "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
            codes.join(", ")
        ),
        "CancellationReasons": reasons,
    }))
}

/// DynamoDB's answer to a failure on its side: HTTP 500, which the SDK retries.
fn internal_error() -> Response {
    let mut response = amz_error(json!({
        "__type": "com.amazonaws.dynamodb.v20120810#InternalServerError",
        "message": "Internal server error",
    }));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

/// DynamoDB's answer when a table's (or partition's) throughput is exceeded.
fn throttled() -> Response {
    amz_error(json!({
        "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        "message": "The level of configured provisioned throughput for the table was exceeded. \
                    Consider increasing your provisioning level with the UpdateTable API.",
    }))
}

/// One partition a write request spends from: the table's partition of an item it writes (its
/// partition key value), or an index partition an entry write of it goes to.
#[derive(Debug, Clone, PartialEq)]
struct PartitionWrite {
    table: String,
    /// `Some(index name)` for an index partition.
    index: Option<String>,
    /// The table's or the index's partition key value.
    partition: String,
    units: f64,
    /// Which item of the request causes it (the position of its cancellation reason).
    item: usize,
}

/// One item a write request writes (or checks): its table, `Put` / `Update` / `Delete` /
/// `ConditionCheck`, and its part of the request.
struct WriteAction<'a> {
    table: String,
    kind: &'a str,
    action: &'a Value,
}

/// The items of a write request, in request order; empty for anything else.
fn write_actions<'a>(op: &str, request: &'a Value) -> Vec<WriteAction<'a>> {
    let single = |kind: &'a str| -> Vec<WriteAction<'a>> {
        request["TableName"]
            .as_str()
            .map(|t| WriteAction { table: t.to_owned(), kind, action: request })
            .into_iter()
            .collect()
    };
    match op {
        "PutItem" => single("Put"),
        "UpdateItem" => single("Update"),
        "DeleteItem" => single("Delete"),
        "TransactWriteItems" => request["TransactItems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| {
                let (kind, action) = item.as_object()?.iter().next()?;
                Some(WriteAction { table: action["TableName"].as_str()?.to_owned(), kind: kind.as_str(), action })
            })
            .collect(),
        "BatchWriteItem" => request["RequestItems"]
            .as_object()
            .into_iter()
            .flatten()
            .flat_map(|(table, requests)| {
                requests.as_array().into_iter().flatten().filter_map(move |r| {
                    let (kind, action) = match (r.get("PutRequest"), r.get("DeleteRequest")) {
                        (Some(put), _) => ("Put", put),
                        (_, Some(delete)) => ("Delete", delete),
                        _ => return None,
                    };
                    Some(WriteAction { table: table.clone(), kind, action })
                })
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The table partitions a write request touches, in request order; `None` for reads and anything
/// unreadable (forwarded unlimited: DynamoDB Local answers it). A transaction's item costs 2
/// units, any other write's 1.
fn partition_writes(op: &str, request: &Value) -> Option<Vec<PartitionWrite>> {
    let units = if op == "TransactWriteItems" { 2.0 } else { 1.0 };
    let pk = |key: &Value| -> Option<String> {
        let value = key.get("pk")?;
        Some(
            value
                .get("S")
                .or_else(|| value.get("N"))
                .and_then(Value::as_str)
                .map_or_else(|| value.to_string(), str::to_owned),
        )
    };
    let actions = write_actions(op, request);
    if actions.is_empty() {
        return None;
    }
    actions
        .iter()
        .enumerate()
        .map(|(item, a)| {
            let key = if a.kind == "Put" { &a.action["Item"] } else { &a.action["Key"] };
            Some(PartitionWrite { table: a.table.clone(), index: None, partition: pk(key)?, units, item })
        })
        .collect()
}

/// A token bucket of write units per partition key.
#[derive(Default)]
struct Partitions {
    buckets: std::collections::HashMap<PartitionKey, (f64, std::time::Instant)>,
}

/// Table, index (`None`: the table itself) and partition key value.
type PartitionKey = (String, Option<String>, String);

fn partition_key(w: &PartitionWrite) -> PartitionKey {
    (w.table.clone(), w.index.clone(), w.partition.clone())
}

impl Partitions {
    /// Spends every write's units if each of their partitions has them (refilled at `rate`/s up to
    /// one second's worth); else spends nothing and names the first write whose partition is short.
    fn spend(&mut self, writes: &[PartitionWrite], rate: f64, now: std::time::Instant) -> Result<(), usize> {
        let mut needed: BTreeMap<PartitionKey, f64> = BTreeMap::new();
        for w in writes {
            *needed.entry(partition_key(w)).or_default() += w.units;
        }
        for (key, units) in &needed {
            let (tokens, at) = self.buckets.entry(key.clone()).or_insert((rate, now));
            *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * rate).min(rate);
            *at = now;
            if *tokens < *units {
                return Err(writes.iter().position(|w| partition_key(w) == *key).unwrap_or(0));
            }
        }
        for (key, units) in needed {
            if let Some((tokens, _)) = self.buckets.get_mut(&key) {
                *tokens -= units;
            }
        }
        Ok(())
    }
}

const HOT_KEY_MESSAGE: &str = "Throughput exceeds the current capacity of your table or index. DynamoDB is \
     automatically scaling your table or index so please try again shortly. If exceptions persist, check if you \
     have a hot key: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html";

/// DynamoDB's answer to a transaction one of whose items' partitions is over its write budget.
fn transaction_throttled(items: usize, throttled: usize) -> Response {
    transaction_cancelled(items, throttled, "ThrottlingError", HOT_KEY_MESSAGE)
}

/// DynamoDB's answer to a single write on a partition over its write budget: the table's
/// (`TableWriteKeyRangeThroughputExceeded` on the table's ARN) or an index's
/// (`IndexWriteKeyRangeThroughputExceeded` on the index's ARN, `…:table/T/index/I`).
fn key_range_throttled(table: &str, index: Option<&str>) -> Response {
    let (reason, resource) = match index {
        Some(i) => ("IndexWriteKeyRangeThroughputExceeded", format!("{}/index/{i}", actions::table_arn(table))),
        None => ("TableWriteKeyRangeThroughputExceeded", actions::table_arn(table)),
    };
    amz_error(json!({
        "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        "message": HOT_KEY_MESSAGE,
        "ThrottlingReasons": [{ "reason": reason, "resource": resource }],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_env_format() {
        let f = Faults::parse("transaction_conflict_rate=0.3, throttle_rate=0.01").unwrap();
        assert_eq!(f, Faults { transaction_conflict_rate: 0.3, throttle_rate: 0.01, ..Faults::default() });
        let f = Faults::parse("partition_write_units_per_second=1000,capacity_scale=0.01").unwrap();
        assert_eq!(f.partition_budget(), Some(10.0));
        assert!(Faults::parse("capacity_scale=0").is_err());
        assert!(Faults::default().partition_budget().is_none());
        assert!(Faults::parse("").unwrap().is_off());
        assert!(Faults::parse("transaction_conflict_rate=2").is_err());
        assert!(Faults::parse("conflicts=0.1").is_err());
        let f = Faults::parse("internal_error_rate=0.2").unwrap();
        assert_eq!(f, Faults { internal_error_rate: 0.2, ..Faults::default() });
        assert!(Faults::parse("internal_error_rate=1.5").is_err());
    }

    #[tokio::test]
    async fn an_internal_error_is_a_500_the_sdk_retries() {
        let response = internal_error();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers()[header::CONTENT_TYPE], AMZ_JSON);
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            json!({"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError", "message": "Internal server error"})
        );
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
    fn a_transaction_costs_two_units_per_item_on_each_partition() {
        let body = br#"{"TransactItems":[
            {"Put":{"TableName":"t","Item":{"pk":{"S":"ORDER#1"},"sk":{"S":"ORDER"}}}},
            {"Update":{"TableName":"t","Key":{"pk":{"S":"PRODUCT#p"},"sk":{"S":"PRODUCT"}}}},
            {"ConditionCheck":{"TableName":"t","Key":{"pk":{"S":"PRODUCT#p"},"sk":{"S":"X"}}}}]}"#;
        let writes = partition_writes("TransactWriteItems", &serde_json::from_slice(body).unwrap()).unwrap();
        assert_eq!(
            writes.iter().map(|w| (w.partition.as_str(), w.units)).collect::<Vec<_>>(),
            [("ORDER#1", 2.0), ("PRODUCT#p", 2.0), ("PRODUCT#p", 2.0)]
        );
        assert!(partition_writes("GetItem", &json!({"TableName":"t","Key":{"pk":{"S":"a"}}})).is_none());
        let single = partition_writes("UpdateItem", &json!({"TableName":"t","Key":{"pk":{"S":"a"},"sk":{"S":"b"}}}));
        assert_eq!(single.unwrap()[0].units, 1.0);
    }

    #[test]
    fn a_partition_spends_its_budget_then_refills_and_other_partitions_are_untouched() {
        let w =
            |pk: &str, units| PartitionWrite { table: "t".into(), index: None, partition: pk.into(), units, item: 0 };
        let mut p = Partitions::default();
        let t0 = std::time::Instant::now();
        // 10 units/s: five 2-unit writes pass, the sixth is throttled, another partition is not.
        for _ in 0..5 {
            assert_eq!(p.spend(&[w("hot", 2.0)], 10.0, t0), Ok(()));
        }
        assert_eq!(p.spend(&[w("cold", 2.0), w("hot", 2.0)], 10.0, t0), Err(1));
        assert_eq!(p.spend(&[w("cold", 2.0)], 10.0, t0), Ok(()), "a refused transaction spends nothing");
        assert_eq!(p.spend(&[w("hot", 2.0)], 10.0, t0 + std::time::Duration::from_millis(200)), Ok(()));
        assert_eq!(p.spend(&[w("hot", 2.0)], 10.0, t0 + std::time::Duration::from_millis(200)), Err(0));
    }

    #[test]
    fn an_index_partition_short_of_units_refuses_the_base_write() {
        let w = |index: Option<&str>, pk: &str, item| PartitionWrite {
            table: "t".into(),
            index: index.map(str::to_owned),
            partition: pk.into(),
            units: 1.0,
            item,
        };
        let mut p = Partitions::default();
        let t0 = std::time::Instant::now();
        // 2 units/s: the index partition CATALOG takes two entry writes, whichever items cause them.
        assert_eq!(p.spend(&[w(None, "P#1", 0), w(Some("gsi1"), "CATALOG", 0)], 2.0, t0), Ok(()));
        assert_eq!(p.spend(&[w(None, "P#2", 0), w(Some("gsi1"), "CATALOG", 0)], 2.0, t0), Ok(()));
        let third = [w(None, "P#3", 0), w(None, "O#3", 1), w(Some("gsi1"), "CATALOG", 0)];
        assert_eq!(p.spend(&third, 2.0, t0), Err(2));
        // The table's partition named CATALOG (if any) is another bucket.
        assert_eq!(p.spend(&[w(None, "CATALOG", 0)], 2.0, t0), Ok(()));
    }

    #[tokio::test]
    async fn an_index_throttle_names_the_index() {
        let body = axum::body::to_bytes(key_range_throttled("T", Some("gsi1")).into_body(), 1 << 20).await.unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["__type"], "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException");
        assert_eq!(v["ThrottlingReasons"][0]["reason"], "IndexWriteKeyRangeThroughputExceeded");
        assert!(v["ThrottlingReasons"][0]["resource"].as_str().unwrap().ends_with(":table/T/index/gsi1"));
    }

    #[tokio::test]
    async fn a_throttled_transaction_is_cancelled_with_a_throttling_reason() {
        let response = transaction_throttled(3, 1);
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["__type"], "com.amazonaws.dynamodb.v20120810#TransactionCanceledException");
        assert_eq!(v["CancellationReasons"][0], json!({ "Code": "None" }));
        assert_eq!(v["CancellationReasons"][1]["Code"], "ThrottlingError");
        assert!(v["message"].as_str().unwrap().ends_with("[None, ThrottlingError, None]"));
    }

    #[test]
    fn uniform_is_in_range() {
        assert!((0..1000).map(|_| uniform()).all(|x| (0.0..1.0).contains(&x)));
    }
}
