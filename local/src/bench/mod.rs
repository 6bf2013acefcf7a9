//! `cargo local bench`: the benchmark report. Every benchmark of the project runs against one
//! throw-away local stack (random ports, pool of 8 instances per function, schedule off, the real
//! release binaries), and one report is printed at the end.
//!
//! | benchmark (`--only`) | file | what it measures |
//! |---|---|---|
//! | `notifier` | [`notifier`] | e-mails/s of the notifier at its default concurrency bound, SES = moto |
//! | `events` | [`events`] | commit → Kafka and order placed → e-mail in the mailbox, p50/p99 |
//! | `place-order` | [`place_order`] | `POST /orders` p50/p95/p99 through the API, against its floor: the same read + `TransactWriteItems` with the SDK |
//! | `race` | [`race`] | orders/s while 500 buyers race for 50 units (exactly 50 must win), against the same race with the SDK |
//! | `settle` | [`settle`] | signed `charge.succeeded` webhook → order `PAID`, p50/p95/p99 |
//! | (always) | [`functions`] | per function: stripped binary size, init time, peak RSS |
//!
//! The notifier runs first, on a quiet stack, then the event latency: the other benchmarks place
//! orders, whose events the relay and the notifier handle in the background. The per-function figures are read last, so peak RSS is
//! the high-water mark after all the load. [`report`] prints figure, target (where issue 7 gives
//! one) and ✓/✗ per row, with the machine and its load average, because the figures mean little
//! without them.
//!
//! Benchmarks are not timed tests: a slow machine gets ✗ marks, never a failed command. The command
//! fails only when a benchmark cannot run, or a correctness check inside one breaks (the race
//! must sell exactly its units, every webhook must pay its order, every e-mail must arrive).

mod events;
mod fixtures;
mod functions;
mod measure;
mod notifier;
mod place_order;
mod race;
mod report;
mod settle;

use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::stack::{Options, Stack};
use crate::template::Template;
use crate::workspace::Workspace;
use fixtures::Fixtures;
use report::Report;

/// Run every benchmark against a throw-away stack and print one report.
///
/// The defaults take about 40 s on 2 cores once built. Figures depend on the machine and on
/// what else runs on it: compare runs on one machine, not across machines.
#[derive(clap::Args)]
pub struct Args {
    /// Measured `POST /orders` (and as many raw transactions, and as many webhook settles), after
    /// a warm-up of 2 × concurrency.
    #[arg(long, default_value_t = 400)]
    requests: usize,
    /// Requests in flight at once (place-order, raw transactions, webhook settles).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Customers placing the place-order benchmark's orders.
    #[arg(long, default_value_t = 16)]
    customers: usize,
    /// Race: buyers ordering one unit each, all at once.
    #[arg(long, default_value_t = 500)]
    buyers: usize,
    /// Race: units in stock (exactly this many orders must succeed).
    #[arg(long, default_value_t = 50)]
    units: usize,
    /// Notifier: e-mails to send, in batches of the MSK trigger's `BatchSize`.
    #[arg(long, default_value_t = 400)]
    emails: usize,
    /// Event latency: orders followed to Kafka and to the mailbox.
    #[arg(long, default_value_t = 100)]
    events: usize,
    /// Only these benchmarks (comma-separated); the per-function table is always printed.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Benchmark>,
    /// Maximum concurrent instances per function.
    #[arg(long, default_value_t = 8)]
    pool: usize,
    /// Use the binaries already in target/release (skip `cargo build`).
    #[arg(long)]
    no_build: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Benchmark {
    Notifier,
    Events,
    PlaceOrder,
    Race,
    Settle,
}

impl Args {
    fn runs(&self, benchmark: Benchmark) -> bool {
        self.only.is_empty() || self.only.contains(&benchmark)
    }
}

pub async fn run(args: Args) -> Result<ExitCode> {
    let sizes = [args.requests, args.concurrency, args.customers, args.buyers, args.units, args.emails, args.events];
    if sizes.contains(&0) {
        bail!("--requests, --concurrency, --customers, --buyers, --units, --emails and --events must be positive");
    }
    let ws = Workspace::locate().await?;
    let template = Template::load(&ws.root.join("template.yaml"))?;
    let binaries: Vec<&str> = template.functions.iter().map(|f| f.binary.as_str()).collect();
    if !args.no_build {
        ws.build(&binaries).await?;
    }
    let tools = crate::install::ensure().await?;
    let mut report = Report::start();
    let opts = Options::throwaway(args.pool, ws.logs_dir());
    let stack = Stack::start(&ws, &template, &tools.dynamodb_local_dir, opts).await?;
    let result = bench(&template, &stack, &args, &mut report).await;
    // Read while the instances still live: their /proc entries go with them.
    report.functions = functions::figures(&ws, &template, &stack);
    stack.stop().await;
    result?;
    report.print(&args);
    Ok(if report.checks_passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn bench(template: &Template, stack: &Stack, args: &Args, report: &mut Report) -> Result<()> {
    let fx = Fixtures::new(stack).await?;
    if args.runs(Benchmark::Notifier) {
        report.rows.extend(notifier::run(&fx, template, args.emails).await?);
    }
    if args.runs(Benchmark::Events) {
        let triggers = crate::msk::MskTrigger::all(template);
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
    Ok(())
}
