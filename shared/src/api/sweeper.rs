//! The scheduled sweeper (EventBridge, every minute): expires unpaid orders past their
//! reservation deadline and releases their units, then redrives outbox events the stream path
//! gave up on.
//!
//! Overdue orders come from the sparse `PENDING#<shard>` index queue, never a scan. Each is expired by the same
//! conditional release transaction as a cancel (which writes its `order.expired` event to the
//! outbox, like every state change), so two sweepers at once, or a sweeper racing a cancel,
//! release each order once. "Now" is the schedule event's `time`: a delayed or replayed event
//! expires only what was due at its time.
//!
//! One order that cannot be expired (the store refuses it, its item does not decode) is counted
//! and logged, and the sweep carries on with the others: a single bad order must never switch off
//! expiry for everyone, nor the redrive after it, which runs whatever the expiry found
//! (`events::redrive`). The run fails (and shows in the function's error metrics) only if a step
//! could not run at all.
//!
//! No HTTP request is behind an expiry: its `order.expired` event carries the sweeper run's
//! invocation id (`crate::trace`), which the run logs under, so the expired orders, their events
//! and e-mails are found from the run.

use crate::domain::order::Release;
use crate::events::event::{Event, OrderExpired, Payload};
use crate::events::redrive::{self, RedriveReport};
use crate::store::{OutboxStore, ReleaseStore, StoreError};
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
    /// Could not be expired this run (logged one by one); the next run tries again.
    pub failed: usize,
    /// The outbox redrive.
    pub outbox: RedriveReport,
}

impl crate::metrics::Counted for SweepReport {
    fn count(&self) {
        use crate::metrics::{count, names};
        count(names::ORDERS_EXPIRED, self.expired);
        count(names::EVENTS_REDRIVEN, self.outbox.redriven);
    }
}

pub struct Sweeper<S> {
    pub store: S,
    /// Pending events younger than this are left to the stream path.
    pub redrive_after: time::Duration,
}

enum Expiry {
    Expired,
    Skipped,
    Failed,
}

impl<S: ReleaseStore + OutboxStore + 'static> crate::schedule::Scheduled for Sweeper<S> {
    type Report = SweepReport;

    /// `now` is the EventBridge scheduled event's `time`.
    async fn run(&self, now: time::OffsetDateTime, trace: &crate::trace::Trace) -> Result<SweepReport, StoreError> {
        let mut report = SweepReport::default();
        // Boxed: the nested futures of a page of transactions are too deep a type otherwise.
        let expiry = Box::pin(self.expire_overdue(now, trace, &mut report)).await;
        // Whatever happened above, the backstop of the event path runs.
        let redrive = redrive::redrive_pending(&self.store, now, self.redrive_after).await;
        // A successful run's report is logged by `schedule::serve`; a failed one returns no
        // report, so what the expiry did is logged here.
        if expiry.is_err() || redrive.is_err() {
            tracing::warn!(
                expired = report.expired,
                skipped = report.skipped,
                failed = report.failed,
                metric = "sweeper.expiry_failed",
                "sweep failed"
            );
        }
        report.outbox = redrive?;
        expiry?;
        Ok(report)
    }
}

impl<S: ReleaseStore + OutboxStore> Sweeper<S> {
    /// Expires what is overdue at `now`; the `order.expired` events carry the run's `trace`.
    async fn expire_overdue(
        &self,
        now: time::OffsetDateTime,
        trace: &crate::trace::Trace,
        report: &mut SweepReport,
    ) -> Result<(), StoreError> {
        for _ in 0..MAX_PAGES {
            let overdue = self.store.overdue_orders(now, PAGE).await?;
            let read = overdue.len();
            // Owned items: the future must be `Send` for every borrow, which a `&Order` closure is not.
            let results: Vec<Expiry> = futures::stream::iter(overdue)
                .map(|order| async move {
                    let order = match order {
                        Ok(order) => order,
                        Err(e) => {
                            tracing::error!(error = %e, "an overdue order cannot be read");
                            return Expiry::Failed;
                        }
                    };
                    let now = time::OffsetDateTime::now_utc();
                    let event = Event::new(now, Payload::OrderExpired(OrderExpired { order: (&order).into() }))
                        .with_trace(trace);
                    match self.store.release_order(&order, Release::Expired, &event, now).await {
                        Ok(true) => {
                            tracing::info!(order_id = %order.id, "order expired");
                            Expiry::Expired
                        }
                        Ok(false) => Expiry::Skipped,
                        Err(e) => {
                            tracing::error!(order_id = %order.id, error = %e, "could not expire an overdue order");
                            Expiry::Failed
                        }
                    }
                })
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
            let mut progressed = false;
            for r in results {
                match r {
                    Expiry::Expired => {
                        report.expired += 1;
                        progressed = true;
                    }
                    Expiry::Skipped => report.skipped += 1,
                    Expiry::Failed => report.failed += 1,
                }
            }
            // A short page is the last; a page without one expiry means the index lags behind
            // our own writes (or holds only orders that fail), and reading it again would loop.
            if read < PAGE as usize || !progressed {
                break;
            }
        }
        Ok(())
    }
}
