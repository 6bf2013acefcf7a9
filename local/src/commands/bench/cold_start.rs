//! Cold starts, one at a time, on an otherwise idle stack.
//!
//! A cold start is what a buyer notices when Lambda has no warm instance: the binary is
//! downloaded and started, its init runs (everything before the first Runtime API `next`), and
//! then the first request runs with whatever init left undone (the first connection to DynamoDB,
//! its TLS handshake on AWS, lazily built clients). So per function, `--cold-starts` times:
//!
//! 1. every idle instance of the function is stopped ([`crate::emulators::runtime_api::Pool::retire_idle`]), so the next
//!    invocation must start a process;
//! 2. the function's sample event from `events/` (the first request a user would send, a
//!    customer's token swapped in) is invoked, timed from the invocation to the answer: **first
//!    response**, which contains the process start, the **init** (spawn → first `next`, as the
//!    pool measures it) and the first request;
//! 3. the same event again, on the now warm instance: **warm**, the part of the first response
//!    that is the request itself; first response − init − warm is what the first request paid
//!    for being first.
//!
//! Functions go one after another and each cold start waits for the previous answer, so no two
//! processes start at once (at stack start twelve do, which is why the figures of the other
//! benchmarks' instances are not the ones judged). What a sample event triggers in the background
//! (a sign-up's welcome e-mail, the relay's sample events) is light next to this; the relay and
//! the notifier go last.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use axum::body::Bytes;
use serde_json::Value;

use crate::commands::bench::fixtures::Fixtures;
use crate::emulators::runtime_api::Outcome;
use crate::progress::{self, Step};
use crate::template::Template;

/// Each function's first request: a sample of `events/` (by logical id; the rest of the
/// template's functions fall back to `schedule.json`, as the scheduled ones are invoked).
const FIRST_EVENTS: &[(&str, &str)] = &[
    ("SignupFunction", "signup.json"),
    ("LoginFunction", "login.json"),
    ("AccountFunction", "me-export.json"),
    ("ProductsFunction", "products-list.json"),
    ("CartFunction", "cart-get.json"),
    ("PlaceOrderFunction", "place-order.json"),
    ("OrdersFunction", "orders-list.json"),
    ("PaymentsFunction", "payments.json"),
    ("PaymentWebhookFunction", "payment-webhook.json"),
    ("MockGatewayFunction", "mock-gateway-get-charge.json"),
    ("NotifierFunction", "msk.json"),
    ("OutboxRelayFunction", "dynamodb-stream.json"),
];

/// Functions whose first request sets off background work in others: measured last.
const LAST: &[&str] = &["OutboxRelayFunction", "NotifierFunction"];

/// One function's cold starts (ms, each sorted).
#[derive(Default)]
pub struct ColdStarts {
    pub init_ms: Vec<f64>,
    pub first_response_ms: Vec<f64>,
    pub warm_ms: Vec<f64>,
    /// Peak RSS of each new instance right after its first response.
    pub peak_rss_kib: Vec<u64>,
}

/// The median of a sorted list (the lower middle for an even count).
pub fn median(sorted: &[f64]) -> Option<f64> {
    sorted.get(sorted.len().saturating_sub(1) / 2).copied()
}

pub async fn run(fx: &Fixtures<'_>, template: &Template, rounds: usize) -> Result<Vec<(String, ColdStarts)>> {
    let token = fx.customers(1).await?.pop().context("no customer")?;
    let mut ids: Vec<&str> = template.functions.iter().map(|f| f.logical_id.as_str()).collect();
    ids.sort_by_key(|id| LAST.contains(id));
    let mut all = Vec::new();
    for id in ids {
        let pool = fx.stack.pools.get(id).with_context(|| format!("{id} is not running"))?;
        let file = FIRST_EVENTS.iter().find(|(f, _)| *f == id).map_or("schedule.json", |(_, e)| *e);
        let event = sample(fx, file, &token)?;
        let step = Step::start(format!("cold starts: {id}, {rounds} × events/{file}"));
        let figures = progress::run(step, async {
            let mut c = ColdStarts::default();
            for _ in 0..rounds {
                pool.retire_idle().await;
                let started = pool.started();
                let (first, outcome) = timed(pool.invoke(event.clone())).await;
                answered(id, &outcome)?;
                pool.until_idle().await;
                let (warm, outcome) = timed(pool.invoke(event.clone())).await;
                answered(id, &outcome)?;
                if pool.started() != started + 1 {
                    bail!("{id}: the cold and the warm invocation did not share one new instance");
                }
                let stats = pool.stats();
                let init = stats["init_ms"].as_array().and_then(|a| a.last()).and_then(Value::as_u64);
                c.init_ms.push(init.context("no init time")? as f64);
                c.first_response_ms.push(first);
                c.warm_ms.push(warm);
                c.peak_rss_kib.extend(stats["peak_rss_kib"].as_array().into_iter().flatten().filter_map(Value::as_u64));
            }
            for v in [&mut c.init_ms, &mut c.first_response_ms, &mut c.warm_ms] {
                v.sort_by(f64::total_cmp);
            }
            Ok(c)
        })
        .await?;
        all.push((id.to_owned(), figures));
    }
    Ok(all)
}

async fn timed(invocation: impl Future<Output = Outcome>) -> (f64, Outcome) {
    let t = Instant::now();
    let outcome = invocation.await;
    (t.elapsed().as_secs_f64() * 1000.0, outcome)
}

/// An answer, even a 4xx one (the sample's placeholders may be refused: still a first response);
/// a crash, a timeout or a function error is not.
fn answered(id: &str, outcome: &Outcome) -> Result<()> {
    match outcome {
        Outcome::Success(_) => Ok(()),
        Outcome::FunctionError(body) => bail!("{id}: function error {}", String::from_utf8_lossy(body)),
        Outcome::Failed { error_type, message } => bail!("{id}: {error_type}: {message}"),
    }
}

/// `events/<file>` with a customer's token in place of the placeholder.
fn sample(fx: &Fixtures<'_>, file: &str, token: &str) -> Result<Bytes> {
    let path = fx.stack.workspace_root.join("events").join(file);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut event: Value = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    if let Some(auth) = event.pointer_mut("/headers/authorization") {
        *auth = Value::String(format!("Bearer {token}"));
    }
    Ok(Bytes::from(serde_json::to_vec(&event)?))
}
