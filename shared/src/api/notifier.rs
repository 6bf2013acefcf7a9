//! The notifier (Amazon MSK trigger): turns domain events from Kafka into e-mails, once each.
//!
//! Lambda's event source mapping polls the topic and invokes this function with a batch: records
//! grouped by `"<topic>-<partition>"`, each value the base64 of an event's JSON. Records are
//! handled concurrently, at most `NOTIFIER_CONCURRENCY` (default 8) at a time — SES calls are
//! network-bound, and the bound keeps a big batch within SES's send rate.
//!
//! Per record:
//! - not base64 / not an event / a type this notifier does not know or that has no e-mail / no
//!   recipient: **logged and skipped** (a poison record must never block its partition);
//! - otherwise claim the event's marker, send with SESv2, confirm the marker
//!   (see `store::dynamo::sent_emails`): an event already sent is not sent again, so a
//!   redelivered batch, or an event published twice by the relay, sends nothing twice.
//!
//! If any send fails the invocation fails (after the rest of the batch was tried), so Lambda
//! delivers the batch again; what was sent in the meantime is then skipped by its marker.

use crate::email::Email;
use crate::email::sender::MailSender;
use crate::email::templates::{RenderError, Templates};
use crate::events::event::{Event, EventType};
use crate::store::{EmailClaim, SentEmails};
use aws_lambda_events::event::kafka::{KafkaEvent, KafkaRecord};
use base64::Engine;
use futures::StreamExt;
use serde::Serialize;

pub const DEFAULT_CONCURRENCY: usize = 8;
/// How long a claim keeps other deliveries off an event: longer than the function timeout, so
/// only a sender that died (never a slow one) loses its claim.
pub const CLAIM_LEASE: time::Duration = time::Duration::minutes(2);

/// `SENDER_EMAIL` (the verified From identity) and `NOTIFIER_CONCURRENCY`.
#[derive(Debug, Clone)]
pub struct NotifierConfig {
    pub sender_email: String,
    pub concurrency: usize,
}

impl NotifierConfig {
    pub fn from_env() -> Result<Self, crate::config::ConfigError> {
        use crate::config::ConfigError;
        let sender_email = std::env::var("SENDER_EMAIL")
            .ok()
            .filter(|s| s.contains('@'))
            .ok_or(ConfigError::Missing("SENDER_EMAIL"))?;
        let concurrency = match std::env::var("NOTIFIER_CONCURRENCY").ok().filter(|s| !s.trim().is_empty()) {
            None => DEFAULT_CONCURRENCY,
            Some(s) => s
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=64).contains(n))
                .ok_or(ConfigError::Invalid { name: "NOTIFIER_CONCURRENCY", why: "must be 1 to 64".into() })?,
        };
        Ok(Self { sender_email, concurrency })
    }
}

/// What one invocation did; the function's result.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct NotifyReport {
    pub sent: usize,
    /// Sent by an earlier delivery: nothing done.
    pub already_sent: usize,
    /// Bad records and events without an e-mail.
    pub skipped: usize,
    /// Not sent this time (SES or DynamoDB failing, or another delivery sending it right now).
    pub failed: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("{} of the batch's e-mails failed; the batch will be redelivered ({report:?})", report.failed)]
pub struct NotifyError {
    pub report: NotifyReport,
}

impl From<NotifyError> for lambda_http::lambda_runtime::Diagnostic {
    fn from(e: NotifyError) -> Self {
        Self { error_type: "NotifyError".into(), error_message: e.to_string() }
    }
}

enum Outcome {
    Sent,
    AlreadySent,
    Skipped,
    Failed,
}

pub struct Notifier<M, S> {
    pub markers: M,
    pub sender: S,
    pub templates: Templates,
    pub concurrency: usize,
}

impl<M: SentEmails, S: MailSender> Notifier<M, S> {
    pub async fn handle(&self, batch: &KafkaEvent) -> Result<NotifyReport, NotifyError> {
        // The same event can be in a batch twice (published by its function and again by the
        // relay): handle it once, or the copies would race for its claim and fail the batch.
        let mut seen = std::collections::HashSet::new();
        let records = batch.records.values().flatten().filter(|r| r.value.is_none() || seen.insert(r.value.clone()));
        let outcomes: Vec<Outcome> = futures::stream::iter(records)
            .map(|r| self.record(r))
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        let mut report = NotifyReport::default();
        for outcome in outcomes {
            match outcome {
                Outcome::Sent => report.sent += 1,
                Outcome::AlreadySent => report.already_sent += 1,
                Outcome::Skipped => report.skipped += 1,
                Outcome::Failed => report.failed += 1,
            }
        }
        tracing::info!(
            sent = report.sent,
            already_sent = report.already_sent,
            skipped = report.skipped,
            failed = report.failed,
            "batch done"
        );
        if report.failed > 0 { Err(NotifyError { report }) } else { Ok(report) }
    }

    async fn record(&self, record: &KafkaRecord) -> Outcome {
        let event = match decode(record) {
            Ok(event) => event,
            Err(why) => {
                tracing::warn!(topic = ?record.topic, partition = record.partition, offset = record.offset, why,
                    "bad record skipped");
                return Outcome::Skipped;
            }
        };
        match self.templates.render(&event) {
            Ok(email) => self.deliver(&event, &email).await,
            Err(RenderError::NoEmail(t)) => {
                tracing::info!(event_id = %event.id, event_type = %t, "no e-mail for this event type");
                Outcome::Skipped
            }
            Err(e) => {
                tracing::warn!(event_id = %event.id, error = %e, "event skipped");
                Outcome::Skipped
            }
        }
    }

    /// Claim, send, confirm: at most one delivery sends, and a failure leaves it to the next.
    async fn deliver(&self, event: &Event, email: &Email) -> Outcome {
        let id = event.id;
        match self.markers.claim_email(id, time::OffsetDateTime::now_utc(), CLAIM_LEASE).await {
            Ok(EmailClaim::Claimed) => {}
            Ok(EmailClaim::AlreadySent) => return Outcome::AlreadySent,
            Ok(EmailClaim::InFlight) => {
                tracing::warn!(event_id = %id, "another delivery is sending this e-mail; retrying later");
                return Outcome::Failed;
            }
            Err(e) => {
                tracing::error!(event_id = %id, error = %e, "could not claim the e-mail");
                return Outcome::Failed;
            }
        }
        match self.sender.send(email).await {
            Ok(message_id) => {
                if let Err(e) = self.markers.mark_sent(id, &message_id, time::OffsetDateTime::now_utc()).await {
                    // The claim stays: a redelivery within the lease sees InFlight, after it resends.
                    tracing::error!(event_id = %id, error = %e, "e-mail sent but not recorded");
                }
                tracing::info!(event_id = %id, event_type = %event.event_type(), message_id, "e-mail sent");
                Outcome::Sent
            }
            Err(e) => {
                tracing::error!(event_id = %id, error = %e, "e-mail not sent");
                if let Err(e) = self.markers.release_claim(id).await {
                    tracing::error!(event_id = %id, error = %e, "claim not released; it expires with its lease");
                }
                Outcome::Failed
            }
        }
    }
}

/// base64 value → typed event. A `type` this build does not know (a newer producer's) is said
/// so, apart from a known type whose data is malformed.
fn decode(record: &KafkaRecord) -> Result<Event, String> {
    let value = record.value.as_deref().ok_or("no value")?;
    let bytes =
        base64::engine::general_purpose::STANDARD.decode(value).map_err(|e| format!("value not base64: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        let t = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["type"].as_str().map(str::to_owned));
        match t {
            Some(t) if EventType::parse(&t).is_none() => format!("event type {t:?} unknown here"),
            _ => format!("value not an event: {e}"),
        }
    })
}

/// Runs the Lambda loop for MSK batches.
pub async fn serve<M, S>(notifier: Notifier<M, S>) -> Result<(), lambda_http::Error>
where
    M: SentEmails + 'static,
    S: MailSender + 'static,
{
    use lambda_http::lambda_runtime::{LambdaEvent, run, service_fn};
    let notifier = std::sync::Arc::new(notifier);
    run(service_fn(move |event: LambdaEvent<KafkaEvent>| {
        let notifier = notifier.clone();
        async move { notifier.handle(&event.payload).await }
    }))
    .await
}
