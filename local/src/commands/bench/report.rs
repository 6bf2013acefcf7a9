//! The report: the machine it ran on, one table per function and one row per scenario figure.
//!
//! A row is one of three kinds: a plain figure; a figure against a **target** of an issue (✓ met,
//! ✗ not met: information, never a failure, since a slow or busy machine misses targets); or a
//! **check** of correctness inside a benchmark (✓ holds, ✗ broken: the command then exits non-zero,
//! because a wrong answer is a bug, not a slow machine).

use std::collections::BTreeMap;

use crate::commands::bench::Args;
use crate::commands::bench::cold_start::ColdStarts;
use crate::commands::bench::functions::{FunctionFigures, INIT_TARGET_MS, RSS_TARGET_MIB, SIZE_TARGET_MB};

pub struct Row {
    name: String,
    figure: String,
    target: String,
    /// `None`: a plain figure.
    met: Option<bool>,
    is_check: bool,
}

impl Row {
    pub fn figure(name: impl Into<String>, figure: impl Into<String>) -> Self {
        Self { name: name.into(), figure: figure.into(), target: String::new(), met: None, is_check: false }
    }

    /// A figure against a target of the issue.
    pub fn target(name: impl Into<String>, figure: impl Into<String>, target: impl Into<String>, met: bool) -> Self {
        Self { target: target.into(), met: Some(met), ..Self::figure(name, figure) }
    }

    /// A correctness check: `expected` is what must hold.
    pub fn check(name: impl Into<String>, figure: impl Into<String>, expected: impl Into<String>, ok: bool) -> Self {
        Self { is_check: true, ..Self::target(name, figure, expected, ok) }
    }
}

/// ✓ or ✗.
pub fn mark(met: bool) -> char {
    if met { '✓' } else { '✗' }
}

pub struct Report {
    pub rows: Vec<Row>,
    pub functions: Vec<FunctionFigures>,
    /// By logical id, when the cold-start benchmark ran.
    pub cold_starts: BTreeMap<String, ColdStarts>,
    started: time::OffsetDateTime,
    load_before: String,
}

impl Report {
    /// Notes the time and the machine's load before anything of ours runs.
    pub fn start() -> Self {
        Self {
            rows: Vec::new(),
            functions: Vec::new(),
            cold_starts: BTreeMap::new(),
            started: time::OffsetDateTime::now_utc(),
            load_before: load(),
        }
    }

    pub fn checks_passed(&self) -> bool {
        self.rows.iter().all(|r| !r.is_check || r.met == Some(true))
    }

    pub fn print(&self, args: &Args) {
        let when = self
            .started
            .format(time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC"))
            .unwrap_or_default();
        println!();
        println!("Benchmark report, {when}");
        println!("machine: {}", machine());
        println!("load average (1 min) before: {}, after: {}", self.load_before, load());
        println!(
            "sizes: --requests {} --concurrency {} --customers {} --buyers {} --units {} --emails {} --pool {} \
             --cold-starts {} --logins {}",
            args.requests,
            args.concurrency,
            args.customers,
            args.buyers,
            args.units,
            args.emails,
            args.pool,
            args.cold_starts,
            args.logins
        );
        println!();
        println!(
            "binaries: {} profile{}{}",
            args.profile.name(),
            if args.no_proxy { "; functions → DynamoDB Local directly (--no-proxy)" } else { "" },
            if args.no_metrics { "; no metrics (--no-metrics)" } else { "" }
        );
        println!();
        let header = [
            format!("x86_64 (≤ {SIZE_TARGET_MB} MB)"),
            format!("arm64 (≤ {SIZE_TARGET_MB} MB)"),
            format!("init med/max (≤ {INIT_TARGET_MS} ms)"),
            "1st response med/max".to_owned(),
            "warm med".to_owned(),
            format!("peak RSS (≤ {RSS_TARGET_MIB} MiB)"),
        ];
        println!(
            "{:<24} {:>16} {:>16} {:>22} {:>22} {:>10} {:>20} {:>9}",
            "function", header[0], header[1], header[2], header[3], header[4], header[5], "instances"
        );
        for f in &self.functions {
            println!(
                "{:<24} {:>16} {:>16} {:>22} {:>22} {:>10} {:>20} {:>9}",
                f.name,
                f.x86_64_cell(),
                f.arm64_cell(),
                f.init_cell(),
                f.first_response_cell(),
                f.warm_cell(),
                f.rss_cell(),
                f.instances
            );
        }
        println!();
        println!("{:<46} {:<46} target", "benchmark", "figure");
        for r in &self.rows {
            let mark = r.met.map(mark).map(String::from).unwrap_or_default();
            let line = format!("{:<46} {:<46} {:<12} {mark}", r.name, r.figure, r.target);
            println!("{}", line.trim_end());
        }
        if !self.checks_passed() {
            println!("\nA correctness check failed (✗ above): that is a bug, not a slow machine.");
        }
    }
}

/// `2 × Intel(R) Xeon(R) Processor, 23.4 GiB RAM`, from /proc.
fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    format!("{cpus} × {model}, {:.1} GiB RAM", kib / (1024.0 * 1024.0))
}

/// The 1-minute load average (how busy the machine was: the figures are only as quiet as it).
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}
