//! `cargo local logs`: the functions' log lines, in time order, the function (instance) first;
//! `--trace <id>` keeps the lines about one request, whichever function wrote them.
//!
//! It reads the files the stack writes (`target/local-logs/<Function>.log`, see
//! [`crate::emulators::logs`]), so it works while `cargo local up` runs, after it stopped, and on
//! what a `cargo local test` run left behind. The id is the one the API gave (`x-request-id`, an
//! error body's `request_id`, the last column of `up`'s request lines), a scheduled run's Lambda
//! invocation id, or an X-Ray trace id: the request's lines, then the relay's and the notifier's
//! for the events it wrote (the ids travel with them, see `shop::trace`).
//!
//! ```text
//! cargo local logs --trace AbCdEfGhIjKlMg=
//! cargo local logs --function NotifierFunction --since 10m
//! cargo local logs --trace AbCdEfGhIjKlMg= --json | jq .
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};

use crate::emulators::logs::{Filter, parse_since, search};
use crate::stack::workspace::Workspace;
use crate::template::Template;

#[derive(clap::Args)]
pub struct Args {
    /// Only the lines about this id: an API request id (`x-request-id`), a Lambda invocation id
    /// (a sweeper run) or an X-Ray trace id (`1-…-…`, or `Root=1-…-…;…`).
    #[arg(long, value_name = "ID")]
    trace: Option<String>,
    /// Only this function (logical id, e.g. `NotifierFunction`) or instance (`NotifierFunction#2`).
    #[arg(long, value_name = "LOGICAL_ID")]
    function: Option<String>,
    /// Only lines since then: a duration back from now (`90s`, `15m`, `2h`, `1d`) or an RFC 3339
    /// time (`2026-12-07T12:00:00Z`).
    #[arg(long, value_name = "DURATION|TIME")]
    since: Option<String>,
    /// The lines as the files hold them (one JSON object each), for jq.
    #[arg(long)]
    json: bool,
    /// Where the log files are (default: `target/local-logs`; `target/local-stack.env` sets it).
    #[arg(long, env = "SHOP_FUNCTION_LOGS", value_name = "DIR")]
    dir: Option<PathBuf>,
}

pub async fn run(args: Args) -> Result<ExitCode> {
    let ws = Workspace::locate().await?;
    let template = Template::load(&ws.root.join("template.yaml"))?;
    let functions: Vec<String> = template.functions.iter().map(|f| f.logical_id.clone()).collect();
    if let Some(f) = &args.function {
        let logical_id = f.split('#').next().unwrap_or(f);
        if !functions.iter().any(|known| known == logical_id) {
            bail!("no function `{logical_id}` in template.yaml (known: {})", functions.join(", "));
        }
    }
    let since = args.since.as_deref().map(|s| parse_since(s, time::OffsetDateTime::now_utc())).transpose()?;
    let dir = args.dir.unwrap_or_else(|| ws.logs_dir());
    if !dir.is_dir() {
        bail!("no logs in {}: start the stack first (cargo local up)", dir.display());
    }
    let filter = Filter { trace: args.trace, function: args.function, since };
    let entries = search(&dir, &functions, &filter)?;
    for entry in &entries {
        if args.json {
            println!("{}", entry.line);
        } else {
            println!("{}", entry.display());
        }
    }
    if entries.is_empty() {
        eprintln!("(no matching line in {}/<Function>.log)", dir.display());
    }
    Ok(ExitCode::SUCCESS)
}
