//! `cargo local`: the shop on a laptop, from `template.yaml`, without Docker.
//!
//! ```text
//! cargo local up     [--port 3000] [--invoke-port 3001] [--pool 8] [--no-freeze] [--no-seed]
//!                    [--schedule-interval <secs> | --no-schedule] [--iam enforce|soft|off] [--verbose]
//! cargo local test   [--skip-lint] [--skip-api-contract] [--skip-browser] [--iam enforce|soft|off]
//!                    [-- <extra nextest args>]
//! cargo local bench  [--requests 400] [--concurrency 8] [--buyers 500] [--units 50] [--emails 400]
//!                    [--only notifier,place-order,race,settle] [--customers 16] [--pool 8] [--no-build]
//! cargo local soak  [--minutes 5] [--seed N] [--faults all|none|crash,broker-down,...] [--customers 24]
//! cargo local invoke <FunctionLogicalId> --event <file.json> [--url <invoke-url>] [--iam enforce|soft|off]
//! cargo local mail   [--last N] [--url <invoke-url>]
//! cargo local logs   [--trace <id>] [--function <LogicalId>] [--since <15m | rfc3339>] [--json]
//! cargo local metrics [--window 60] [--every 2] [--once] [--url <invoke-url>]
//! cargo local browser-test [--url <api-url>]
//! ```
//!
//! (`cargo local` is an alias in `.cargo/config.toml` for `cargo run --profile local -p local --`.)
//!
//! The tree is the architecture; imports point down it, never up:
//!
//! * [`commands`]: the subcommands, each with a `run` ([`commands::up`], [`commands::test`],
//!   [`commands::bench`], [`commands::invoke`], [`commands::mail`], [`commands::logs`], [`commands::metrics`],
//!   [`commands::browser_test`]),
//!   and [`commands::seed`], the demo data they create through the API;
//! * [`stack`]: starts the emulators in order from the template and hands back their URLs;
//!   [`stack::workspace`] finds the workspace and builds the function binaries,
//!   [`stack::install`] installs DynamoDB Local and the Python tools into a cache dir once,
//!   [`stack::messaging`] starts Kafka, SES and the event triggers, [`stack::storefront`] serves the page;
//! * [`emulators`]: one AWS service (or one piece of Lambda) per module — the Lambda
//!   [`emulators::runtime_api`] and its instance pool, [`emulators::api_gateway`] (HTTP API v2),
//!   [`emulators::invoke`] (the Invoke API), [`emulators::dynamodb_local`] and
//!   [`emulators::dynamodb_proxy`] (counts calls, injects faults), [`emulators::kafka`] (tansu),
//!   [`emulators::ses`] and [`emulators::sqs`] (moto), [`emulators::streams`] and
//!   [`emulators::msk`] (the event source mappings), [`emulators::schedule`] (the `Schedule`
//!   events), [`emulators::settle`] (the event pipeline's barrier), over
//!   [`emulators::emulator`] (their processes) and [`emulators::outage`] (their off switches);
//! * [`template`]: reads the SAM template, the only definition of functions, routes and tables,
//!   and [`template::env_vars`] applies `env.local.json`;
//! * [`process`] spawns children that die only with us or when told, [`progress`] shows steps.

mod commands;
mod emulators;
mod process;
mod progress;
mod stack;
mod template;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo local", about = "Run the serverless shop locally from template.yaml (no Docker)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the functions, start the stack, seed demo data and serve until Ctrl-C.
    Up(commands::up::Args),
    /// Lint, start a throw-away stack on random ports and run the test suite against it.
    Test(commands::test::Args),
    /// The benchmark report: every benchmark against a throw-away stack, one table at the end.
    ///
    /// Starts a stack on random ports (pool 8, no schedule) and measures: the notifier's e-mails/s
    /// (synthetic MSK batches, SES = moto); POST /orders p50/p95/p99 through the local API against
    /// the raw TransactWriteItems (ratio target ≤ 1.3); 500 buyers racing for 50 units (orders/s,
    /// exactly 50 must win); signed payment webhook → order PAID p50/p99; then per function the
    /// stripped binary size (≤ 10 MiB), init time spawn → first `next` (≤ 15 ms) and peak RSS
    /// (≤ 40 MiB). Targets are reported with ✓/✗, never failed; only a broken correctness check
    /// (oversell, an unpaid order, a lost e-mail) makes the command fail.
    ///
    /// Example: `cargo local bench --only race --buyers 1000 --units 100`. Compare runs on one machine.
    Bench(commands::bench::Args),
    /// Minutes of realistic traffic under a seeded schedule of overlapping faults, then every unit,
    /// charge and e-mail reconciled; fails on any broken invariant.
    ///
    /// Example: `cargo local soak --minutes 1 --seed 42`. The same seed gives the same traffic plan
    /// and fault schedule; a break prints the seed, the fault timeline around it and the ids.
    Soak(commands::soak::Args),
    /// Run the storefront's browser test (headless Chromium) against a running `cargo local up`.
    ///
    /// Installs playwright-core (npm, into the cache) and Chromium (apt-get) when missing. Failing
    /// steps leave screenshots in target/browser-artifacts/.
    BrowserTest(commands::browser_test::Args),
    /// Invoke one function once with an event file and print its result (like `sam local invoke`).
    Invoke {
        /// Logical id of the function in template.yaml, e.g. `SignupFunction`.
        function: String,
        /// JSON event file (see `events/`).
        #[arg(long, short)]
        event: PathBuf,
        /// Invoke API of a running stack (`cargo local up` prints it); else a stack is started.
        #[arg(long, env = "SHOP_INVOKE_URL")]
        url: Option<String>,
        /// IAM for the stack this starts (with --url, the running stack's own applies).
        #[arg(long, value_enum, default_value_t = stack::IamMode::Enforce)]
        iam: stack::IamMode,
    },
    /// A live table of what the running stack's functions count (their EMF metrics and Lambda's
    /// own) and of its alarms, firing first (`GET /_local/metrics`, `/_local/alarms`).
    Metrics(commands::metrics::Args),
    /// The functions' log lines in time order, function first; `--trace <id>` follows one request
    /// (its API request id, a sweeper run's invocation id or an X-Ray trace id) through every
    /// function: the request, the relay, the notifier's e-mail.
    ///
    /// Reads `target/local-logs/<Function>.log`, so it works during and after `cargo local up` or
    /// `cargo local test`. Example: `cargo local logs --trace AbCdEfGhIjKlMg= --since 15m`.
    Logs(commands::logs::Args),
    /// Print the e-mails the running stack sent (read from its SES emulator).
    Mail {
        /// Only the last N.
        #[arg(long)]
        last: Option<usize>,
        /// Invoke API of the running stack.
        #[arg(long, env = "SHOP_INVOKE_URL", default_value = "http://127.0.0.1:3001")]
        url: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = if matches!(cli.command, Command::Test(_)) { "warn" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LOCAL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();

    let result = match cli.command {
        Command::Up(args) => commands::up::run(args).await,
        Command::Test(args) => commands::test::run(args).await,
        Command::Bench(args) => commands::bench::run(args).await,
        Command::Soak(args) => commands::soak::run(args).await,
        Command::BrowserTest(args) => commands::browser_test::run(args).await,
        Command::Invoke { function, event, url, iam } => commands::invoke::run(function, event, url, iam).await,
        Command::Mail { last, url } => commands::mail::run(url, last).await,
        Command::Logs(args) => commands::logs::run(args).await,
        Command::Metrics(args) => commands::metrics::run(args).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
