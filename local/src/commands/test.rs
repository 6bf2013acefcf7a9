//! `cargo local test`: the whole quality gate, the same on a laptop and in CI.
//!
//! 1. `cargo fmt --all --check`, `cargo clippy --workspace --all-targets -- -D warnings`,
//!    `cargo doc --workspace --no-deps --document-private-items` with `RUSTDOCFLAGS=-D warnings`
//!    (a broken intra-doc link in a module doc fails here), `cfn-lint template.yaml` and
//!    `sam validate --lint` (both from the cache venv, pinned), failing fast; `--skip-lint` skips
//!    them. They run before the stack starts: a lint failure costs no emulator start-up.
//! 2. A throw-away stack on random ports (so it never clashes with a running `up`), with
//!    function output in `target/local-logs/<Function>.log` to keep test output readable.
//! 3. `cargo nextest run --cargo-profile local --workspace --no-fail-fast [extra args]` (see below);
//! 4. when the tests passed, the storefront's browser test (`tests/browser/`, headless Chromium
//!    through Playwright; see [`crate::commands::browser_test`]; `--skip-browser` skips it, and its tools
//!    are installed before the stack starts, so a missing Chromium fails fast);
//! 5. when those passed too, schemathesis against the running API with `openapi.yaml`, signed in as the admin and as a
//!    customer (`--skip-api-contract` skips it): no 5xx, every status, content type, header and
//!    body as documented, invalid input refused. A fixed seed keeps CI reproducible. It does not
//!    check undeclared methods: API Gateway itself answers those with 404, as the local one does.
//! 6. when all of that passed, a short soak on the same stack ([`crate::commands::soak`]): a minute
//!    of seeded traffic ([`SOAK_SEED`], [`SOAK_MINUTES`]) under overlapping faults, then every unit,
//!    charge and e-mail reconciled; a break fails the run, and the report (seed, fault timeline,
//!    ids to replay) is printed and kept in `target/soak-report.txt` (`--skip-soak` skips it). It
//!    judges only what it made itself, so the suite's data does not disturb it.
//!
//! 7. whatever the tests said, a check that no function instance exited unasked (see
//!    [`crate::emulators::runtime_api`]): a panic or a kill nobody asked for fails the run and
//!    is listed with its function and request;
//! 8. the IAM least-privilege report (see [`crate::emulators::iam::report`]): printed, written to
//!    `target/iam-report.{txt,json}`, and any request a role denied fails the run (`--iam`
//!    chooses enforce, soft or off; the report is made in both of the first two).
//!
//! The test run is `cargo nextest run --cargo-profile local --workspace --no-fail-fast [extra args]`
//!    (or `cargo test --profile local --workspace` without nextest; `local` is the profile the stack
//!    runs too, see [`crate::stack::workspace`]), with the test contract in its environment:
//!    `SHOP_API_URL`, `SHOP_INVOKE_URL`, `SHOP_DYNAMODB_ENDPOINT`, `SHOP_TABLE_NAME`,
//!    `SHOP_ADMIN_EMAIL`, `SHOP_ADMIN_PASSWORD`, `SHOP_JWT_SECRET`, `SHOP_JWT_ISSUER`,
//!    `SHOP_JWT_AUDIENCE`, `SHOP_WORKSPACE`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
//!    `AWS_SECRET_ACCESS_KEY`.
//!
//! The template's schedule is off (tests invoke the sweeper when they want, through the Invoke
//! API; see [`crate::emulators::schedule`]). The stack is torn down afterwards and the exit status is the test command's.

use std::process::{ExitCode, ExitStatus, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use tokio::process::Command;

use crate::commands::{browser_test, seed, soak};
use crate::progress;
use crate::stack::install;
use crate::stack::workspace::{Workspace, cargo_command};
use crate::stack::{Options, Stack};
use crate::template::Template;

/// The soak's seed and length: fixed, so that a break is replayed with the same plan.
pub const SOAK_SEED: u64 = 42;
pub const SOAK_MINUTES: f64 = 1.0;

/// The template's `Schedule` events are not fired: tests run the sweeper on demand through the
/// Invoke API, so no sweep can expire another test's orders.
#[derive(clap::Args)]
pub struct Args {
    /// Skip fmt, clippy, cfn-lint and sam validate (quick iteration).
    #[arg(long)]
    skip_lint: bool,
    /// Maximum concurrent instances per function.
    #[arg(long, default_value_t = 8)]
    pool: usize,
    /// Do not SIGSTOP idle instances.
    #[arg(long)]
    no_freeze: bool,
    /// Skip the schemathesis run against openapi.yaml.
    #[arg(long)]
    skip_api_contract: bool,
    /// Skip the storefront's browser test (headless Chromium).
    #[arg(long)]
    skip_browser: bool,
    /// Skip the one-minute soak (seeded traffic under overlapping faults, then everything reconciled).
    #[arg(long)]
    skip_soak: bool,
    /// IAM: `enforce` refuses what a function's role does not allow, as AWS does; `soft` logs
    /// and allows; `off` judges nothing (see docs/iam.md).
    #[arg(long, value_enum, default_value_t = crate::stack::IamMode::Enforce)]
    iam: crate::stack::IamMode,

    /// Extra arguments for `cargo nextest run` (after `--`).
    #[arg(last = true)]
    extra: Vec<String>,
}

pub async fn run(args: Args) -> Result<ExitCode> {
    let ws = Workspace::locate().await?;
    let template = Template::load(&ws.root.join("template.yaml"))?;
    let tools = install::ensure().await?;
    let browser =
        if args.skip_browser { None } else { Some(install::ensure_browser_tools(&install::cache_dir()?).await?) };

    if !args.skip_lint {
        gate(&ws, "cargo fmt --all --check", cargo_command().args(["fmt", "--all", "--check"])).await?;
        gate(
            &ws,
            "cargo clippy --workspace --all-targets -- -D warnings",
            cargo_command().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]),
        )
        .await?;
        gate(
            &ws,
            "cargo doc --workspace --no-deps --document-private-items (RUSTDOCFLAGS=-D warnings)",
            cargo_command()
                .args(["doc", "--workspace", "--no-deps", "--document-private-items"])
                .env("RUSTDOCFLAGS", "-D warnings"),
        )
        .await?;
        gate(&ws, "cfn-lint template.yaml", Command::new(tools.venv_bin.join("cfn-lint")).arg("template.yaml")).await?;
        // SAM's own checks (transform + its bundled cfn-lint rules) catch what plain cfn-lint
        // cannot see before the Serverless transform. Telemetry off: CI has no internet.
        gate(
            &ws,
            "sam validate --lint",
            Command::new(tools.venv_bin.join("sam"))
                .args(["validate", "--lint", "--region", "us-east-1"])
                .env("SAM_CLI_TELEMETRY", "0"),
        )
        .await?;
    }

    let binaries: Vec<&str> = template.functions.iter().map(|f| f.binary.as_str()).collect();
    ws.build(&binaries).await?;
    let started = Instant::now();
    let logs = ws.logs_dir();
    let opts = Options { freeze: !args.no_freeze, iam: args.iam, ..Options::throwaway(args.pool, logs.clone()) };
    let stack = Stack::start(&ws, &template, &tools.dynamodb_local_dir, opts).await?;
    eprintln!("✓ stack started in {:.1}s (function logs in {})", started.elapsed().as_secs_f64(), logs.display());

    let result: Result<(ExitStatus, bool)> = async {
        let api = stack.api_url.clone().context("API not started")?;
        let step = progress::Step::start("seeding the admin account");
        progress::run(step, seed::admin(&stack)).await?;
        let mut status = run_tests(&ws, &stack, &args.extra).await?;
        // Before schemathesis, whose random products and accounts would only slow the page down.
        if status.success()
            && let Some(browser) = &browser
        {
            status = browser_test::run_against(&ws, browser, &stack.contract_env()).await?;
        }
        // After the tests: the data schemathesis leaves behind (random charges with delayed
        // webhooks, odd accounts) must not disturb the whole-table comparisons of the suite.
        if status.success() && !args.skip_api_contract {
            api_contract(&ws, &api, &tools.venv_bin).await?;
        }
        // Last: its sweeps run in the future and expire whatever else is pending.
        let mut soak_held = true;
        if status.success() && !args.skip_soak {
            let settings = soak::Settings {
                minutes: SOAK_MINUTES,
                seed: SOAK_SEED,
                faults: soak::all_faults(),
                customers: soak::DEFAULT_CUSTOMERS,
            };
            soak_held = soak::run_on(&ws, &stack, &settings).await?;
        }
        Ok((status, soak_held))
    }
    .await;
    // Instances die only when the stack or a test's fault says so; anything else is a bug in
    // a function or in the stack, whether or not a test noticed.
    let unexpected: Vec<String> = stack.pools.values().flat_map(|p| p.unexpected_exits()).collect();
    let iam = stack.iam.report();
    let fired = stack.cloudwatch.alarms.fired();
    stack.stop().await;
    // Informational: the fault tests make some alarms fire on purpose (tests/tests/alarms.rs
    // asserts those); any other here is worth a look.
    if !fired.is_empty() {
        let list: Vec<String> = fired.iter().map(|(id, n)| format!("{id} ({n}×)")).collect();
        eprintln!("(alarms that fired during the run: {})", list.join(", "));
    }
    let denials = write_iam_report(&ws, &iam)?;
    let (status, soak_held) = result?;
    if !status.success() {
        eprintln!(
            "✗ tests failed ({status}); function logs: {}/<Function>.log. One request's path, by the request id \
             in the failure (x-request-id, an error body's request_id): cargo local logs --trace <id>",
            logs.display()
        );
    }
    if !unexpected.is_empty() {
        eprintln!("✗ {} function instance(s) exited unasked (no timeout, crash switch or shutdown):", unexpected.len());
        for line in &unexpected {
            eprintln!("    {line}");
        }
        eprintln!("  function logs: {}", logs.display());
        return Ok(ExitCode::FAILURE);
    }
    eprintln!("✓ no function instance exited unasked");
    if denials > 0 {
        eprintln!("✗ IAM denied {denials} request(s) that template.yaml would deny in AWS too (report above)");
        return Ok(ExitCode::FAILURE);
    }
    if !soak_held {
        eprintln!(
            "✗ the soak (seed {SOAK_SEED}, {SOAK_MINUTES} min) broke an invariant: the report, with the fault timeline \
             around each break and the ids to look up, is in {}; replay it alone with `cargo local soak --seed \
             {SOAK_SEED} --minutes {SOAK_MINUTES}`",
            ws.root.join("target").join("soak-report.txt").display()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::from(status.code().map_or(1, |c| c.clamp(0, 255) as u8)))
}

/// Prints the least-privilege report and writes it to `target/iam-report.{txt,json}`; the
/// number of denied requests (none is judged with `--iam off`).
fn write_iam_report(ws: &Workspace, report: &crate::emulators::iam::report::Report) -> Result<u64> {
    if report.mode == crate::stack::IamMode::Off {
        eprintln!("(--iam off: no IAM report)");
        return Ok(0);
    }
    let text = report.to_text();
    let dir = ws.root.join("target");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("iam-report.txt"), &text)?;
    std::fs::write(dir.join("iam-report.json"), serde_json::to_string_pretty(&report.to_json())?)?;
    eprintln!("{text}");
    eprintln!("(IAM report written to target/iam-report.txt and target/iam-report.json)");
    Ok(report.denials())
}

/// schemathesis against the running API, once per role. The token goes in a header argument;
/// the command line printed by [`gate`] is the check's name only, and schemathesis masks it.
/// `POST /me/sign-out-everywhere` ends the session of the token it is called with, which would
/// leave every later operation of a run 401-only: the role runs leave it out, and a last run
/// checks it alone with a customer of its own. The admin's run also leaves out
/// `POST /me/password`: its wrong current passwords count as log-in attempts and would lock the
/// seeded admin out of logging in for the next 15 minutes (the soak logs in as the admin); the
/// customer's run covers it.
async fn api_contract(ws: &Workspace, api: &str, venv_bin: &std::path::Path) -> Result<()> {
    const SIGN_OUT: &str = "signOutEverywhere";
    const CHANGE_PASSWORD: &str = "changePassword";
    let customer = format!("schemathesis-{}@shop.local", uuid::Uuid::new_v4().simple());
    seed::signup(api, &customer, "schemathesis-password", "Schemathesis").await?;
    let leaving = format!("schemathesis-leaving-{}@shop.local", uuid::Uuid::new_v4().simple());
    seed::signup(api, &leaving, "schemathesis-password", "Schemathesis").await?;
    let runs = [
        (
            "admin",
            seed::admin_token(api).await?,
            vec!["--exclude-operation-id", SIGN_OUT, "--exclude-operation-id", CHANGE_PASSWORD],
        ),
        (
            "customer",
            seed::token(api, &customer, "schemathesis-password").await?,
            vec!["--exclude-operation-id", SIGN_OUT],
        ),
        (
            "a customer signing out",
            seed::token(api, &leaving, "schemathesis-password").await?,
            vec!["--include-operation-id", SIGN_OUT],
        ),
    ];

    for (role, token, filter) in runs {
        let mut cmd = Command::new(venv_bin.join("schemathesis"));
        cmd.args(["run", "openapi.yaml", "--url", api, "--header"])
            .arg(format!("Authorization: Bearer {token}"))
            .args(filter)
            .args(["--checks", "all", "--exclude-checks", "positive_data_acceptance,unsupported_method"])
            .args(["--max-examples", "25", "--workers", "1", "--seed", "1", "--no-color"]);
        gate(ws, &format!("schemathesis run openapi.yaml (as {role})"), &mut cmd).await?;
    }
    Ok(())
}

/// Runs one lint; a failure stops everything with the command in the message.
async fn gate(ws: &Workspace, name: &str, cmd: &mut Command) -> Result<()> {
    eprintln!("▶ {name}");
    let status = cmd.current_dir(&ws.root).status().await.with_context(|| format!("running {name}"))?;
    if !status.success() {
        bail!("`{name}` failed ({status}); `cargo local test --help` lists the switches that skip a step");
    }
    Ok(())
}

async fn run_tests(ws: &Workspace, stack: &Stack, extra: &[String]) -> Result<ExitStatus> {
    let nextest = cargo_command()
        .args(["nextest", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success());
    let mut cmd = cargo_command();
    if nextest {
        cmd.args([
            "nextest",
            "run",
            "--cargo-profile",
            crate::stack::workspace::PROFILE,
            "--workspace",
            "--no-fail-fast",
        ]);
    } else {
        // Without nextest there are no exclusive test groups (.config/nextest.toml): run one test
        // at a time so the whole-table and sweeper tests cannot overlap with others.
        eprintln!("(cargo-nextest not found: using cargo test, one test at a time)");
        cmd.args(["test", "--profile", crate::stack::workspace::PROFILE, "--workspace"])
            .args(extra)
            .args(["--", "--test-threads=1"]);
    }
    if nextest {
        cmd.args(extra);
    }
    cmd.current_dir(&ws.root).envs(stack.contract_env());
    // Print the command without its environment: the stack's variables include the JWT secret.
    let shown: Vec<String> = cmd.as_std().get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    eprintln!("▶ cargo {}", shown.join(" "));
    crate::process::wait_interruptible(cmd.spawn().context("running the tests")?).await
}
