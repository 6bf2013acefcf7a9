//! Per-request cost of the simplest routes: what a request costs in our code when nothing queues
//! (one request at a time, c=1), and the same at `--concurrency`.
//!
//! * `GET /products/{id}` against its floor, the same `GetItem` with the SDK straight to DynamoDB
//!   Local;
//! * `PUT /products/{id}` (a price change by the admin) against its floor, the same two calls with
//!   the SDK: the `GetItem` of the admin's stored role (admin writes re-check it) and the
//!   conditional `UpdateItem` returning the new item;
//! * `POST /auth/login` of the seeded admin: argon2id verification, CPU-bound, the route where
//!   the build profile's optimisation level shows most (no floor: the hash is the work).
//!
//! Each request is interleaved with its floor ([`interleaved`]: API then raw, raw then API, ...),
//! so both run against the same DynamoDB Local at the same moment; the ratio API/raw is what the
//! local hops (gateway, Runtime API, proxy unless `--no-proxy`) and the function's own work add to
//! the DynamoDB calls. At c=1 the report splits a request into those ([`super::breakdown`]); the
//! target is the ratio ≤ 1.3, or, since a `GetItem` on loopback takes well under a millisecond
//! and the emulator's hops are fixed costs of about that size, the function's own time (event
//! delivered → response posted, minus its SDK calls) ≤ 0.5 ms for the read and ≤ 1 ms for the
//! write. Then the same GET and PUT alone with `--concurrency` in flight, for throughput.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use reqwest::StatusCode;
use serde_json::json;
use shop::store::dynamo::keys;

use crate::commands::bench::breakdown::{self, RawCall, Recorder};
use crate::commands::bench::cpu;
use crate::commands::bench::fixtures::{Fixtures, PRICE, uuid};
use crate::commands::bench::measure::{Latencies, Pairs, interleaved, measure};
use crate::commands::bench::report::Row;
use crate::progress::{self, Step};

pub const RATIO_TARGET: f64 = 1.3;
/// The function's own time of a product read, and of a product write (see the module docs).
pub const OWN_READ_TARGET_MS: f64 = 0.5;
pub const OWN_WRITE_TARGET_MS: f64 = 1.0;

/// The template's logical id of the function behind `/products/{id}`.
const FUNCTION: &str = "ProductsFunction";

pub async fn run(fx: &Fixtures<'_>, requests: usize, concurrency: usize, logins: usize) -> Result<Vec<Row>> {
    let product = fx.product("Bench kettle", 10).await?;
    let id = uuid(&product)?;
    let url = format!("{}/products/{product}", fx.api);
    let url = url.as_str();
    let admin = fx.admin_token();
    let admin_role = keys::key(keys::user(fx.admin_id()?));
    let product_key = keys::key(keys::product(id));

    let get = |_| async {
        let r = fx.http.get(url).send().await?;
        expect(r.status(), StatusCode::OK, "GET /products/{id}")
    };
    let put = |i: usize| async move {
        let body = json!({ "price": { "amount": PRICE + (i % 100) as i64, "currency": "EUR" } });
        let r = fx.http.put(url).bearer_auth(admin).json(&body).send().await?;
        expect(r.status(), StatusCode::OK, "PUT /products/{id}")
    };
    let raw_get = |_| async {
        let t = Instant::now();
        let got = fx.db.get_item().table_name(&fx.table).set_key(Some(product_key.clone())).send().await;
        got.map_err(aws_sdk_dynamodb::Error::from)?.item.context("the bench product is gone")?;
        Ok(vec![("GetItem", t.elapsed())])
    };
    let raw_put = |i: usize| {
        let (role, key) = (admin_role.clone(), product_key.clone());
        async move {
            let t = Instant::now();
            let got = fx.db.get_item().table_name(&fx.table).set_key(Some(role)).send().await;
            got.map_err(aws_sdk_dynamodb::Error::from)?.item.context("the admin is gone")?;
            let read: RawCall = ("GetItem", t.elapsed());
            let t = Instant::now();
            fx.db
                .update_item()
                .table_name(&fx.table)
                .set_key(Some(key))
                .update_expression("SET price_amount = :p, currency = :c, updated_at = :now")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_values(":p", AttributeValue::N((PRICE + (i % 100) as i64).to_string()))
                .expression_attribute_values(":c", AttributeValue::S("EUR".into()))
                .expression_attribute_values(":now", AttributeValue::S(keys::rfc3339(time::OffsetDateTime::now_utc())?))
                .return_values(ReturnValue::AllNew)
                .send()
                .await
                .map_err(aws_sdk_dynamodb::Error::from)?;
            Ok(vec![read, ("UpdateItem", t.elapsed())])
        }
    };

    let mut rows = Vec::new();
    let step =
        Step::start(format!("requests: {requests} × GET and PUT /products/{{id}} interleaved with raw, one at a time"));
    let (get_1, put_1, idle) = progress::run(step, async {
        // What the stack burns doing nothing (pollers, DynamoDB Local), before any request.
        let before = cpu::Snapshot::take(&fx.binaries);
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let idle = cpu::row("second, the stack idle", &cpu::Snapshot::take(&fx.binaries), &before, 2);
        let warm = 20;
        interleaved(warm, 1, get, raw_get).await?;
        let recorder = Recorder::start(fx.stack, FUNCTION)?;
        let before = cpu::Snapshot::take(&fx.binaries);
        let get_1 = interleaved(requests, 1, get, raw_get).await?;
        let get_cpu = cpu::row("API + raw pair", &cpu::Snapshot::take(&fx.binaries), &before, requests);
        let get_recorded = recorder.take();
        interleaved(warm, 1, put, raw_put).await?;
        recorder.take();
        let before = cpu::Snapshot::take(&fx.binaries);
        let put_1 = interleaved(requests, 1, put, raw_put).await?;
        let put_cpu = cpu::row("API + raw pair", &cpu::Snapshot::take(&fx.binaries), &before, requests);
        let put_recorded = recorder.take();
        Ok(((get_1, get_recorded, get_cpu), (put_1, put_recorded, put_cpu), idle))
    })
    .await?;
    rows.push(idle);
    rows.extend(compare("GET /products/{id}", "raw GetItem", &get_1.0, 1));
    rows.extend(breakdown::rows(
        "GET /products/{id}",
        &get_1.1,
        &get_1.0.a_calls,
        &get_1.0.b_calls,
        OWN_READ_TARGET_MS,
    ));
    rows.push(get_1.2);
    rows.extend(compare("PUT /products/{id}", "raw GetItem + UpdateItem", &put_1.0, 1));
    rows.extend(breakdown::rows(
        "PUT /products/{id}",
        &put_1.1,
        &put_1.0.a_calls,
        &put_1.0.b_calls,
        OWN_WRITE_TARGET_MS,
    ));
    rows.push(put_1.2);

    if concurrency > 1 {
        let step = Step::start(format!(
            "requests: {requests} × GET and PUT /products/{{id}} interleaved with raw, {concurrency} at a time"
        ));
        let (get_c, put_c) = progress::run(step, async {
            Ok((
                interleaved(requests, concurrency, get, raw_get).await?,
                interleaved(requests, concurrency, put, raw_put).await?,
            ))
        })
        .await?;
        rows.extend(compare("GET /products/{id}", "raw GetItem", &get_c, concurrency));
        rows.extend(compare("PUT /products/{id}", "raw GetItem + UpdateItem", &put_c, concurrency));
    }

    let step = Step::start(format!("requests: {requests} × GET and PUT /products/{{id}}, {concurrency} at a time"));
    let (get_c, put_c) = progress::run(step, async {
        Ok((measure(requests, concurrency, get).await?.0, measure(requests, concurrency, put).await?.0))
    })
    .await?;
    rows.push(Row::figure(
        format!("GET / PUT /products/{{id}} throughput (c={concurrency})"),
        format!("{:.0} / {:.0} requests/s", get_c.per_second(), put_c.per_second()),
    ));

    let login = |_| async {
        let r = fx
            .http
            .post(format!("{}/auth/login", fx.api))
            .json(&json!({ "email": crate::stack::ADMIN_EMAIL, "password": crate::stack::ADMIN_PASSWORD }))
            .send()
            .await?;
        expect(r.status(), StatusCode::OK, "POST /auth/login")
    };
    let step = Step::start(format!("requests: {logins} × POST /auth/login, one at a time"));
    let logins = progress::run(step, async {
        measure(3, 1, login).await?;
        Ok(measure(logins, 1, login).await?.0)
    })
    .await?;
    rows.push(Row::figure("POST /auth/login p50/p95/p99 (c=1)", logins.percentiles()));
    Ok(rows)
}

fn expect(status: StatusCode, expected: StatusCode, what: &str) -> Result<()> {
    if status != expected {
        bail!("{what} answered {status}, expected {expected}");
    }
    Ok(())
}

fn compare<A, B>(api_name: &str, raw_name: &str, pairs: &Pairs<A, B>, concurrency: usize) -> Vec<Row> {
    let (api, raw): (&Latencies, &Latencies) = (&pairs.a, &pairs.b);
    let ratio = api.ms(0.5) / raw.ms(0.5);
    let at = format!("c={concurrency}");
    vec![
        Row::figure(format!("{api_name} p50/p95/p99 ({at})"), api.percentiles()),
        Row::figure(format!("{raw_name} p50/p95/p99 ({at})"), raw.percentiles()),
        Row::target(
            format!("ratio {api_name} / raw at p50 ({at})"),
            format!("{ratio:.2} ({:+.2} ms)", api.ms(0.5) - raw.ms(0.5)),
            format!("≤ {RATIO_TARGET}"),
            ratio <= RATIO_TARGET,
        ),
    ]
}
