//! The scheduled sweeper (EventBridge, every minute): expires unpaid orders past their
//! reservation deadline and releases their units.
//!
//! Overdue orders come from the sparse `PENDING` index, never a scan. Each is expired by the same
//! conditional release transaction as a cancel, so two sweepers at once, or a sweeper racing a
//! cancel, release each order once. "Now" is the schedule event's `time`: a delayed or replayed
//! event expires only what was due at its time.

use super::orders::release_event;
use crate::domain::order::Release;
use crate::store::{OrderStore, StoreError};
use futures::StreamExt;
use serde::Serialize;

/// Orders read per query page; each page is expired before reading the next.
const PAGE: u32 = 100;
/// Transactions in flight at once.
const CONCURRENCY: usize = 8;
/// Stops after this many pages in one run; the next run continues.
const MAX_PAGES: usize = 50;

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct SweepReport {
    pub expired: usize,
    /// Already left PENDING_PAYMENT (cancelled, paid or expired by a concurrent run).
    pub skipped: usize,
}

pub struct Sweeper<S> {
    pub store: S,
}

impl<S: OrderStore> Sweeper<S> {
    /// `event` is the EventBridge scheduled event; its `time` is "now".
    pub async fn handle(&self, event: serde_json::Value) -> Result<SweepReport, StoreError> {
        let now = event
            .get("time")
            .and_then(|t| t.as_str())
            .and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_else(time::OffsetDateTime::now_utc);
        let mut report = SweepReport::default();
        for _ in 0..MAX_PAGES {
            let overdue = self.store.overdue_orders(now, PAGE).await?;
            let results: Vec<Result<bool, StoreError>> = futures::stream::iter(overdue.iter())
                .map(|order| async move {
                    let now = time::OffsetDateTime::now_utc();
                    self.store
                        .release_order(order, Release::Expired, &release_event(order, Release::Expired, now), now)
                        .await
                })
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
            let mut progressed = false;
            for r in results {
                if r? {
                    report.expired += 1;
                    progressed = true;
                } else {
                    report.skipped += 1;
                }
            }
            // A short page is the last; a page of only skips means the index lags behind
            // our own writes, and reading it again would loop.
            if overdue.len() < PAGE as usize || !progressed {
                break;
            }
        }
        tracing::info!(expired = report.expired, skipped = report.skipped, "sweep done");
        Ok(report)
    }
}

impl From<StoreError> for lambda_http::lambda_runtime::Diagnostic {
    fn from(e: StoreError) -> Self {
        Self { error_type: "StoreError".into(), error_message: e.to_string() }
    }
}

/// Runs the Lambda loop for scheduled events. A failed run returns an error, so it shows up in
/// the function's error metrics; the next run (a minute later) picks up where it stopped.
pub async fn serve<S: OrderStore + 'static>(sweeper: Sweeper<S>) -> Result<(), lambda_http::Error> {
    use lambda_http::lambda_runtime::{LambdaEvent, run, service_fn};
    let sweeper = std::sync::Arc::new(sweeper);
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let sweeper = sweeper.clone();
        async move { sweeper.handle(event.payload).await }
    }))
    .await
}
