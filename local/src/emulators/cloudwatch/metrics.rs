//! The metrics the functions write, read back out of their output as CloudWatch reads them.
//!
//! In AWS an Embedded Metric Format document is a log line: CloudWatch Logs finds the `_aws`
//! header and turns the named values into metric datapoints. The stack does the same with every
//! line a function instance prints ([`Metrics::ingest`], tapped from the instance's output), and
//! adds what AWS itself publishes about functions (`AWS/Lambda` `Invocations` and `Errors`:
//! [`Metrics::invocation`], from the Runtime API). Datapoints are kept for
//! [`RETENTION`]; [`Metrics::query`] answers one statistic over a time window, as
//! `GetMetricStatistics` does, for the alarms ([`super::alarms`]) and `GET /_local/metrics`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// How long datapoints are kept (a laptop's stack runs for minutes to hours).
pub const RETENTION: Duration = Duration::from_secs(30 * 60);

/// One metric: namespace, name and its dimensions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MetricId {
    pub namespace: String,
    pub name: String,
    pub dimensions: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
struct Datapoint {
    metric: MetricId,
    /// Milliseconds since the epoch.
    at: u64,
    value: f64,
}

/// A statistic, as an alarm names it.
#[derive(Debug, Clone, PartialEq)]
pub enum Statistic {
    Sum,
    Average,
    Maximum,
    Minimum,
    SampleCount,
    /// `pNN` (`ExtendedStatistic`).
    Percentile(f64),
}

impl Statistic {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "Sum" => Self::Sum,
            "Average" => Self::Average,
            "Maximum" => Self::Maximum,
            "Minimum" => Self::Minimum,
            "SampleCount" => Self::SampleCount,
            p => Self::Percentile(p.strip_prefix('p')?.parse().ok().filter(|p: &f64| (0.0..=100.0).contains(p))?),
        })
    }

    /// The statistic of `values` (none: no datapoint, as CloudWatch answers).
    pub fn of(&self, values: &mut [f64]) -> Option<f64> {
        if values.is_empty() {
            return None;
        }
        let n = values.len() as f64;
        Some(match self {
            Self::Sum => values.iter().sum(),
            Self::Average => values.iter().sum::<f64>() / n,
            Self::Maximum => values.iter().copied().fold(f64::MIN, f64::max),
            Self::Minimum => values.iter().copied().fold(f64::MAX, f64::min),
            Self::SampleCount => n,
            Self::Percentile(p) => {
                values.sort_by(f64::total_cmp);
                let rank = ((p / 100.0) * n).ceil().max(1.0) as usize;
                values[rank.min(values.len()) - 1]
            }
        })
    }
}

/// Every datapoint of the run. Cheap to clone.
#[derive(Clone, Default, Debug)]
pub struct Metrics(Arc<Mutex<Vec<Datapoint>>>);

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

impl Metrics {
    /// Reads one output line: an EMF document is recorded (true), anything else ignored.
    pub fn ingest(&self, line: &str) -> bool {
        if !line.contains("\"_aws\"") {
            return false;
        }
        let Ok(doc) = serde_json::from_str::<Value>(line) else { return false };
        let points = parse_emf(&doc);
        if points.is_empty() {
            return false;
        }
        self.push(points);
        true
    }

    /// What Lambda publishes about one invocation of `function` (`AWS/Lambda`, by
    /// `FunctionName`): `Invocations` 1, `Errors` 1 when it failed. Not `Duration`: Lambda's is
    /// the handler's own time, and what the pool sees here includes the wait for an instance.
    pub fn invocation(&self, function: &str, failed: bool) {
        let id = |name: &str| MetricId {
            namespace: "AWS/Lambda".into(),
            name: name.into(),
            dimensions: [("FunctionName".to_owned(), function.to_owned())].into(),
        };
        let at = now_ms();
        self.push(vec![
            Datapoint { metric: id("Invocations"), at, value: 1.0 },
            Datapoint { metric: id("Errors"), at, value: if failed { 1.0 } else { 0.0 } },
        ]);
    }

    fn push(&self, points: Vec<Datapoint>) {
        let mut all = self.0.lock().unwrap();
        let horizon = now_ms().saturating_sub(RETENTION.as_millis() as u64);
        if all.first().is_some_and(|p| p.at < horizon) {
            all.retain(|p| p.at >= horizon);
        }
        all.extend(points);
    }

    /// The statistic of the datapoints of the metric `namespace`/`name` with exactly these
    /// `dimensions` (as in CloudWatch, a metric with one more dimension is another metric), in
    /// `(from, to]` ms (a datapoint stamped at the instant of the evaluation counts in it).
    pub fn query(
        &self,
        namespace: &str,
        name: &str,
        dimensions: &BTreeMap<String, String>,
        statistic: &Statistic,
        from: u64,
        to: u64,
    ) -> Option<f64> {
        let mut values: Vec<f64> = self
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.at > from && p.at <= to && p.metric.namespace == namespace && p.metric.name == name)
            .filter(|p| p.metric.dimensions == *dimensions)
            .map(|p| p.value)
            .collect();
        statistic.of(&mut values)
    }

    /// Every metric seen, with its sum, count and last value over the last `window`.
    pub fn summary(&self, window: Duration) -> Value {
        let since = now_ms().saturating_sub(window.as_millis() as u64);
        let mut by: BTreeMap<MetricId, (f64, u64, f64, u64)> = BTreeMap::new();
        for p in self.0.lock().unwrap().iter() {
            let e = by.entry(p.metric.clone()).or_insert((0.0, 0, 0.0, 0));
            if p.at >= since {
                e.0 += p.value;
                e.1 += 1;
            }
            e.2 = p.value;
            e.3 = p.at;
        }
        let rows: Vec<Value> = by
            .into_iter()
            .map(|(m, (sum, count, last, at))| {
                json!({ "namespace": m.namespace, "name": m.name, "dimensions": m.dimensions,
                        "sum": sum, "samples": count, "last": last, "last_at_ms": at })
            })
            .collect();
        json!({ "window_seconds": window.as_secs(), "metrics": rows })
    }
}

/// The datapoints of one EMF document (the specification's shape: `_aws.Timestamp`,
/// `_aws.CloudWatchMetrics[{Namespace, Dimensions: [[...]], Metrics: [{Name, Unit}]}]`, the values
/// and dimension values as top-level members; a value may be a number or an array of numbers).
fn parse_emf(doc: &Value) -> Vec<Datapoint> {
    let Some(aws) = doc.get("_aws") else { return Vec::new() };
    let at = aws.get("Timestamp").and_then(Value::as_u64).unwrap_or_else(now_ms);
    let mut out = Vec::new();
    for directive in aws.get("CloudWatchMetrics").and_then(Value::as_array).into_iter().flatten() {
        let Some(namespace) = directive.get("Namespace").and_then(Value::as_str) else { continue };
        let sets: Vec<Vec<&str>> = directive
            .get("Dimensions")
            .and_then(Value::as_array)
            .map(|sets| {
                sets.iter().map(|s| s.as_array().into_iter().flatten().filter_map(Value::as_str).collect()).collect()
            })
            .unwrap_or_else(|| vec![Vec::new()]);
        for metric in directive.get("Metrics").and_then(Value::as_array).into_iter().flatten() {
            let Some(name) = metric.get("Name").and_then(Value::as_str) else { continue };
            let values: Vec<f64> = match doc.get(name) {
                Some(Value::Array(items)) => items.iter().filter_map(Value::as_f64).collect(),
                Some(v) => v.as_f64().into_iter().collect(),
                None => Vec::new(),
            };
            for set in &sets {
                let dimensions = set
                    .iter()
                    .filter_map(|d| doc.get(*d).and_then(Value::as_str).map(|v| ((*d).to_owned(), v.to_owned())))
                    .collect();
                let id = MetricId { namespace: namespace.to_owned(), name: name.to_owned(), dimensions };
                out.extend(values.iter().map(|v| Datapoint { metric: id.clone(), at, value: *v }));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emf_document_becomes_datapoints_with_its_dimensions() {
        let m = Metrics::default();
        let line = r#"{"_aws":{"Timestamp":1700000000000,"CloudWatchMetrics":[{"Namespace":"Shop","Dimensions":[["Service","Reason"]],"Metrics":[{"Name":"OrdersRefused","Unit":"Count"}]}]},"Service":"shop-local","Reason":"out_of_stock","OrdersRefused":3,"request_id":"r1"}"#;
        assert!(m.ingest(line));
        assert!(!m.ingest(r#"{"level":"INFO","fields":{"message":"hello"}}"#));
        let dims: BTreeMap<String, String> =
            [("Service".to_owned(), "shop-local".to_owned()), ("Reason".to_owned(), "out_of_stock".to_owned())].into();
        let sum = m.query("Shop", "OrdersRefused", &dims, &Statistic::Sum, 0, u64::MAX);
        assert_eq!(sum, Some(3.0));
        let other: BTreeMap<String, String> = [("Service".to_owned(), "shop-local".to_owned())].into();
        assert_eq!(m.query("Shop", "OrdersRefused", &other, &Statistic::Sum, 0, u64::MAX), None, "another metric");
    }

    #[test]
    fn arrays_are_distributions() {
        let m = Metrics::default();
        m.ingest(r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[[]],"Metrics":[{"Name":"B"}]}]},"B":[1,2,3,4,100]}"#);
        let none = BTreeMap::new();
        assert_eq!(m.query("N", "B", &none, &Statistic::Maximum, 0, u64::MAX), Some(100.0));
        assert_eq!(m.query("N", "B", &none, &Statistic::SampleCount, 0, u64::MAX), Some(5.0));
        assert_eq!(m.query("N", "B", &none, &Statistic::Percentile(50.0), 0, u64::MAX), Some(3.0));
    }

    #[test]
    fn statistics_parse_as_alarms_name_them() {
        assert_eq!(Statistic::parse("p99"), Some(Statistic::Percentile(99.0)));
        assert_eq!(Statistic::parse("Sum"), Some(Statistic::Sum));
        assert_eq!(Statistic::parse("p101"), None);
        assert_eq!(Statistic::parse("Median"), None);
    }
}
