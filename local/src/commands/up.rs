//! `cargo local up`: build, install, start, seed, then serve until Ctrl-C or SIGTERM.
//!
//! The template's `Schedule` events fire at their own rate (the sweeper every minute);
//! `--schedule-interval <secs>` overrides it, `--no-schedule` switches it off (see `schedule`).
//!
//! The console stays readable: after the walkthrough it shows one line per API request (time,
//! method, path, status, latency, function, request id) and the alarms firing and clearing; the
//! functions' JSON logs go to `target/local-logs/<Function>.log` (`--verbose` prints them too),
//! where `cargo local logs --trace <request id>` follows one request's whole path.
//!
//! Besides printing them, the stack's URLs and credentials are written to
//! `target/local-stack.env` (the test contract, `KEY=VALUE` lines), so the test suite can be
//! run by hand against a running stack:
//!
//! ```sh
//! set -a; . target/local-stack.env; set +a; cargo nextest run --cargo-profile local -p shop-tests
//! ```

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::commands::seed;
use crate::progress::{self, Step};
use crate::stack::install;
use crate::stack::workspace::Workspace;
use crate::stack::{ADMIN_EMAIL, ADMIN_PASSWORD, Console, Options, Stack};
use crate::template::Template;

#[derive(clap::Args)]
pub struct Args {
    /// API Gateway port (0 = random).
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// Lambda Invoke API port (0 = random).
    #[arg(long, default_value_t = 3001)]
    invoke_port: u16,
    /// Maximum concurrent instances (processes) per function.
    #[arg(long, default_value_t = 8)]
    pool: usize,
    /// Do not SIGSTOP idle instances (Lambda freezes them; this makes debuggers happier).
    #[arg(long)]
    no_freeze: bool,
    /// Do not create the admin account and demo products.
    #[arg(long)]
    no_seed: bool,
    /// Use the binaries already in target/local (skip `cargo build`).
    #[arg(long)]
    no_build: bool,
    /// Fire every `Schedule` event of the template (e.g. the sweeper) every this many seconds
    /// instead of at its own rate (`rate(1 minute)`); also fires `cron(...)` schedules.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..), conflicts_with = "no_schedule")]
    schedule_interval: Option<u64>,
    /// Do not fire the template's `Schedule` events at all (invoke them by hand with
    /// `cargo local invoke SweeperFunction --event events/schedule.json --url <invoke-url>`).
    #[arg(long)]
    no_schedule: bool,
    /// IAM: `enforce` refuses what a function's role does not allow, as AWS does; `soft` logs
    /// and allows; `off` judges nothing (see docs/iam.md).
    #[arg(long, value_enum, default_value_t = crate::stack::IamMode::Enforce)]
    iam: crate::stack::IamMode,
    /// Also print every function's log lines as they come (they always go to
    /// `target/local-logs/<Function>.log`; `cargo local logs` reads them).
    #[arg(long, short)]
    verbose: bool,
}

pub async fn run(args: Args) -> Result<ExitCode> {
    let ws = Workspace::locate().await?;
    let template = Template::load(&ws.root.join("template.yaml"))?;
    let binaries: Vec<&str> = template.functions.iter().map(|f| f.binary.as_str()).collect();
    if !args.no_build {
        ws.build(&binaries).await?;
    }
    let tools = install::ensure().await?;

    let started = Instant::now();
    let opts = Options {
        api_port: Some(args.port),
        invoke_port: Some(args.invoke_port),
        pool_size: args.pool,
        freeze: !args.no_freeze,
        function_logs: None,
        console: if args.verbose { Console::Verbose } else { Console::Requests },
        only: None,
        schedule: match (args.no_schedule, args.schedule_interval) {
            (true, _) => crate::emulators::schedule::Mode::Off,
            (false, Some(secs)) => crate::emulators::schedule::Mode::Every(std::time::Duration::from_secs(secs)),
            (false, None) => crate::emulators::schedule::Mode::Template,
        },
        profile: crate::stack::workspace::PROFILE,
        dynamodb_proxy: true,
        iam: args.iam,
        metrics: true,
    };
    let stack = Stack::start(&ws, &template, &tools.dynamodb_local_dir, opts).await?;
    let api = stack.api_url.clone().context("API not started")?;
    eprintln!("✓ stack started in {:.1}s", started.elapsed().as_secs_f64());

    if !args.no_seed {
        let step = Step::start("seeding the admin account and demo products through the API");
        if let Err(e) = progress::run(step, seed::demo(&stack)).await {
            stack.stop().await;
            return Err(e.context("seeding failed (start with --no-seed to skip it)"));
        }
    }

    let env_file = ws.target_dir.join("local-stack.env");
    let contents: String = stack.contract_env().iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    std::fs::write(&env_file, contents).with_context(|| format!("writing {}", env_file.display()))?;

    print_walkthrough(&stack, &api, &env_file);
    if stack.schedules.is_empty() {
        println!("\nSchedule: off.");
    } else {
        println!("\nSchedule (--schedule-interval <secs> to change, --no-schedule to stop):");
        for line in &stack.schedules {
            println!("  {line}");
        }
    }
    println!(
        "\nOne line per API request below (time, method, path, status, latency, function, request id); the\n\
         functions' logs are in {}/<Function>.log{}. Follow one request: cargo local logs --trace <request id>\n",
        stack.function_logs.display(),
        if args.verbose { ", and printed here too" } else { " (--verbose prints them here too)" },
    );
    stack.show_requests();
    crate::process::shutdown_signal().await;
    eprintln!("\nstopping…");
    stack.stop().await;
    let _ = std::fs::remove_file(&env_file);
    Ok(ExitCode::SUCCESS)
}

fn print_walkthrough(stack: &Stack, api: &str, env_file: &std::path::Path) {
    let invoke = stack.invoke_url.as_deref().unwrap_or("-");
    println!(
        r#"
The shop is running. Open {api}/ in a browser: the storefront (sign up, shop, pay with a
test card, read the e-mails in its Mailbox; {ADMIN_EMAIL} sees the Admin view).

  Storefront                  {api}/
  API (API Gateway HTTP API)  {api}
  Lambda Invoke API           {invoke}/2015-03-31/functions/<LogicalId>/invocations
  Instance stats              {invoke}/_local/functions
  DynamoDB calls / faults     {invoke}/_local/dynamodb/stats   {invoke}/_local/dynamodb/faults
  DynamoDB Local              {ddb}  (table {table})
  Admin                       {ADMIN_EMAIL} / {ADMIN_PASSWORD}
  Test env                    {env}

Or with curl:

  # sign up and log in as a customer
  curl -s -X POST {api}/auth/signup -H 'content-type: application/json' \
       -d '{{"email":"ada@example.com","password":"correct horse battery","name":"Ada"}}'
  curl -s -X POST {api}/auth/login -H 'content-type: application/json' \
       -d '{{"email":"ada@example.com","password":"correct horse battery"}}'

  # create a product as the admin
  TOKEN=$(curl -s -X POST {api}/auth/login -H 'content-type: application/json' \
       -d '{{"email":"{ADMIN_EMAIL}","password":"{ADMIN_PASSWORD}"}}' | jq -r .token)
  curl -s -X POST {api}/products -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
       -d '{{"name":"Mug","description":"Stoneware, 300 ml","price":{{"amount":1299,"currency":"EUR"}},"stock":25}}'

  # list products
  curl -s {api}/products

Ctrl-C stops everything."#,
        ddb = stack.dynamodb_endpoint,
        table = stack.table_name.as_deref().unwrap_or("-"),
        env = env_file.display(),
    );
}
