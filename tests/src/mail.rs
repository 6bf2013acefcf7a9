//! Reading back the e-mail the stack sent, from the SES emulator (`SHOP_SES_ENDPOINT`, moto), and
//! the switches that take Kafka or SES down (`POST /_local/{kafka,ses}/{stop,start}`).

use crate::{client, stack};
use base64::Engine;
use serde_json::{Value, json};
use std::time::Duration;

/// One e-mail as moto recorded it (the HTML body when there is one).
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: Vec<String>,
    pub from: String,
    pub subject: String,
    pub body: String,
}

fn ses_endpoint() -> String {
    std::env::var("SHOP_SES_ENDPOINT").expect("SHOP_SES_ENDPOINT is not set: run the tests with `cargo local test`")
}

/// Every e-mail sent to `address` so far.
pub async fn mail_to(address: &str) -> Vec<Mail> {
    let url = format!("{}/moto-api/data.json", ses_endpoint());
    let data: Value = client().get(url).send().await.expect("moto").json().await.expect("moto JSON");
    let text = |m: &Value, k: &str| m[k].as_str().unwrap_or_default().to_owned();
    data.pointer("/ses/Message")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|m| Mail {
            to: m
                .pointer("/destinations/ToAddresses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            from: text(m, "source"),
            subject: text(m, "subject"),
            body: text(m, "body"),
        })
        .filter(|m| m.to.iter().any(|t| t == address))
        .collect()
}

/// Waits (up to a minute) until `address` has `count` e-mails, then until everything written so
/// far has gone through the relay and the notifier ([`settle`]), and returns them: "exactly
/// `count`", not "at least".
pub async fn expect_mail(address: &str, count: usize) -> Vec<Mail> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mail = mail_to(address).await;
        if mail.len() >= count || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    settle().await;
    let mail = mail_to(address).await;
    let subjects: Vec<&str> = mail.iter().map(|m| m.subject.as_str()).collect();
    assert_eq!(mail.len(), count, "e-mails to {address}: {subjects:?}");
    mail
}

/// Returns once every event written so far has gone through the table's stream, the outbox relay,
/// Kafka and the notifier (`POST /_local/events/settle`); fails with what the stack was still
/// waiting for after a minute.
pub async fn settle() {
    let url = format!("{}/_local/events/settle", stack().invoke);
    let r = client().post(url).timeout(Duration::from_secs(90)).send().await.expect("settle");
    let status = r.status();
    let body: Value = r.json().await.unwrap_or_default();
    assert!(status.is_success(), "the event pipeline did not settle: {status} {body}");
}

/// Takes `service` (`kafka`, `ses`) off the network, or back on.
pub async fn set_service(service: &str, up: bool) {
    let action = if up { "start" } else { "stop" };
    let url = format!("{}/_local/{service}/{action}", stack().invoke);
    let r = client().post(url).send().await.expect("switch");
    assert!(r.status().is_success(), "{service} {action}: {}", r.status());
}

/// What the outbox relay's stream trigger gave up on so far (Lambda's on-failure records in the
/// `OutboxRelayDeadLetters` queue, read through the local stack without consuming them).
pub async fn dead_letters() -> Vec<Value> {
    let url = format!("{}/_local/sqs/OutboxRelayDeadLetters", stack().invoke);
    let r = client().get(url).send().await.expect("dead letters");
    assert!(r.status().is_success(), "dead letters: {}", r.status());
    r.json().await.expect("dead letters JSON")
}

/// Waits (up to `secs`) until the dead-letter queue holds more than `before` records.
pub async fn wait_for_dead_letters(before: usize, secs: u64) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let now = dead_letters().await;
        if now.len() > before || tokio::time::Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The local stack's figures of one function (`GET /_local/functions`).
pub async fn function_stats(function: &str) -> Value {
    let url = format!("{}/_local/functions", stack().invoke);
    let all: Value = client().get(url).send().await.expect("stats").json().await.expect("stats JSON");
    all[function].clone()
}

/// Makes the function's next invocation crash `after_ms` into it (or as it answers, if sooner).
pub async fn crash_next_invocation(function: &str, after_ms: u64) {
    let url = format!("{}/_local/functions/{function}/crash", stack().invoke);
    let r = client().post(url).json(&json!({ "after_ms": after_ms })).send().await.expect("crash");
    assert!(r.status().is_success(), "arming a crash of {function}: {}", r.status());
}

/// Makes the function's next invocation stand still `for_ms` from `after_ms` into it (or from its
/// answer, held meanwhile, if sooner); past the function's `Timeout`, the timeout kills it.
pub async fn stall_next_invocation(function: &str, after_ms: u64, for_ms: u64) {
    let url = format!("{}/_local/functions/{function}/stall", stack().invoke);
    let r = client().post(url).json(&json!({ "after_ms": after_ms, "for_ms": for_ms })).send().await.expect("stall");
    assert!(r.status().is_success(), "arming a stall of {function}: {}", r.status());
}

/// Makes the local SES refuse `address` as an account in the SES sandbox refuses an unverified
/// recipient (`MessageRejected`), until the returned guard is dropped.
pub async fn refuse(address: &str) -> Refusing {
    let url = format!("{}/_local/ses/refusals", stack().invoke);
    let r = client().post(url).json(&json!({ "address": address })).send().await.expect("refusal");
    assert!(r.status().is_success(), "adding a refusal: {}", r.status());
    Refusing
}

#[must_use = "the refusals are cleared when this guard is dropped"]
pub struct Refusing;

impl Drop for Refusing {
    fn drop(&mut self) {
        crate::delete_from_drop("/_local/ses/refusals", "clear SES's refusals");
    }
}

/// Has the local SES hold back its answer to the next `count` `SendEmail`s for `ms` after it took
/// the e-mail (`PUT /_local/ses/late`), until the returned guard is dropped.
pub async fn ses_answers_late(ms: u64, count: u32) -> LateAnswers {
    let url = format!("{}/_local/ses/late", stack().invoke);
    let r = client().put(url).json(&json!({ "ms": ms, "count": count })).send().await.expect("late answers");
    assert!(r.status().is_success(), "making SES answer late: {}", r.status());
    LateAnswers
}

#[must_use = "SES answers on time again when this guard is dropped"]
pub struct LateAnswers;

impl Drop for LateAnswers {
    fn drop(&mut self) {
        crate::delete_from_drop("/_local/ses/late", "make SES answer on time again");
    }
}

/// Brings a service back up when dropped, so a failed assertion cannot leave it down for later tests.
pub struct Restore(pub &'static str);

impl Drop for Restore {
    fn drop(&mut self) {
        let url = format!("{}/_local/{}/start", stack().invoke, self.0);
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async { reqwest::Client::new().post(url).send().await })
        })
        .join();
    }
}

/// Invokes a function and returns `(result, function failed?)`, for functions expected to fail.
pub async fn invoke_outcome(function: &str, event: &Value) -> (Value, bool) {
    let url = format!("{}/2015-03-31/functions/{function}/invocations", stack().invoke);
    let resp = client().post(url).json(event).send().await.expect("invoke");
    let failed = resp.headers().get("x-amz-function-error").is_some();
    (resp.json().await.unwrap_or(Value::Null), failed)
}

/// An MSK trigger event (the shape of `events/msk.json`) with `values` as the records' values,
/// one partition, consecutive offsets.
pub fn msk_event(values: &[Vec<u8>]) -> Value {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut event = crate::event("msk.json");
    let records: Vec<Value> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            json!({ "topic": "shop-events", "partition": 0, "offset": i, "timestamp": 0,
                              "timestampType": "CREATE_TIME", "key": b64(b"k"), "value": b64(v), "headers": [] })
        })
        .collect();
    event["records"] = json!({ "shop-events-0": records });
    event
}

/// An event envelope around any `type` and `data`, typed or not (for records the notifier must skip).
pub fn event_json(event_type: &str, data: Value) -> Vec<u8> {
    let now = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
    let event = json!({ "id": uuid::Uuid::now_v7(), "type": event_type, "occurred_at": now, "aggregate_id": "agg",
                        "data": data });
    serde_json::to_vec(&event).expect("event JSON")
}

/// A `user.signed_up` event's JSON, as the relay produces it.
pub fn signed_up_json(email: &str, name: &str) -> Vec<u8> {
    use shop::events::event::{Event, Payload, UserSignedUp};
    let payload =
        Payload::UserSignedUp(UserSignedUp { user_id: uuid::Uuid::now_v7(), email: email.into(), name: name.into() });
    serde_json::to_vec(&Event::new(time::OffsetDateTime::now_utc(), payload)).expect("event JSON")
}

/// An `order.cancelled` event's JSON for an order of one line, as the relay produces it.
pub fn cancelled_json(email: &str) -> Vec<u8> {
    let order = json!({ "order_id": uuid::Uuid::now_v7(), "user_id": uuid::Uuid::now_v7(), "email": email,
                        "total": {"amount": 100, "currency": "EUR"},
                        "lines": [{"product_id": uuid::Uuid::now_v7(), "name": "Cup", "quantity": 1,
                                   "unit_price": {"amount": 100, "currency": "EUR"}}] });
    event_json("order.cancelled", order)
}

/// The messages of one of the stack's SQS queues (e.g. `NotifierDeadLetters`), without consuming them.
pub async fn queue_messages(queue: &str) -> Vec<Value> {
    let url = format!("{}/_local/sqs/{queue}", stack().invoke);
    let r = client().get(url).send().await.expect("queue");
    assert!(r.status().is_success(), "queue {queue}: {}", r.status());
    r.json().await.expect("queue JSON")
}

/// Stops the function's idle instances: its next invocation is a cold start (it reads what it
/// reads at cold start again, e.g. the notifier its SES sending quota).
pub async fn retire_instances(function: &str) {
    let url = format!("{}/_local/functions/{function}/retire", stack().invoke);
    let r = client().post(url).send().await.expect("retire");
    assert!(r.status().is_success(), "retiring {function}'s instances: {}", r.status());
}

/// The SES gate's sending quota and what it saw since it was set (`GET /_local/ses/quota`):
/// `max_send_rate`, `max_24_hour_send`, `sent_last_24_hours`, `accepted`, `throttled`,
/// `peak_per_second`, `span_ms`.
pub async fn ses_quota() -> Value {
    let url = format!("{}/_local/ses/quota", stack().invoke);
    client().get(url).send().await.expect("quota").json().await.expect("quota JSON")
}

/// Makes the local SES enforce `max_send_rate` e-mails a second (as an account's `MaxSendRate`)
/// until the returned guard is dropped; its statistics start afresh. Notifier instances already
/// running keep the rate they read at their cold start.
pub async fn limit_ses_rate(max_send_rate: f64) -> SesQuota {
    let url = format!("{}/_local/ses/quota", stack().invoke);
    let r = client().put(url).json(&json!({ "max_send_rate": max_send_rate })).send().await.expect("quota");
    assert!(r.status().is_success(), "setting the SES quota: {}", r.status());
    SesQuota
}

/// Puts the default (generous) SES quota back when dropped, and retires the notifier's idle
/// instances so that the next ones read it.
#[must_use = "the quota is reset when this guard is dropped"]
pub struct SesQuota;

impl Drop for SesQuota {
    fn drop(&mut self) {
        let invoke = stack().invoke.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async {
                let http = reqwest::Client::new();
                let _ = http.delete(format!("{invoke}/_local/ses/quota")).send().await;
                let _ = http.post(format!("{invoke}/_local/functions/NotifierFunction/retire")).send().await;
            })
        })
        .join();
    }
}
