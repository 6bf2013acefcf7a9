//! `cargo local bench`: latency and throughput of the hot path, and what the local stack adds.
//!
//! Starts a throw-away stack like `test` does (random ports, pool 8, schedule off), seeds one
//! product with plenty of stock and some customers through the API, then measures, each with
//! the same number of requests and the same concurrency, after a warm-up:
//!
//! 1. **API**: `POST /orders` with one line, through the local API Gateway, the place-order
//!    function (a real process from the pool) and the DynamoDB proxy, to DynamoDB Local;
//! 2. **raw**: the `TransactWriteItems` that order writes (marker `Put`, order `Put`, outbox `Put`,
//!    product `Update` with the reserve condition; the items copied from what (1) wrote, so the
//!    sizes match), sent straight to DynamoDB Local with the SDK.
//!
//! It prints p50/p95/p99/max and throughput of both, the ratio API/raw at p50 and p99 (target:
//! ≤ 1.3 at p50; reported, never failed), the DynamoDB round trips per API request, each function
//! binary's size (release profile: stripped) and the init times (spawn → first `next`) the
//! runtime measured. Benchmarks are not timed tests: nothing here fails on a slow machine.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::stack::{Options, Stack};
use crate::template::Template;
use crate::workspace::Workspace;
use crate::{dynamodb_local, install, progress, seed};

/// Measure `POST /orders` through the local stack against the bare DynamoDB transaction.
///
/// Run it with `cargo local bench` (defaults: 400 requests, 8 at a time), or e.g.
/// `cargo local bench --requests 2000 --concurrency 16`. The numbers depend on the machine and
/// on what else runs on it: compare runs on one machine, not across machines.
#[derive(clap::Args)]
pub struct Args {
    /// Measured requests per scenario (after a warm-up of 2 × concurrency).
    #[arg(long, default_value_t = 400)]
    requests: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Customers placing the orders (signed up first; argon2 makes that take a moment).
    #[arg(long, default_value_t = 16)]
    customers: usize,
    /// Maximum concurrent instances per function.
    #[arg(long, default_value_t = 8)]
    pool: usize,
    /// Use the binaries already in target/release (skip `cargo build`).
    #[arg(long)]
    no_build: bool,
}

pub async fn run(args: Args) -> Result<ExitCode> {
    if args.requests == 0 || args.concurrency == 0 || args.customers == 0 {
        bail!("--requests, --concurrency and --customers must be positive");
    }
    let ws = Workspace::locate().await?;
    let template = Template::load(&ws.root.join("template.yaml"))?;
    let binaries: Vec<&str> = template.functions.iter().map(|f| f.binary.as_str()).collect();
    if !args.no_build {
        ws.build(&binaries).await?;
    }
    let tools = install::ensure().await?;
    let opts = Options {
        api_port: Some(0),
        invoke_port: Some(0),
        pool_size: args.pool,
        freeze: true,
        function_logs: Some(ws.logs_dir()),
        only: None,
        schedule: crate::schedule::Mode::Off,
    };
    let stack = Stack::start(&ws, &template, &tools.dynamodb_local_dir, opts).await?;
    let result = bench(&ws, &template, &stack, &args).await;
    stack.stop().await;
    result.map(|()| ExitCode::SUCCESS)
}

/// Latencies (µs) and wall time of one scenario.
struct Run {
    histogram: Histogram<u64>,
    wall: Duration,
}

impl Run {
    fn ms(&self, quantile: f64) -> f64 {
        self.histogram.value_at_quantile(quantile) as f64 / 1000.0
    }

    fn row(&self, name: &str, concurrency: usize) -> String {
        let n = self.histogram.len();
        format!(
            "{name:<28} {n:>8} {concurrency:>5} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>9.0}",
            self.ms(0.5),
            self.ms(0.95),
            self.ms(0.99),
            self.histogram.max() as f64 / 1000.0,
            n as f64 / self.wall.as_secs_f64()
        )
    }
}

/// Runs `count` calls of `op(i)` with `concurrency` in flight, timing each.
async fn measure<F, Fut>(count: usize, concurrency: usize, op: F) -> Result<Run>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let started = Instant::now();
    let mut timed = futures::stream::iter(0..count)
        .map(|i| {
            let call = op(i);
            async move {
                let t = Instant::now();
                call.await.map(|()| t.elapsed())
            }
        })
        .buffer_unordered(concurrency);
    while let Some(elapsed) = timed.next().await {
        histogram.record(elapsed?.as_micros().max(1) as u64)?;
    }
    Ok(Run { histogram, wall: started.elapsed() })
}

async fn bench(ws: &Workspace, template: &Template, stack: &Stack, args: &Args) -> Result<()> {
    let api = stack.api_url.clone().context("API not started")?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(256).tcp_nodelay(true).build()?;
    let total_orders = args.requests + 2 * args.concurrency;

    let step = progress::Step::start(format!("seeding a product and {} customers", args.customers));
    let (product, tokens) = progress::run(step, seed_data(&http, &api, args.customers, total_orders)).await?;

    // (a) place-order through the API.
    let place = |token: &str| {
        let req = http
            .post(format!("{api}/orders"))
            .bearer_auth(token)
            .header("idempotency-key", uuid::Uuid::new_v4().to_string())
            .json(&json!({ "lines": [{ "product_id": product, "quantity": 1 }] }));
        async move {
            let r = req.send().await?;
            let status = r.status();
            if status != reqwest::StatusCode::CREATED {
                bail!("POST /orders answered {status}: {}", r.text().await.unwrap_or_default());
            }
            Ok(())
        }
    };
    let step = progress::Step::start(format!("API: {} × POST /orders, {} at a time", args.requests, args.concurrency));
    let api_run = progress::run(step, async {
        measure(2 * args.concurrency, args.concurrency, |i| place(&tokens[i % tokens.len()])).await?;
        let proxy = stack.dynamodb_proxy.as_ref().context("no DynamoDB proxy")?;
        proxy.reset_stats();
        let run = measure(args.requests, args.concurrency, |i| place(&tokens[i % tokens.len()])).await?;
        Ok((run, proxy.stats()))
    })
    .await;
    let (api_run, calls) = api_run?;

    // (b) the same transaction, straight to DynamoDB Local.
    let db = dynamodb_local::client(&stack.dynamodb_endpoint);
    let table = stack.table_name.clone().context("no table")?;
    let shape = TransactionShape::copy_from_table(&db, &table, &product).await?;
    let raw = |_| {
        let request = db.transact_write_items().set_transact_items(Some(shape.items(&table)));
        async move {
            request.send().await.map_err(aws_sdk_dynamodb::Error::from).context("TransactWriteItems")?;
            Ok(())
        }
    };
    let step =
        progress::Step::start(format!("raw: {} × TransactWriteItems, {} at a time", args.requests, args.concurrency));
    let raw_run = progress::run(step, async {
        measure(2 * args.concurrency, args.concurrency, raw).await?;
        measure(args.requests, args.concurrency, raw).await
    })
    .await?;

    report(ws, template, stack, &api_run, &raw_run, &calls, args);
    Ok(())
}

/// Admin, one product with stock for every order, `customers` signed-up customers' tokens.
async fn seed_data(
    http: &reqwest::Client,
    api: &str,
    customers: usize,
    orders: usize,
) -> Result<(String, Vec<String>)> {
    seed::admin(api).await?;
    let admin = seed::admin_token(api).await?;
    let r = http
        .post(format!("{api}/products"))
        .bearer_auth(&admin)
        .json(&json!({
            "name": "Bench blend",
            "description": "Plenty of it",
            "price": { "amount": 1450, "currency": "EUR" },
            "stock": orders * 2,
        }))
        .send()
        .await?;
    let status = r.status();
    let body: Value = r.json().await.unwrap_or_default();
    let product = body["id"].as_str().with_context(|| format!("creating the product: {status} {body}"))?.to_owned();

    let sign_up = |i: usize| {
        let email = format!("bench-{i}-{}@bench.shop.local", uuid::Uuid::new_v4().simple());
        let credentials = json!({ "email": email, "password": "correct horse battery" });
        async move {
            let r = http.post(format!("{api}/auth/signup")).json(&credentials).send().await?;
            if !r.status().is_success() {
                bail!("sign-up answered {}: {}", r.status(), r.text().await.unwrap_or_default());
            }
            let r = http.post(format!("{api}/auth/login")).json(&credentials).send().await?;
            let body: Value = r.json().await?;
            body["token"].as_str().map(str::to_owned).with_context(|| format!("no token in {body}"))
        }
    };
    let tokens: Vec<String> = futures::stream::iter(0..customers)
        .map(sign_up)
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    Ok((product, tokens))
}

type Item = HashMap<String, AttributeValue>;

/// The items a one-line order writes, copied from the table, to write again under new keys.
struct TransactionShape {
    marker: Item,
    order: Item,
    event: Item,
    product_id: String,
    price: AttributeValue,
    currency: AttributeValue,
}

impl TransactionShape {
    async fn copy_from_table(db: &aws_sdk_dynamodb::Client, table: &str, product_id: &str) -> Result<Self> {
        let one = |sk: &'static str| async move {
            let page = db
                .scan()
                .table_name(table)
                .filter_expression("sk = :sk")
                .expression_attribute_values(":sk", AttributeValue::S(sk.into()))
                .send()
                .await
                .map_err(aws_sdk_dynamodb::Error::from)?;
            page.items().first().cloned().with_context(|| format!("no item with sk = {sk} to copy"))
        };
        let product = db
            .get_item()
            .table_name(table)
            .key("pk", AttributeValue::S(format!("PRODUCT#{product_id}")))
            .key("sk", AttributeValue::S("PRODUCT".into()))
            .send()
            .await
            .map_err(aws_sdk_dynamodb::Error::from)?
            .item
            .context("the bench product is gone")?;
        Ok(Self {
            marker: one("PLACE_ORDER").await?,
            order: one("ORDER").await?,
            event: one("EVENT").await?,
            product_id: product_id.to_owned(),
            price: product.get("price_amount").cloned().context("product has no price_amount")?,
            currency: product.get("currency").cloned().context("product has no currency")?,
        })
    }

    /// Marker, order, event (fresh keys of the same length) and the product's reserve update.
    fn items(&self, table: &str) -> Vec<TransactWriteItem> {
        let fresh = |item: &Item| {
            let mut item = item.clone();
            if let Some(AttributeValue::S(pk)) = item.get("pk") {
                // The key ends in a UUID in every one of them: swap it for a new one.
                let new = match pk.rsplit_once(['#']) {
                    Some((prefix, _)) => format!("{prefix}#{}", uuid::Uuid::new_v4()),
                    None => uuid::Uuid::new_v4().to_string(),
                };
                item.insert("pk".into(), AttributeValue::S(new));
            }
            let put = Put::builder()
                .table_name(table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .expect("table and item are set");
            TransactWriteItem::builder().put(put).build()
        };
        let update = Update::builder()
            .table_name(table)
            .key("pk", AttributeValue::S(format!("PRODUCT#{}", self.product_id)))
            .key("sk", AttributeValue::S("PRODUCT".into()))
            .update_expression(
                "SET reserved_stock = reserved_stock + :st_reserved_stock, sellable_stock = sellable_stock + :st_sellable_stock",
            )
            .condition_expression(
                "attribute_exists(pk) AND attribute_not_exists(deleted_at) AND price_amount = :price AND currency = :currency AND sellable_stock >= :st_guard",
            )
            .expression_attribute_values(":price", self.price.clone())
            .expression_attribute_values(":currency", self.currency.clone())
            .expression_attribute_values(":st_reserved_stock", AttributeValue::N("1".into()))
            .expression_attribute_values(":st_sellable_stock", AttributeValue::N("-1".into()))
            .expression_attribute_values(":st_guard", AttributeValue::N("1".into()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .expect("table, key and expression are set");
        vec![
            fresh(&self.marker),
            fresh(&self.order),
            fresh(&self.event),
            TransactWriteItem::builder().update(update).build(),
        ]
    }
}

fn report(ws: &Workspace, template: &Template, stack: &Stack, api: &Run, raw: &Run, calls: &Value, args: &Args) {
    println!();
    println!(
        "{:<28} {:>8} {:>5} {:>8} {:>8} {:>8} {:>8} {:>9}",
        "scenario", "requests", "conc", "p50 ms", "p95 ms", "p99 ms", "max ms", "req/s"
    );
    println!("{}", api.row("POST /orders via local API", args.concurrency));
    println!("{}", raw.row("raw TransactWriteItems", args.concurrency));
    let (p50, p99) = (api.ms(0.5) / raw.ms(0.5), api.ms(0.99) / raw.ms(0.99));
    println!(
        "ratio api/raw: p50 {p50:.2} (target ≤ 1.30: {}), p99 {p99:.2}",
        if p50 <= 1.3 { "met" } else { "NOT met" }
    );
    let n = api.histogram.len().max(1) as f64;
    let per_op: Vec<String> = calls
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, v)| {
            !matches!(k.as_str(), "total" | "injected_conflicts" | "injected_throttles") && v.as_u64() != Some(0)
        })
        .map(|(k, v)| format!("{k} {:.2}", v.as_u64().unwrap_or(0) as f64 / n))
        .collect();
    println!(
        "DynamoDB round trips per API request: {:.2} ({})",
        calls["total"].as_u64().unwrap_or(0) as f64 / n,
        per_op.join(", ")
    );

    println!();
    println!("{:<14} {:>9}  init (spawn → first `next`) of each instance, ms", "binary", "size");
    for f in &template.functions {
        let size = std::fs::metadata(ws.release_binary(&f.binary)).map(|m| m.len()).unwrap_or(0);
        let init = stack.pools.get(&f.logical_id).map(|p| p.stats()["init_ms"].clone()).unwrap_or(Value::Null);
        let init: Vec<u64> = init.as_array().into_iter().flatten().filter_map(Value::as_u64).collect();
        let summary = match (init.iter().min(), init.iter().max()) {
            (Some(min), Some(max)) => format!("{} instance(s): min {min}, max {max}  {init:?}", init.len()),
            _ => "-".to_owned(),
        };
        println!("{:<14} {:>5.1} MiB  {summary}", f.binary, size as f64 / (1024.0 * 1024.0));
    }
}
