//! `cargo local metrics`: what a running stack's functions are counting, and its alarms, as a
//! live table — the local stand-in for a CloudWatch dashboard.
//!
//! A client of the stack's HTTP API only (`GET /_local/metrics`, `GET /_local/alarms`, served by
//! [`crate::emulators::cloudwatch`]): every metric seen with its sum over the window, that sum as
//! a rate per minute, its last value and how long ago; then every alarm the stack evaluates, those
//! firing first. On a terminal the table is redrawn every `--every` seconds until Ctrl-C; piped,
//! or with `--once`, it is printed once.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::emulators::cloudwatch::metrics::now_ms;

#[derive(clap::Args)]
pub struct Args {
    /// Sums over the last this many seconds.
    #[arg(long, default_value_t = 60)]
    window: u64,
    /// Seconds between redraws.
    #[arg(long, default_value_t = 2)]
    every: u64,
    /// Print the table once and exit.
    #[arg(long)]
    once: bool,
    /// Invoke API of the running stack (`cargo local up` prints it).
    #[arg(long, env = "SHOP_INVOKE_URL", default_value = "http://127.0.0.1:3001")]
    url: String,
}

#[derive(Deserialize)]
struct Summary {
    window_seconds: u64,
    metrics: Vec<Metric>,
}

#[derive(Deserialize)]
struct Metric {
    namespace: String,
    name: String,
    dimensions: std::collections::BTreeMap<String, String>,
    sum: f64,
    samples: u64,
    last: f64,
    last_at_ms: u64,
}

#[derive(Deserialize)]
struct Alarms {
    alarms: Vec<Alarm>,
}

#[derive(Deserialize)]
struct Alarm {
    alarm: String,
    state: String,
    fired: u64,
}

pub async fn run(args: Args) -> Result<std::process::ExitCode> {
    let base = args.url.trim_end_matches('/');
    let live = !args.once && std::io::stdout().is_terminal();
    loop {
        let summary: Summary = get(&format!("{base}/_local/metrics?window={}", args.window)).await?;
        let alarms: Alarms = get(&format!("{base}/_local/alarms")).await?;
        let table = render(&summary, &alarms, now_ms());
        if live {
            // Clear the screen and go home, then the table: a redraw, not a scroll.
            print!("\x1b[2J\x1b[H{table}");
        } else {
            print!("{table}");
            return Ok(std::process::ExitCode::SUCCESS);
        }
        tokio::time::sleep(Duration::from_secs(args.every.max(1))).await;
    }
}

async fn get<T: serde::de::DeserializeOwned>(url: &str) -> Result<T> {
    reqwest::get(url)
        .await
        .with_context(|| format!("GET {url} (is `cargo local up` running?)"))?
        .error_for_status()?
        .json()
        .await
        .with_context(|| format!("GET {url}: not the stack's answer"))
}

/// The table, as text: metrics by namespace and name, then alarms, firing first.
fn render(summary: &Summary, alarms: &Alarms, now_ms: u64) -> String {
    let window = summary.window_seconds.max(1);
    let mut out = String::new();
    let rows: Vec<[String; 6]> = summary
        .metrics
        .iter()
        .map(|m| {
            let dims: Vec<String> = m.dimensions.iter().map(|(k, v)| format!("{k}={v}")).collect();
            [
                format!("{}/{}", m.namespace, m.name),
                dims.join(" "),
                format_number(m.sum),
                format_number(m.sum * 60.0 / window as f64),
                format_number(m.last),
                if m.samples == 0 {
                    format!("{}s ago", now_ms.saturating_sub(m.last_at_ms) / 1000)
                } else {
                    format!("{} in window", m.samples)
                },
            ]
        })
        .collect();
    let header = ["metric", "dimensions", &format!("sum {window}s"), "per min", "last", "samples"].map(str::to_owned);
    write_table(&mut out, &header, &rows);
    let _ = writeln!(out);
    let mut alarms: Vec<&Alarm> = alarms.alarms.iter().collect();
    alarms.sort_by_key(|a| (a.state != "ALARM", a.alarm.clone()));
    let rows: Vec<[String; 3]> = alarms
        .iter()
        .map(|a| {
            let mark = if a.state == "ALARM" { "⚠ ALARM" } else { "✓ OK" };
            [a.alarm.clone(), mark.to_owned(), format!("fired {}×", a.fired)]
        })
        .collect();
    write_table(&mut out, &["alarm".to_owned(), "state".to_owned(), "history".to_owned()], &rows);
    out
}

fn write_table<const N: usize>(out: &mut String, header: &[String; N], rows: &[[String; N]]) {
    let mut widths = header.each_ref().map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(header).chain(rows) {
        let cells: Vec<String> = row.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
}

/// Counts as integers, anything else with two decimals.
fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{v:.0}") } else { format!("{v:.2}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_table_shows_rates_and_puts_firing_alarms_first() {
        let summary: Summary = serde_json::from_value(json!({"window_seconds": 30, "metrics": [
            {"namespace": "Shop/local", "name": "OrdersPlaced", "dimensions": {"Service": "shop"},
             "sum": 15.0, "samples": 4, "last": 2.0, "last_at_ms": 1_000},
            {"namespace": "AWS/Lambda", "name": "Errors", "dimensions": {"FunctionName": "PlaceOrderFunction"},
             "sum": 0.0, "samples": 0, "last": 1.0, "last_at_ms": 1_000}
        ]}))
        .unwrap();
        let alarms: Alarms = serde_json::from_value(json!({"alarms": [
            {"alarm": "A", "state": "OK", "fired": 0},
            {"alarm": "B", "state": "ALARM", "fired": 2}
        ]}))
        .unwrap();
        let table = render(&summary, &alarms, 61_000);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("metric") && lines[0].contains("sum 30s"), "{table}");
        assert!(lines[1].contains("Shop/local/OrdersPlaced") && lines[1].contains("Service=shop"), "{table}");
        assert!(lines[1].contains("  30  "), "15 in 30 s is 30 per minute: {table}");
        assert!(lines[2].contains("60s ago"), "a metric quiet in the window says since when: {table}");
        let b = table.find("⚠ ALARM").unwrap();
        assert!(b < table.find("✓ OK").unwrap(), "firing first: {table}");
    }

    #[test]
    fn counts_print_as_integers() {
        assert_eq!(format_number(3.0), "3");
        assert_eq!(format_number(2.5), "2.50");
    }
}
