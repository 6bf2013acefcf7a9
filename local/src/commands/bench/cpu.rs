//! Where the machine's CPU went during a run, by process: the stack's own (this process: the
//! gateway, the Runtime API, the DynamoDB proxy, the stream and Kafka pollers, and the
//! benchmark's client), each function's instances, DynamoDB Local, the Kafka broker, moto, and
//! everything else on the machine.
//!
//! A request at c=1 on 2 cores shares them with whatever else runs: the event pipeline its
//! previous orders set off (stream → relay → Kafka → notifier → SES), and any other work on the
//! machine. The report shows that share next to the breakdown, so a slow column can be told from
//! a busy machine. Read from `/proc/<pid>/task/<tid>/schedstat` (ns on a CPU, ns runnable but
//! waiting for one) before and after, summed per process; a process that ends in between is
//! counted up to its last reading only (a compiler job of someone else's, say), one that starts
//! in between from zero.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::commands::bench::report::Row;

/// Per process: its label, ns on a CPU, ns waiting for one.
pub struct Snapshot {
    at: Instant,
    processes: BTreeMap<u32, (String, u64, u64)>,
}

impl Snapshot {
    /// Every process of the machine now. `functions`: binary file name → logical id.
    pub fn take(functions: &BTreeMap<String, String>) -> Self {
        let own = std::process::id();
        let mut processes = BTreeMap::new();
        let mut parents = BTreeMap::new();
        let entries = std::fs::read_dir("/proc").into_iter().flatten().flatten();
        for pid in entries.filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok()) {
            let Some((run, wait)) = schedstat(pid) else { continue };
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // `pid (comm) state ppid ...`: comm may hold spaces and parentheses, so split after the last `)`.
            let (comm, rest) = stat.rsplit_once(')').map_or(("", ""), |(head, rest)| (head, rest));
            let comm = comm.split_once('(').map_or("", |(_, c)| c).to_owned();
            let ppid: u32 = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
            parents.insert(pid, ppid);
            processes.insert(pid, (comm, run, wait));
        }
        // The stack's processes are this process's descendants; the rest is the machine's.
        let ours = |mut pid: u32| {
            for _ in 0..32 {
                if pid == own {
                    return true;
                }
                match parents.get(&pid) {
                    Some(&p) if p != 0 => pid = p,
                    _ => return false,
                }
            }
            false
        };
        let labelled = processes
            .into_iter()
            .map(|(pid, (comm, run, wait))| {
                let label = if pid == own {
                    "the stack's process (gateway, Runtime API, proxy, pollers, bench client)".to_owned()
                } else if !ours(pid) {
                    "other processes on the machine".to_owned()
                } else {
                    label(pid, &comm, functions)
                };
                (pid, (label, run, wait))
            })
            .collect();
        Self { at: Instant::now(), processes: labelled }
    }

    /// CPU used since `before`, by label: (on a CPU, waiting for one), largest first, and the
    /// wall time in between.
    pub fn since(&self, before: &Snapshot) -> (Vec<(String, Duration, Duration)>, Duration) {
        let mut by_label: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for (pid, (label, run, wait)) in &self.processes {
            let (run0, wait0) = before.processes.get(pid).map_or((0, 0), |p| (p.1, p.2));
            let e = by_label.entry(label).or_default();
            e.0 += run.saturating_sub(run0);
            e.1 += wait.saturating_sub(wait0);
        }
        let mut out: Vec<(String, Duration, Duration)> = by_label
            .into_iter()
            .map(|(l, (r, w))| (l.to_owned(), Duration::from_nanos(r), Duration::from_nanos(w)))
            .collect();
        out.sort_by_key(|e| std::cmp::Reverse(e.1));
        (out, self.at.saturating_duration_since(before.at))
    }
}

/// A child of the stack by what it runs.
fn label(pid: u32, comm: &str, functions: &BTreeMap<String, String>) -> String {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
    let file = exe.as_ref().and_then(|e| e.file_name()).and_then(|f| f.to_str()).unwrap_or(comm);
    if let Some(function) = functions.get(file) {
        return function.clone();
    }
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    if cmdline.contains("DynamoDBLocal") {
        "DynamoDB Local".to_owned()
    } else if cmdline.contains("moto") {
        "moto (SES, SQS)".to_owned()
    } else if file.contains("tansu") || comm.contains("tansu") {
        "Kafka (tansu)".to_owned()
    } else {
        file.to_owned()
    }
}

/// ns on a CPU and ns runnable waiting for one, summed over the process's threads.
fn schedstat(pid: u32) -> Option<(u64, u64)> {
    let (mut run, mut wait) = (0, 0);
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
        let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else { continue };
        let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().unwrap_or(0));
        run += fields.next().unwrap_or(0);
        wait += fields.next().unwrap_or(0);
    }
    Some((run, wait))
}

/// One row: CPU ms per `unit` by process (largest first, those under 0.05 ms left out), of what
/// the machine's cores had to give in the wall time between the snapshots.
pub fn row(unit: &str, after: &Snapshot, before: &Snapshot, units: usize) -> Row {
    let (used, wall) = after.since(before);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = |d: Duration| d.as_secs_f64() * 1000.0 / units.max(1) as f64;
    let total: Duration = used.iter().map(|u| u.1).sum();
    let parts: Vec<String> =
        used.iter().filter(|u| per(u.1) >= 0.05).map(|(label, run, _)| format!("{label} {:.2}", per(*run))).collect();
    Row::figure(
        format!("  CPU ms per {unit} (of {:.1} on {cores} cores)", per(wall) * cores as f64),
        format!("{:.2}: {}", per(total), parts.join(", ")),
    )
}
