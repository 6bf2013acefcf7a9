//! The scheduled sweeper (EventBridge, every minute): expires unpaid orders past their
//! reservation deadline and releases their units.
//!
//! Overdue orders come from the sparse `PENDING` index, never a scan. Each is expired by the same
//! conditional release transaction as a cancel, so two sweepers at once, or a sweeper racing a
//! cancel, release each order once. "Now" is the schedule event's `time`: a delayed or replayed
//! event expires only what was due at its time.
//!
//! Then it publishes the expiry events, and runs the outbox relay (`events::relay`): events other
//! functions committed but could not publish (Kafka was down) go out now.

use super::orders::release_event;
use crate::domain::order::Release;
use crate::events::event::Event;
use crate::events::publisher::Publisher;
use crate::events::relay::{self, RelayReport};
use crate::store::{OrderStore, OutboxStore, StoreError};
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
    /// The outbox relay's run.
    pub outbox: RelayReport,
}

pub struct Sweeper<S> {
    pub store: S,
    pub events: Publisher,
    /// Pending events younger than this are left to the function that wrote them.
    pub republish_after: time::Duration,
}

impl<S: OrderStore + OutboxStore + 'static> crate::schedule::Scheduled for Sweeper<S> {
    type Report = SweepReport;

    /// `now` is the EventBridge scheduled event's `time`.
    async fn run(&self, now: time::OffsetDateTime) -> Result<SweepReport, StoreError> {
        let mut report = SweepReport::default();
        for _ in 0..MAX_PAGES {
            let overdue = self.store.overdue_orders(now, PAGE).await?;
            let read = overdue.len();
            // Owned items: the future must be `Send` for every borrow, which a `&Order` closure is not.
            let results: Vec<Result<Option<Event>, StoreError>> = futures::stream::iter(overdue)
                .map(|order| async move {
                    let now = time::OffsetDateTime::now_utc();
                    let event = release_event(&order, Release::Expired, now);
                    let released = self.store.release_order(&order, Release::Expired, &event, now).await?;
                    Ok(released.then_some(event))
                })
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
            let mut expired = Vec::new();
            for r in results {
                match r? {
                    Some(event) => expired.push(event),
                    None => report.skipped += 1,
                }
            }
            let progressed = !expired.is_empty();
            report.expired += expired.len();
            self.events.publish_pending(&self.store, &expired).await;
            // A short page is the last; a page of only skips means the index lags behind
            // our own writes, and reading it again would loop.
            if read < PAGE as usize || !progressed {
                break;
            }
        }
        report.outbox = relay::republish_pending(&self.store, &self.events, now, self.republish_after).await?;
        tracing::info!(expired = report.expired, skipped = report.skipped, "sweep done");
        Ok(report)
    }
}
