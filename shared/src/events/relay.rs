//! The outbox relay: the sweeper's second chance for events that were committed but never
//! published (Kafka was down, the function timed out between commit and publish, ...).
//!
//! Pending events are exactly the outbox items still in the sparse `gsi1` partition `OUTBOX`,
//! sorted by event id; ids are UUIDv7, so "older than the threshold" is a key condition
//! (`gsi1sk < <smallest v7 id of that millisecond>`) and the query reads nothing else: no scan,
//! no filter. The threshold (`OUTBOX_REPUBLISH_AFTER_SECONDS`, default 30) leaves the function
//! that wrote an event time to publish it itself; publishing one twice is harmless anyway (the
//! notifier is idempotent per event id), it only costs a message.

use super::event::Event;
use super::publisher::Publisher;
use crate::store::{OutboxStore, StoreError};
use serde::Serialize;

/// Events read per query page.
const PAGE: u32 = 100;
/// Pages per run at most: a long outage's backlog is worked off over several runs.
const MAX_PAGES: usize = 20;
pub const DEFAULT_REPUBLISH_AFTER: time::Duration = time::Duration::seconds(30);

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct RelayReport {
    /// Published and marked.
    pub republished: usize,
    /// Still pending (Kafka still down): the next run tries again.
    pub still_pending: usize,
}

/// `OUTBOX_REPUBLISH_AFTER_SECONDS`, default 30.
pub fn republish_after_from_env() -> Result<time::Duration, crate::config::ConfigError> {
    let raw = std::env::var("OUTBOX_REPUBLISH_AFTER_SECONDS").ok().filter(|s| !s.trim().is_empty());
    match raw {
        None => Ok(DEFAULT_REPUBLISH_AFTER),
        Some(s) => s.trim().parse::<i64>().ok().filter(|n| *n >= 0).map(time::Duration::seconds).ok_or(
            crate::config::ConfigError::Invalid {
                name: "OUTBOX_REPUBLISH_AFTER_SECONDS",
                why: "must be a whole number of seconds".into(),
            },
        ),
    }
}

/// Publishes every event still pending that occurred before `now - after`, oldest first.
pub async fn republish_pending<O: OutboxStore>(
    outbox: &O,
    publisher: &Publisher,
    now: time::OffsetDateTime,
    after: time::Duration,
) -> Result<RelayReport, StoreError> {
    let mut report = RelayReport::default();
    if !publisher.is_enabled() {
        return Ok(report);
    }
    let before = now - after;
    for _ in 0..MAX_PAGES {
        let pending: Vec<Event> = outbox.pending_events(before, PAGE).await?;
        let published = publisher.publish_pending(outbox, &pending).await;
        report.republished += published;
        report.still_pending += pending.len() - published;
        // A short page is the last; a page that published nothing means Kafka is still down.
        if pending.len() < PAGE as usize || published == 0 {
            break;
        }
    }
    if report != RelayReport::default() {
        tracing::info!(republished = report.republished, still_pending = report.still_pending, "outbox relay done");
    }
    Ok(report)
}
