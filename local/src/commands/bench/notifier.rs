//! Notifier throughput: e-mails per second at its default concurrency bound
//! (`NOTIFIER_CONCURRENCY`, 8 records of a batch at once), sending to the SES emulator (moto).
//!
//! `--emails` synthetic `user.signed_up` events, each to an address of its own, go to the
//! notifier as MSK batches of the trigger's `BatchSize`, invoked one after another through its
//! instance pool, as Lambda's poller does for one partition. Invoking directly, rather than
//! publishing to Kafka, keeps the trigger's batching window (a second, by design) out of a figure
//! about the function. Per e-mail the notifier claims a marker in DynamoDB, renders, sends, and
//! confirms the marker. The figure is e-mails / time from the first invocation to the last
//! answer; a small batch before it warms up the instance's connections. The notifier answers
//! only after SES accepted every send, so when the last answer arrives every e-mail is in moto.
//!
//! Checks: the notifier reports every e-mail sent, and moto holds exactly one per address.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use shop::events::event::{Event, Payload, UserSignedUp};

use crate::commands::bench::fixtures::Fixtures;
use crate::commands::bench::measure::measure;
use crate::commands::bench::report::Row;
use crate::emulators::msk::{self, MskTrigger};
use crate::emulators::runtime_api::Outcome;
use crate::progress::{self, Step};
use crate::template::Template;

const WARM_UP: usize = 8;

pub async fn run(fx: &Fixtures<'_>, template: &Template, emails: usize) -> Result<Vec<Row>> {
    let trigger = MskTrigger::all(template).into_iter().next().context("no function has an MSK trigger")?;
    let messaging = fx.stack.messaging.as_ref().context("no Kafka and SES emulators")?;
    let pool = fx.stack.pools.get(&trigger.function).context("the notifier is not running")?;
    let topic = trigger.topics.first().context("the MSK trigger has no topic")?.as_str();
    let bootstrap = &messaging.kafka.bootstrap;
    let concurrency = fx.env("NOTIFIER_CONCURRENCY").unwrap_or("8 (default)").to_owned();
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let address = |i: usize| format!("notify-{i}-{run_id}@bench.shop.local");

    let (trigger, address) = (&trigger, &address);
    let send = move |from: usize, to: usize| async move {
        let records: Vec<Value> = (from..to)
            .map(|i| Ok(msk::record(topic, 0, i as i64, 0, None, Some(&signed_up(&address(i))?), Vec::new())))
            .collect::<Result<_>>()?;
        let event = trigger.event(bootstrap, BTreeMap::from([(format!("{topic}-0"), records)]));
        match pool.invoke(bytes::Bytes::from(event.to_string())).await {
            Outcome::Success(body) => {
                let report: Value = serde_json::from_slice(&body).unwrap_or_default();
                Ok(report["sent"].as_u64().unwrap_or(0) as usize)
            }
            Outcome::FunctionError(body) => bail!("the notifier failed: {}", String::from_utf8_lossy(&body)),
            Outcome::Failed { error_type, message } => bail!("the notifier failed ({error_type}): {message}"),
        }
    };
    send(emails, emails + WARM_UP).await.context("warming up the notifier")?;

    let batches = emails.div_ceil(trigger.batch_size);
    let step = Step::start(format!(
        "notifier: {emails} e-mails in {batches} batch(es) of ≤ {}, concurrency {concurrency}",
        trigger.batch_size
    ));
    let (latencies, sent) = progress::run(
        step,
        // One batch at a time: a partition's batches never overlap on Lambda.
        measure(batches, 1, |b| send(b * trigger.batch_size, ((b + 1) * trigger.batch_size).min(emails))),
    )
    .await?;
    let sent: usize = sent.iter().sum();
    let delivered = crate::emulators::ses::sent_mail(&messaging.ses.endpoint)
        .await?
        .iter()
        .filter(|m| m.to.iter().any(|to| to.ends_with(&format!("-{run_id}@bench.shop.local"))))
        .count();
    Ok(vec![
        Row::figure(
            format!("notifier e-mails/s (concurrency {concurrency})"),
            format!(
                "{:.0} e-mails/s ({emails} in {:.2} s)",
                emails as f64 / latencies.wall.as_secs_f64(),
                latencies.wall.as_secs_f64()
            ),
        ),
        Row::figure(
            format!("notifier batch (≤ {} records) time p50", trigger.batch_size),
            format!("{:.0} ms", latencies.ms(0.5)),
        ),
        Row::check(
            "notifier: e-mails sent / in SES (moto)",
            format!("{sent} / {}", delivered.saturating_sub(WARM_UP)),
            format!("{emails} / {emails}"),
            sent == emails && delivered == emails + WARM_UP,
        ),
    ])
}

/// A `user.signed_up` event for `email`, as the functions publish it (the Kafka record value).
fn signed_up(email: &str) -> Result<Vec<u8>> {
    let payload =
        Payload::UserSignedUp(UserSignedUp { user_id: uuid::Uuid::now_v7(), email: email.into(), name: String::new() });
    let event = Event::new(time::OffsetDateTime::now_utc(), payload);
    Ok(serde_json::to_vec(&event)?)
}
