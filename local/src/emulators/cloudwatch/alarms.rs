//! The template's alarms, evaluated on the local metrics as CloudWatch evaluates them.
//!
//! An alarm that was never seen firing is a guess. So every `AWS::CloudWatch::Alarm` of the
//! template that watches a metric the stack has (the functions' EMF metrics, `AWS/Lambda`) is
//! evaluated here with its own metric, dimensions, statistic, threshold, comparison, evaluation
//! periods, datapoints to alarm and missing-data treatment — only the period is scaled (by
//! [`Alarms::SCALE`] by default: a 60-second period is one second on a laptop), so a test sees it
//! fire in seconds. Each change of state is logged (`⚠ ALARM` / `✓ OK`) and kept in the alarm's
//! history (`GET /_local/alarms`). An alarm on a metric the stack does not produce (SQS queue
//! depth, a stream's iterator age, the API's 5xx count) is listed as not evaluated, with why.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::metrics::{Metrics, Statistic, now_ms};

/// AWS's own metrics the stack produces (see [`Metrics::invocation`]).
const AWS_METRICS: &[(&str, &str)] = &[("AWS/Lambda", "Invocations"), ("AWS/Lambda", "Errors")];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Comparison {
    GreaterThanOrEqual,
    GreaterThan,
    LessThan,
    LessThanOrEqual,
}

impl Comparison {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "GreaterThanOrEqualToThreshold" => Self::GreaterThanOrEqual,
            "GreaterThanThreshold" => Self::GreaterThan,
            "LessThanThreshold" => Self::LessThan,
            "LessThanOrEqualToThreshold" => Self::LessThanOrEqual,
            _ => return None,
        })
    }

    fn breaches(self, value: f64, threshold: f64) -> bool {
        match self {
            Self::GreaterThanOrEqual => value >= threshold,
            Self::GreaterThan => value > threshold,
            Self::LessThan => value < threshold,
            Self::LessThanOrEqual => value <= threshold,
        }
    }
}

/// One alarm of the template.
#[derive(Debug, Clone)]
pub struct Alarm {
    pub id: String,
    description: String,
    namespace: String,
    metric: String,
    dimensions: BTreeMap<String, String>,
    statistic: Statistic,
    period: Duration,
    evaluation_periods: usize,
    datapoints_to_alarm: usize,
    threshold: f64,
    comparison: Comparison,
    /// `breaching`, `notBreaching`, `ignore`, `missing` (the default).
    treat_missing: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Ok,
    Alarm,
    InsufficientData,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Alarm => "ALARM",
            Self::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

impl Alarm {
    /// An alarm's properties, resolved; `Err` says why it is not evaluated locally.
    pub fn from_properties(id: &str, p: &Value, own_namespaces: &[String]) -> Result<Self, String> {
        let text = |k: &str| p.get(k).and_then(Value::as_str).map(str::to_owned);
        let number = |k: &str| p.get(k).and_then(|v| v.as_f64().or_else(|| v.as_str()?.parse().ok()));
        if p.get("Metrics").is_some() {
            return Err("a metric-math alarm".into());
        }
        let namespace = text("Namespace").ok_or("no Namespace")?;
        let metric = text("MetricName").ok_or("no MetricName")?;
        if !own_namespaces.contains(&namespace) && !AWS_METRICS.contains(&(namespace.as_str(), metric.as_str())) {
            return Err(format!("{namespace} {metric} is not produced locally"));
        }
        let statistic = text("Statistic")
            .or_else(|| text("ExtendedStatistic"))
            .and_then(|s| Statistic::parse(&s))
            .ok_or("an unknown Statistic")?;
        let dimensions = p
            .get("Dimensions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|d| Some((d.get("Name")?.as_str()?.to_owned(), d.get("Value")?.as_str()?.to_owned())))
            .collect();
        let evaluation_periods = number("EvaluationPeriods").unwrap_or(1.0).max(1.0) as usize;
        Ok(Self {
            id: id.to_owned(),
            description: text("AlarmDescription").unwrap_or_default(),
            namespace,
            metric,
            dimensions,
            statistic,
            period: Duration::from_secs_f64(number("Period").unwrap_or(60.0)),
            evaluation_periods,
            datapoints_to_alarm: number("DatapointsToAlarm").map_or(evaluation_periods, |n| n as usize),
            threshold: number("Threshold").ok_or("no Threshold")?,
            comparison: text("ComparisonOperator")
                .and_then(|c| Comparison::parse(&c))
                .ok_or("an unsupported ComparisonOperator")?,
            treat_missing: text("TreatMissingData").unwrap_or_else(|| "missing".into()),
        })
    }

    /// The state the last `evaluation_periods` (scaled) periods ending at `now` give, and the
    /// newest period's value.
    fn evaluate(&self, metrics: &Metrics, scale: f64, now: u64) -> (Option<State>, Option<f64>) {
        let period = ((self.period.as_millis() as f64) * scale).max(200.0) as u64;
        let values: Vec<Option<f64>> = (0..self.evaluation_periods as u64)
            .map(|i| {
                let to = now - i * period;
                metrics.query(&self.namespace, &self.metric, &self.dimensions, &self.statistic, to - period, to)
            })
            .collect();
        let newest = values.first().copied().flatten();
        let mut breaching = 0;
        let mut present = 0;
        for v in &values {
            match v {
                Some(v) => {
                    present += 1;
                    breaching += usize::from(self.comparison.breaches(*v, self.threshold));
                }
                None if self.treat_missing == "breaching" => breaching += 1,
                None => {}
            }
        }
        let state = if breaching >= self.datapoints_to_alarm {
            Some(State::Alarm)
        } else if present > 0 || self.treat_missing == "notBreaching" {
            Some(State::Ok)
        } else {
            match self.treat_missing.as_str() {
                "ignore" => None,
                _ => Some(State::InsufficientData),
            }
        };
        (state, newest)
    }
}

struct Watched {
    alarm: Alarm,
    state: State,
    history: Vec<Value>,
}

/// The template's alarms and their states. Cheap to clone.
#[derive(Clone)]
pub struct Alarms {
    watched: Arc<Mutex<Vec<Watched>>>,
    skipped: Arc<Vec<(String, String)>>,
    scale: f64,
}

impl Alarms {
    /// Periods are this fraction of the template's.
    pub const SCALE: f64 = 1.0 / 60.0;

    pub fn new(alarms: Vec<Alarm>, skipped: Vec<(String, String)>, scale: f64) -> Self {
        let watched =
            alarms.into_iter().map(|alarm| Watched { alarm, state: State::InsufficientData, history: Vec::new() });
        Self { watched: Arc::new(Mutex::new(watched.collect())), skipped: Arc::new(skipped), scale }
    }

    /// Evaluates every alarm once; logs and records the changes of state.
    pub fn tick(&self, metrics: &Metrics) {
        let now = now_ms();
        for w in self.watched.lock().unwrap().iter_mut() {
            let (state, value) = w.alarm.evaluate(metrics, self.scale, now);
            let Some(state) = state else { continue };
            if state == w.state {
                continue;
            }
            let shown = value.map_or_else(|| "no data".to_owned(), |v| format!("{v}"));
            match state {
                State::Alarm => tracing::warn!(
                    "⚠ ALARM {}: {} {} = {shown} (threshold {}) — {}",
                    w.alarm.id,
                    w.alarm.metric,
                    statistic_name(&w.alarm.statistic),
                    w.alarm.threshold,
                    w.alarm.description.trim()
                ),
                State::Ok if w.state == State::Alarm => {
                    tracing::info!("✓ OK {}: {} = {shown}", w.alarm.id, w.alarm.metric)
                }
                _ => {}
            }
            w.history.push(json!({ "at_ms": now, "from": w.state.as_str(), "to": state.as_str(), "value": value }));
            w.state = state;
        }
    }

    /// Evaluates every `interval` until the task is aborted.
    pub fn start(self, metrics: Metrics, interval: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                self.tick(&metrics);
            }
        })
    }

    /// `GET /_local/alarms`: every alarm, its state and history; the ones not evaluated, and why.
    pub fn to_json(&self) -> Value {
        let watched: Vec<Value> = self
            .watched
            .lock()
            .unwrap()
            .iter()
            .map(|w| {
                json!({ "alarm": w.alarm.id, "state": w.state.as_str(), "metric": w.alarm.metric,
                        "namespace": w.alarm.namespace, "threshold": w.alarm.threshold,
                        "fired": w.history.iter().filter(|h| h["to"] == "ALARM").count(), "history": w.history })
            })
            .collect();
        let skipped: Vec<Value> =
            self.skipped.iter().map(|(id, why)| json!({ "alarm": id, "not_evaluated": why })).collect();
        json!({ "period_scale": self.scale, "alarms": watched, "not_evaluated": skipped })
    }

    /// Alarms that have fired, by id, with how often.
    pub fn fired(&self) -> Vec<(String, usize)> {
        self.watched
            .lock()
            .unwrap()
            .iter()
            .map(|w| (w.alarm.id.clone(), w.history.iter().filter(|h| h["to"] == "ALARM").count()))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

fn statistic_name(s: &Statistic) -> String {
    match s {
        Statistic::Percentile(p) => format!("p{p}"),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alarm(p: Value) -> Alarm {
        Alarm::from_properties("A", &p, &["Shop".to_owned()]).unwrap()
    }

    #[test]
    fn fires_when_the_statistic_breaches_and_clears_when_it_no_longer_does() {
        let a = alarm(json!({ "Namespace": "Shop", "MetricName": "EmailsRefused", "Statistic": "Sum",
            "Period": 60, "EvaluationPeriods": 1, "Threshold": 3, "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching", "Dimensions": [{ "Name": "Service", "Value": "shop-local" }] }));
        let alarms = Alarms::new(vec![a], vec![], 1.0 / 60.0);
        let metrics = Metrics::default();
        alarms.tick(&metrics);
        assert_eq!(alarms.to_json()["alarms"][0]["state"], "OK", "missing data is not breaching");
        let doc = |n: u32| {
            format!(
                r#"{{"_aws":{{"Timestamp":{},"CloudWatchMetrics":[{{"Namespace":"Shop","Dimensions":[["Service"]],"Metrics":[{{"Name":"EmailsRefused"}}]}}]}},"Service":"shop-local","EmailsRefused":{n}}}"#,
                now_ms()
            )
        };
        metrics.ingest(&doc(2));
        alarms.tick(&metrics);
        assert_eq!(alarms.to_json()["alarms"][0]["state"], "OK", "2 < 3");
        metrics.ingest(&doc(1));
        alarms.tick(&metrics);
        assert_eq!(alarms.to_json()["alarms"][0]["state"], "ALARM");
        assert_eq!(alarms.fired(), vec![("A".to_owned(), 1)]);
        std::thread::sleep(Duration::from_millis(1100));
        alarms.tick(&metrics);
        assert_eq!(alarms.to_json()["alarms"][0]["state"], "OK", "the period moved past the datapoints");
    }

    #[test]
    fn alarms_on_metrics_the_stack_does_not_make_are_listed_with_why() {
        let p = json!({ "Namespace": "AWS/SQS", "MetricName": "ApproximateNumberOfMessagesVisible", "Statistic": "Maximum",
            "Threshold": 0, "ComparisonOperator": "GreaterThanThreshold" });
        let why = Alarm::from_properties("Q", &p, &["Shop".to_owned()]).unwrap_err();
        assert!(why.contains("AWS/SQS"), "{why}");
    }
}
