//! Per function: binary size, cold start and peak memory, against issue 15's Lambda targets.
//!
//! * **size**: the stripped binary as built by the profile the benchmark ran (`release`, what
//!   `sam build` deploys, unless `--profile local`), the file Lambda downloads and starts, for
//!   x86_64 and, with `--arm64`, for arm64 as `cargo lambda build --release --arm64` (what `sam
//!   build` runs) makes it. The Kafka relay is exempt from the size target: it alone links
//!   librdkafka, OpenSSL and libcurl (see `kafka/`);
//! * **init**: process start → first Runtime API `next`, from the [`cold_start`] rounds (one
//!   process starting at a time); without them, from every instance the pool started;
//! * **first response** and **warm**: from the [`cold_start`] rounds;
//! * **peak RSS**: the kernel's high-water mark (`VmHWM`) of every instance, read after each cold
//!   start and after all benchmarks ran, so it covers the load they put on it; the max is judged.
//!
//! [`cold_start`]: crate::commands::bench::cold_start

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::commands::bench::cold_start::{ColdStarts, median};
use crate::commands::bench::report::mark;
use crate::stack::Stack;
use crate::stack::workspace::Workspace;
use crate::template::Template;

const MB: f64 = 1_000_000.0;
pub const SIZE_TARGET_MB: f64 = 8.0;
pub const INIT_TARGET_MS: f64 = 8.0;
pub const RSS_TARGET_MIB: f64 = 40.0;
/// The one function exempt from the size target (librdkafka, OpenSSL and libcurl, static).
const SIZE_EXEMPT: &str = "outbox-relay";

pub struct FunctionFigures {
    /// The binary's name (the crate under `functions/`).
    pub name: String,
    x86_64_bytes: Option<u64>,
    arm64_bytes: Option<u64>,
    /// Sorted.
    init_ms: Vec<f64>,
    cold: Option<ColdStarts>,
    peak_rss_kib: Vec<u64>,
    pub instances: usize,
}

/// Reads every function's figures (while its instances are alive). `profile`: the profile the
/// stack ran; `arm64_dir`: where `cargo lambda build` put the arm64 bootstraps, if it ran.
pub fn figures(
    ws: &Workspace,
    profile: &str,
    arm64_dir: Option<&Path>,
    template: &Template,
    stack: &Stack,
    mut cold: BTreeMap<String, ColdStarts>,
) -> Vec<FunctionFigures> {
    let size = |path: &Path| std::fs::metadata(path).map(|m| m.len()).ok();
    template
        .functions
        .iter()
        .map(|f| {
            let stats = stack.pools.get(&f.logical_id).map(|p| p.stats()).unwrap_or(Value::Null);
            let numbers = |key: &str| -> Vec<u64> {
                let mut v: Vec<u64> = stats[key].as_array().into_iter().flatten().filter_map(Value::as_u64).collect();
                v.sort_unstable();
                v
            };
            let cold = cold.remove(&f.logical_id);
            let init_ms = match &cold {
                Some(c) => c.init_ms.clone(),
                None => numbers("init_ms").into_iter().map(|ms| ms as f64).collect(),
            };
            let mut peak_rss_kib = numbers("peak_rss_kib");
            peak_rss_kib.extend(cold.iter().flat_map(|c| c.peak_rss_kib.iter().copied()));
            peak_rss_kib.sort_unstable();
            FunctionFigures {
                name: f.binary.clone(),
                x86_64_bytes: size(&ws.binary_of(profile, &f.binary)),
                arm64_bytes: arm64_dir.and_then(|dir| size(&dir.join(&f.binary).join("bootstrap"))),
                init_ms,
                cold,
                peak_rss_kib,
                instances: stats["instances_started"].as_u64().unwrap_or(0) as usize,
            }
        })
        .collect()
}

impl FunctionFigures {
    fn size(&self, bytes: Option<u64>) -> String {
        match bytes {
            Some(b) if self.name == SIZE_EXEMPT => format!("{:.1} MB", b as f64 / MB),
            Some(b) => format!("{:.1} MB {}", b as f64 / MB, mark(b as f64 <= SIZE_TARGET_MB * MB)),
            None => "-".into(),
        }
    }

    pub fn x86_64_cell(&self) -> String {
        self.size(self.x86_64_bytes)
    }

    pub fn arm64_cell(&self) -> String {
        self.size(self.arm64_bytes)
    }

    pub fn init_cell(&self) -> String {
        match (median(&self.init_ms), self.init_ms.last()) {
            (Some(median), Some(max)) => format!("{median:.0} / {max:.0} ms {}", mark(median <= INIT_TARGET_MS)),
            _ => "-".into(),
        }
    }

    pub fn first_response_cell(&self) -> String {
        let first = self.cold.as_ref().map(|c| &c.first_response_ms);
        match (first.and_then(|f| median(f)), first.and_then(|f| f.last())) {
            (Some(median), Some(max)) => format!("{median:.1} / {max:.1} ms"),
            _ => "-".into(),
        }
    }

    pub fn warm_cell(&self) -> String {
        match self.cold.as_ref().and_then(|c| median(&c.warm_ms)) {
            Some(ms) => format!("{ms:.1} ms"),
            None => "-".into(),
        }
    }

    pub fn rss_cell(&self) -> String {
        match self.peak_rss_kib.last() {
            Some(kib) => {
                let mib = *kib as f64 / 1024.0;
                format!("{mib:.1} MiB {}", mark(mib <= RSS_TARGET_MIB))
            }
            None => "-".into(),
        }
    }
}
