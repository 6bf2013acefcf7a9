//! Applying the fault schedule through the stack's own switches, and the schedules the soak drives.
//!
//! | fault | switch |
//! |---|---|
//! | `crash`, `gateway` | `POST /_local/functions/<LogicalId>/crash` `{"after_ms"}` ([`crate::emulators::runtime_api`]) |
//! | `timeout`, `gateway-slow` | `POST /_local/functions/<LogicalId>/stall` `{"after_ms", "for_ms"}` ([`crate::emulators::runtime_api`]): past the function's `Timeout`, Lambda's timeout kills it |
//! | `ddb-conflict`, `ddb-throttle`, `ddb-partition`, `ddb-internal` | `POST`/`DELETE /_local/dynamodb/faults` ([`crate::emulators::dynamodb_proxy`]); overlapping windows are merged into one configuration |
//! | `broker-down`, `ses-down` | `POST /_local/{kafka,ses}/{stop,start}` ([`crate::emulators::outage`]) |
//! | `ses-refusal` | `POST /_local/ses/refusals` at the customer's sign-up ([`super::traffic`]) |
//! | `ses-throttle` | `PUT`/`DELETE /_local/ses/quota` `{"max_send_rate"}` ([`crate::emulators::ses`]): the SES gate's sending quota, 14 e-mails a second as a new production account starts; overlapping windows keep the lowest rate, and the last one's end puts back the default |
//! | `expiry-sweep` | the sweeper invoked with its event's `time` past the reservation window |
//! | `schedule-late` | the ticks below pause |
//!
//! The template's schedules are off in the soak's stack (as in the test suite); [`Injector::ticks`]
//! fires them instead — the webhook redelivery every 5 s, the sweeper and the refund worker every
//! 10 s — with the real time, so that `schedule-late` can hold them back. Everything applied is
//! written to a timeline, which a break prints around its moment.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::plan::{Detail, Fault, FaultKind, Plan};

/// One line of the timeline: seconds into the run, and what happened.
#[derive(Debug, Clone)]
pub struct Entry {
    pub at: f64,
    pub what: String,
}

#[derive(Default, Clone, Copy)]
pub struct Figures {
    pub injected: u64,
    /// Seconds the windows of this kind lasted, in all.
    pub seconds: u64,
    /// Planned but not applied (no switch yet, or the switch refused).
    pub skipped: u64,
}

pub struct Injector {
    http: reqwest::Client,
    invoke: String,
    started: Instant,
    /// How far ahead of now a sweep must run to expire every order awaiting payment.
    pub expire_after: Duration,
    timeline: Mutex<Vec<Entry>>,
    figures: Mutex<BTreeMap<FaultKind, Figures>>,
    /// The DynamoDB windows now open (index into the plan's faults).
    ddb: Mutex<Vec<usize>>,
    /// `kafka`/`ses` → open outage windows.
    down: Mutex<BTreeMap<&'static str, u32>>,
    /// The `ses-throttle` windows now open (index into the plan's faults).
    quota: Mutex<Vec<usize>>,
    paused_until: Mutex<Option<Instant>>,
}

impl Injector {
    pub fn new(invoke: &str, started: Instant, expire_after: Duration) -> Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder().timeout(Duration::from_secs(120)).build()?,
            invoke: invoke.trim_end_matches('/').to_owned(),
            started,
            expire_after,
            timeline: Mutex::default(),
            figures: Mutex::default(),
            ddb: Mutex::default(),
            down: Mutex::default(),
            quota: Mutex::default(),
            paused_until: Mutex::default(),
        })
    }

    pub fn note(&self, what: impl Into<String>) {
        let at = self.started.elapsed().as_secs_f64();
        self.timeline.lock().unwrap().push(Entry { at, what: what.into() });
    }

    pub fn timeline(&self) -> Vec<Entry> {
        self.timeline.lock().unwrap().clone()
    }

    pub fn figures(&self) -> BTreeMap<FaultKind, Figures> {
        self.figures.lock().unwrap().clone()
    }

    /// Applies the plan's faults at their times: each window's start, then its end. The expiry
    /// sweeps run on a timeline of their own: a sweep waits for the sweeper's answer (seconds, tens
    /// of them under load), and the other faults must not wait behind it.
    pub async fn run(&self, plan: &Plan) {
        let mut steps: Vec<(Duration, usize, bool)> = Vec::new();
        for (i, f) in plan.faults.iter().enumerate() {
            steps.push((f.at, i, true));
            if !f.lasts.is_zero() {
                steps.push((f.at + f.lasts, i, false));
            }
        }
        steps.sort_by_key(|&(at, i, start)| (at, !start, i));
        let (sweeps, others): (Vec<_>, Vec<_>) =
            steps.into_iter().partition(|&(_, i, _)| plan.faults[i].kind == FaultKind::ExpirySweep);
        tokio::join!(self.run_steps(plan, sweeps), self.run_steps(plan, others));
    }

    async fn run_steps(&self, plan: &Plan, steps: Vec<(Duration, usize, bool)>) {
        for (at, i, start) in steps {
            tokio::time::sleep_until((self.started + at).into()).await;
            let fault = &plan.faults[i];
            let result = if start { self.start(plan, i).await } else { self.end(plan, i).await };
            match result {
                Ok(true) => self.note(format!("{} {}", if start { "▶" } else { "■" }, fault.describe())),
                Ok(false) => {}
                Err(e) => {
                    self.note(format!("✗ could not apply {}: {e:#}", fault.describe()));
                    self.figures.lock().unwrap().entry(fault.kind).or_default().skipped += 1;
                }
            }
        }
    }

    /// Starts fault `i`; `false` when it is not applied (a planned kind without a switch).
    async fn start(&self, plan: &Plan, i: usize) -> Result<bool> {
        let fault = &plan.faults[i];
        match (fault.kind, &fault.detail) {
            (FaultKind::Crash | FaultKind::Gateway, Detail::Crash { function, after_ms }) => {
                self.post(&format!("/_local/functions/{function}/crash"), Some(json!({ "after_ms": after_ms })))
                    .await?;
            }
            (FaultKind::Timeout | FaultKind::GatewaySlow, Detail::Stall { function, after_ms, for_ms }) => {
                let body = json!({ "after_ms": after_ms, "for_ms": for_ms });
                self.post(&format!("/_local/functions/{function}/stall"), Some(body)).await?;
            }
            (
                FaultKind::DdbConflict | FaultKind::DdbThrottle | FaultKind::DdbPartition | FaultKind::DdbInternalError,
                _,
            ) => {
                self.ddb.lock().unwrap().push(i);
                self.apply_ddb(plan).await?;
            }
            (FaultKind::BrokerDown | FaultKind::SesDown, _) => self.outage(fault.kind, true).await?,
            (FaultKind::ExpirySweep, _) => {
                let at = time::OffsetDateTime::now_utc() + self.expire_after;
                let report = self.scheduled("SweeperFunction", at).await?;
                self.note(format!("  the sweep at now + {}s: {report}", self.expire_after.as_secs()));
            }
            (FaultKind::ScheduleLate, _) => {
                let until = Instant::now() + fault.lasts;
                let mut paused = self.paused_until.lock().unwrap();
                *paused = Some(paused.map_or(until, |p| p.max(until)));
            }
            (FaultKind::SesThrottle, Detail::SendRate(_)) => {
                self.quota.lock().unwrap().push(i);
                self.apply_quota(plan).await?;
            }
            (kind, detail) => bail!("no way to apply {} with {detail:?}", kind.name()),
        }
        let mut figures = self.figures.lock().unwrap();
        let figures = figures.entry(fault.kind).or_default();
        figures.injected += 1;
        figures.seconds += fault.lasts.as_secs();
        Ok(true)
    }

    async fn end(&self, plan: &Plan, i: usize) -> Result<bool> {
        let fault = &plan.faults[i];
        match fault.kind {
            FaultKind::DdbConflict | FaultKind::DdbThrottle | FaultKind::DdbPartition | FaultKind::DdbInternalError => {
                self.ddb.lock().unwrap().retain(|&j| j != i);
                self.apply_ddb(plan).await?;
            }
            FaultKind::BrokerDown | FaultKind::SesDown => self.outage(fault.kind, false).await?,
            FaultKind::SesThrottle => {
                // What the gate did while this quota held, before it changes.
                let stats = self.get("/_local/ses/quota").await.unwrap_or_default();
                self.note(format!(
                    "  the SES gate at {}/s: {} e-mail(s) accepted, {} throttled",
                    stats["max_send_rate"], stats["accepted"], stats["throttled"]
                ));
                self.quota.lock().unwrap().retain(|&j| j != i);
                self.apply_quota(plan).await?;
            }
            FaultKind::ScheduleLate => {}
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// One DynamoDB configuration for the windows open now: the highest rates, the smallest scale.
    async fn apply_ddb(&self, plan: &Plan) -> Result<()> {
        let open: Vec<Fault> = self.ddb.lock().unwrap().iter().map(|&i| plan.faults[i].clone()).collect();
        if open.is_empty() {
            return self.delete("/_local/dynamodb/faults").await;
        }
        let (mut conflicts, mut throttles, mut internal, mut scale) = (0.0f64, 0.0f64, 0.0f64, None::<f64>);
        for f in &open {
            match (f.kind, &f.detail) {
                (FaultKind::DdbConflict, Detail::Rate(r)) => conflicts = conflicts.max(*r),
                (FaultKind::DdbThrottle, Detail::Rate(r)) => throttles = throttles.max(*r),
                (FaultKind::DdbInternalError, Detail::Rate(r)) => internal = internal.max(*r),
                (FaultKind::DdbPartition, Detail::CapacityScale(s)) => scale = Some(scale.map_or(*s, |x| x.min(*s))),
                _ => {}
            }
        }
        let mut config = json!({
            "transaction_conflict_rate": conflicts,
            "throttle_rate": throttles,
            "internal_error_rate": internal,
        });
        if let Some(scale) = scale {
            config["partition_write_units_per_second"] =
                json!(crate::emulators::dynamodb_proxy::AWS_PARTITION_WRITE_UNITS);
            config["capacity_scale"] = json!(scale);
        }
        self.post("/_local/dynamodb/faults", Some(config)).await.map(|_| ())
    }

    /// The SES gate's sending quota for the windows open now: the lowest rate; SES's default
    /// (a generous rate, see [`crate::emulators::ses::DEFAULT_MAX_SEND_RATE`]) when none is.
    /// The notifier reads the rate at cold start, so its warm instances meet the new quota as a
    /// production notifier meets a quota lowered under it: throttled, and retrying later.
    async fn apply_quota(&self, plan: &Plan) -> Result<()> {
        let rate = self
            .quota
            .lock()
            .unwrap()
            .iter()
            .filter_map(|&i| match plan.faults[i].detail {
                Detail::SendRate(r) => Some(r),
                _ => None,
            })
            .reduce(f64::min);
        match rate {
            Some(rate) => self.put("/_local/ses/quota", json!({ "max_send_rate": rate })).await,
            None => self.delete("/_local/ses/quota").await,
        }
    }

    async fn outage(&self, kind: FaultKind, starts: bool) -> Result<()> {
        let service = if kind == FaultKind::BrokerDown { "kafka" } else { "ses" };
        let switch = {
            let mut down = self.down.lock().unwrap();
            let open = down.entry(service).or_default();
            let before = *open;
            *open = if starts { before + 1 } else { before.saturating_sub(1) };
            // Only the first window takes it down and only the last brings it back.
            (before == 0) != (*open == 0)
        };
        if switch {
            let action = if starts { "stop" } else { "start" };
            self.post(&format!("/_local/{service}/{action}"), None).await?;
        }
        Ok(())
    }

    /// Every switch back to normal: DynamoDB faults off, Kafka and SES reachable, SES's quota back
    /// to its default, schedules on.
    pub async fn clear(&self) -> Result<()> {
        self.ddb.lock().unwrap().clear();
        self.down.lock().unwrap().clear();
        self.quota.lock().unwrap().clear();
        *self.paused_until.lock().unwrap() = None;
        self.delete("/_local/dynamodb/faults").await?;
        self.post("/_local/kafka/start", None).await?;
        self.post("/_local/ses/start", None).await?;
        self.delete("/_local/ses/quota").await?;
        self.note("■ every fault switched off");
        Ok(())
    }

    /// The webhook redelivery every 5 s, the sweeper and the refund worker every 10 s, at the real
    /// time, until `stop`; held back while a `schedule-late` window is open.
    pub async fn ticks(&self, stop: Arc<AtomicBool>) {
        let mut tick = 0u64;
        while !stop.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_secs(5)).await;
            tick += 1;
            let paused = self.paused_until.lock().unwrap().is_some_and(|until| Instant::now() < until);
            if paused || stop.load(Ordering::SeqCst) {
                continue;
            }
            let now = time::OffsetDateTime::now_utc();
            let mut due = vec!["MockGatewayDeliveriesFunction"];
            if tick.is_multiple_of(2) {
                due.extend(["SweeperFunction", "RefundsFunction"]);
            }
            // A failed run (a crashed instance) is what the next tick is for.
            futures::future::join_all(due.into_iter().map(|f| self.scheduled(f, now))).await;
        }
    }

    /// Invokes a scheduled function with EventBridge's event, its `time` set to `at`; its result.
    pub async fn scheduled(&self, function: &str, at: time::OffsetDateTime) -> Result<Value> {
        let schedule = crate::emulators::schedule::Schedule {
            function: function.to_owned(),
            event: "Soak".into(),
            expression: "rate(1 minute)".into(),
            rate: None,
        };
        let mut event = crate::emulators::schedule::event(&schedule);
        event["time"] = json!(at.format(&time::format_description::well_known::Rfc3339)?);
        let url = format!("{}/2015-03-31/functions/{function}/invocations", self.invoke);
        let r = self.http.post(url).json(&event).send().await.with_context(|| format!("invoking {function}"))?;
        let failed = r.headers().contains_key("x-amz-function-error");
        let body: Value = r.json().await.unwrap_or_default();
        if failed {
            bail!("{function} failed: {body}");
        }
        Ok(body)
    }

    pub async fn post(&self, path: &str, body: Option<Value>) -> Result<Value> {
        let mut request = self.http.post(format!("{}{path}", self.invoke));
        if let Some(b) = body {
            request = request.json(&b);
        }
        let r = request.send().await.with_context(|| format!("POST {path}"))?;
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("POST {path} answered {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn put(&self, path: &str, body: Value) -> Result<()> {
        let r = self.http.put(format!("{}{path}", self.invoke)).json(&body).send().await?;
        let status = r.status();
        if !status.is_success() {
            bail!("PUT {path} {body} answered {status}: {}", r.text().await.unwrap_or_default());
        }
        Ok(())
    }

    async fn get(&self, path: &str) -> Result<Value> {
        Ok(self.http.get(format!("{}{path}", self.invoke)).send().await?.error_for_status()?.json().await?)
    }

    async fn delete(&self, path: &str) -> Result<()> {
        self.http.delete(format!("{}{path}", self.invoke)).send().await?.error_for_status()?;
        Ok(())
    }
}
