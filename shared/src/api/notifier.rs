//! The notifier (Amazon MSK trigger): turns domain events from Kafka into e-mails, once each.
//!
//! Lambda's event source mapping polls the topic and invokes this function with a batch: records
//! grouped by `"<topic>-<partition>"`, each value the base64 of an event's JSON. Records are
//! handled concurrently, at most `NOTIFIER_CONCURRENCY` (default 8) at a time — SES calls are
//! network-bound, and the bound keeps a big batch within SES's send rate.
//!
//! Per batch:
//! - each record is decoded and rendered: not base64 / not an event / a type this notifier does not
//!   know or that has no e-mail / no recipient → **logged and skipped** (a poison record must never
//!   block its partition); copies of one event in the batch are handled once;
//! - one read of the events' e-mail records (`store::dynamo::sent_emails`) drops those sent (or
//!   refused) before: a redelivered batch, or an event produced twice, sends nothing twice;
//! - the rest are sent with SESv2, at most `NOTIFIER_CONCURRENCY` at a time;
//! - what SES accepted, and what it **refused for good** (an address it cannot or may not send to,
//!   see `email::sender`), is recorded in one batched write. A refusal is logged with
//!   `metric = "email_refused"` (a CloudWatch metric filter counts it) and never retried.
//!
//! If any send failed for another reason (SES unreachable, throttled past the SDK's retries, the
//! account paused) the invocation fails after the rest of the batch was sent and recorded, so the
//! trigger delivers the batch again (a bounded number of times, then to its dead-letter queue);
//! what went out meanwhile is skipped by its record.

use crate::email::Email;
use crate::email::sender::{MailSender, SendError};
use crate::email::templates::{RenderError, Templates};
use crate::events::event::{Event, EventType};
use crate::store::{EmailRecord, SentEmails};
use aws_lambda_events::event::kafka::{KafkaEvent, KafkaRecord};
use base64::Engine;
use futures::StreamExt;
use serde::Serialize;
use std::collections::HashSet;
use uuid::Uuid;

pub const DEFAULT_CONCURRENCY: usize = 8;

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
        let concurrency = crate::config::bounded_from_env("NOTIFIER_CONCURRENCY", DEFAULT_CONCURRENCY, 1..=64)?;
        Ok(Self { sender_email, concurrency })
    }
}

/// What one invocation did; the function's result.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct NotifyReport {
    pub sent: usize,
    /// Sent (or refused) by an earlier delivery: nothing done.
    pub already_sent: usize,
    /// Refused by SES for good: recorded, never tried again.
    pub refused: usize,
    /// Bad records and events without an e-mail.
    pub skipped: usize,
    /// Not sent this time (SES or DynamoDB failing): the batch is delivered again.
    pub failed: usize,
}

impl crate::metrics::Counted for NotifyReport {
    fn count(&self) {
        use crate::metrics::{count, names};
        count(names::EMAILS_SENT, self.sent);
        count(names::EMAILS_REFUSED, self.refused);
        count(names::EMAILS_FAILED, self.failed);
    }
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

pub struct Notifier<M, S> {
    pub markers: M,
    pub sender: S,
    pub templates: Templates,
    pub concurrency: usize,
}

impl<M: SentEmails, S: MailSender> Notifier<M, S> {
    pub async fn handle(&self, batch: &KafkaEvent) -> Result<NotifyReport, NotifyError> {
        let mut report = NotifyReport::default();
        let mut seen = HashSet::new();
        let mut ready: Vec<(Event, Email)> = Vec::new();
        for record in batch.records.values().flatten() {
            let Some(event) = self.usable(record) else {
                report.skipped += 1;
                continue;
            };
            if !seen.insert(event.id) {
                continue;
            }
            match self.templates.render(&event) {
                Ok(email) => ready.push((event, email)),
                Err(RenderError::NoEmail(t)) => {
                    tracing::info!(event_id = %event.id, event_type = %t, "no e-mail for this event type");
                    report.skipped += 1;
                }
                Err(e) => {
                    tracing::warn!(event_id = %event.id, error = %e, "event skipped");
                    report.skipped += 1;
                }
            }
        }

        let ids: Vec<Uuid> = ready.iter().map(|(e, _)| e.id).collect();
        let settled = match self.markers.settled(&ids).await {
            Ok(settled) => settled,
            Err(e) => {
                tracing::error!(error = %e, "could not read the e-mail records; the batch will be redelivered");
                report.failed = ready.len();
                return Err(NotifyError { report });
            }
        };
        ready.retain(|(e, _)| !settled.contains(&e.id));
        report.already_sent = ids.len() - ready.len();

        let outcomes: Vec<(Event, Result<String, SendError>)> = futures::stream::iter(ready)
            .map(|(event, email)| async move {
                let sent = self.sender.send(&email).await;
                (event, sent)
            })
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        let mut records = Vec::new();
        for (event, outcome) in outcomes {
            let (id, event_type) = (event.id, event.event_type());
            match outcome {
                Ok(message_id) => {
                    tracing::info!(event_id = %id, %event_type, message_id, "e-mail sent");
                    report.sent += 1;
                    records.push((id, EmailRecord::Sent { message_id }));
                }
                Err(SendError::Refused(reason)) => {
                    tracing::warn!(event_id = %id, %event_type, reason, metric = "email_refused",
                        "SES refused the e-mail for good; recorded, not retried");
                    report.refused += 1;
                    records.push((id, EmailRecord::Refused { reason }));
                }
                Err(e @ SendError::Failed(_)) => {
                    tracing::error!(event_id = %id, %event_type, error = %e, "e-mail not sent");
                    report.failed += 1;
                }
            }
        }
        if let Err(e) = self.markers.record(&records, time::OffsetDateTime::now_utc()).await {
            // Sent but not recorded: a redelivery would send them again. Failing the batch would
            // make that certain, so only say it loudly.
            tracing::error!(error = %e, records = records.len(), metric = "email_records_lost",
                "e-mails sent but not recorded");
        }
        tracing::info!(
            sent = report.sent,
            already_sent = report.already_sent,
            refused = report.refused,
            skipped = report.skipped,
            failed = report.failed,
            "batch done"
        );
        if report.failed > 0 { Err(NotifyError { report }) } else { Ok(report) }
    }

    /// The record's event, or `None` (logged) when it is not one this notifier can read.
    fn usable(&self, record: &KafkaRecord) -> Option<Event> {
        match decode(record) {
            Ok(event) => Some(event),
            Err(why) => {
                tracing::warn!(topic = ?record.topic, partition = record.partition, offset = record.offset, why,
                    "bad record skipped");
                None
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
        async move {
            let records = event.payload.records.values().map(Vec::len).sum();
            crate::metrics::record(crate::metrics::names::BATCH_SIZE, records);
            let result = notifier.handle(&event.payload).await;
            match &result {
                Ok(report) => crate::metrics::Counted::count(report),
                Err(e) => crate::metrics::Counted::count(&e.report),
            }
            crate::metrics::flush(&event.context.request_id);
            result
        }
    }))
    .await
}
