//! `cargo local soak`: minutes of realistic traffic while a seeded schedule of faults overlaps,
//! then everything reconciled — every unit, every charge, every e-mail.
//!
//! ```text
//! cargo local soak [--minutes 5] [--seed N] [--faults all|none|crash,broker-down,...] [--customers 24]
//! ```
//!
//! 1. [`plan`]: from the seed, the products (hot ones in stock buckets, cold ones), the customers'
//!    journeys, the admin's restocks, reprices and bucket changes, and the fault schedule. The
//!    same seed gives the same plan (unit-tested); `--faults` picks kinds from that one schedule.
//! 2. A throw-away stack (random ports, schedule off, IAM enforced), the products created through
//!    the API by the seeded admin.
//! 3. [`traffic`]: every customer a task doing whole journeys over HTTP with [`client`] — sign up
//!    (some with an address SES refuses), log in, browse, fill the cart or not, order with an
//!    `Idempotency-Key`, then pay (`tok_success`, `tok_fail`, delayed, duplicated and out-of-order
//!    webhooks, late), cancel, pay and cancel at once, or let it expire — retrying every 5xx and
//!    timeout with the same request and key, with backoff. Meanwhile [`faults`] applies the
//!    schedule through the stack's switches and fires the sweeper, the refund worker and the
//!    webhook redelivery itself.
//! 4. [`quiesce`]: every fault off, the stack run to rest.
//! 5. [`reconcile`]: the invariants against the table, the gateway's charges, the mailbox, the
//!    dead letters and what the clients saw; [`report`] prints orders, e-mails, charges and
//!    refunds by outcome, faults by kind, the invariants and every break with the seed and the
//!    fault timeline around it. The command fails on any break.
//!
//! `cargo local test` runs a short soak with a fixed seed on its stack after the test suite
//! ([`run_on`]); `--skip-soak` skips it.

mod client;
mod faults;
mod plan;
mod quiesce;
mod reconcile;
mod report;
mod traffic;

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::commands::bench::fixtures::Fixtures;
use crate::progress::{self, Step};
use crate::stack::workspace::Workspace;
use crate::stack::{Options, Stack};
use crate::template::Template;
use plan::{FaultKind, Plan};

/// Run realistic traffic under a seeded schedule of overlapping faults, then reconcile every unit,
/// charge and e-mail.
#[derive(clap::Args)]
pub struct Args {
    /// Minutes of traffic (the quiesce and the reconcile come on top, about a minute).
    #[arg(long, default_value_t = 5.0)]
    minutes: f64,
    /// The seed of the plan (traffic and faults); a random one when absent, printed either way.
    #[arg(long)]
    seed: Option<u64>,
    /// Fault kinds: `all`, `none`, or a comma-separated list of crash, gateway, ddb-conflict,
    /// ddb-throttle, ddb-partition, broker-down, ses-down, ses-refusal, ses-throttle,
    /// expiry-sweep, schedule-late, ddb-internal, timeout, gateway-slow.
    #[arg(long, default_value = "all", value_parser = parse_faults)]
    faults: Faults,
    /// Customers shopping at once, each doing a journey every 10 s or so.
    #[arg(long, default_value_t = DEFAULT_CUSTOMERS)]
    customers: usize,
    /// Maximum concurrent instances per function.
    #[arg(long, default_value_t = 8)]
    pool: usize,
    /// IAM: `enforce` refuses what a function's role does not allow, as AWS does; `soft` logs
    /// and allows; `off` judges nothing (see docs/iam.md).
    #[arg(long, value_enum, default_value_t = crate::stack::IamMode::Enforce)]
    iam: crate::stack::IamMode,
    /// Use the binaries already built (skip `cargo build`).
    #[arg(long)]
    no_build: bool,
}

/// Customers shopping at once unless `--customers` says otherwise.
pub const DEFAULT_CUSTOMERS: usize = 24;

/// Every fault kind (`--faults all`).
pub fn all_faults() -> Vec<FaultKind> {
    FaultKind::ALL.to_vec()
}

/// The fault kinds `--faults` chose.
#[derive(Clone)]
pub struct Faults(Vec<FaultKind>);

fn parse_faults(spec: &str) -> Result<Faults, String> {
    plan::parse_faults(spec).map(Faults)
}

/// One soak's settings.
pub struct Settings {
    pub minutes: f64,
    pub seed: u64,
    pub faults: Vec<FaultKind>,
    pub customers: usize,
}

pub async fn run(args: Args) -> Result<ExitCode> {
    if !(args.minutes > 0.0 && args.minutes <= 24.0 * 60.0) {
        bail!("--minutes must be more than 0 and at most a day");
    }
    let seed = args.seed.unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        nanos.as_nanos() as u64 % 1_000_000
    });
    let ws = Workspace::locate().await?;
    let template = Template::load(&ws.root.join("template.yaml"))?;
    if !args.no_build {
        let binaries: Vec<&str> = template.functions.iter().map(|f| f.binary.as_str()).collect();
        ws.build(&binaries).await?;
    }
    let tools = crate::stack::install::ensure().await?;
    let logs = ws.logs_dir();
    let opts = Options { iam: args.iam, ..Options::throwaway(args.pool, logs.clone()) };
    let stack = Stack::start(&ws, &template, &tools.dynamodb_local_dir, opts).await?;
    eprintln!("(function logs in {})", logs.display());
    let settings = Settings { minutes: args.minutes, seed, faults: args.faults.0, customers: args.customers };
    let result = run_on(&ws, &stack, &settings).await;
    stack.stop().await;
    Ok(if result? { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// One soak against a running stack; `true` when no invariant broke. Prints the report and
/// writes it to `target/soak-report.txt`.
pub async fn run_on(ws: &Workspace, stack: &Stack, settings: &Settings) -> Result<bool> {
    let fx = Fixtures::new(stack).await?;
    let invoke = stack.invoke_url.clone().context("the stack serves no Invoke API")?;
    let duration = Duration::from_secs_f64(settings.minutes * 60.0);
    let plan = Arc::new(Plan::new(settings.seed, duration, settings.customers, &settings.faults));
    let reservation: u64 = fx.env("RESERVATION_MINUTES").ok().and_then(|m| m.parse().ok()).unwrap_or(15);

    let step = Step::start(format!("soak: creating {} products", plan.products.len()));
    let products = progress::run(step, async {
        let mut ids = Vec::new();
        for p in &plan.products {
            let stock = usize::try_from(p.stock)?;
            ids.push(fx.product_in_buckets(&format!("{} ({})", p.name, plan.seed), stock, p.buckets).await?);
        }
        Ok(ids)
    })
    .await?;
    let dead_letters_before = dead_letters(&fx.http, &invoke).await?;
    let exits_before: BTreeSet<String> = stack.pools.values().flat_map(|p| p.unexpected_exits()).collect();

    let started = Instant::now();
    let started_at = time::OffsetDateTime::now_utc();
    let client = client::Client::new(&fx.api, started)?;
    let injector = Arc::new(faults::Injector::new(&invoke, started, Duration::from_secs((reservation + 1) * 60))?);
    let traffic = Arc::new(traffic::Traffic {
        client: client.clone(),
        plan: plan.clone(),
        products: products.clone(),
        invoke: invoke.clone(),
        admin_token: fx.admin_token().to_owned(),
        started,
        tag: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
        records: Default::default(),
    });

    let stop = Arc::new(AtomicBool::new(false));
    let ticks = tokio::spawn({
        let (injector, stop) = (injector.clone(), stop.clone());
        async move { injector.ticks(stop).await }
    });
    let faults_task = tokio::spawn({
        let (injector, plan) = (injector.clone(), plan.clone());
        async move { injector.run(&plan).await }
    });
    let kinds: Vec<&str> = settings.faults.iter().map(|k| k.name()).collect();
    let step = Step::start(format!(
        "soak (seed {}): {} customers, {} journeys over {:.1} min, {} faults ({})",
        plan.seed,
        plan.customers.len(),
        plan.journeys(),
        settings.minutes,
        plan.faults.len(),
        if kinds.is_empty() { "none".to_owned() } else { kinds.join(", ") }
    ));
    traffic.clone().run().await;
    step.done();
    let traffic_seconds = started.elapsed().as_secs_f64();
    faults_task.abort();
    stop.store(true, Ordering::SeqCst);
    let _ = ticks.await;

    let step = Step::start("soak: all faults off, running the stack to rest");
    let quiesced = progress::run(step, quiesce::quiesce(&injector)).await?;

    let step = Step::start("soak: reconciling the table, the gateway, the mailbox and the clients");
    let (items, mail, dead_letters_after) = progress::run(step, async {
        let items = reconcile::scan(&fx.db, &fx.table).await?;
        let url = format!("{invoke}/_local/mail");
        let mail: Vec<crate::emulators::ses::SentMail> =
            fx.http.get(url).send().await?.error_for_status()?.json().await.context("the mailbox")?;
        Ok((items, mail, dead_letters(&fx.http, &invoke).await?))
    })
    .await?;
    let records = std::mem::take(&mut *traffic.records.lock().unwrap());
    let (routes, gave_up) = {
        let log = client.log();
        (log.routes.clone(), log.gave_up.clone())
    };
    let inputs = reconcile::Inputs {
        products: &products,
        initial_stock: plan.products.iter().map(|p| p.stock).collect(),
        records: &records,
        items,
        mail,
        new_dead_letters: dead_letters_after.saturating_sub(dead_letters_before),
        requests: routes.values().map(|r| r.requests as usize).sum(),
        gave_up,
        unexpected_exits: stack
            .pools
            .values()
            .flat_map(|p| p.unexpected_exits())
            .filter(|e| !exits_before.contains(e))
            .collect(),
        started_at,
    };
    let outcome = reconcile::reconcile(&inputs);
    let report = report::Report {
        plan: &plan,
        kinds: &settings.faults,
        records: &records,
        routes: &routes,
        faults: &injector.figures(),
        timeline: &injector.timeline(),
        outcome: &outcome,
        quiesce: &quiesced,
        traffic_seconds,
    };
    let text = report.text();
    eprintln!("{text}");
    let path = ws.root.join("target").join("soak-report.txt");
    std::fs::create_dir_all(path.parent().context("target dir")?)?;
    std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    if outcome.breaks.is_empty() {
        eprintln!("✓ soak (seed {}): every invariant held (report in {})", plan.seed, path.display());
    } else {
        eprintln!("✗ soak (seed {}): {} break(s); replay: {}", plan.seed, outcome.breaks.len(), report.replay());
    }
    Ok(outcome.breaks.is_empty())
}

/// How many records the outbox relay's dead-letter queue holds.
async fn dead_letters(http: &reqwest::Client, invoke: &str) -> Result<usize> {
    let url = format!("{invoke}/_local/sqs/OutboxRelayDeadLetters");
    let messages: Vec<Value> = http.get(url).send().await?.error_for_status()?.json().await?;
    Ok(messages.len())
}
