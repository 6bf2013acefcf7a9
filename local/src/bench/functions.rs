//! Per function: binary size, init time and peak memory, against issue 7's Lambda targets.
//!
//! * **size**: the release binary as built (the release profile strips it), the file Lambda would
//!   download and start; x86_64 here, `sam build` makes arm64 ones (see the README);
//! * **init**: process start → first Runtime API `next` call, measured by the runtime pool for
//!   every instance it started (`init_ms`): the part of a cold start that is our code. Judged on
//!   the median; the max shows instances started while the machine was busiest;
//! * **peak RSS**: the kernel's high-water mark (`VmHWM`) of every live instance, read after all
//!   benchmarks ran, so it covers the load they put on it; the max over instances is judged.

use serde_json::Value;

use crate::bench::report::mark;
use crate::stack::Stack;
use crate::template::Template;
use crate::workspace::Workspace;

const MIB: f64 = 1024.0 * 1024.0;
pub const SIZE_TARGET_MIB: f64 = 10.0;
pub const INIT_TARGET_MS: u64 = 15;
pub const RSS_TARGET_MIB: f64 = 40.0;

pub struct FunctionFigures {
    /// The binary's name (the crate under `functions/`).
    pub name: String,
    size_bytes: Option<u64>,
    /// Sorted.
    init_ms: Vec<u64>,
    peak_rss_kib: Vec<u64>,
    pub instances: usize,
}

/// Reads every function's figures (while its instances are alive).
pub fn figures(ws: &Workspace, template: &Template, stack: &Stack) -> Vec<FunctionFigures> {
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
            FunctionFigures {
                name: f.binary.clone(),
                size_bytes: std::fs::metadata(ws.release_binary(&f.binary)).map(|m| m.len()).ok(),
                init_ms: numbers("init_ms"),
                peak_rss_kib: numbers("peak_rss_kib"),
                instances: stats["instances_started"].as_u64().unwrap_or(0) as usize,
            }
        })
        .collect()
}

impl FunctionFigures {
    pub fn size_cell(&self) -> String {
        match self.size_bytes {
            Some(b) => {
                let mib = b as f64 / MIB;
                format!("{mib:.1} MiB {}", mark(mib <= SIZE_TARGET_MIB))
            }
            None => "-".into(),
        }
    }

    pub fn init_cell(&self) -> String {
        match (self.init_ms.get(self.init_ms.len() / 2), self.init_ms.last()) {
            (Some(median), Some(max)) => format!("{median} / {max} ms {}", mark(*median <= INIT_TARGET_MS)),
            _ => "-".into(),
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
