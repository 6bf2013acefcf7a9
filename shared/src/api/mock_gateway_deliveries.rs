//! The mock gateway's redelivery schedule (every minute): delivers every stored webhook that is
//! due, the delayed and late ones and those whose earlier attempts failed, and records each
//! result (delivered, or due again after a backoff; see `mock_gateway::delivery`).
//!
//! Because deliveries are items in the table, not tasks in memory, a restart loses nothing.
//! "Now" is the schedule event's `time`, so a test can run the schedule "an hour from now" to
//! release a late webhook without waiting for it.

use crate::mock_gateway::delivery::Deliverer;
use crate::mock_gateway::store::GatewayStore;
use crate::store::StoreError;
use futures::StreamExt;
use serde::Serialize;

/// Webhooks read per run; the rest wait for the next run.
const PAGE: u32 = 100;
/// Deliveries in flight at once.
const CONCURRENCY: usize = 8;

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct DeliveryReport {
    pub delivered: usize,
    /// Not accepted with a 2xx: rescheduled.
    pub failed: usize,
}

/// The mock gateway is a development tool: its deliveries are not the shop's figures.
impl crate::metrics::Counted for DeliveryReport {
    fn count(&self) {}
}

pub struct Deliveries<S> {
    pub store: S,
    pub deliverer: Deliverer,
}

impl<S: GatewayStore + 'static> crate::schedule::Scheduled for Deliveries<S> {
    type Report = DeliveryReport;

    async fn run(&self, now: time::OffsetDateTime, _: &crate::trace::Trace) -> Result<DeliveryReport, StoreError> {
        // One page per run: a failed delivery is rescheduled from the real clock, which may still
        // be before a `now` set in the future, and must not be retried again in this same run.
        let due = self.store.due_deliveries(now, PAGE).await?;
        let results: Vec<Result<bool, StoreError>> = futures::stream::iter(due)
            .map(|d| async move { self.deliverer.deliver(&self.store, &d).await })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut report = DeliveryReport::default();
        for r in results {
            if r? {
                report.delivered += 1;
            } else {
                report.failed += 1;
            }
        }
        Ok(report)
    }
}
