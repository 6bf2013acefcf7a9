//! Delivering one webhook like a real provider: sign the stored body afresh
//! (`Payment-Signature: t=<now>,v1=…`, see `payments::signature`), `POST` it, and count only a
//! 2xx as delivered.
//!
//! Two layers of retry: a few quick ones inside the invocation ([`QUICK_ATTEMPTS`], jittered
//! backoff, for a blip), then the stored schedule: a failed delivery is put back in the due index
//! [`next_due`] later (30 s, 1 min, 2 min, … capped at an hour) and the scheduled function tries
//! again, forever, until a 2xx. Delivery is at-least-once: the receiver dedupes on the event id.

use crate::mock_gateway::store::{Delivery, GatewayStore};
use crate::payments::signature;
use crate::store::StoreError;
use backon::{ExponentialBuilder, Retryable};
use secrecy::SecretString;
use std::time::Duration;

/// Tries within one invocation before leaving it to the schedule.
pub const QUICK_ATTEMPTS: usize = 3;
const FIRST_RETRY_SECS: i64 = 30;
const MAX_RETRY_SECS: i64 = 3600;

/// When to try again after `attempts` failed attempts.
pub fn next_due(attempts: u32, now: time::OffsetDateTime) -> time::OffsetDateTime {
    let exp = attempts.saturating_sub(1).min(20);
    let secs = FIRST_RETRY_SECS.saturating_mul(1_i64 << exp).min(MAX_RETRY_SECS);
    now + time::Duration::seconds(secs)
}

pub struct Deliverer {
    http: reqwest::Client,
    /// Signs with every secret (one `v1` each): during a rotation the gateway has two.
    secrets: Vec<SecretString>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Undelivered(String);

impl Deliverer {
    pub fn new(secrets: Vec<SecretString>) -> Result<Self, reqwest::Error> {
        Ok(Self { http: crate::payments::gateway::http_client()?, secrets })
    }

    /// Posts the webhook until a 2xx, at most [`QUICK_ATTEMPTS`] times. True when delivered.
    pub async fn attempt(&self, d: &Delivery) -> bool {
        let once = || async {
            let t = time::OffsetDateTime::now_utc().unix_timestamp();
            let resp = self
                .http
                .post(&d.url)
                .header("content-type", "application/json")
                .header(signature::HEADER, signature::sign(&self.secrets, t, d.body.as_bytes()))
                .body(d.body.clone())
                .send()
                .await
                .map_err(|e| Undelivered(e.to_string()))?;
            if resp.status().is_success() { Ok(()) } else { Err(Undelivered(format!("HTTP {}", resp.status()))) }
        };
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(1))
            .with_max_times(QUICK_ATTEMPTS - 1)
            .with_jitter();
        once.retry(backoff)
            .notify(|e, after| tracing::warn!(delivery = %d.id, error = %e, ?after, "webhook not accepted, retrying"))
            .await
            .is_ok()
    }

    /// Attempts `d` and records the result: delivered, or due again later.
    pub async fn deliver<S: GatewayStore>(&self, store: &S, d: &Delivery) -> Result<bool, StoreError> {
        let now = time::OffsetDateTime::now_utc();
        if self.attempt(d).await {
            store.delivered(d.id, now).await?;
            tracing::info!(delivery = %d.id, attempts = d.attempts + 1, "webhook delivered");
            Ok(true)
        } else {
            let attempts = d.attempts + 1;
            let due = next_due(attempts, now);
            store.reschedule(d.id, attempts, due).await?;
            tracing::warn!(delivery = %d.id, attempts, due = %due, "webhook undelivered, rescheduled");
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_an_hour() {
        let t0 = time::OffsetDateTime::UNIX_EPOCH;
        let waits: Vec<i64> = (1..=10).map(|a| (next_due(a, t0) - t0).whole_seconds()).collect();
        assert_eq!(waits[..4], [30, 60, 120, 240]);
        assert_eq!(waits[9], 3600);
        assert_eq!((next_due(u32::MAX, t0) - t0).whole_seconds(), 3600);
    }
}
