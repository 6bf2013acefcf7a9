//! Where one request's time goes, one request at a time (c=1): read from the stack's own records,
//! not guessed.
//!
//! The benchmark runs in the process that runs the stack, so it switches on two bounded
//! timelines for the duration of a c=1 run and reads them straight from memory afterwards:
//!
//! * the function's pool ([`crate::emulators::runtime_api::InvocationTimes`]): event queued by
//!   the API Gateway emulation, event delivered by the Runtime API (`next` answered, the instance
//!   continued if it was frozen), response posted by the function;
//! * the DynamoDB proxy ([`crate::emulators::dynamodb_proxy::CallTimes`]): each call's caller
//!   (from its SigV4 key, see [`crate::emulators::iam::authorizer::Caller`]), operation, arrival,
//!   answer, and how long DynamoDB Local took.
//!
//! With one request in flight, each API request of the client matches exactly one invocation
//! (queued between the client's send and its answer), and that invocation the function's
//! DynamoDB calls that arrived between delivery and response (the relay and the notifier, busy
//! in the background, sign with their own keys, so their calls are told apart). One request then
//! splits into
//!
//! | part | from → to |
//! |---|---|
//! | client ↔ API Gateway emulation | the client's total minus what follows: HTTP on loopback both ways, the event built, the result mapped |
//! | Runtime API dispatch | queued → event delivered (a waiting instance woken, SIGCONT if frozen; while recording, also the read of its `schedstat`, tens of µs) |
//! | function | event delivered → response posted |
//! | · its threads on a CPU / waiting for one | `/proc/<pid>/task/*/schedstat` of the instance, delivered → posted: work, and time runnable with no free core |
//! | · each SDK call | the proxy's view: its head arrived → its answer left; DynamoDB Local's part alongside |
//! | · the function's own time | the function minus its SDK calls: event and response on loopback, JWT, serde, SigV4, the proxy hops; split into before the first call, between calls, after the last |
//!
//! and is set against the same calls made raw by the benchmark, interleaved with it
//! ([`super::measure::interleaved`]), timed call by call on the client side. Every figure is the
//! median over the requests (medians do not add up exactly). Without the proxy (`--no-proxy`) the
//! SDK calls cannot be seen and the function is not split.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::commands::bench::measure::Timed;
use crate::commands::bench::report::Row;
use crate::emulators::dynamodb_proxy::CallTimes;
use crate::emulators::runtime_api::{InvocationTimes, Pool};
use crate::stack::Stack;

/// One raw SDK call of a floor: its operation and how long the client waited for it.
pub type RawCall = (&'static str, Duration);

/// Records the function's invocations and the proxy's calls while it lives.
pub struct Recorder<'a> {
    pool: &'a Pool,
    stack: &'a Stack,
    function: &'a str,
}

impl<'a> Recorder<'a> {
    /// Starts both timelines (empty).
    pub fn start(stack: &'a Stack, function: &'a str) -> Result<Self> {
        let pool = stack.pools.get(function).with_context(|| format!("no function {function} in the stack"))?;
        pool.record_timeline(true);
        if let Some(proxy) = &stack.dynamodb_proxy {
            proxy.record_calls(true);
        }
        Ok(Self { pool, stack, function })
    }

    /// What was recorded since the start (or the last take); recording goes on.
    pub fn take(&self) -> Recorded {
        let calls = self.stack.dynamodb_proxy.as_ref().map(|p| p.take_calls());
        Recorded {
            function: self.function.to_owned(),
            invocations: self.pool.take_timeline(),
            calls: calls.map(|c| c.into_iter().filter(|c| c.caller == self.function).collect()),
        }
    }
}

impl Drop for Recorder<'_> {
    fn drop(&mut self) {
        self.pool.record_timeline(false);
        if let Some(proxy) = &self.stack.dynamodb_proxy {
            proxy.record_calls(false);
        }
    }
}

pub struct Recorded {
    function: String,
    invocations: Vec<InvocationTimes>,
    /// The function's calls; `None` without the proxy.
    calls: Option<Vec<CallTimes>>,
}

/// One API request, split.
struct Split {
    total: Duration,
    gateway: Duration,
    dispatch: Duration,
    function: Duration,
    /// Operation → (the proxy's view, DynamoDB Local's part), summed over the calls of that operation.
    sdk: BTreeMap<String, (Duration, Duration)>,
    /// `None` without the proxy.
    own: Option<Duration>,
    /// The function's own time by where it falls: delivered → first call, between calls, last
    /// call → posted (`None` without the proxy).
    gaps: Option<(Duration, Duration, Duration)>,
    /// The instance's threads, delivered → posted: on a CPU, runnable but waiting for one.
    on_cpu: Option<Duration>,
    waiting_for_cpu: Option<Duration>,
    was_frozen: bool,
    instance: String,
    /// How long the instance had waited in `next` for this event.
    idle: Duration,
}

impl Recorded {
    fn split(&self, start: Instant, elapsed: Duration) -> Option<Split> {
        let end = start + elapsed;
        let mut matching = self.invocations.iter().filter(|i| i.queued >= start && i.queued <= end);
        let inv = matching.next()?;
        if matching.next().is_some() {
            return None; // two invocations in one request: not one at a time
        }
        let runtime = inv.posted.saturating_duration_since(inv.queued);
        let function = inv.posted.saturating_duration_since(inv.delivered);
        let mut sdk: BTreeMap<String, (Duration, Duration)> = BTreeMap::new();
        let mine: Option<Vec<&CallTimes>> = self
            .calls
            .as_ref()
            .map(|calls| calls.iter().filter(|c| c.received >= inv.delivered && c.received <= inv.posted).collect());
        let own = mine.as_ref().map(|mine| {
            let mut spent = Duration::ZERO;
            for c in mine {
                let seen = c.answered.saturating_duration_since(c.received);
                let e = sdk.entry(c.operation.clone()).or_default();
                *e = (e.0 + seen, e.1 + c.upstream);
                spent += seen;
            }
            function.saturating_sub(spent)
        });
        // Calls are one after the other in a request (the shop makes none in parallel).
        let gaps = mine.as_ref().map(|mine| {
            let Some((first, last)) = mine.first().zip(mine.last()) else {
                return (function, Duration::ZERO, Duration::ZERO);
            };
            let between = mine.windows(2).map(|w| w[1].received.saturating_duration_since(w[0].answered)).sum();
            (
                first.received.saturating_duration_since(inv.delivered),
                between,
                inv.posted.saturating_duration_since(last.answered),
            )
        });
        Some(Split {
            total: elapsed,
            gateway: elapsed.saturating_sub(runtime),
            dispatch: inv.delivered.saturating_duration_since(inv.queued),
            function,
            sdk,
            own,
            gaps,
            on_cpu: inv.on_cpu,
            waiting_for_cpu: inv.waiting_for_cpu,
            was_frozen: inv.was_frozen,
            instance: inv.instance.clone(),
            idle: inv.delivered.saturating_duration_since(inv.waiting_since),
        })
    }
}

/// The median of `values`, in ms.
fn p50(mut values: Vec<Duration>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_unstable();
    values[values.len() / 2].as_secs_f64() * 1000.0
}

fn ms(v: f64) -> String {
    if v < 10.0 { format!("{v:.2} ms") } else { format!("{v:.1} ms") }
}

/// The breakdown rows of one request type at c=1: `api` are the API requests as the client
/// timed them, `raw` the floor's calls, one list per floor request. `own_target_ms`: the
/// function's own time this request type should stay under.
pub fn rows<T>(
    what: &str,
    recorded: &Recorded,
    api: &[Timed<T>],
    raw: &[Timed<Vec<RawCall>>],
    own_target_ms: f64,
) -> Vec<Row> {
    let splits: Vec<Split> = api.iter().filter_map(|c| recorded.split(c.start, c.elapsed)).collect();
    let mut rows = vec![Row::figure(
        format!("{what} breakdown (c=1), p50"),
        format!("{} of {} requests matched to {}'s invocations", splits.len(), api.len(), recorded.function),
    )];
    if splits.is_empty() {
        return rows;
    }
    let of = |f: fn(&Split) -> Duration| p50(splits.iter().map(f).collect());
    let raw_total = p50(raw.iter().map(|r| r.elapsed).collect());
    rows.push(Row::figure(
        "  API, the client's view / raw calls",
        format!("{} / {}", ms(of(|s| s.total)), ms(raw_total)),
    ));
    rows.push(Row::figure("  · client ↔ API Gateway emulation", ms(of(|s| s.gateway))));
    let frozen = splits.iter().filter(|s| s.was_frozen).count();
    let mut instances: Vec<&str> = splits.iter().map(|s| s.instance.as_str()).collect();
    instances.sort_unstable();
    instances.dedup();
    rows.push(Row::figure(
        "  · Runtime API: queued → event delivered",
        format!(
            "{} ({frozen}/{} to a frozen instance, {} instances, idle {} before)",
            ms(of(|s| s.dispatch)),
            splits.len(),
            instances.len(),
            ms(of(|s| s.idle))
        ),
    ));
    rows.push(Row::figure("  · function: delivered → response posted", ms(of(|s| s.function))));
    if splits.iter().all(|s| s.on_cpu.is_some()) {
        rows.push(Row::figure(
            "    · function's threads: on CPU / waiting for one",
            format!(
                "{} / {}",
                ms(p50(splits.iter().filter_map(|s| s.on_cpu).collect())),
                ms(p50(splits.iter().filter_map(|s| s.waiting_for_cpu).collect()))
            ),
        ));
    }
    if splits.iter().any(|s| s.own.is_none()) {
        rows.push(Row::figure("    · its SDK calls", "not seen: --no-proxy"));
        return rows;
    }
    // Operation → raw durations (summed per request, like the function's).
    let mut raw_ops: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    for r in raw {
        let mut per: BTreeMap<&str, Duration> = BTreeMap::new();
        for (op, d) in &r.result {
            *per.entry(op).or_default() += *d;
        }
        for (op, d) in per {
            raw_ops.entry(op).or_default().push(d);
        }
    }
    let mut ops: Vec<&str> = splits.iter().flat_map(|s| s.sdk.keys().map(String::as_str)).collect();
    ops.extend(raw_ops.keys().copied());
    ops.sort_unstable();
    ops.dedup();
    for op in ops {
        let seen = p50(splits.iter().filter_map(|s| s.sdk.get(op).map(|d| d.0)).collect());
        let upstream = p50(splits.iter().filter_map(|s| s.sdk.get(op).map(|d| d.1)).collect());
        let raw = raw_ops.get(op).map_or(f64::NAN, |d| p50(d.clone()));
        rows.push(Row::figure(
            format!("    · {op}: function's / raw"),
            format!("{} / {} (DynamoDB Local {})", ms(seen), ms(raw), ms(upstream)),
        ));
    }
    let own = p50(splits.iter().filter_map(|s| s.own).collect());
    rows.push(Row::target(
        "    · function's own time (minus SDK calls)",
        ms(own),
        format!("≤ {own_target_ms} ms"),
        own <= own_target_ms,
    ));
    let gap = |f: fn(&(Duration, Duration, Duration)) -> Duration| {
        p50(splits.iter().filter_map(|s| s.gaps.as_ref().map(f)).collect())
    };
    rows.push(Row::figure(
        "      before 1st call / between / after last",
        format!("{} / {} / {}", ms(gap(|g| g.0)), ms(gap(|g| g.1)), ms(gap(|g| g.2))),
    ));
    rows
}
