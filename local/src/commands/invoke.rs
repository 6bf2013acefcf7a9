//! `cargo local invoke <LogicalId> <event.json>`: one function, one event, like `sam local
//! invoke`. With `--url` it calls a running stack's Invoke API; without, it builds the function,
//! starts a stack of just that function (and DynamoDB Local), invokes it once and stops.
//!
//! A command over the stack: it uses [`crate::stack`] and the Invoke API's client half
//! ([`crate::emulators::invoke`]); the stack never uses it.

use anyhow::{Context, Result};
use axum::body::Bytes;

/// `cargo local invoke`: the result goes to stdout (pipe it to `jq`), everything else to stderr;
/// the exit status is non-zero when the function failed.
pub async fn run(
    function: String,
    event: std::path::PathBuf,
    url: Option<String>,
    iam: crate::stack::IamMode,
) -> Result<std::process::ExitCode> {
    let payload = Bytes::from(std::fs::read(&event).with_context(|| format!("reading {}", event.display()))?);
    let invoked = match url {
        Some(url) => crate::emulators::invoke::remote(&url, &function, payload).await?,
        None => {
            let ws = crate::stack::workspace::Workspace::locate().await?;
            let template = crate::template::Template::load(&ws.root.join("template.yaml"))?;
            let f = template.function(&function).with_context(|| {
                let known: Vec<_> = template.functions.iter().map(|f| f.logical_id.as_str()).collect();
                format!("no function `{function}` in template.yaml (known: {})", known.join(", "))
            })?;
            ws.build(&[&f.binary]).await?;
            let jar_dir = crate::stack::install::ensure_dynamodb_local(&crate::stack::install::cache_dir()?).await?;
            let opts = crate::stack::Options {
                api_port: None,
                invoke_port: None,
                pool_size: 1,
                freeze: false,
                function_logs: None,
                console: crate::stack::Console::Verbose,
                only: Some(vec![function.clone()]),
                schedule: crate::emulators::schedule::Mode::Off,
                profile: crate::stack::workspace::PROFILE,
                metrics: true,
                dynamodb_proxy: true,
                iam,
            };
            let stack = crate::stack::Stack::start(&ws, &template, &jar_dir, opts).await?;
            let invoked = crate::emulators::invoke::local(&stack.pools[&function], payload).await;
            stack.stop().await;
            invoked
        }
    };
    println!("{}", String::from_utf8_lossy(&invoked.body));
    Ok(if invoked.function_error { std::process::ExitCode::FAILURE } else { std::process::ExitCode::SUCCESS })
}
