//! Functions triggered by an EventBridge schedule (the sweeper, the mock gateway's webhook
//! redelivery): "now" is the event's `time`, so a delayed or replayed event acts only on what was
//! due at its time, and tests can run a schedule "in the future".

use crate::store::StoreError;
use serde::Serialize;
use std::future::Future;

/// The scheduled event's `time` (RFC 3339), else the clock.
pub fn event_time(event: &serde_json::Value) -> time::OffsetDateTime {
    event
        .get("time")
        .and_then(|t| t.as_str())
        .and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(time::OffsetDateTime::now_utc)
}

/// One run of a scheduled function at `now`; the report is the invocation's result. `trace` names
/// the run's invocation (no HTTP request is behind it): what the run writes carries it, so an
/// order the sweeper expired is found by the sweeper run's id (see [`crate::trace`]).
pub trait Scheduled: Send + Sync + 'static {
    type Report: Serialize + Send + crate::metrics::Counted;
    fn run(
        &self,
        now: time::OffsetDateTime,
        trace: &crate::trace::Trace,
    ) -> impl Future<Output = Result<Self::Report, StoreError>> + Send;
}

impl From<StoreError> for lambda_http::lambda_runtime::Diagnostic {
    fn from(e: StoreError) -> Self {
        Self { error_type: "StoreError".into(), error_message: e.to_string() }
    }
}

/// Runs the Lambda loop for scheduled events. A failed run returns an error, so it shows up in
/// the function's error metrics; the next run picks up where it stopped. A run's report is its
/// result and is logged once, as JSON in the `report` field, so each function's counts need no
/// log line of their own. Each run logs under a `trace` span with its invocation's ids.
pub async fn serve<H: Scheduled>(handler: H) -> Result<(), lambda_http::Error> {
    use lambda_http::lambda_runtime::{LambdaEvent, run, service_fn};
    use tracing::Instrument;
    let handler = std::sync::Arc::new(handler);
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let handler = handler.clone();
        let trace = crate::trace::Trace::of_invocation(&event.context);
        let span = crate::trace::Trace::span(Some(&trace));
        async move {
            // Boxed: a run's future inside the span is too deep a type for rustc's layout otherwise.
            let report = Box::pin(handler.run(event_time(&event.payload), &trace)).await;
            if let Ok(report) = &report {
                tracing::info!(report = %serde_json::to_value(report).unwrap_or_default(), "run done");
                crate::metrics::Counted::count(report);
            }
            crate::metrics::flush(&event.context.request_id);
            report
        }
        .instrument(span)
    }))
    .await
}
