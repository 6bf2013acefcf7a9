//! Events to e-mail, end to end: the real functions write their events to the outbox, the table's
//! stream trigger invokes the real outbox relay, which produces to the real broker (tansu), the MSK
//! trigger invokes the real notifier, which sends through the SES emulator (moto); every
//! assertion reads the mail moto accepted. "Exactly once" means: the expected number arrives, and
//! once everything written so far has gone through the relay and the notifier (the local stack's
//! settle barrier, see `shop_tests::mail::settle`) there is still no other.
//!
//! Exclusive (see `.config/nextest.toml`): these tests take Kafka and SES down for everyone, crash
//! the relay, and the sweeper they run expires every overdue order and redrives every pending event.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shop_tests::mail::*;
use shop_tests::payments::{deliver_webhooks_at, order_state, pay, pending_order};
use shop_tests::*;
use std::time::Duration;

async fn order_of(token: &str, product: &str, quantity: u32) -> Value {
    let r = place_order(token, &uuid::Uuid::new_v4().to_string(), Some(&[(product, quantity)])).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body
}

#[tokio::test]
async fn signup_sends_exactly_one_welcome_email() {
    let (email, _) = new_customer("welcome").await;
    let mail = expect_mail(&email, 1).await;
    assert_eq!(mail[0].subject, "Welcome to the shop");
    assert_eq!(mail[0].from, "no-reply@shop.example.com");
    assert!(mail[0].body.contains(&email), "{}", mail[0].body);
}

#[tokio::test]
async fn placed_cancelled_and_expired_orders_each_send_their_email_once() {
    let admin = admin_token().await;
    let product = new_product(&admin, "Teapot", 1299, 10).await;
    let id = product["id"].as_str().unwrap();
    let (email, token) = new_customer("orders-mail").await;

    let cancelled = order_of(&token, id, 2).await;
    let r =
        call(Method::POST, &format!("/orders/{}/cancel", cancelled["id"].as_str().unwrap()), Some(&token), None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let expired = order_of(&token, id, 1).await;
    // The sweeper "an hour later": the second order is past its reservation deadline.
    sweep_at(time::OffsetDateTime::now_utc() + time::Duration::hours(1)).await;

    let mail = expect_mail(&email, 5).await;
    let with = |subject: &str, order: &Value| {
        let order_id = order["id"].as_str().unwrap();
        mail.iter().filter(|m| m.subject == subject && m.body.contains(order_id)).count()
    };
    assert_eq!(with("Welcome to the shop", &json!({"id": ""})), 1);
    assert_eq!(with("We received your order", &cancelled), 1);
    assert_eq!(with("Your order was cancelled", &cancelled), 1);
    assert_eq!(with("We received your order", &expired), 1);
    assert_eq!(with("Your order expired", &expired), 1);
    let placed = mail.iter().find(|m| m.subject == "We received your order" && m.body.contains("25.98 EUR"));
    assert!(placed.is_some_and(|m| m.body.contains("UTC")), "order placed mail shows amount and deadline");
}

/// The payment outcomes reach the notifier through the stream and the relay, like every event: no
/// sweeper runs after the payments here, so no redrive could have carried them.
#[tokio::test]
async fn paid_failed_and_refund_required_orders_each_send_their_email_once() {
    let later = |minutes| time::OffsetDateTime::now_utc() + time::Duration::minutes(minutes);
    // Taken late, after the order expired and its units sold to someone else: a refund is due.
    let refund = pending_order("mail-refund", 2, 2).await;
    let r = pay(&refund.token, json!({"order_id": refund.order, "token": "tok_late"})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    sweep_at(later(16)).await;
    let (_, rival) = new_customer("mail-rival").await;
    let r = place_order(&rival, &uuid::Uuid::new_v4().to_string(), Some(&[(&refund.product, 2)])).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);

    let paid = pending_order("mail-paid", 10, 3).await;
    let r = pay(&paid.token, json!({"order_id": paid.order, "token": "tok_success"})).await;
    assert_eq!(r.body["state"], "PAID", "{:?}", r.body);
    let failed = pending_order("mail-failed", 10, 1).await;
    let r = pay(&failed.token, json!({"order_id": failed.order, "token": "tok_fail"})).await;
    assert_eq!(r.body["state"], "PAYMENT_FAILED", "{:?}", r.body);
    deliver_webhooks_at(later(21)).await;
    assert_eq!(order_state(&refund.token, &refund.order).await, "REFUND_REQUIRED");

    // Welcome + placed + the outcome (+ expired, for the refund).
    for (order, count, subject, amount) in [
        (&paid, 3, "Payment received: your receipt", "37.50 EUR"),
        (&failed, 3, "Your payment did not go through", "12.50 EUR"),
        (&refund, 4, "A refund is on its way", "25.00 EUR"),
    ] {
        let mail = expect_mail(&order.email, count).await;
        let outcome: Vec<_> = mail.iter().filter(|m| m.subject == subject).collect();
        assert_eq!(outcome.len(), 1, "{subject}: {mail:?}");
        assert!(outcome[0].body.contains(&order.order) && outcome[0].body.contains(amount), "{}", outcome[0].body);
    }
}

/// A broker outage longer than the stream trigger's retries: the relay fails its batches, the
/// trigger gives up on them (on-failure records in the dead-letter queue), the events stay pending
/// in the outbox, and after recovery the sweeper's redrive sends them down the stream again.
#[tokio::test]
async fn a_kafka_outage_delays_email_but_loses_and_duplicates_nothing() {
    let admin = admin_token().await;
    let product = new_product(&admin, "Kettle", 4500, 10).await;
    let id = product["id"].as_str().unwrap();
    let given_up_before = dead_letters().await.len();

    set_service("kafka", false).await;
    let restore = Restore("kafka");
    let (first, token) = new_customer("outage").await;
    let order = order_of(&token, id, 1).await;
    let r = pay(&token, json!({"order_id": order["id"], "token": "tok_success"})).await;
    assert_eq!(r.body["state"], "PAID", "the payment succeeds without Kafka: {:?}", r.body);
    let (second, _) = new_customer("outage").await;
    // The relay cannot deliver; after its retries the trigger gives up on a batch.
    let given_up = wait_for_dead_letters(given_up_before, 90).await;
    assert!(given_up.len() > given_up_before, "the stream trigger gave up on something during the outage");
    let info = &given_up.last().unwrap()["DDBStreamBatchInfo"];
    assert!(info["batchSize"].as_u64().unwrap() >= 1 && info["startSequenceNumber"].is_string(), "{info}");
    assert!(mail_to(&first).await.is_empty() && mail_to(&second).await.is_empty(), "nothing can be sent yet");

    set_service("kafka", true).await;
    drop(restore);
    // What the stream gave up on is still pending: the schedule's sweeps redrive it (their "now" is
    // past the redrive threshold) until the relay has marked everything published.
    let mut redriven = 0;
    for _ in 0..30 {
        let report = sweep_at(time::OffsetDateTime::now_utc() + time::Duration::minutes(10)).await;
        redriven += report["outbox"]["redriven"].as_u64().unwrap();
        if redriven > 0 && report["outbox"]["redriven"] == 0 {
            break;
        }
        // What this sweep redrove has gone through the relay (marked published) before the next.
        settle().await;
    }
    assert!(redriven >= 1, "something given up on was redriven: {redriven}");

    let mail = expect_mail(&first, 3).await;
    let order_id = order["id"].as_str().unwrap();
    for subject in ["We received your order", "Payment received: your receipt"] {
        assert!(mail.iter().any(|m| m.subject == subject && m.body.contains(order_id)), "{subject}: {mail:?}");
    }
    expect_mail(&second, 1).await;
}

/// The relay dies in the middle of a batch (after producing some events, before reporting): the
/// trigger retries the batch, Kafka gets some events twice, and every e-mail still goes out once.
#[tokio::test]
async fn a_relay_crash_mid_batch_loses_nothing_and_sends_nothing_twice() {
    let crashes = function_stats("OutboxRelayFunction").await["crashes"].as_u64().unwrap();
    crash_next_invocation("OutboxRelayFunction", 3).await;
    let customers = futures::future::join_all((0..12).map(|_| new_customer("relay-crash"))).await;
    let mail = futures::future::join_all(customers.iter().map(|(email, _)| expect_mail(email, 1))).await;
    assert!(mail.iter().all(|m| m[0].subject == "Welcome to the shop"), "{mail:?}");
    let after = function_stats("OutboxRelayFunction").await["crashes"].as_u64().unwrap();
    assert!(after > crashes, "the relay crashed during an invocation");
}

/// An outbox item the relay can never produce (no payload): its batch goes to the dead-letter
/// queue after the retries, and the events around it are delivered meanwhile.
#[tokio::test]
async fn a_poison_outbox_record_goes_to_the_dead_letter_queue_without_blocking_its_shard() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let before = dead_letters().await.len();
    let id = uuid::Uuid::now_v7().to_string();
    let db = dynamodb().await;
    let s = |v: &str| AttributeValue::S(v.to_owned());
    db.put_item()
        .table_name(&stack().table)
        .item("pk", s(&format!("EVENT#{id}")))
        .item("sk", s("EVENT"))
        .item("gsi1pk", s("OUTBOX"))
        .item("gsi1sk", s(&id))
        .item("id", s(&id))
        .send()
        .await
        .expect("poison outbox item");
    let (email, _) = new_customer("after-poison").await;
    expect_mail(&email, 1).await;
    let given_up = wait_for_dead_letters(before, 60).await;
    // It is still pending: out of the index before the next test's sweeps would redrive it.
    db.delete_item()
        .table_name(&stack().table)
        .key("pk", s(&format!("EVENT#{id}")))
        .key("sk", s("EVENT"))
        .send()
        .await
        .expect("removing the poison");
    assert!(given_up.len() > before, "the poison's batch reached the dead-letter queue");
    let last = given_up.last().unwrap();
    assert_eq!(last["requestContext"]["condition"], "RetryAttemptsExhausted", "{last}");
    assert_eq!(
        last["DDBStreamBatchInfo"]["streamArn"].as_str().map(|a| a.contains("table/ShopTable/stream")),
        Some(true)
    );
}

#[tokio::test]
async fn an_ses_outage_is_retried_until_the_email_goes_out_once() {
    set_service("ses", false).await;
    let restore = Restore("ses");
    let before = function_stats("NotifierFunction").await["invocations"].as_u64().unwrap();
    let (email, _) = new_customer("ses-down").await;
    // The trigger keeps redelivering the failing batch meanwhile: wait until it has tried at least
    // twice (the first attempt and a retry), not a fixed time.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let now = function_stats("NotifierFunction").await["invocations"].as_u64().unwrap();
        if now >= before + 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the notifier was not invoked twice within a minute");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(mail_to(&email).await.is_empty());
    set_service("ses", true).await;
    drop(restore);
    expect_mail(&email, 1).await;
}

#[tokio::test]
async fn a_batch_delivered_twice_sends_nothing_twice() {
    let email = unique_email("redelivery");
    let batch = msk_event(&[signed_up_json(&email, "Twice"), cancelled_json(&email)]);
    let first = invoke("NotifierFunction", &batch).await;
    assert_eq!(first["sent"], 2, "{first}");
    let second = invoke("NotifierFunction", &batch).await;
    assert_eq!((second["sent"].as_u64(), second["already_sent"].as_u64()), (Some(0), Some(2)), "{second}");
    expect_mail(&email, 2).await;
}

#[tokio::test]
async fn a_failed_send_fails_the_batch_and_the_retry_sends_once() {
    let email = unique_email("retry");
    let batch = msk_event(&[signed_up_json(&email, "")]);
    set_service("ses", false).await;
    let restore = Restore("ses");
    let (result, failed) = invoke_outcome("NotifierFunction", &batch).await;
    assert!(failed, "a send failure must fail the invocation: {result}");
    set_service("ses", true).await;
    drop(restore);
    let retried = invoke("NotifierFunction", &batch).await;
    assert_eq!(retried["sent"], 1, "{retried}");
    expect_mail(&email, 1).await;
}

#[tokio::test]
async fn poison_records_are_skipped_and_later_records_still_processed() {
    let email = unique_email("poison");
    let batch = msk_event(&[
        b"not json at all".to_vec(),
        br#"{"some": "json", "but": "no event"}"#.to_vec(),
        event_json("order.teleported", json!({ "email": email })),
        event_json("user.signed_up", json!({ "mail": email })),
        signed_up_json(&email, ""),
    ]);
    let report = invoke("NotifierFunction", &batch).await;
    assert_eq!((report["skipped"].as_u64(), report["sent"].as_u64()), (Some(4), Some(1)), "{report}");
    expect_mail(&email, 1).await;
}

#[tokio::test]
async fn the_sample_msk_event_is_handled() {
    let report = invoke("NotifierFunction", &event("msk.json")).await;
    let done = report["sent"].as_u64().unwrap() + report["already_sent"].as_u64().unwrap();
    assert_eq!(done, 2, "{report}");
    let mail = expect_mail("msk-sample@example.com", 2).await;
    assert!(mail.iter().any(|m| m.subject == "We received your order" && m.body.contains("25.98 EUR")));
}

/// `events/dynamodb-stream.json` (a stream record of an outbox insert, as `sam local invoke` would
/// send it), with a fresh event id and address: the relay produces it and the welcome e-mail goes out.
#[tokio::test]
async fn the_sample_stream_event_is_relayed() {
    let mut sample = event("dynamodb-stream.json");
    let image = &mut sample["Records"][0]["dynamodb"]["NewImage"];
    let id = uuid::Uuid::now_v7().to_string();
    let email = unique_email("stream-sample");
    let mut payload: Value = serde_json::from_str(image["payload"]["S"].as_str().unwrap()).unwrap();
    payload["id"] = json!(id);
    payload["data"]["email"] = json!(email);
    image["payload"]["S"] = json!(payload.to_string());
    image["id"]["S"] = json!(id);
    let result = invoke("OutboxRelayFunction", &sample).await;
    assert_eq!(result["batchItemFailures"], json!([]), "{result}");
    let mail = expect_mail(&email, 1).await;
    assert_eq!(mail[0].subject, "Welcome to the shop");
}

/// One address SES refuses for good (a recipient an account in the sandbox may not mail, a local
/// part that is not ASCII) must not stop the e-mail behind it: the refusal is recorded, the batch
/// succeeds, nothing is retried, and the other e-mails of the batch go out.
#[tokio::test]
async fn an_address_ses_refuses_is_recorded_and_skipped_and_blocks_nothing() {
    let (sandboxed, fine) = (unique_email("sandboxed"), unique_email("fine"));
    let _refusing = refuse(&sandboxed).await;
    let not_ascii = json!({ "user_id": uuid::Uuid::now_v7(), "email": format!("josé-{fine}"), "name": "" });
    let refused_event = signed_up_json(&sandboxed, "");
    let refused_id = serde_json::from_slice::<Value>(&refused_event).unwrap()["id"].as_str().unwrap().to_owned();
    let batch = msk_event(&[refused_event, event_json("user.signed_up", not_ascii), signed_up_json(&fine, "")]);

    let (report, failed) = invoke_outcome("NotifierFunction", &batch).await;
    assert!(!failed, "a refusal does not fail the batch: {report}");
    assert_eq!((report["sent"].as_u64(), report["refused"].as_u64()), (Some(1), Some(2)), "{report}");
    let record = get_item(&format!("EMAIL_SENT#{refused_id}"), "EMAIL").await.expect("the refusal is recorded");
    assert_eq!(record["status"].as_s().unwrap(), "REFUSED");
    assert!(record["reason"].as_s().unwrap().contains("MessageRejected"), "{record:?}");
    // Redelivered: nothing is tried again.
    let again = invoke("NotifierFunction", &batch).await;
    assert_eq!((again["sent"].as_u64(), again["already_sent"].as_u64()), (Some(0), Some(3)), "{again}");
    expect_mail(&fine, 1).await;
    assert!(mail_to(&sandboxed).await.is_empty());

    // End to end: a refused sign-up's welcome does not hold up the next customer's.
    let refused_customer = unique_email("sandboxed");
    let _refusing_too = refuse(&refused_customer).await;
    let r =
        call(Method::POST, "/auth/signup", None, Some(json!({"email": refused_customer, "password": PASSWORD}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let (next, _) = new_customer("after-refused").await;
    expect_mail(&next, 1).await;
    assert!(mail_to(&refused_customer).await.is_empty());
}
