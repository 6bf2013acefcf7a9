//! `cargo local`: the shop on a laptop, from `template.yaml`, without Docker.
//!
//! ```text
//! cargo local up     [--port 3000] [--invoke-port 3001] [--pool 8] [--no-freeze] [--no-seed]
//!                    [--schedule-interval <secs> | --no-schedule]
//! cargo local test   [--skip-lint] [--skip-api-contract] [--skip-browser] [-- <extra nextest args>]
//! cargo local bench  [--requests 400] [--concurrency 8] [--buyers 500] [--units 50] [--emails 400]
//!                    [--only notifier,place-order,race,settle] [--customers 16] [--pool 8] [--no-build]
//! cargo local invoke <FunctionLogicalId> --event <file.json> [--url <invoke-url>]
//! cargo local mail   [--last N] [--url <invoke-url>]
//! cargo local browser-test [--url <api-url>]
//! ```
//!
//! (`cargo local` is an alias in `.cargo/config.toml` for `cargo run --profile local -p local --`.)
//!
//! The pieces, one per module:
//!
//! * [`template`] reads the SAM template (the only definition of functions, routes, tables),
//!   [`env_vars`] applies `env.local.json`;
//! * [`workspace`] finds the workspace and builds the function binaries;
//! * [`install`] installs DynamoDB Local and Python tools into a cache dir, once;
//! * [`process`] spawns children that cannot outlive us;
//! * [`dynamodb_local`], [`dynamodb_proxy`] (counts DynamoDB calls, injects faults), [`runtime_api`] (Lambda Runtime API + instance pool),
//!   [`api_gateway`] (HTTP API v2) and [`invoke`] (Lambda Invoke API) are the emulators,
//!   with [`messaging`] for events and e-mail: [`kafka`] (tansu), [`ses`] and [`sqs`] (moto),
//!   [`streams`] (the table's stream trigger) and [`msk`] (the MSK trigger), over [`emulator`]
//!   (their processes) and [`outage`] (their off switches),
//!   and [`stack`] starts them in order; the API port also serves the [`storefront`] page;
//! * [`schedule`] fires the template's `Schedule` events (on in `up`, off in `test`);
//! * [`seed`] creates demo data through the API; [`up`], [`test_command`], [`mod@bench`],
//!   [`invoke_command`], [`mail_command`] and [`browser_test`] (the storefront in headless
//!   Chromium) are the subcommands, each with a `run`.
//!
//! Imports point one way: the commands over [`stack`], the stack over the emulators, the
//! emulators over [`process`] and [`emulator`] (processes, free ports). No emulator imports the
//! stack or a command.

mod api_gateway;
mod aws_json;
mod bench;
mod browser_test;
mod dynamodb_local;
mod dynamodb_proxy;
mod emulator;
mod env_vars;
mod install;
mod invoke;
mod invoke_command;
mod kafka;
mod mail_command;
mod messaging;
mod msk;
mod outage;
mod process;
mod progress;
mod runtime_api;
mod schedule;
mod seed;
mod ses;
mod settle;
mod sqs;
mod stack;
mod storefront;
mod streams;
mod template;
mod test_command;
mod up;
mod workspace;

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
    Up(up::Args),
    /// Lint, start a throw-away stack on random ports and run the test suite against it.
    Test(test_command::Args),
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
    Bench(bench::Args),
    /// Run the storefront's browser test (headless Chromium) against a running `cargo local up`.
    ///
    /// Installs playwright-core (npm, into the cache) and Chromium (apt-get) when missing. Failing
    /// steps leave screenshots in target/browser-artifacts/.
    BrowserTest(browser_test::Args),
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
    },
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
        Command::Up(args) => up::run(args).await,
        Command::Test(args) => test_command::run(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::BrowserTest(args) => browser_test::run(args).await,
        Command::Invoke { function, event, url } => invoke_command::run(function, event, url).await,
        Command::Mail { last, url } => mail_command::run(url, last).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
