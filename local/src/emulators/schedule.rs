//! The schedule: EventBridge `Schedule` events from `template.yaml`, fired locally.
//!
//! For every function event `Type: Schedule` with `Schedule: rate(N minute|minutes|hour|hours|
//! day|days)` (and not `Enabled: false`), the function is invoked every N units with the event
//! EventBridge sends (`detail-type: "Scheduled Event"`, `source: "aws.events"`, `time` = now,
//! the rule's ARN in `resources`; the shape of `events/schedule.json`). The first invocation comes
//! one interval after start, as with a new rule. Invocations do not wait for each other, as on
//! Lambda; a failed one is logged.
//!
//! * `cargo local up`: on, at the template's rate; `--schedule-interval <secs>` overrides every
//!   rate (also for `cron(...)` schedules, which are otherwise skipped with a warning);
//!   `--no-schedule` switches it off;
//! * `cargo local test` (and `bench`, `invoke`): off. Tests run the sweeper when they want, with
//!   the time they want, through the Invoke API (`sweep_at` in `tests/src/lib.rs`), and a sweep
//!   in the middle of another test would expire its orders.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use axum::body::Bytes;
use serde_json::json;
use serde_yaml_ng::Value as Yaml;
use tokio::task::JoinHandle;

use crate::emulators::runtime_api::{Outcome, Pool};
use crate::template::{ACCOUNT_ID, REGION, STACK_NAME};

/// Whether and how often the schedule fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Off,
    /// At each event's own rate.
    Template,
    /// Every event at this interval instead.
    Every(Duration),
}

/// One `Type: Schedule` event of one function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub function: String,
    pub event: String,
    pub expression: String,
    /// `None` for expressions we do not evaluate (`cron(...)`).
    pub rate: Option<Duration>,
}

/// Every enabled `Schedule` event of the template's functions.
pub fn from_template(path: &Path) -> Result<Vec<Schedule>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&text).with_context(|| format!("reading the schedules of {}", path.display()))
}

fn parse(text: &str) -> Result<Vec<Schedule>> {
    let doc: Yaml = serde_yaml_ng::from_str(text)?;
    let mut out = Vec::new();
    let resources = doc.get("Resources").and_then(Yaml::as_mapping).into_iter().flatten();
    for (id, resource) in resources {
        if resource.get("Type").and_then(Yaml::as_str) != Some("AWS::Serverless::Function") {
            continue;
        }
        let events = resource.get("Properties").and_then(|p| p.get("Events")).and_then(Yaml::as_mapping);
        for (name, event) in events.into_iter().flatten() {
            if event.get("Type").and_then(Yaml::as_str) != Some("Schedule") {
                continue;
            }
            let props = event.get("Properties");
            if props.and_then(|p| p.get("Enabled")).and_then(Yaml::as_bool) == Some(false) {
                continue;
            }
            let (Some(function), Some(event)) = (id.as_str(), name.as_str()) else { continue };
            let expression = props
                .and_then(|p| p.get("Schedule"))
                .and_then(Yaml::as_str)
                .with_context(|| format!("{function}.{event}: Schedule must be a literal expression"))?
                .trim()
                .to_owned();
            let rate = if expression.starts_with("rate(") { Some(rate(&expression)?) } else { None };
            out.push(Schedule { function: function.to_owned(), event: event.to_owned(), expression, rate });
        }
    }
    Ok(out)
}

/// `rate(5 minutes)` → 300 s.
fn rate(expression: &str) -> Result<Duration> {
    let inner = expression
        .strip_prefix("rate(")
        .and_then(|r| r.strip_suffix(')'))
        .with_context(|| format!("`{expression}` is not rate(N unit)"))?;
    let (n, unit) = inner.trim().split_once(' ').with_context(|| format!("`{expression}`: missing unit"))?;
    let n: u64 = n.parse().with_context(|| format!("`{expression}`: not a number"))?;
    let secs = match unit.trim() {
        "minute" | "minutes" => 60,
        "hour" | "hours" => 3600,
        "day" | "days" => 86_400,
        other => bail!("`{expression}`: unknown unit `{other}`"),
    };
    if n == 0 {
        bail!("`{expression}`: the rate must be positive");
    }
    Ok(Duration::from_secs(n * secs))
}

/// The event EventBridge sends for a scheduled rule, now.
pub fn event(schedule: &Schedule) -> serde_json::Value {
    let now = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "region": REGION,
        "resources": [format!(
            "arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{STACK_NAME}-{}{}",
            schedule.function, schedule.event
        )],
        "detail": {},
    })
}

/// Starts one timer per schedule whose function runs in this stack. Returns the tasks (abort to
/// stop) and a line per schedule for the console.
pub fn start(
    schedules: &[Schedule],
    pools: &BTreeMap<String, Arc<Pool>>,
    mode: Mode,
) -> (Vec<JoinHandle<()>>, Vec<String>) {
    let mut tasks = Vec::new();
    let mut lines = Vec::new();
    if mode == Mode::Off {
        return (tasks, lines);
    }
    for s in schedules {
        let Some(pool) = pools.get(&s.function).cloned() else { continue };
        let period = match (mode, s.rate) {
            (Mode::Every(d), _) => d,
            (_, Some(d)) => d,
            (_, None) => {
                tracing::warn!(
                    "{}.{}: `{}` is not evaluated locally; use --schedule-interval to fire it",
                    s.function,
                    s.event,
                    s.expression
                );
                continue;
            }
        };
        lines.push(format!("{}.{} every {}s ({})", s.function, s.event, period.as_secs(), s.expression));
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                timer.tick().await;
                let (pool, s) = (pool.clone(), s.clone());
                tokio::spawn(async move {
                    let payload = Bytes::from(event(&s).to_string());
                    match pool.invoke(payload).await {
                        Outcome::Success(_) => tracing::debug!("{}.{} ran", s.function, s.event),
                        Outcome::FunctionError(e) => {
                            tracing::warn!("{}.{} failed: {}", s.function, s.event, String::from_utf8_lossy(&e))
                        }
                        Outcome::Failed { error_type, message } => {
                            tracing::warn!("{}.{} failed: {error_type}: {message}", s.function, s.event)
                        }
                    }
                });
            }
        }));
    }
    (tasks, lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rates_and_skips_disabled_events() {
        let t = r#"
Resources:
  Sweeper:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        Tick: { Type: Schedule, Properties: { Schedule: rate(1 minute) } }
        Off: { Type: Schedule, Properties: { Schedule: rate(2 hours), Enabled: false } }
        Nightly: { Type: Schedule, Properties: { Schedule: "cron(0 3 * * ? *)" } }
        Http: { Type: HttpApi, Properties: { Path: /x, Method: GET } }
"#;
        let s = parse(t).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].event.as_str(), s[0].rate), ("Tick", Some(Duration::from_secs(60))));
        assert_eq!((s[1].event.as_str(), s[1].rate), ("Nightly", None));
        assert_eq!(rate("rate(3 days)").unwrap(), Duration::from_secs(3 * 86_400));
        assert!(rate("rate(0 minutes)").is_err());
        assert!(rate("rate(5 weeks)").is_err());
    }

    #[test]
    fn the_event_has_the_eventbridge_shape() {
        let s =
            Schedule { function: "Fn".into(), event: "Tick".into(), expression: "rate(1 minute)".into(), rate: None };
        let e = event(&s);
        assert_eq!(e["detail-type"], "Scheduled Event");
        assert_eq!(e["source"], "aws.events");
        assert_eq!(e["resources"][0], "arn:aws:events:us-east-1:123456789012:rule/shop-local-FnTick");
        let time = e["time"].as_str().unwrap();
        assert!(time.ends_with('Z') && !time.contains('.'), "{time}");
    }

    #[test]
    fn the_real_template_schedules_the_sweeper() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
        let s = from_template(&path).unwrap();
        assert!(s.iter().any(|s| s.function == "SweeperFunction" && s.rate.is_some()), "{s:?}");
    }
}
