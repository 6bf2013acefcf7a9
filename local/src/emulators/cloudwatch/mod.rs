//! CloudWatch, locally: the metrics the functions write, and the template's alarms on them.
//!
//! Deployed, the shop's figures reach CloudWatch as Embedded Metric Format lines in its logs
//! (see the shop's `metrics` module), and its alarms watch them. Locally the same lines are read
//! out of every instance's output ([`metrics`]), Lambda's own `AWS/Lambda` metrics are recorded
//! from the Runtime API, and every alarm of template.yaml on those metrics is evaluated with
//! its own definition, periods scaled down ([`alarms`]):
//!
//! * `GET /_local/metrics` (`?window=<seconds>`, default 300): every metric, its sum and samples
//!   over the window and its last value; `cargo local metrics` prints it as a table;
//! * `GET /_local/alarms`: every alarm's state and history (when it fired, when it cleared), and
//!   the alarms not evaluated locally, with why.

pub mod alarms;
pub mod metrics;

use std::time::Duration;

use anyhow::Result;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;

use crate::template::Resolved;
use alarms::{Alarm, Alarms};
use metrics::Metrics;

/// How often the alarms are evaluated (their scaled periods are a second or more).
const TICK: Duration = Duration::from_millis(250);

#[derive(Clone)]
pub struct CloudWatch {
    pub metrics: Metrics,
    pub alarms: Alarms,
}

impl CloudWatch {
    /// The template's alarms; periods times `scale` (see [`Alarms::SCALE`]).
    pub fn from_template(text: &str, scale: f64) -> Result<Self> {
        let resolved = Resolved::parse(text)?;
        // The namespaces the functions write to: their METRICS_NAMESPACE (Globals or their own).
        let mut own: Vec<String> = resolved
            .of_type("AWS::Serverless::Function")
            .filter_map(|(_, f)| f.properties.pointer("/Environment/Variables/METRICS_NAMESPACE").cloned())
            .chain(resolved.globals.pointer("/Environment/Variables/METRICS_NAMESPACE").cloned())
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        own.push(shop::metrics::DEFAULT_NAMESPACE.to_owned());
        own.sort();
        own.dedup();
        let (mut watched, mut skipped) = (Vec::new(), Vec::new());
        for (id, r) in resolved.of_type("AWS::CloudWatch::Alarm") {
            match Alarm::from_properties(id, &r.properties, &own) {
                Ok(a) => watched.push(a),
                Err(why) => skipped.push((id.to_owned(), why)),
            }
        }
        Ok(Self { metrics: Metrics::default(), alarms: Alarms::new(watched, skipped, scale) })
    }

    /// Evaluates the alarms until the task is aborted.
    pub fn start(&self) -> tokio::task::JoinHandle<()> {
        self.alarms.clone().start(self.metrics.clone(), TICK)
    }

    pub fn control_router(&self) -> Router {
        Router::new()
            .route("/_local/metrics", get(metrics_summary).with_state(self.metrics.clone()))
            .route("/_local/alarms", get(alarm_states).with_state(self.alarms.clone()))
    }
}

#[derive(serde::Deserialize)]
struct Window {
    window: Option<u64>,
}

async fn metrics_summary(State(m): State<Metrics>, Query(w): Query<Window>) -> Response {
    axum::Json(m.summary(Duration::from_secs(w.window.unwrap_or(300)))).into_response()
}

async fn alarm_states(State(a): State<Alarms>) -> Response {
    let v: Value = a.to_json();
    axum::Json(v).into_response()
}
