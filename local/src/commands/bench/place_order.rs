//! Place-order latency: `POST /orders` through the local stack against its floor, the same
//! DynamoDB calls made directly with the SDK, at one request at a time (c=1) and at
//! `--concurrency`.
//!
//! At each concurrency, after a warm-up, `--requests` pairs of
//!
//! 1. **API**: `POST /orders` with one line, through the local API Gateway, the place-order
//!    function (a real process from the pool) and the DynamoDB proxy, to DynamoDB Local;
//! 2. **raw** (the floor): what that request does in DynamoDB, straight to DynamoDB Local with the
//!    SDK, the same calls: the eventually consistent `BatchGetItem` of the product (its price) and
//!    the `TransactWriteItems` (marker `Put`, order `Put`, outbox `Put`, product `Update` with the
//!    reserve condition; the items copied from what an order of (1) wrote, so the sizes match),
//!
//! interleaved call by call ([`interleaved`]: API then raw, raw then API, ...), so that both
//! columns run against the same DynamoDB Local, the same background (every placed order's event,
//! and every raw one's, goes on through the stream, the relay, Kafka, the notifier and SES on the
//! same 2 cores) and the same machine, after [`super::warm_up`] has let DynamoDB Local's JIT
//! settle. Measured one column after the other, as this benchmark once was (API first, then raw,
//! 2 × concurrency warm-up calls), the API column read 2.4× its floor at c=1 (45.1 vs 18.6 ms),
//! and the split showed why: DynamoDB Local itself answered the function's `BatchGetItem` in 7.9
//! ms and its `TransactWriteItems` in 29.3 ms, the raw column's same calls, a few seconds later,
//! in 3.1 and 15.0 ms; the stack's own hops were 6 ms of the 26.5 ms difference.
//!
//! The ratio API/raw at p50 and p99 is judged against ≤ 1.3 at both concurrencies. Both make the
//! same two round trips (`tests/tests/dynamodb_calls.rs` pins that count; the report shows them,
//! per request, as the proxy counted them for place-order alone), so what the ratio shows is the
//! local hops: gateway, Runtime API, proxy, and the function's own work. At c=1 the report splits
//! one request into those ([`super::breakdown`]), each raw call timed on its own beside the
//! function's. At c=8 both columns mostly wait in DynamoDB Local's one-at-a-time transaction
//! queue, which is why the c=1 rows are the ones that show our own cost.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, KeysAndAttributes, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
use shop::events::event::EventType;
use shop::store::dynamo::keys;
use uuid::Uuid;

use crate::commands::bench::Args;
use crate::commands::bench::breakdown::{self, RawCall, Recorder};
use crate::commands::bench::cpu;
use crate::commands::bench::fixtures::{Fixtures, Item, Placed, uuid};
use crate::commands::bench::measure::{Latencies, interleaved};
use crate::commands::bench::report::Row;
use crate::progress::{self, Step};

pub const RATIO_TARGET: f64 = 1.3;
/// The function's own time of one order at c=1 (event delivered → response posted, minus its
/// DynamoDB calls), where the rest is provably the emulator's hops.
pub const OWN_TARGET_MS: f64 = 1.0;

/// The template's logical id of the place-order function: its DynamoDB calls are counted under it.
const FUNCTION: &str = "PlaceOrderFunction";

pub async fn run(fx: &Fixtures<'_>, args: &Args) -> Result<Vec<Row>> {
    let (requests, concurrency) = (args.requests, args.concurrency);
    let mut levels = vec![1, concurrency];
    levels.dedup();
    let warm_up = |c: usize| (2 * c).max(20);
    // Every API order and every raw transaction reserves one unit.
    let units: usize = levels.iter().map(|&c| 2 * (requests + warm_up(c))).sum::<usize>() + 2;
    let product = fx.product("Bench blend", units).await?;
    let tokens = fx.customers(args.customers).await?;
    let place = |i: usize| fx.placed_order(&tokens[i % tokens.len()], &product);

    // The floor's items are copied from an order the API placed.
    let first = fx.placed_order(&tokens[0], &product).await?;
    let shape = TransactionShape::copy_from_table(fx, &first, &product).await?;
    let raw = |_| shape.place_timed(fx);

    let mut rows = Vec::new();
    for c in levels {
        let step = Step::start(format!(
            "place-order: {requests} × POST /orders interleaved with raw BatchGetItem + TransactWriteItems, {c} at a time"
        ));
        let counted = fx.stack.dynamodb_proxy.is_some();
        let (pairs, recorded, calls, cpu) = progress::run(step, async {
            interleaved(warm_up(c), c, place, raw).await?;
            let recorder = match c {
                1 => Some(Recorder::start(fx.stack, FUNCTION)?),
                _ => None,
            };
            // Counted by the proxy, unless the functions bypass it (`--no-proxy`).
            if counted {
                fx.reset_dynamodb_calls().await?;
            }
            let before = cpu::Snapshot::take(&fx.binaries);
            let pairs = interleaved(requests, c, place, raw).await?;
            let cpu = cpu::row("API + raw pair", &cpu::Snapshot::take(&fx.binaries), &before, requests);
            // Every call has been answered, so every call it made is counted and recorded.
            let calls = match counted {
                true => Some(fx.dynamodb_calls(FUNCTION).await?),
                false => None,
            };
            Ok((pairs, recorder.map(|r| r.take()), calls, cpu))
        })
        .await?;
        rows.extend(latency_rows(&pairs.a, &pairs.b, c));
        if let Some(calls) = &calls {
            rows.push(round_trips(calls, requests, c));
        }
        if let Some(recorded) = &recorded {
            rows.extend(breakdown::rows("place-order", recorded, &pairs.a_calls, &pairs.b_calls, OWN_TARGET_MS));
        }
        rows.push(cpu);
    }
    Ok(rows)
}

/// `2.00 per request (1.00 BatchGetItem, 1.00 TransactWriteItems)`.
fn round_trips(calls: &BTreeMap<String, u64>, requests: usize, concurrency: usize) -> Row {
    let per_request = |n: u64| n as f64 / requests as f64;
    let total = calls.get("total").copied().unwrap_or(0);
    let operations: Vec<String> =
        calls.iter().filter(|(op, _)| *op != "total").map(|(op, n)| format!("{:.2} {op}", per_request(*n))).collect();
    Row::figure(
        format!("place-order DynamoDB round trips (c={concurrency})"),
        format!("{:.2} per request ({})", per_request(total), operations.join(", ")),
    )
}

fn latency_rows(api: &Latencies, raw: &Latencies, concurrency: usize) -> Vec<Row> {
    let ratio = |q: f64| api.ms(q) / raw.ms(q);
    let at = format!("c={concurrency}");
    let target = format!("≤ {RATIO_TARGET}");
    let diff = |q: f64| format!("{:.2} ({:+.1} ms)", ratio(q), api.ms(q) - raw.ms(q));
    vec![
        Row::figure(format!("place-order via API p50/p95/p99 ({at})"), api.percentiles()),
        Row::figure(format!("raw read + TransactWriteItems p50/p95/p99 ({at})"), raw.percentiles()),
        Row::target(format!("ratio API/raw at p50 ({at})"), diff(0.5), &target, ratio(0.5) <= RATIO_TARGET),
        Row::target(format!("ratio API/raw at p99 ({at})"), diff(0.99), &target, ratio(0.99) <= RATIO_TARGET),
    ]
}

/// The items a one-line order writes, copied from the table, to write again under new keys.
pub struct TransactionShape {
    marker: Item,
    order: Item,
    event: Item,
    user: Uuid,
    product: Uuid,
    price: AttributeValue,
    currency: AttributeValue,
}

impl TransactionShape {
    /// The items `placed` wrote, read by key (its marker, its order), and its event.
    pub async fn copy_from_table(fx: &Fixtures<'_>, placed: &Placed, product: &str) -> Result<Self> {
        let (order_id, product) = (placed.id()?, uuid(product)?);
        let user = uuid(placed.order["user_id"].as_str().context("order without user_id")?)?;
        let product_item = fx.item(keys::product(product)).await.context("the bench product")?;
        let mut event = placed_event(fx, order_id).await?;
        // As the transaction wrote it: pending, in the OUTBOX index (the relay's mark changed that).
        event.remove("published_at");
        event.remove(keys::TTL);
        let event_id = uuid(event.get("id").and_then(|v| v.as_s().ok()).context("event without id")?)?;
        event.insert(keys::GSI1PK.into(), AttributeValue::S(keys::outbox(event_id)));
        Ok(Self {
            marker: fx.item(keys::idempotency(user, &key(&placed.idempotency_key)?)).await?,
            order: fx.item(keys::order(order_id)).await?,
            event,
            user,
            product,
            price: product_item.get("price_amount").cloned().context("product has no price_amount")?,
            currency: product_item.get("currency").cloned().context("product has no currency")?,
        })
    }

    /// The same orders for another product (its price and currency from the table).
    pub async fn for_product(&self, fx: &Fixtures<'_>, product: &str) -> Result<Self> {
        let product = uuid(product)?;
        let item = fx.item(keys::product(product)).await.context("the product")?;
        Ok(Self {
            marker: self.marker.clone(),
            order: self.order.clone(),
            event: self.event.clone(),
            user: self.user,
            product,
            price: item.get("price_amount").cloned().context("product has no price_amount")?,
            currency: item.get("currency").cloned().context("product has no currency")?,
        })
    }

    /// What place-order does in DynamoDB, with the SDK alone: read the product's price, then the
    /// transaction. `Ok(false)` when the transaction was refused (out of stock).
    pub async fn place(&self, fx: &Fixtures<'_>) -> Result<bool> {
        self.place_calls(fx).await.map(|(placed, _)| placed)
    }

    /// [`Self::place`], each call timed; an error if out of stock.
    pub async fn place_timed(&self, fx: &Fixtures<'_>) -> Result<Vec<RawCall>> {
        match self.place_calls(fx).await? {
            (true, calls) => Ok(calls),
            (false, _) => bail!("the raw transaction was refused: out of stock"),
        }
    }

    async fn place_calls(&self, fx: &Fixtures<'_>) -> Result<(bool, Vec<RawCall>)> {
        // As the function reads prices: eventually consistent (`store::dynamo::reserve`, quotes).
        let keys = KeysAndAttributes::builder()
            .keys(keys::key(keys::product(self.product)))
            .consistent_read(false)
            .build()
            .expect("keys are set");
        let t = Instant::now();
        fx.db
            .batch_get_item()
            .request_items(&fx.table, keys)
            .send()
            .await
            .map_err(aws_sdk_dynamodb::Error::from)
            .context("BatchGetItem")?;
        let read = ("BatchGetItem", t.elapsed());
        let t = Instant::now();
        let sent = fx.db.transact_write_items().set_transact_items(Some(self.items(&fx.table))).send().await;
        let write = ("TransactWriteItems", t.elapsed());
        match sent.map_err(aws_sdk_dynamodb::Error::from) {
            Ok(_) => Ok((true, vec![read, write])),
            Err(aws_sdk_dynamodb::Error::TransactionCanceledException(_)) => Ok((false, vec![read, write])),
            Err(e) => Err(e).context("TransactWriteItems"),
        }
    }

    /// Marker, order, event (fresh keys of the same length), the product's reserve update and the
    /// buyer's session check.
    fn items(&self, table: &str) -> Vec<TransactWriteItem> {
        let put = |item: &Item, fresh: &[(&str, String)]| {
            let mut item = item.clone();
            for (name, value) in fresh {
                item.insert((*name).to_owned(), AttributeValue::S(value.clone()));
            }
            let put = Put::builder()
                .table_name(table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .expect("table and item are set");
            TransactWriteItem::builder().put(put).build()
        };
        let (order, event) = (Uuid::now_v7(), Uuid::now_v7());
        let update = Update::builder()
            .table_name(table)
            .set_key(Some(keys::key(keys::product(self.product))))
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
            put(&self.marker, &[(keys::PK, keys::idempotency(self.user, &fresh_key()).0)]),
            put(&self.order, &[(keys::PK, keys::order(order).0), ("id", order.to_string())]),
            put(
                &self.event,
                &[
                    (keys::PK, keys::event(event).0),
                    (keys::GSI1PK, keys::outbox(event)),
                    (keys::GSI1SK, event.to_string()),
                    ("id", event.to_string()),
                ],
            ),
            TransactWriteItem::builder().update(update).build(),
            // The buyer's session, as the function's transaction checks it (`shop::auth::session`).
            TransactWriteItem::builder()
                .condition_check(
                    ConditionCheck::builder()
                        .table_name(table)
                        .set_key(Some(keys::key(keys::user(self.user))))
                        .condition_expression(
                            "attribute_exists(pk) AND attribute_not_exists(closed_at) AND (attribute_not_exists(session_gen) OR session_gen = :gen)",
                        )
                        .expression_attribute_values(":gen", AttributeValue::N("0".into()))
                        .build()
                        .expect("table, key and condition are set"),
                )
                .build(),
        ]
    }
}

/// The `order.placed` outbox item of `order`. Its key is the event's own id, which nothing of the
/// order records, so it is looked for with a Scan, page by page: the filter applies to each 1 MB
/// page after it is read, so any page, the first too, may hold no match.
async fn placed_event(fx: &Fixtures<'_>, order: Uuid) -> Result<Item> {
    let mut pages = fx
        .db
        .scan()
        .table_name(&fx.table)
        .filter_expression("aggregate_id = :order AND #type = :type")
        .expression_attribute_names("#type", "type")
        .expression_attribute_values(":order", AttributeValue::S(order.to_string()))
        .expression_attribute_values(":type", AttributeValue::S(EventType::OrderPlaced.as_str().into()))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        if let Some(item) = page.map_err(aws_sdk_dynamodb::Error::from)?.items().first() {
            return Ok(item.clone());
        }
    }
    bail!("no {} event of order {order} in the table", EventType::OrderPlaced)
}

/// An Idempotency-Key as the shop parsed it.
fn key(raw: &str) -> Result<shop::domain::idempotency::IdempotencyKey> {
    shop::domain::idempotency::IdempotencyKey::parse(raw).context("not an Idempotency-Key")
}

/// A fresh key, as a new request would send.
fn fresh_key() -> shop::domain::idempotency::IdempotencyKey {
    shop::domain::idempotency::IdempotencyKey::parse(&Uuid::new_v4().to_string()).expect("a UUID is a valid key")
}
