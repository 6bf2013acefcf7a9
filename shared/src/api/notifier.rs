//! The notifier (Amazon MSK trigger): turns domain events from Kafka into e-mails, once each.
//!
//! Lambda's event source mapping polls the topic and invokes this function with a batch: records
//! grouped by `"<topic>-<partition>"`, each value the base64 of an event's JSON. Records are
//! handled concurrently, at most `NOTIFIER_CONCURRENCY` (default 8) at a time — SES calls are
//! network-bound — and **paced** to the account's SES sending rate (`email::pace`: `GetAccount`'s
//! `SendQuota.MaxSendRate` read at cold start, or `NOTIFIER_MAX_SEND_RATE`, which wins).
//!
//! Per batch:
//! - each record is decoded and rendered: not base64 / not an event / a type this notifier does not
//!   know or that has no e-mail / no recipient → **logged and skipped** (a poison record must never
//!   block its partition); copies of one event in the batch are handled once;
//! - one read of the events' e-mail records (`store::dynamo::sent_emails`) drops those sent (or
//!   refused) before: a redelivered batch, or an event produced twice, sends nothing twice; an
//!   e-mail still **claimed** by an earlier attempt that never recorded SES's answer (it died, or
//!   gave up on a throttled record) has an **unknown outcome** — it may have gone out — and is
//!   sent again or let be by its kind (`email::unknown`: receipts and links again, courtesies
//!   not), counted as `EmailsOutcomeUnknown` and logged with `metric = "email_outcome_unknown"`;
//! - alongside it, one read of the recipients' accounts drops the e-mails nobody may get any more:
//!   those of a **closed account** (`DELETE /me`: no e-mail after it, events in flight included),
//!   and a password-reset link whose token is no longer the address's current one;
//! - the rest are sent with SESv2, at most `NOTIFIER_CONCURRENCY` at a time, each when the pace
//!   allows, none later than `email::pace::END_RESERVE` before the invocation's deadline (so that
//!   the records are always written: a timed-out invocation would send its batch again);
//! - a send SES **throttled** (its sending rate exceeded) was not accepted: it is tried again in
//!   this invocation after a backoff that holds the whole instance off, counted as
//!   `EmailsThrottled`; when its tries or the time run out it is **left for the redelivery**
//!   (not recorded), like a send that has not started in time;
//! - each send is **claimed** just before SES is called (a conditional write), and what SES
//!   accepted, or **refused for good** (an address it cannot or may not send to, see
//!   `email::sender`), is recorded at once, e-mail by e-mail; an e-mail SES surely did not take
//!   (it answered an error, was unreachable, or the send never started) has its claim released.
//!   SES's `SendEmail` takes no idempotency key, so between SES's answer and the record nothing
//!   can make a death harmless; the claim makes it *known*: the redelivery finds the claim and
//!   decides, instead of sending again blindly (the soak found both: a crash in a paced batch
//!   when records were written per batch, and records held in DynamoDB's throttling retries
//!   until the instance was killed). A send that got no answer at all (cut mid-request, timed
//!   out) keeps its claim for the same reason. A refusal is logged with
//!   `metric = "email_refused"` (a CloudWatch metric filter counts it) and never retried.
//!
//! If any send failed for another reason (SES unreachable, the day's quota used up, the account
//! paused), or was left for later, the invocation fails after the rest of the batch was sent and
//! recorded, so the trigger delivers the batch again (a bounded number of times, then to its
//! dead-letter queue); what went out meanwhile is skipped by its record. Throttling alone makes
//! progress on every delivery (the pace sends what the time allows), so it delays e-mail but
//! does not exhaust the retries of a batch the rate can send in time.
//!
//! Each e-mail's outcome is logged under a `trace` span with the ids of the request that caused
//! its event (`crate::trace`): the record's `request_id`/`trace_id` headers (the relay's), else the
//! event's `trace`; so the buyer's request id finds the line saying their e-mail went out.

use crate::email::Email;
use crate::email::pace::{self, AfterThrottle, Pace, Pacer};
use crate::email::sender::{MailSender, SendError};
use crate::email::templates::{RenderError, Templates};
use crate::email::unknown::{AfterUnknown, after_unknown};
use crate::events::event::{Event, EventType, Payload};
use crate::store::{EmailRecord, EmailState, Recipients, SentEmails};
use aws_lambda_events::event::kafka::{KafkaEvent, KafkaRecord};
use base64::Engine;
use futures::StreamExt;
use serde::Serialize;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

pub const DEFAULT_CONCURRENCY: usize = 8;

/// `SENDER_EMAIL` (the verified From identity), `NOTIFIER_CONCURRENCY`,
/// `NOTIFIER_MAX_SEND_RATE` (e-mails a second; unset: the account's, from `GetAccount`) and
/// `STOREFRONT_URL` (where e-mailed links point; unset: e-mails give codes only).
#[derive(Debug, Clone)]
pub struct NotifierConfig {
    pub sender_email: String,
    pub concurrency: usize,
    pub max_send_rate: Option<f64>,
    pub storefront_url: Option<String>,
}

impl NotifierConfig {
    pub fn from_env() -> Result<Self, crate::config::ConfigError> {
        use crate::config::ConfigError;
        let sender_email = std::env::var("SENDER_EMAIL")
            .ok()
            .filter(|s| s.contains('@'))
            .ok_or(ConfigError::Missing("SENDER_EMAIL"))?;
        let concurrency = crate::config::bounded_from_env("NOTIFIER_CONCURRENCY", DEFAULT_CONCURRENCY, 1..=64)?;
        let max_send_rate = parse_rate(std::env::var("NOTIFIER_MAX_SEND_RATE").ok().as_deref())?;
        let storefront_url = std::env::var("STOREFRONT_URL").ok().filter(|u| !u.trim().is_empty());
        Ok(Self { sender_email, concurrency, max_send_rate, storefront_url })
    }
}

/// `NOTIFIER_MAX_SEND_RATE`: unset or empty is `None`; otherwise a positive number.
fn parse_rate(raw: Option<&str>) -> Result<Option<f64>, crate::config::ConfigError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s.parse::<f64>().ok().filter(|r| r.is_finite() && *r > 0.0).map(Some).ok_or_else(|| {
            crate::config::ConfigError::Invalid {
                name: "NOTIFIER_MAX_SEND_RATE",
                why: "must be a positive number of e-mails a second".into(),
            }
        }),
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
    /// For a closed account, or a reset token that is no longer the current one: never sent.
    pub dropped: usize,
    /// Not sent this time (SES or DynamoDB failing): the batch is delivered again.
    pub failed: usize,
    /// SES's throttling answers (each e-mail was tried again, or left for later).
    pub throttled: usize,
    /// Left for the batch's redelivery by SES's sending rate: throttled past this invocation's
    /// tries, or not started before its end.
    pub deferred: usize,
    /// Found claimed by an earlier attempt that never recorded SES's answer: sent again or let
    /// be by kind (`email::unknown`); each may have reached its customer twice, or not at all.
    pub unknown: usize,
}

impl crate::metrics::Counted for NotifyReport {
    fn count(&self) {
        use crate::metrics::{count, names};
        count(names::EMAILS_SENT, self.sent);
        count(names::EMAILS_REFUSED, self.refused);
        count(names::EMAILS_FAILED, self.failed + self.deferred);
        count(names::EMAILS_THROTTLED, self.throttled);
        count(names::EMAILS_OUTCOME_UNKNOWN, self.unknown);
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{} of the batch's e-mails failed and {} wait for SES's sending rate; the batch will be redelivered ({report:?})",
    report.failed, report.deferred)]
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
    /// The SES sending rate this instance keeps to.
    pub pace: Pace,
}

/// One e-mail's fate in this invocation.
enum Sent {
    Accepted(String),
    Refused(String),
    /// Not sent this time; [`SendError::Unknown`] when SES may have taken it all the same.
    Failed(SendError),
    /// Throttled past this invocation's tries, or not started in time: the redelivery sends it.
    Later,
    /// Its record changed since it was read (another copy of the event claimed it): not sent
    /// here; the batch fails so that its redelivery reads the record again.
    Taken,
}

/// An e-mail to send: its event, the rendered e-mail, and the attempt whose unknown outcome it
/// follows, if any (the claim must still be that attempt's).
type ToSend = (Event, Email, Option<u32>);

/// One e-mail's claim on its record: the attempt it follows, if any, and its own once made.
struct Claim {
    event: Uuid,
    after: Option<u32>,
    attempt: Option<u32>,
}

/// When this invocation may start sends, and until when it waits for an answer.
#[derive(Debug, Clone, Copy)]
struct Window {
    start_by: Instant,
    answers_by: Instant,
}

impl Window {
    fn new(time_left: Duration) -> Self {
        let now = Instant::now();
        Self {
            start_by: now + pace::sending_window(time_left),
            answers_by: now + time_left.saturating_sub(pace::RECORD_RESERVE),
        }
    }
}

/// How long the invocation has until `deadline_ms` (Lambda's, milliseconds since the epoch).
pub fn time_left(deadline_ms: u64) -> Duration {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Duration::from_millis(deadline_ms).saturating_sub(now)
}

/// What [`Notifier::handle`] assumes without a deadline: the template's `Timeout` (60 s).
pub const DEFAULT_TIME_LEFT: Duration = Duration::from_secs(60);

impl<M: SentEmails + Recipients, S: MailSender> Notifier<M, S> {
    /// The events of `ready` whose e-mail may still go out: not for a closed account (events in
    /// flight when it closed included), and a reset link only while its token is the address's
    /// current one (a newer request, a finished reset or a closed account make it moot).
    async fn wanted(&self, ready: &[(Event, Email)]) -> Result<HashSet<Uuid>, crate::store::StoreError> {
        let accounts: Vec<Uuid> = ready.iter().filter_map(|(e, _)| e.payload.account()).collect();
        // Each reset token hashed once: (event, (address, hash)).
        let (reset_events, resets): (Vec<Uuid>, Vec<(String, String)>) = ready
            .iter()
            .filter_map(|(e, _)| match &e.payload {
                Payload::PasswordResetRequested(r) => Some((e.id, (r.email.to_lowercase(), r.token.hash()))),
                _ => None,
            })
            .unzip();
        let now = time::OffsetDateTime::now_utc();
        let (closed, current) =
            tokio::try_join!(self.markers.closed_accounts(&accounts), self.markers.current_resets(&resets, now))?;
        let current_resets: HashSet<Uuid> = reset_events
            .iter()
            .zip(&resets)
            .filter(|(_, (_, hash))| current.contains(hash))
            .map(|(id, _)| *id)
            .collect();
        Ok(ready
            .iter()
            .filter(|(e, _)| match &e.payload {
                Payload::PasswordResetRequested(_) => current_resets.contains(&e.id),
                p => p.account().is_none_or(|a| !closed.contains(&a)),
            })
            .map(|(e, _)| e.id)
            .collect())
    }

    pub async fn handle(&self, batch: &KafkaEvent) -> Result<NotifyReport, NotifyError> {
        self.handle_within(batch, DEFAULT_TIME_LEFT).await
    }

    /// Handles a batch with `time_left` until the invocation's deadline.
    pub async fn handle_within(&self, batch: &KafkaEvent, time_left: Duration) -> Result<NotifyReport, NotifyError> {
        let window = Window::new(time_left);
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
        let (states, wanted) = tokio::join!(self.markers.states(&ids), self.wanted(&ready));
        let (states, wanted) = match (states, wanted) {
            (Ok(states), Ok(wanted)) => (states, wanted),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "could not read the e-mail records or the recipients' accounts; the batch will be redelivered");
                report.failed = ready.len();
                return Err(NotifyError { report });
            }
        };
        // Claims whose outcome is unknown and which are not sent again: settled as they are.
        let mut let_be: Vec<(Uuid, EmailRecord)> = Vec::new();
        let mut to_send: Vec<ToSend> = Vec::with_capacity(ready.len());
        for (event, email) in ready {
            let (id, event_type) = (event.id, event.event_type());
            let after = match states.get(&id) {
                Some(EmailState::Settled) => {
                    report.already_sent += 1;
                    continue;
                }
                Some(&EmailState::Claimed { attempt }) => Some(attempt),
                None => None,
            };
            let wanted = wanted.contains(&id);
            if let Some(attempt) = after {
                let decision = if wanted { after_unknown(event_type) } else { AfterUnknown::LetBe };
                let _trace = crate::trace::Trace::span(event.trace.as_ref()).entered();
                tracing::warn!(event_id = %id, %event_type, attempt, decision = decision.as_str(),
                    metric = "email_outcome_unknown",
                    "an earlier attempt died between sending this e-mail and recording SES's answer: whether it went out is unknown");
                report.unknown += 1;
                if decision == AfterUnknown::LetBe {
                    let_be.push((id, EmailRecord::Unknown { attempt }));
                    continue;
                }
            }
            if !wanted {
                tracing::info!(event_id = %id, %event_type,
                    "e-mail dropped: its account is closed, or its reset token is no longer the current one");
                report.dropped += 1;
                continue;
            }
            to_send.push((event, email, after));
        }
        if !let_be.is_empty()
            && let Err(e) = self.markers.record(&let_be, time::OffsetDateTime::now_utc()).await
        {
            // Still claimed: the next delivery decides them again.
            tracing::error!(error = %e, count = let_be.len(), "could not settle e-mails of unknown outcome; the batch will be redelivered");
            report.failed += let_be.len();
        }
        let ready = to_send;

        if !ready.is_empty() {
            self.pace.load(&self.sender).await;
        }
        let pacer = self.pace.pacer();
        let throttled = AtomicUsize::new(0);
        let outcomes: Vec<(Event, Sent, Result<(), crate::store::StoreError>)> = futures::stream::iter(ready)
            .map(|(event, email, after)| {
                let (pacer, throttled) = (&pacer, &throttled);
                async move {
                    let mut claim = Claim { event: event.id, after, attempt: None };
                    let sent = self.send_paced(&mut claim, &email, pacer, window, throttled).await;
                    let recorded = self.record(&claim, &sent).await;
                    (event, sent, recorded)
                }
            })
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        report.throttled = throttled.into_inner();
        let mut lost = 0;
        for (event, outcome, recorded) in outcomes {
            let (id, event_type) = (event.id, event.event_type());
            // Logged under the ids of the request that caused the e-mail (`crate::trace`).
            let _trace = crate::trace::Trace::span(event.trace.as_ref()).entered();
            match outcome {
                Sent::Accepted(message_id) => {
                    tracing::info!(event_id = %id, %event_type, message_id, "e-mail sent");
                    report.sent += 1;
                }
                Sent::Refused(reason) => {
                    tracing::warn!(event_id = %id, %event_type, reason, metric = "email_refused",
                        "SES refused the e-mail for good; recorded, not retried");
                    report.refused += 1;
                }
                Sent::Failed(e @ SendError::Unknown(_)) => {
                    tracing::error!(event_id = %id, %event_type, error = %e,
                        "no answer from SES: the e-mail may have gone out; its claim stays for the redelivery to decide");
                    report.failed += 1;
                }
                Sent::Failed(e) => {
                    tracing::error!(event_id = %id, %event_type, error = %e, "e-mail not sent");
                    report.failed += 1;
                }
                Sent::Later => {
                    tracing::info!(event_id = %id, %event_type, "e-mail left for the batch's redelivery (SES's sending rate)");
                    report.deferred += 1;
                }
                Sent::Taken => {
                    // Never in the normal course (one invocation per partition, copies deduped):
                    // the batch fails, and its redelivery reads the record as it now is.
                    tracing::warn!(event_id = %id, %event_type,
                        "e-mail's record changed since it was read (claimed elsewhere); not sent here, the batch will be redelivered");
                    report.failed += 1;
                }
            }
            if let Err(e) = recorded {
                // SES answered, but its answer is not on record: the claim stays, so the
                // redelivery treats the e-mail as an unknown outcome (never a blind resend).
                tracing::error!(event_id = %id, %event_type, error = %e,
                    "SES's answer could not be recorded; the e-mail stays claimed");
                lost += 1;
            }
        }
        if lost > 0 {
            tracing::error!(lost, "e-mails of this batch answered by SES but not recorded");
        }
        tracing::info!(
            sent = report.sent,
            already_sent = report.already_sent,
            refused = report.refused,
            skipped = report.skipped,
            failed = report.failed,
            throttled = report.throttled,
            deferred = report.deferred,
            unknown = report.unknown,
            "batch done"
        );
        if report.failed > 0 || report.deferred > 0 { Err(NotifyError { report }) } else { Ok(report) }
    }

    /// Settles claim `attempt` as soon as SES answered: its answer recorded, or the claim
    /// released when SES surely did not take the e-mail. An answer not yet recorded when the
    /// instance dies leaves the claim: an unknown outcome the redelivery decides (SES's
    /// `SendEmail` takes no idempotency key). A send with no answer keeps its claim too.
    async fn record(&self, claim: &Claim, sent: &Sent) -> Result<(), crate::store::StoreError> {
        let (id, Some(attempt)) = (claim.event, claim.attempt) else { return Ok(()) };
        let record = match sent {
            Sent::Accepted(message_id) => EmailRecord::Sent { message_id: message_id.clone(), attempt },
            Sent::Refused(reason) => EmailRecord::Refused { reason: reason.clone(), attempt },
            Sent::Failed(SendError::Unknown(_)) | Sent::Taken => return Ok(()),
            Sent::Failed(_) | Sent::Later => return self.markers.release(id, attempt).await,
        };
        self.markers.record(&[(id, record)], time::OffsetDateTime::now_utc()).await
    }

    /// Sends one e-mail at the pace, trying a throttled send again while the window allows;
    /// claims it (once) just before SES is first called.
    async fn send_paced(
        &self,
        claim: &mut Claim,
        email: &Email,
        pacer: &Pacer,
        window: Window,
        throttled: &AtomicUsize,
    ) -> Sent {
        let mut throttles = 0;
        loop {
            // Our turn at the account's pace, unless it comes after the last moment to start.
            loop {
                match pacer.try_send() {
                    Ok(()) => break,
                    Err(wait) if Instant::now() + wait < window.start_by => tokio::time::sleep(wait).await,
                    Err(_) => return Sent::Later,
                }
            }
            if claim.attempt.is_none() {
                match self.markers.claim(claim.event, claim.after, time::OffsetDateTime::now_utc()).await {
                    Ok(Some(attempt)) => claim.attempt = Some(attempt),
                    Ok(None) => return Sent::Taken,
                    Err(e) => return Sent::Failed(SendError::Failed(format!("the e-mail could not be claimed: {e}"))),
                }
            }
            if Instant::now() >= window.start_by {
                return Sent::Later;
            }
            let answer = match tokio::time::timeout_at(window.answers_by, self.sender.send(email)).await {
                Ok(answer) => answer,
                Err(_) => {
                    return Sent::Failed(SendError::Unknown("no answer from SES before the invocation's end".into()));
                }
            };
            match answer {
                Ok(message_id) => return Sent::Accepted(message_id),
                Err(SendError::Refused(reason)) => return Sent::Refused(reason),
                Err(SendError::Throttled(why)) => {
                    throttles += 1;
                    throttled.fetch_add(1, Ordering::Relaxed);
                    let left = window.start_by.saturating_duration_since(Instant::now());
                    match pace::after_throttle(throttles, pacer.rate(), left, rand::random::<f64>()) {
                        AfterThrottle::RetryIn(wait) => {
                            tracing::info!(
                                to_wait_ms = wait.as_millis() as u64,
                                throttles,
                                why,
                                "SES throttled a send; the instance holds off, then tries it again"
                            );
                            pacer.hold_off(wait);
                        }
                        AfterThrottle::Later => return Sent::Later,
                    }
                }
                Err(e @ (SendError::Failed(_) | SendError::Unknown(_))) => return Sent::Failed(e),
            }
        }
    }

    /// The record's event, or `None` (logged) when it is not one this notifier can read. Its
    /// `trace` is the record's headers' (the relay's), else the event's own.
    fn usable(&self, record: &KafkaRecord) -> Option<Event> {
        match decode(record) {
            Ok(mut event) => {
                event.trace = header_trace(record).or(event.trace);
                Some(event)
            }
            Err(why) => {
                tracing::warn!(topic = ?record.topic, partition = record.partition, offset = record.offset, why,
                    "bad record skipped");
                None
            }
        }
    }
}

/// The ids of the request behind a record, from its `request_id` and `trace_id` headers (bytes,
/// as Lambda hands them: signed).
fn header_trace(record: &KafkaRecord) -> Option<crate::trace::Trace> {
    let headers: Vec<(&str, Vec<u8>)> = record
        .headers
        .iter()
        .flat_map(|h| h.iter().map(|(k, v)| (k.as_str(), v.iter().map(|b| *b as u8).collect())))
        .collect();
    crate::trace::Trace::from_headers(headers.iter().map(|(k, v)| (*k, v.as_slice())))
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
    M: SentEmails + Recipients + 'static,
    S: MailSender + 'static,
{
    use lambda_http::lambda_runtime::{LambdaEvent, run, service_fn};
    let notifier = std::sync::Arc::new(notifier);
    run(service_fn(move |event: LambdaEvent<KafkaEvent>| {
        let notifier = notifier.clone();
        async move {
            let records = event.payload.records.values().map(Vec::len).sum();
            crate::metrics::record(crate::metrics::names::BATCH_SIZE, records);
            let result = notifier.handle_within(&event.payload, time_left(event.context.deadline)).await;
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

#[cfg(test)]
mod pacing_tests {
    //! What SES's throttling does to a batch, against in-memory fakes of the e-mail records and of
    //! SES: nothing throttled is lost, nothing is sent twice, whatever the redeliveries.

    use super::*;
    use crate::email::pace::SendQuota;
    use crate::events::event::{Payload, UserSignedUp};
    use crate::store::StoreError;
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicBool;

    /// The e-mail records: a claim (`Err(attempt)`) or what became of the e-mail.
    #[derive(Default)]
    struct Records(Mutex<HashMap<Uuid, Result<EmailRecord, u32>>>);

    impl Records {
        fn recorded(&self) -> usize {
            self.0.lock().unwrap().values().filter(|r| r.is_ok()).count()
        }
    }

    impl SentEmails for Records {
        async fn states(&self, events: &[Uuid]) -> Result<HashMap<Uuid, EmailState>, StoreError> {
            let records = self.0.lock().unwrap();
            Ok(events
                .iter()
                .filter_map(|id| {
                    let state = match records.get(id)? {
                        Ok(_) => EmailState::Settled,
                        Err(attempt) => EmailState::Claimed { attempt: *attempt },
                    };
                    Some((*id, state))
                })
                .collect())
        }

        async fn claim(
            &self,
            event: Uuid,
            after: Option<u32>,
            _: time::OffsetDateTime,
        ) -> Result<Option<u32>, StoreError> {
            let mut records = self.0.lock().unwrap();
            let attempt = after.map_or(1, |a| a + 1);
            let ok = match (records.get(&event), after) {
                (None, None) => true,
                (Some(Err(seen)), Some(after)) => *seen == after,
                _ => false,
            };
            Ok(ok.then(|| {
                records.insert(event, Err(attempt));
                attempt
            }))
        }

        async fn release(&self, event: Uuid, attempt: u32) -> Result<(), StoreError> {
            let mut records = self.0.lock().unwrap();
            if records.get(&event) == Some(&Err(attempt)) {
                records.remove(&event);
            }
            Ok(())
        }

        async fn record(&self, records: &[(Uuid, EmailRecord)], _: time::OffsetDateTime) -> Result<(), StoreError> {
            self.0.lock().unwrap().extend(records.iter().map(|(id, r)| (*id, Ok(r.clone()))));
            Ok(())
        }
    }

    /// Every account open (closed accounts are the integration tests', against the real table).
    impl Recipients for Records {
        async fn closed_accounts(&self, _: &[Uuid]) -> Result<HashSet<Uuid>, StoreError> {
            Ok(HashSet::new())
        }

        async fn current_resets(
            &self,
            resets: &[(String, String)],
            _: time::OffsetDateTime,
        ) -> Result<HashSet<String>, StoreError> {
            Ok(resets.iter().map(|(_, hash)| hash.clone()).collect())
        }
    }

    /// Throttles the first `throttle_first` sends, every send while `throttling`, and every send
    /// once it accepted `budget`; accepts the rest.
    struct Ses {
        throttle_first: usize,
        throttling: AtomicBool,
        budget: AtomicUsize,
        unreachable: AtomicBool,
        attempts: AtomicUsize,
        accepted: Mutex<Vec<String>>,
    }

    impl Default for Ses {
        fn default() -> Self {
            Self {
                throttle_first: 0,
                throttling: AtomicBool::new(false),
                budget: AtomicUsize::new(usize::MAX),
                unreachable: AtomicBool::new(false),
                attempts: AtomicUsize::new(0),
                accepted: Mutex::default(),
            }
        }
    }

    impl MailSender for Ses {
        async fn send(&self, email: &Email) -> Result<String, SendError> {
            let attempt = self.attempts.fetch_add(1, Ordering::SeqCst);
            if self.unreachable.load(Ordering::SeqCst) {
                return Err(SendError::Failed("dispatch failure: tcp connect error: Connection refused".into()));
            }
            let spent = self.budget.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1)).is_err();
            if attempt < self.throttle_first || self.throttling.load(Ordering::SeqCst) || spent {
                return Err(SendError::Throttled("TooManyRequestsException: Maximum sending rate exceeded.".into()));
            }
            self.accepted.lock().unwrap().push(email.to.clone());
            Ok(format!("message-{attempt}"))
        }

        async fn send_quota(&self) -> Result<SendQuota, SendError> {
            Ok(SendQuota { max_send_rate: 1000.0, max_24_hour_send: -1.0, sent_last_24_hours: 0.0 })
        }
    }

    fn notifier(ses: Ses) -> Notifier<Records, Ses> {
        Notifier {
            markers: Records::default(),
            sender: ses,
            templates: Templates::new(),
            concurrency: 8,
            pace: Pace::new(None),
        }
    }

    /// An MSK batch of `n` sign-ups.
    fn batch(n: usize) -> KafkaEvent {
        batch_of(
            (0..n)
                .map(|i| {
                    Payload::UserSignedUp(UserSignedUp {
                        user_id: Uuid::now_v7(),
                        email: format!("customer-{i}@example.com"),
                        name: String::new(),
                    })
                })
                .map(|p| Event::new(time::OffsetDateTime::now_utc(), p))
                .collect(),
        )
    }

    /// An MSK batch of these events.
    fn batch_of(events: Vec<Event>) -> KafkaEvent {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let records: Vec<serde_json::Value> = events
            .iter()
            .enumerate()
            .map(|(i, event)| {
                let event = serde_json::to_vec(event).unwrap();
                serde_json::json!({ "topic": "shop-events", "partition": 0, "offset": i, "timestamp": 0,
                    "timestampType": "CREATE_TIME", "value": b64(&event), "headers": [] })
            })
            .collect();
        serde_json::from_value(
            serde_json::json!({ "eventSource": "aws:kafka", "records": { "shop-events-0": records } }),
        )
        .unwrap()
    }

    fn accepted_once_each(ses: &Ses, n: usize) {
        let mut accepted = ses.accepted.lock().unwrap().clone();
        accepted.sort();
        let mut expected: Vec<String> = (0..n).map(|i| format!("customer-{i}@example.com")).collect();
        expected.sort();
        assert_eq!(accepted, expected, "every e-mail exactly once");
    }

    #[tokio::test]
    async fn throttled_sends_are_tried_again_within_the_invocation() {
        let notifier = notifier(Ses { throttle_first: 3, ..Ses::default() });
        let report = notifier.handle_within(&batch(5), Duration::from_secs(60)).await.expect("the batch succeeds");
        assert_eq!((report.sent, report.throttled, report.deferred), (5, 3, 0), "{report:?}");
        accepted_once_each(&notifier.sender, 5);
        assert_eq!(notifier.markers.recorded(), 5, "all recorded");
    }

    #[tokio::test]
    async fn what_stays_throttled_is_left_unrecorded_for_the_redelivery_which_sends_it_once() {
        let notifier = notifier(Ses { budget: AtomicUsize::new(2), ..Ses::default() });
        let events = batch(6);
        // Two go out, then SES throttles everything for longer than the invocation may wait (its
        // sending window is 1 s of its 11).
        let Err(NotifyError { report }) = notifier.handle_within(&events, Duration::from_secs(11)).await else {
            panic!("a batch with e-mails left for later fails, so that it comes again");
        };
        let sent_first = 2;
        assert_eq!((report.sent, report.deferred), (sent_first, 6 - sent_first), "{report:?}");
        assert!(report.throttled >= 4, "{report:?}");
        assert_eq!(notifier.markers.recorded(), sent_first, "only what SES accepted is recorded");
        assert_eq!(notifier.markers.0.lock().unwrap().len(), sent_first, "the throttled ones' claims are released");

        notifier.sender.throttling.store(true, Ordering::SeqCst);
        let Err(NotifyError { report }) = notifier.handle_within(&events, Duration::from_secs(11)).await else {
            panic!("a batch with e-mails left for later fails, so that it comes again");
        };
        assert_eq!((report.sent, report.already_sent, report.deferred), (0, sent_first, 6 - sent_first), "{report:?}");
        assert!(report.throttled > 0);

        notifier.sender.throttling.store(false, Ordering::SeqCst);
        notifier.sender.budget.store(usize::MAX, Ordering::SeqCst);
        let report = notifier.handle_within(&events, Duration::from_secs(60)).await.expect("SES takes them again");
        assert_eq!((report.sent, report.already_sent), (6 - sent_first, sent_first), "{report:?}");
        accepted_once_each(&notifier.sender, 6);
    }

    #[tokio::test]
    async fn nothing_starts_when_the_invocation_has_no_time_left_to_record_it() {
        let notifier = notifier(Ses::default());
        let Err(NotifyError { report }) = notifier.handle_within(&batch(3), Duration::from_secs(5)).await else {
            panic!("nothing could be sent in time");
        };
        assert_eq!((report.sent, report.deferred), (0, 3), "{report:?}");
        assert_eq!(notifier.sender.attempts.load(Ordering::SeqCst), 0, "no send started");
        assert!(notifier.markers.0.lock().unwrap().is_empty());
    }

    /// An attempt that died between its claims and its records: every e-mail of the batch is an
    /// unknown outcome for the redelivery, which sends receipts and links again (claim attempt 2)
    /// and settles the rest as they are; a third delivery does nothing more.
    #[tokio::test]
    async fn claims_left_by_a_dead_attempt_are_decided_by_kind_and_counted() {
        let notifier = notifier(Ses::default());
        let now = time::OffsetDateTime::now_utc();
        let events: Vec<Event> =
            crate::events::event::tests::one_of_each().into_iter().map(|p| Event::new(now, p)).collect();
        for e in &events {
            assert_eq!(notifier.markers.claim(e.id, None, now).await.unwrap(), Some(1));
        }
        let report = notifier.handle_within(&batch_of(events.clone()), Duration::from_secs(60)).await.expect("decided");
        let again = events.iter().filter(|e| after_unknown(e.event_type()) == AfterUnknown::SendAgain).count();
        assert_eq!((report.unknown, report.sent), (events.len(), again), "{report:?}");
        let records = notifier.markers.0.lock().unwrap().clone();
        for e in &events {
            let expected = match after_unknown(e.event_type()) {
                AfterUnknown::SendAgain => "Sent attempt 2",
                AfterUnknown::LetBe => "Unknown attempt 1",
            };
            let got = match &records[&e.id] {
                Ok(EmailRecord::Sent { attempt, .. }) => format!("Sent attempt {attempt}"),
                Ok(EmailRecord::Unknown { attempt }) => format!("Unknown attempt {attempt}"),
                other => format!("{other:?}"),
            };
            assert_eq!(got, expected, "{}", e.event_type());
        }

        let report = notifier.handle_within(&batch_of(events.clone()), Duration::from_secs(60)).await.expect("done");
        assert_eq!((report.unknown, report.sent, report.already_sent), (0, 0, events.len()), "{report:?}");
    }

    /// SES unreachable (a send that surely did not go out) releases its claim: the redelivery
    /// sends it as new, not as an unknown outcome.
    #[tokio::test]
    async fn a_send_ses_surely_did_not_take_releases_its_claim() {
        let notifier = notifier(Ses { unreachable: AtomicBool::new(true), ..Ses::default() });
        let events = batch(3);
        let Err(NotifyError { report }) = notifier.handle_within(&events, Duration::from_secs(60)).await else {
            panic!("SES unreachable fails the batch");
        };
        assert_eq!(report.failed, 3, "{report:?}");
        assert!(notifier.markers.0.lock().unwrap().is_empty(), "claims released");
        notifier.sender.unreachable.store(false, Ordering::SeqCst);
        let report = notifier.handle_within(&events, Duration::from_secs(60)).await.expect("sent");
        assert_eq!((report.sent, report.unknown), (3, 0), "{report:?}");
        accepted_once_each(&notifier.sender, 3);
    }

    #[test]
    fn the_configured_rate_is_a_positive_number_or_unset() {
        assert_eq!(parse_rate(None).unwrap(), None);
        assert_eq!(parse_rate(Some(" ")).unwrap(), None);
        assert_eq!(parse_rate(Some("14")).unwrap(), Some(14.0));
        assert_eq!(parse_rate(Some("0.5")).unwrap(), Some(0.5));
        for bad in ["0", "-1", "fast", "NaN", "inf"] {
            assert!(parse_rate(Some(bad)).is_err(), "{bad}");
        }
    }
}
