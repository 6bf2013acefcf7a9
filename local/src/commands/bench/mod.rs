//! `cargo local bench`: the benchmark report. Every benchmark of the project runs against one
//! throw-away local stack (random ports, pool of 8 instances per function, schedule off), with
//! the binaries as they are deployed (`release`, the profile `sam build` uses; `--profile local`
//! for the faster-to-build one the tests run), and one report is printed at the end.
//!
//! | benchmark (`--only`) | file | what it measures |
//! |---|---|---|
//! | `cold-start` | [`cold_start`] | per function, ≥ 20 cold starts one at a time: init, first response, warm response |
//! | `requests` | [`requests`] | `GET`/`PUT /products/{id}` against the same SDK calls made raw, interleaved, at c=1 (split, see [`breakdown`]) and at `--concurrency`; `POST /auth/login` |
//! | `notifier` | [`notifier`] | e-mails/s of the notifier at its default concurrency bound, SES = moto |
//! | `events` | [`events`] | commit → Kafka and order placed → e-mail in the mailbox, p50/p99 |
//! | `place-order` | [`place_order`] | `POST /orders` p50/p95/p99 through the API against its floor, the same read + `TransactWriteItems` with the SDK, interleaved, at c=1 (split, see [`breakdown`]) and at `--concurrency` |
//! | `race` | [`race`] | orders/s while 500 buyers race for 50 units (exactly 50 must win), against the same race with the SDK |
//! | `settle` | [`settle`] | signed `charge.succeeded` webhook → order `PAID`, p50/p95/p99 |
//! | `hot-product` | [`hot_product`] | reservations/s of one product under DynamoDB's partition write limit (scaled), 1 bucket vs 16 |
//! | `shop-wide` | [`shop_wide`] | orders/s of the whole shop, 1,000 products with a Zipf skew, table and index partition limits on (scaled) |
//! | (always) | [`functions`] | per function: stripped binary size (x86_64, and arm64 with `--arm64`), init, peak RSS |
//!
//! The cold starts run first, on an idle stack. Before the latency benchmarks, [`warm_up`] runs
//! their calls until DynamoDB Local's JIT compilers have settled (a fresh JVM compiles on the same
//! 2 cores for about a minute, and answers the same call twice as slowly meanwhile). Then the
//! requests and the notifier on a quiet stack, then the event latency: the other benchmarks place
//! orders, whose events the relay and the notifier handle in the background. Every API request is
//! interleaved with its raw floor ([`measure::interleaved`]), and at c=1 split into its parts
//! from the stack's own records ([`breakdown`]), next to where the machine's CPU went meanwhile
//! ([`cpu`]). The per-function figures are read last, so peak RSS is the high-water mark after all
//! the load. [`report`] prints figure, target (where an issue gives one) and ✓/✗ per row, with the
//! machine and its load average, because the figures mean little without them.
//!
//! Benchmarks are not timed tests: a slow machine gets ✗ marks, never a failed command. The command
//! fails only when a benchmark cannot run, or a correctness check inside one breaks (the race
//! must sell exactly its units, every webhook must pay its order, every e-mail must arrive).

mod breakdown;
mod cold_start;
mod cpu;
mod events;
/// Also the soak's (`crate::commands::soak`): the seeded admin, products, a look at the table.
pub mod fixtures;
mod functions;
mod hot_product;
mod measure;
mod notifier;
mod place_order;
mod race;
mod report;
mod requests;
mod settle;
mod shop_wide;
mod warm_up;

use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::stack::workspace::Workspace;
use crate::stack::{Options, Stack};
use crate::template::Template;
use fixtures::Fixtures;
use report::Report;

/// Run every benchmark against a throw-away stack and print one report.
///
/// The defaults take about 2 minutes on 2 cores once built. Figures depend on the machine and on
/// what else runs on it: compare runs on one machine, not across machines.
#[derive(clap::Args)]
pub struct Args {
    /// Measured `POST /orders` (and as many raw transactions, and as many webhook settles), after
    /// a warm-up of 2 × concurrency.
    #[arg(long, default_value_t = 400, value_parser = at_least_one())]
    requests: usize,
    /// Requests in flight at once (place-order, raw transactions, webhook settles).
    #[arg(long, default_value_t = 8, value_parser = at_least_one())]
    concurrency: usize,
    /// Customers placing the place-order benchmark's orders.
    #[arg(long, default_value_t = 16, value_parser = at_least_one())]
    customers: usize,
    /// Race: buyers ordering one unit each, all at once.
    #[arg(long, default_value_t = 500, value_parser = at_least_one())]
    buyers: usize,
    /// Race: units in stock (exactly this many orders must succeed).
    #[arg(long, default_value_t = 50, value_parser = at_least_one())]
    units: usize,
    /// Notifier: e-mails to send, in batches of the MSK trigger's `BatchSize`.
    #[arg(long, default_value_t = 400, value_parser = at_least_one())]
    emails: usize,
    /// Event latency: orders followed to Kafka and to the mailbox.
    #[arg(long, default_value_t = 100, value_parser = at_least_one())]
    events: usize,
    /// Hot product: one-unit orders per run (1 bucket, then 16), 32 in flight.
    #[arg(long, default_value_t = 120, value_parser = at_least_one())]
    hot_orders: usize,
    /// Hot product and shop-wide: the fraction of AWS's per-partition write limit (1,000
    /// units/s) the local DynamoDB proxy enforces on table and index partitions. Small, so that
    /// the limits bind below what DynamoDB Local and the machine take: at 1/400 the shop-wide
    /// target (10,000 orders/s) is 25 orders/s here, which 2 cores carry (at 1/200 it would be
    /// 50/s, past their ~35/s: the row would measure the machine, whatever the design).
    #[arg(long, default_value_t = 0.0025)]
    capacity_scale: f64,
    /// Shop-wide: products in the catalog (Zipf-skewed demand).
    #[arg(long, default_value_t = 1000, value_parser = at_least_one())]
    shop_products: usize,
    /// Shop-wide: one-unit orders placed, 32 in flight.
    #[arg(long, default_value_t = 1200, value_parser = at_least_one())]
    shop_orders: usize,
    /// Only these benchmarks (comma-separated); the per-function table is always printed.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Benchmark>,
    /// Maximum concurrent instances per function.
    #[arg(long, default_value_t = 8, value_parser = at_least_one())]
    pool: usize,
    /// Cold starts per function.
    #[arg(long, default_value_t = 20, value_parser = at_least_one())]
    cold_starts: usize,
    /// `POST /auth/login` calls (argon2id: each takes tens of ms).
    #[arg(long, default_value_t = 40, value_parser = at_least_one())]
    logins: usize,
    /// The binaries to run: `release` (deployed) or `local` (what the tests run).
    #[arg(long, value_enum, default_value_t = Profile::Release)]
    profile: Profile,
    /// Also build every function for arm64 with `cargo lambda build --release --arm64` (what `sam
    /// build` runs; needs cargo-lambda: `pip install cargo-lambda`) and report those sizes.
    #[arg(long)]
    arm64: bool,
    /// Functions talk to DynamoDB Local directly, without the counting proxy (no round-trip
    /// counts then).
    #[arg(long)]
    no_proxy: bool,
    /// Functions run with `METRICS_DISABLED=true` (no EMF documents): compare with a run without
    /// it to see what the metrics cost per invocation.
    #[arg(long)]
    no_metrics: bool,
    /// IAM: `enforce` refuses what a function's role does not allow, as AWS does; `soft` logs
    /// and allows; `off` judges nothing (see docs/iam.md).
    #[arg(long, value_enum, default_value_t = crate::stack::IamMode::Enforce)]
    iam: crate::stack::IamMode,

    /// Use the binaries already built (skip `cargo build`).
    #[arg(long)]
    no_build: bool,
}

/// A count of at least 1 (clap's error names the flag and the value).
fn at_least_one() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::new().range(1..)
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Profile {
    Release,
    Local,
}

impl Profile {
    fn name(self) -> &'static str {
        match self {
            Profile::Release => crate::stack::workspace::DEPLOY_PROFILE,
            Profile::Local => crate::stack::workspace::PROFILE,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Benchmark {
    ColdStart,
    Requests,
    Notifier,
    Events,
    PlaceOrder,
    Race,
    Settle,
    HotProduct,
    ShopWide,
}

impl Args {
    fn runs(&self, benchmark: Benchmark) -> bool {
        self.only.is_empty() || self.only.contains(&benchmark)
    }
}

pub async fn run(args: Args) -> Result<ExitCode> {
    if !(args.capacity_scale > 0.0 && args.capacity_scale <= 1.0) {
        bail!("--capacity-scale must be in (0, 1]");
    }
    let ws = Workspace::locate().await?;
    let template = Template::load(&ws.root.join("template.yaml"))?;
    let binaries: Vec<&str> = template.functions.iter().map(|f| f.binary.as_str()).collect();
    let profile = args.profile.name();
    let arm64_dir = args.arm64.then(|| ws.target_dir.join("lambda"));
    if !args.no_build {
        let mut deployed = binaries.clone();
        deployed.push("shop-admin");
        match args.profile {
            Profile::Release => ws.build_deployed(&deployed, false).await?,
            Profile::Local => ws.build(&binaries).await?,
        }
        if args.arm64 {
            crate::stack::install::require_on_path("cargo-lambda", "`pip install cargo-lambda` (it brings zig)")?;
            ws.build_deployed(&binaries, true).await?;
        }
    }
    let tools = crate::stack::install::ensure().await?;
    let mut report = Report::start();
    let opts = Options {
        profile,
        dynamodb_proxy: !args.no_proxy,
        iam: args.iam,
        metrics: !args.no_metrics,
        ..Options::throwaway(args.pool, ws.logs_dir())
    };
    let stack = Stack::start(&ws, &template, &tools.dynamodb_local_dir, opts).await?;
    let result = bench(&template, &stack, &args, &mut report).await;
    // Read while the instances still live: their /proc entries go with them.
    let cold = std::mem::take(&mut report.cold_starts);
    report.functions = functions::figures(&ws, profile, arm64_dir.as_deref(), &template, &stack, cold);
    stack.stop().await;
    result?;
    report.print(&args);
    Ok(if report.checks_passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn bench(template: &Template, stack: &Stack, args: &Args, report: &mut Report) -> Result<()> {
    let mut fx = Fixtures::new(stack).await?;
    fx.binaries = template.functions.iter().map(|f| (f.binary.clone(), f.logical_id.clone())).collect();
    if args.runs(Benchmark::ColdStart) {
        report.cold_starts = cold_start::run(&fx, template, args.cold_starts).await?.into_iter().collect();
    }
    if args.runs(Benchmark::Requests) || args.runs(Benchmark::PlaceOrder) {
        report.rows.push(warm_up::run(&fx).await?);
    }
    if args.runs(Benchmark::Requests) {
        report.rows.extend(requests::run(&fx, args.requests, args.concurrency, args.logins).await?);
    }
    if args.runs(Benchmark::Notifier) {
        report.rows.extend(notifier::run(&fx, template, args.emails).await?);
    }
    if args.runs(Benchmark::Events) {
        let triggers = crate::emulators::msk::MskTrigger::all(template);
        let topic = triggers.iter().flat_map(|t| t.topics.first()).next().context("no MSK event in the template")?;
        report.rows.extend(events::run(&fx, topic, args.events).await?);
    }
    if args.runs(Benchmark::PlaceOrder) {
        report.rows.extend(place_order::run(&fx, args).await?);
    }
    if args.runs(Benchmark::Race) {
        report.rows.extend(race::run(&fx, args.buyers, args.units).await?);
    }
    if args.runs(Benchmark::Settle) {
        report.rows.extend(settle::run(&fx, args.requests, args.concurrency).await?);
    }
    if args.runs(Benchmark::HotProduct) {
        if args.no_proxy {
            report.rows.push(report::Row::figure("hot product", "skipped: --no-proxy (the proxy enforces the limit)"));
        } else {
            report.rows.extend(hot_product::run(&fx, args.hot_orders, args.capacity_scale).await?);
        }
    }
    if args.runs(Benchmark::ShopWide) {
        if args.no_proxy {
            report.rows.push(report::Row::figure("shop-wide", "skipped: --no-proxy (the proxy enforces the limits)"));
        } else {
            let (products, orders) = (args.shop_products, args.shop_orders);
            report.rows.extend(shop_wide::run(&fx, products, orders, args.capacity_scale).await?);
        }
    }
    Ok(())
}
