//! The storefront's browser test: `tests/browser/*.test.mjs`, run with `node --test`, driving
//! headless Chromium through Playwright (`playwright-core`) against a running stack.
//!
//! `cargo local test` runs it after the Rust suite passed (`--skip-browser` skips it);
//! `cargo local browser-test` runs it alone against the stack `cargo local up` is serving (its
//! URLs and the admin's credentials come from `target/local-stack.env`), or against `--url`.
//! Both install the tools first ([`install::ensure_browser_tools`]). The test gets the test
//! contract plus `SHOP_PLAYWRIGHT_CORE`, `SHOP_CHROMIUM` and `SHOP_BROWSER_ARTIFACTS`
//! (`target/browser-artifacts/`, emptied before each run), where a failing step leaves a
//! full-page screenshot of each browser tab.

use std::path::PathBuf;
use std::process::{ExitCode, ExitStatus};

use anyhow::{Context, Result, bail};
use tokio::process::Command;

use crate::stack::install::{self, BrowserTools};
use crate::stack::workspace::Workspace;
use crate::stack::{ADMIN_EMAIL, ADMIN_PASSWORD};

#[derive(clap::Args)]
pub struct Args {
    /// API base URL of a running stack; default: the one in target/local-stack.env (written by
    /// `cargo local up`). The admin is the seeded one unless SHOP_ADMIN_EMAIL/_PASSWORD say otherwise.
    #[arg(long)]
    url: Option<String>,
}

/// `cargo local browser-test`.
pub async fn run(args: Args) -> Result<ExitCode> {
    let ws = Workspace::locate().await?;
    let env = match args.url {
        Some(url) => vec![
            ("SHOP_API_URL".to_owned(), url),
            ("SHOP_ADMIN_EMAIL".to_owned(), std::env::var("SHOP_ADMIN_EMAIL").unwrap_or(ADMIN_EMAIL.into())),
            ("SHOP_ADMIN_PASSWORD".to_owned(), std::env::var("SHOP_ADMIN_PASSWORD").unwrap_or(ADMIN_PASSWORD.into())),
        ],
        None => running_stack_env(&ws)?,
    };
    let tools = install::ensure_browser_tools(&install::cache_dir()?).await?;
    let status = run_against(&ws, &tools, &env).await?;
    Ok(if status.success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The test contract a running `cargo local up` wrote.
fn running_stack_env(ws: &Workspace) -> Result<Vec<(String, String)>> {
    let file = ws.target_dir.join("local-stack.env");
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("reading {} (start `cargo local up`, or pass --url)", file.display()))?;
    Ok(text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
}

/// Runs every `tests/browser/*.test.mjs` with `env` (the stack's test contract) and the tools.
pub async fn run_against(ws: &Workspace, tools: &BrowserTools, env: &[(String, String)]) -> Result<ExitStatus> {
    let dir = ws.root.join("tests/browser");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".test.mjs"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no *.test.mjs in {}", dir.display());
    }
    let artifacts = ws.target_dir.join("browser-artifacts");
    let _ = std::fs::remove_dir_all(&artifacts);

    let mut cmd = Command::new("node");
    cmd.args(["--test", "--test-reporter=spec"])
        .args(files.iter().map(|f| f.strip_prefix(&ws.root).unwrap_or(f)))
        .current_dir(&ws.root)
        .envs(env.iter().cloned())
        .env("SHOP_PLAYWRIGHT_CORE", &tools.playwright_core)
        .env("SHOP_CHROMIUM", &tools.chromium)
        .env("SHOP_BROWSER_ARTIFACTS", &artifacts);
    let shown: Vec<String> = cmd.as_std().get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    eprintln!("▶ node {}", shown.join(" "));
    let status = crate::process::wait_interruptible(cmd.spawn().context("running node")?).await?;
    if !status.success() && artifacts.exists() {
        eprintln!("✗ browser test failed; screenshots in {}", artifacts.display());
    }
    Ok(status)
}
