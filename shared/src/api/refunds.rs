//! The refund worker (EventBridge, every minute): pays back every charge a settlement decided
//! must go back, and settles each refund record exactly once.
//!
//! A refund record is written in the same transaction as the decision that needs it (a second
//! charge for a paid order, a charge for the wrong amount, a payment after the customer
//! cancelled, a late payment whose units are gone; see `domain::payment`), keyed by the charge, so
//! one charge is refunded at most once whatever delivered its outcome how often. While requested it
//! sits in the sparse `gsi1` partition `REFUNDS`, oldest first; the worker reads it there (no scan):
//!
//! 1. asks the gateway to refund the charge (`POST /gateway/refunds`) with `Idempotency-Key:
//!    refund-<charge id>`, so a retry after a lost answer or a crash never pays back twice;
//! 2. on success, one transaction moves the record `REQUESTED → REFUNDED` (conditional on
//!    `REQUESTED`: a second worker finds nothing to do) with its `refund.completed` event;
//! 3. if the gateway refuses (the charge is unknown to it, already refunded elsewhere, not
//!    refundable), the record becomes `FAILED` and moves to the partition `REFUNDS_FAILED`, logged
//!    with `metric = "refund_failed"`: money is still owed, and a human must act (the admin's
//!    `GET /refunds` lists it);
//! 4. if the gateway is unreachable, nothing changes and the next run tries again.
//!
//! One refund that cannot be processed never stops the others.
//!
//! Each refund is handled, and logged, under a `trace` span with the ids of the request whose
//! settlement opened it (the webhook's or the payment's, see `crate::trace`), and its
//! `refund.completed` event carries them: the refund is part of that order's path. A refund opened
//! before traces existed gets the worker run's own ids.

use crate::domain::refund::Refund;
use crate::events::event::{Event, Payload, RefundCompleted};
use crate::payments::gateway::{GatewayClient, GatewayError, RefundRequest};
use crate::store::{RefundStore, StoreError};
use serde::Serialize;

/// Refunds handled per run; the next run continues.
const PAGE: u32 = 100;

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct RefundReport {
    pub refunded: usize,
    /// Refused by the gateway: a human must act.
    pub failed: usize,
    /// The gateway or the store could not be reached: the next run tries again.
    pub retry_later: usize,
}

impl crate::metrics::Counted for RefundReport {
    fn count(&self) {
        use crate::metrics::{count, names};
        count(names::REFUNDS_PAID, self.refunded);
        count(names::REFUNDS_FAILED, self.failed);
    }
}

pub struct RefundWorker<S> {
    pub store: S,
    pub gateway: GatewayClient,
}

enum Done {
    Refunded,
    Failed,
    RetryLater,
}

impl<S: RefundStore + 'static> crate::schedule::Scheduled for RefundWorker<S> {
    type Report = RefundReport;

    async fn run(&self, now: time::OffsetDateTime, run: &crate::trace::Trace) -> Result<RefundReport, StoreError> {
        use tracing::Instrument;
        let mut report = RefundReport::default();
        for refund in self.store.open_refunds(PAGE).await? {
            let trace = refund.trace.clone().unwrap_or_else(|| run.clone());
            let span = crate::trace::Trace::span(Some(&trace));
            // Boxed: the gateway call's future inside the span is too deep a type for rustc otherwise.
            match Box::pin(self.refund(&refund, now, &trace)).instrument(span).await {
                Done::Refunded => report.refunded += 1,
                Done::Failed => report.failed += 1,
                Done::RetryLater => report.retry_later += 1,
            }
        }
        Ok(report)
    }
}

impl<S: RefundStore> RefundWorker<S> {
    async fn refund(&self, refund: &Refund, now: time::OffsetDateTime, trace: &crate::trace::Trace) -> Done {
        let request = RefundRequest {
            charge_id: refund.charge_id.clone(),
            amount: refund.amount.amount,
            currency: refund.amount.currency,
        };
        let key = format!("refund-{}", refund.charge_id);
        match self.gateway.refund(&key, &request).await {
            Ok(paid_back) => {
                let event = Event::new(now, Payload::RefundCompleted(RefundCompleted::of(refund, &paid_back.id)))
                    .with_trace(trace);
                match self.store.complete_refund(refund, &paid_back.id, &event, now).await {
                    Ok(true) => {
                        tracing::info!(refund_id = %refund.id, charge_id = refund.charge_id, gateway_refund = paid_back.id, "refunded");
                        Done::Refunded
                    }
                    // Another run completed it: nothing left to do.
                    Ok(false) => Done::Refunded,
                    Err(e) => {
                        tracing::error!(refund_id = %refund.id, error = %e, "refunded but not recorded; the next run records it");
                        Done::RetryLater
                    }
                }
            }
            Err(GatewayError::Refused { status, message }) => {
                tracing::error!(refund_id = %refund.id, charge_id = refund.charge_id, status, message,
                    metric = "refund_failed", "the gateway refused the refund: a human must act");
                match self.store.fail_refund(refund, &format!("gateway refused ({status}): {message}"), now).await {
                    Ok(()) => Done::Failed,
                    Err(e) => {
                        tracing::error!(refund_id = %refund.id, error = %e, "could not record the refused refund");
                        Done::RetryLater
                    }
                }
            }
            Err(e @ GatewayError::Unavailable(_)) => {
                tracing::warn!(refund_id = %refund.id, error = %e, "gateway unavailable; the next run retries");
                Done::RetryLater
            }
        }
    }
}
