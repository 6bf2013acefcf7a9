//! The hot product: reservations per second of one product under DynamoDB's per-partition write
//! limit, with its stock in 1 bucket and in 16 (`domain::buckets`).
//!
//! DynamoDB Local has no partitions, so the local DynamoDB proxy is told AWS's limit — 1,000
//! write units/s per partition key, 2 per transactional item — at a scale factor
//! (`--capacity-scale`, default 1/400): 2.5 units/s, 1.25 reservations/s per bucket here. At full
//! scale the same design would do 500/s per bucket, far above what DynamoDB Local (one
//! transaction at a time) and 2 cores can show. Dividing a measured rate by the scale factor
//! gives it in AWS terms; everything else (the order, marker and outbox items) has partitions of
//! its own and never meets the limit.
//!
//! Each run places `--hot-orders` one-unit orders, 32 in flight, of a product with more stock than
//! that (no sold-out answers), and counts what came back: `201` (reserved), `503 unavailable` (the
//! server retried the throttled transaction for about 2 s and gave up; a client retries it with
//! the same Idempotency-Key). Reservations/s is the 201s per second of wall time. The target is
//! the issue's: 16 buckets ≥ 10 × 1 bucket, i.e. ≥ 5,000 reservations/s in AWS terms.

use std::collections::BTreeMap;

use anyhow::Result;
use reqwest::StatusCode;
use serde_json::json;

use crate::commands::bench::fixtures::Fixtures;
use crate::commands::bench::measure::measure;
use crate::commands::bench::report::Row;
use crate::commands::bench::shop_wide::{Throttles, throttles};
use crate::emulators::dynamodb_proxy::AWS_PARTITION_WRITE_UNITS;
use crate::progress::{self, Step};

pub const RATIO_TARGET: f64 = 10.0;
pub const AWS_TARGET: f64 = 5000.0;
const IN_FLIGHT: usize = 32;
const BUCKETS: [u16; 2] = [1, 16];

struct Run {
    per_second: f64,
    answers: BTreeMap<String, usize>,
    wall: f64,
    stock_ok: bool,
    throttled: Throttles,
}

pub async fn run(fx: &Fixtures<'_>, orders: usize, scale: f64) -> Result<Vec<Row>> {
    let tokens = fx.customers(orders.min(200)).await?;
    let mut runs = Vec::new();
    for buckets in BUCKETS {
        let units = orders * 2;
        let product = fx.product_in_buckets(&format!("Bench hot product ({buckets} buckets)"), units, buckets).await?;
        fx.set_dynamodb_faults(json!({
            "partition_write_units_per_second": AWS_PARTITION_WRITE_UNITS,
            "capacity_scale": scale,
        }))
        .await?;
        fx.reset_dynamodb_calls().await?;
        let step = Step::start(format!("hot product: {orders} orders, {buckets} bucket(s), partition limit × {scale}"));
        let (tokens, product) = (&tokens, &product);
        let measured = progress::run(
            step,
            measure(orders, IN_FLIGHT, |i| async move {
                let (status, body) = fx.place_order(&tokens[i % tokens.len()], product, 1).await?;
                Ok(match (status, body["error"]["code"].as_str()) {
                    (StatusCode::CREATED, _) => "201".to_owned(),
                    (status, code) => format!("{} {}", status.as_u16(), code.unwrap_or("?")),
                })
            }),
        )
        .await;
        let throttled = throttles(fx).await;
        fx.set_dynamodb_faults(json!({})).await?;
        let (latencies, answers) = measured?;
        let throttled = throttled?;
        let mut by_answer: BTreeMap<String, usize> = BTreeMap::new();
        for answer in answers {
            *by_answer.entry(answer).or_default() += 1;
        }
        let sold = by_answer.get("201").copied().unwrap_or(0) as i64;
        let stock = fx.stock(product).await?;
        let stock_ok = stock == (units as i64, sold, units as i64 - sold);
        let wall = latencies.wall.as_secs_f64();
        runs.push(Run { per_second: sold as f64 / wall, answers: by_answer, wall, stock_ok, throttled });
    }
    let [one, many] = &runs[..] else { anyhow::bail!("two runs expected") };
    let ratio = many.per_second / one.per_second.max(f64::MIN_POSITIVE);
    let aws = |r: &Run| r.per_second / scale;
    let mut rows = Vec::new();
    for (buckets, run) in BUCKETS.iter().zip(&runs) {
        let answers: Vec<String> = run.answers.iter().map(|(a, n)| format!("{a} ×{n}")).collect();
        rows.push(Row::figure(
            format!("hot product, {buckets} bucket(s): reservations/s (AWS terms)"),
            format!(
                "{:.1}/s ({:.0}/s at AWS's 1,000 units/s), {} in {:.1} s; {} throttled ({} by an index)",
                run.per_second,
                aws(run),
                answers.join(", "),
                run.wall,
                run.throttled.table_or_index,
                run.throttled.index
            ),
        ));
        rows.push(Row::check(
            format!("hot product, {buckets} bucket(s): stock = what was sold"),
            if run.stock_ok { "per bucket and in sum" } else { "MISMATCH" },
            "per bucket and in sum",
            run.stock_ok,
        ));
    }
    rows.push(Row::target(
        "hot product: 16 buckets / 1 bucket reservations/s",
        format!("{ratio:.1}×"),
        format!("≥ {RATIO_TARGET}×"),
        ratio >= RATIO_TARGET,
    ));
    rows.push(Row::target(
        "hot product: 16 buckets in AWS terms",
        format!("{:.0} reservations/s", aws(many)),
        format!("≥ {AWS_TARGET:.0}/s"),
        aws(many) >= AWS_TARGET,
    ));
    Ok(rows)
}
