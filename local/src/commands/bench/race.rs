//! The race: `--buyers` customers (500) order one unit each of a product with `--units` (50) in
//! stock, all at the same moment, through the API.
//!
//! Throughput is answered orders per second of wall time, from the first request sent to the
//! last answer (successes and `409 out_of_stock` alike: both are the system deciding). It is the
//! contended case: every request updates the same product item, so DynamoDB serialises them
//! (in AWS too, where they would conflict and retry; DynamoDB Local queues them).
//!
//! The same race is then run again without the shop in the way: each buyer makes place-order's
//! DynamoDB calls itself with the SDK (the read, then the transaction; see
//! [`TransactionShape::place`]) against a second product with the same stock. The ratio of the two
//! rates, API/raw, is judged against ≥ 0.7.
//!
//! Checks, for both: exactly `units` orders succeed (all of them if there are fewer buyers), every
//! other answer is a refusal (`409 out_of_stock` through the API), and the product ends at
//! `(available, reserved, sellable) = (units, units, 0)`.

use std::collections::BTreeMap;

use anyhow::Result;
use reqwest::StatusCode;

use crate::commands::bench::fixtures::Fixtures;
use crate::commands::bench::measure::measure;
use crate::commands::bench::place_order::TransactionShape;
use crate::commands::bench::report::Row;
use crate::progress::{self, Step};

pub const RATIO_TARGET: f64 = 0.7;

pub async fn run(fx: &Fixtures<'_>, buyers: usize, units: usize) -> Result<Vec<Row>> {
    let product = fx.product("Bench limited edition", units).await?;
    let tokens = fx.customers(buyers).await?;
    let (tokens, product) = (&tokens, &product);
    let step = Step::start(format!("race: {buyers} buyers, {units} units, all at once"));
    let (latencies, answers) = progress::run(
        step,
        measure(buyers, buyers, |i| async move {
            let (status, body) = fx.place_order(&tokens[i], product, 1).await?;
            Ok(match (status, body["error"]["code"].as_str()) {
                (StatusCode::CREATED, _) => "201".to_owned(),
                (StatusCode::CONFLICT, Some("out_of_stock")) => "409 out_of_stock".to_owned(),
                (status, code) => format!("{} {}", status.as_u16(), code.unwrap_or("?")),
            })
        }),
    )
    .await?;
    let mut by_answer: BTreeMap<String, usize> = BTreeMap::new();
    for answer in answers {
        *by_answer.entry(answer).or_default() += 1;
    }
    let sold = by_answer.get("201").copied().unwrap_or(0);
    let refused = by_answer.get("409 out_of_stock").copied().unwrap_or(0);
    let answers: Vec<String> = by_answer.iter().map(|(a, n)| format!("{a} ×{n}")).collect();
    let stock = fx.stock(product).await?;
    // More units than buyers: every buyer wins.
    let winners = units.min(buyers);

    // The floor: the same race, each buyer calling DynamoDB itself.
    let template = fx.product("Bench shape", 1).await?;
    let placed = fx.placed_order(&tokens[0], &template).await?;
    let raw_product = fx.product("Bench raw limited edition", units).await?;
    let shape = TransactionShape::copy_from_table(fx, &placed, &template).await?.for_product(fx, &raw_product).await?;
    let shape = &shape;
    let step = Step::start(format!("race: the same with the raw SDK, {buyers} buyers at once"));
    let (raw, won) = progress::run(step, measure(buyers, buyers, |_| async move { shape.place(fx).await })).await?;
    let raw_sold = won.iter().filter(|w| **w).count();
    let raw_stock = fx.stock(&raw_product).await?;
    let ratio = latencies.per_second() / raw.per_second();

    let units = units as i64;
    let expected = (units, winners as i64, units - winners as i64);
    Ok(vec![
        Row::figure(
            format!("race: {buyers} buyers for {units} units"),
            format!("{:.0} orders/s ({buyers} in {:.2} s)", latencies.per_second(), latencies.wall.as_secs_f64()),
        ),
        Row::figure("race: latency p50/p95/p99", latencies.percentiles()),
        Row::check(
            "race: orders placed",
            answers.join(", "),
            format!("{winners} ×201"),
            sold == winners && sold + refused == buyers,
        ),
        Row::check(
            "race: final stock (available, reserved, sellable)",
            format!("{stock:?}"),
            format!("{expected:?}"),
            stock == expected,
        ),
        Row::figure(
            "race with the raw SDK (floor)",
            format!("{:.0} orders/s ({buyers} in {:.2} s)", raw.per_second(), raw.wall.as_secs_f64()),
        ),
        Row::check(
            "race with the raw SDK: orders placed, final stock",
            format!("{raw_sold}, {raw_stock:?}"),
            format!("{winners}, {expected:?}"),
            raw_sold == winners && raw_stock == expected,
        ),
        Row::target(
            "race: ratio API/raw orders/s",
            format!("{ratio:.2}"),
            format!("≥ {RATIO_TARGET}"),
            ratio >= RATIO_TARGET,
        ),
    ])
}
