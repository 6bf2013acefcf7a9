//! The backstop of the stream path: events the relay never delivered get a second trip.
//!
//! The outbox relay is fed by the table's DynamoDB stream, and a stream record can be given up
//! on: the relay failed it more often than the event source mapping retries (Kafka down for
//! longer than that), it went to the on-failure queue, or it aged out of the stream's 24 hours.
//! Its outbox item then still sits in the sparse `gsi1` queue `OUTBOX#<shard>` (only the relay's
//! "published" mark takes it out). The sweeper finds those older than a threshold, oldest first,
//! with a key condition on the time-ordered ids (no scan), and **touches** each one (one more
//! `redrives`): that write is a new stream record with the item still pending, so the stream delivers it
//! to the relay again. The relay stays the one producer; the sweeper never talks to Kafka.
//!
//! The threshold (`OUTBOX_REDRIVE_AFTER_SECONDS`, default 300) leaves the stream path its own
//! retries first; a redrive that races a late delivery only costs a duplicate message, which the
//! notifier ignores (one e-mail per event id). An event that can never be produced is redriven on
//! every sweep and lands in the on-failure queue every time, where its alarm asks for a human:
//! loud, never lost.

use crate::store::{OutboxStore, StoreError};
use serde::Serialize;

/// Events read per query page.
const PAGE: u32 = 100;
/// Pages per run at most: a long outage's backlog is worked off over several runs.
const MAX_PAGES: usize = 20;
pub const DEFAULT_REDRIVE_AFTER: time::Duration = time::Duration::minutes(5);

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct RedriveReport {
    /// Touched: the stream carries them to the relay again.
    pub redriven: usize,
    /// Published between the query and the touch: nothing to do.
    pub published_meanwhile: usize,
    /// The touch failed (the next run tries again).
    pub failed: usize,
}

/// `OUTBOX_REDRIVE_AFTER_SECONDS`, default 300.
pub fn redrive_after_from_env() -> Result<time::Duration, crate::config::ConfigError> {
    crate::config::seconds_from_env("OUTBOX_REDRIVE_AFTER_SECONDS", DEFAULT_REDRIVE_AFTER.whole_seconds())
        .map(time::Duration::seconds)
}

/// Redrives every event still pending that occurred before `now - after`, oldest first.
pub async fn redrive_pending<O: OutboxStore>(
    outbox: &O,
    now: time::OffsetDateTime,
    after: time::Duration,
) -> Result<RedriveReport, StoreError> {
    let mut report = RedriveReport::default();
    let before = now - after;
    let mut after = None;
    for _ in 0..MAX_PAGES {
        let pending = outbox.pending_events(before, after, PAGE).await?;
        for id in &pending {
            match outbox.redrive(*id, now).await {
                Ok(true) => report.redriven += 1,
                Ok(false) => report.published_meanwhile += 1,
                Err(e) => {
                    tracing::warn!(event_id = %id, error = %e, "could not redrive a pending event");
                    report.failed += 1;
                }
            }
        }
        // Redriven items stay in the index until the relay marks them: read on past them.
        after = pending.last().copied();
        if pending.len() < PAGE as usize {
            break;
        }
    }
    Ok(report)
}
