//! Per-request cost of the simplest routes, one warm instance, one request at a time: what a
//! request costs in our code when nothing queues.
//!
//! * `GET /products/{id}` against its floor, the same `GetItem` with the SDK straight to DynamoDB
//!   Local;
//! * `PUT /products/{id}` (a price change by the admin) against its floor, the same two calls with
//!   the SDK: the `GetItem` of the admin's stored role (admin writes re-check it) and the
//!   conditional `UpdateItem` returning the new item;
//! * `POST /auth/login` of the seeded admin: argon2id verification, CPU-bound, the route where
//!   the build profile's optimisation level shows most (no floor: the hash is the work).
//!
//! Sequential calls keep one instance warm and busy, so the ratio API/raw is what the local hops
//! (gateway, Runtime API, proxy unless `--no-proxy`) and the function's own work add to the
//! DynamoDB calls. Then the same GET and PUT with `--concurrency` in flight, for throughput.

use anyhow::{Context, Result, bail};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use reqwest::StatusCode;
use serde_json::json;
use shop::store::dynamo::keys;

use crate::bench::fixtures::{Fixtures, PRICE, uuid};
use crate::bench::measure::{Latencies, measure};
use crate::bench::report::Row;
use crate::progress::{self, Step};

pub const RATIO_TARGET: f64 = 1.3;

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
        let got = fx.db.get_item().table_name(&fx.table).set_key(Some(product_key.clone())).send().await;
        got.map_err(aws_sdk_dynamodb::Error::from)?.item.context("the bench product is gone")?;
        Ok(())
    };
    let raw_put = |i: usize| {
        let (role, key) = (admin_role.clone(), product_key.clone());
        async move {
            let got = fx.db.get_item().table_name(&fx.table).set_key(Some(role)).send().await;
            got.map_err(aws_sdk_dynamodb::Error::from)?.item.context("the admin is gone")?;
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
            Ok(())
        }
    };

    let mut rows = Vec::new();
    let step = Step::start(format!("requests: {requests} × GET and PUT /products/{{id}}, one at a time, and raw"));
    let (api_get, raw_get_l, api_put, raw_put_l) = progress::run(step, async {
        let warm = 20;
        measure(warm, 1, get).await?;
        let api_get = measure(requests, 1, get).await?.0;
        measure(warm, 1, raw_get).await?;
        let raw_get_l = measure(requests, 1, raw_get).await?.0;
        measure(warm, 1, put).await?;
        let api_put = measure(requests, 1, put).await?.0;
        measure(warm, 1, raw_put).await?;
        let raw_put_l = measure(requests, 1, raw_put).await?.0;
        Ok((api_get, raw_get_l, api_put, raw_put_l))
    })
    .await?;
    rows.extend(compare("GET /products/{id}", "raw GetItem", &api_get, &raw_get_l));
    rows.extend(compare("PUT /products/{id}", "raw GetItem + UpdateItem", &api_put, &raw_put_l));

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

fn compare(api_name: &str, raw_name: &str, api: &Latencies, raw: &Latencies) -> Vec<Row> {
    let ratio = api.ms(0.5) / raw.ms(0.5);
    vec![
        Row::figure(format!("{api_name} p50/p95/p99 (c=1)"), api.percentiles()),
        Row::figure(format!("{raw_name} p50/p95/p99 (c=1)"), raw.percentiles()),
        Row::target(
            format!("ratio {api_name} / raw at p50"),
            format!("{ratio:.2} (+{:.2} ms)", api.ms(0.5) - raw.ms(0.5)),
            format!("≤ {RATIO_TARGET}"),
            ratio <= RATIO_TARGET,
        ),
    ]
}
