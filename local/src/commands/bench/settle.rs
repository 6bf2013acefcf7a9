//! Webhook settle: how long from the gateway posting a signed `charge.succeeded` to the order
//! being `PAID`.
//!
//! Definition: the round trip of `POST /webhooks/payment`. The webhook settles synchronously (it
//! reads the order, then one conditional transaction: order → `PAID`, stock deducted, dedupe
//! marker, outbox event), publishes the `order.paid` event to Kafka and marks its outbox item
//! published (an `UpdateItem`), and only then answers `200 {"result": "paid"}`: the order is paid
//! before the answer, and the figure includes the Kafka publish and the outbox mark. That leaves
//! out what is not ours to measure: the mock gateway's charge bookkeeping, and polling the order
//! (whose interval would dominate). The webhook is built and signed as the gateway does it
//! (`shop::payments::signature::sign`, with the stack's `WEBHOOK_SECRETS`; the contract is in
//! docs/payments.md).
//!
//! `--requests` orders (and 2 × concurrency more to warm the webhook's instances up) are placed
//! first, not measured, then settled `--concurrency` at a time.
//! Check: every answer says `paid`, and every order reads `PAID` in the table afterwards.

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use secrecy::SecretString;
use serde_json::{Value, json};
use shop::store::dynamo::keys;
use uuid::Uuid;

use crate::commands::bench::fixtures::Fixtures;
use crate::commands::bench::measure::measure;
use crate::commands::bench::report::Row;
use crate::progress::{self, Step};

pub async fn run(fx: &Fixtures<'_>, orders: usize, concurrency: usize) -> Result<Vec<Row>> {
    let secrets: Vec<SecretString> =
        fx.env("WEBHOOK_SECRETS")?.split(',').map(|s| SecretString::from(s.trim().to_owned())).collect();
    // The first 2 × concurrency settles warm the webhook's instances up, unmeasured.
    let warm_up = 2 * concurrency;
    let product = fx.product("Bench single origin", orders + warm_up).await?;
    let tokens = fx.customers(concurrency).await?;
    let (tokens, product) = (&tokens, &product);
    let step = Step::start(format!("settle: placing {} orders to pay", orders + warm_up));
    let (_, placed) = progress::run(
        step,
        measure(orders + warm_up, concurrency, |i| async move {
            let placed = fx.placed_order(&tokens[i % tokens.len()], product).await?;
            Ok((placed.id()?, placed.order["total"]["amount"].as_i64().context("order without total")?))
        }),
    )
    .await?;

    let settle = |i: usize| {
        let (order, amount): &(Uuid, i64) = &placed[i];
        let body = webhook_body(*order, *amount);
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let signature = shop::payments::signature::sign(&secrets, now, body.as_bytes());
        let request = fx
            .http
            .post(format!("{}/webhooks/payment", fx.api))
            .header("content-type", "application/json")
            .header(shop::payments::signature::HEADER, signature)
            .body(body);
        async move {
            let r = request.send().await.context("POST /webhooks/payment")?;
            let status = r.status();
            let answer: Value = r.json().await.unwrap_or_default();
            if !status.is_success() || answer["result"] != "paid" {
                bail!("the webhook answered {status} {answer} for order {order}");
            }
            Ok(())
        }
    };
    let step = Step::start(format!("settle: {orders} signed webhooks, {concurrency} at a time"));
    let (latencies, _) = progress::run(step, async {
        measure(warm_up, concurrency, settle).await?;
        measure(orders, concurrency, |i| settle(warm_up + i)).await
    })
    .await?;

    let paid = futures::stream::iter(&placed)
        .map(|(order, _)| async move {
            let item = fx.item(keys::order(*order)).await?;
            Ok::<_, anyhow::Error>(item.get("state").and_then(|s| s.as_s().ok()).is_some_and(|s| s == "PAID"))
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<bool>>>()?
        .into_iter()
        .filter(|paid| *paid)
        .count();
    Ok(vec![
        Row::figure(format!("webhook settle p50/p95/p99 (c={concurrency})"), latencies.percentiles()),
        Row::figure("webhook settle throughput", format!("{:.0} settles/s", latencies.per_second())),
        Row::check(
            "webhook settle: orders PAID afterwards",
            format!("{paid} of {}", placed.len()),
            "all",
            paid == placed.len(),
        ),
    ])
}

/// A `charge.succeeded` event for `order`, shaped as docs/payments.md says a provider sends it.
fn webhook_body(order: Uuid, amount: i64) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let charge = format!("ch_bench_{}", Uuid::new_v4().simple());
    json!({
        "id": format!("evt_bench_{}", Uuid::new_v4().simple()),
        "type": "charge.succeeded",
        "created": now,
        "data": { "charge": {
            "id": charge, "amount": amount, "currency": "EUR", "reference": order, "status": "succeeded", "created": now,
        } },
    })
    .to_string()
}
