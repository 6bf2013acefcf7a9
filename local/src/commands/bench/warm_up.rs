//! DynamoDB Local warmed up before anything is compared with it.
//!
//! DynamoDB Local is a JVM, started fresh with the stack. For its first minutes its JIT compilers
//! (HotSpot's C1 and C2 threads) compile whatever the workload makes hot, on the same 2 cores as
//! everything else: measured with `--only requests,place-order` right after start-up, they took
//! about 30 s of CPU in the first minute, as much as DynamoDB Local's request threads, and
//! DynamoDB Local answered the same `TransactWriteItems` in 29 ms in one column and 15 ms a few
//! seconds later in the next. A benchmark that compares two columns against it must not run
//! while it warms up, whatever the order of the columns.
//!
//! So before the latency benchmarks, the calls they make (API `GET`, `PUT /products/{id}` and
//! `POST /orders`, the raw `GetItem`, `UpdateItem`, `BatchGetItem` and `TransactWriteItems`) run
//! in rounds, 2 at a time, until a round in which DynamoDB Local's compiler threads took under
//! [`SETTLED`] of its CPU (read from `/proc/<pid>/task/<tid>/schedstat`, the threads named
//! `C1 CompilerThre…`/`C2 CompilerThre…`), or [`MAX_WARM_UP`] has passed. The report says how
//! long it took and what share the compilers had in the last round.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use reqwest::StatusCode;
use serde_json::json;
use shop::store::dynamo::keys;

use crate::commands::bench::fixtures::{Fixtures, PRICE, uuid};
use crate::commands::bench::measure::measure;
use crate::commands::bench::place_order::TransactionShape;
use crate::commands::bench::report::Row;
use crate::progress::{self, Step};

/// The compilers' share of DynamoDB Local's CPU in a round under which it counts as warm.
pub const SETTLED: f64 = 0.05;
/// The longest warm-up: past it the benchmarks run anyway, and the report says so.
pub const MAX_WARM_UP: Duration = Duration::from_secs(90);
/// Calls per round (each kind in turn), 2 in flight.
const ROUND: usize = 240;

pub async fn run(fx: &Fixtures<'_>) -> Result<Row> {
    let jvm = dynamodb_local_pid().context("DynamoDB Local's process is not a child of this one")?;
    let product = fx.product("Warm-up blend", 100_000).await?;
    let id = uuid(&product)?;
    let tokens = fx.customers(4).await?;
    let first = fx.placed_order(&tokens[0], &product).await?;
    let shape = TransactionShape::copy_from_table(fx, &first, &product).await?;
    let url = format!("{}/products/{product}", fx.api);
    let (url, admin, key) = (url.as_str(), fx.admin_token(), keys::key(keys::product(id)));
    let (tokens, product, shape, key) = (&tokens, product.as_str(), &shape, &key);

    let call = |i: usize| async move {
        let ok = |s: StatusCode| if s.is_success() { Ok(()) } else { anyhow::bail!("warm-up call {i}: {s}") };
        match i % 7 {
            0 => ok(fx.http.get(url).send().await?.status()),
            1 => {
                let body = json!({ "price": { "amount": PRICE, "currency": "EUR" } });
                ok(fx.http.put(url).bearer_auth(admin).json(&body).send().await?.status())
            }
            2 => fx.placed_order(&tokens[i % tokens.len()], product).await.map(|_| ()),
            3 => shape.place_timed(fx).await.map(|_| ()),
            4 => {
                let got = fx.db.get_item().table_name(&fx.table).set_key(Some(key.clone())).send().await;
                got.map_err(aws_sdk_dynamodb::Error::from).map(|_| ()).context("GetItem")
            }
            5 => {
                let keys = KeysAndAttributes::builder().keys(key.clone()).build().expect("keys are set");
                let got = fx.db.batch_get_item().request_items(&fx.table, keys).send().await;
                got.map_err(aws_sdk_dynamodb::Error::from).map(|_| ()).context("BatchGetItem")
            }
            _ => {
                let updated = fx
                    .db
                    .update_item()
                    .table_name(&fx.table)
                    .set_key(Some(key.clone()))
                    .update_expression("SET price_amount = :p")
                    .condition_expression("attribute_exists(pk)")
                    .expression_attribute_values(":p", AttributeValue::N(PRICE.to_string()))
                    .send()
                    .await;
                updated.map_err(aws_sdk_dynamodb::Error::from).map(|_| ()).context("UpdateItem")
            }
        }
    };

    let step = Step::start("DynamoDB Local: warming up until its JIT compilers have settled");
    let started = Instant::now();
    let (rounds, share) = progress::run(step, async {
        let mut rounds = 0;
        loop {
            let before = jit(jvm);
            measure(ROUND, 2, call).await?;
            rounds += 1;
            let after = jit(jvm);
            let (compilers, all) = (after.0.saturating_sub(before.0), after.1.saturating_sub(before.1));
            let share = compilers as f64 / all.max(1) as f64;
            if share < SETTLED || started.elapsed() > MAX_WARM_UP {
                return Ok((rounds, share));
            }
        }
    })
    .await?;
    let settled = share < SETTLED;
    Ok(Row::target(
        "DynamoDB Local warm-up (JIT compilers' CPU share)",
        format!(
            "{:.0} s, {} calls; last round {:.1}%{}",
            started.elapsed().as_secs_f64(),
            rounds * ROUND,
            share * 100.0,
            if settled { "" } else { " (gave up waiting)" }
        ),
        format!("< {:.0}%", SETTLED * 100.0),
        settled,
    ))
}

/// DynamoDB Local's JVM: this process's child whose command line runs `DynamoDBLocal.jar`.
fn dynamodb_local_pid() -> Option<u32> {
    let own = std::process::id().to_string();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.to_owned();
        let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).ok()?;
        (ppid == own && cmdline.contains("DynamoDBLocal")).then_some(pid)
    })
}

/// ns on a CPU of the JVM's JIT compiler threads, and of all its threads.
fn jit(pid: u32) -> (u64, u64) {
    let (mut compilers, mut all) = (0, 0);
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let Ok(stat) = std::fs::read_to_string(task.path().join("schedstat")) else { continue };
        let ns: u64 = stat.split_whitespace().next().and_then(|f| f.parse().ok()).unwrap_or(0);
        all += ns;
        if comm.contains("CompilerThre") {
            compilers += ns;
        }
    }
    (compilers, all)
}
