//! The notifier's e-mail records outlast DynamoDB throttling their write, and an instance that
//! dies between SES's answer and the record leaves an e-mail of **unknown outcome**, decided by
//! its kind and counted, never sent again blindly.
//!
//! Each record is written after its send, so a lost record is a refusal nobody knows of, or an
//! e-mail the redelivery must treat as unknown. The soak found both: under a DynamoDB throttling
//! window the records' `BatchWriteItem` was throttled past the SDK's three attempts and the
//! records were gone (`--seed 7`); a notifier killed while its record writes waited in those
//! retries sent nine e-mails twice (30 minutes, `--seed 42`, before the claims).
//!
//! Exclusive (see `.config/nextest.toml`): they limit every partition's writes for the whole
//! stack, hold SES's answers back and crash the notifier.

use serde_json::{Value, json};
use shop_tests::mail::*;
use shop_tests::*;
use std::time::Duration;

fn id_of(event: &[u8]) -> String {
    serde_json::from_slice::<Value>(event).unwrap()["id"].as_str().unwrap().to_owned()
}

async fn partition_throttles() -> u64 {
    dynamodb_stats().await["partition_throttles"].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn a_throttled_record_write_is_tried_again_until_it_is_written() {
    let (refused, fine) = (unique_email("records-refused"), unique_email("records-fine"));
    let _refusing = refuse(&refused).await;
    let events = [signed_up_json(&refused, ""), signed_up_json(&fine, "")];
    let ids: Vec<String> = events.iter().map(|e| id_of(e)).collect();
    let batch = msk_event(&events);

    // SES takes the e-mail at once and answers 1.5 s later: meanwhile every write is throttled
    // (a partition budget below one write unit a second; reads are not limited), so the notifier
    // has read its records and claimed the e-mail, and meets the throttling with the record.
    let _late = ses_answers_late(1_500, 1).await;
    let notifier = tokio::spawn({
        let batch = batch.clone();
        async move { invoke_outcome("NotifierFunction", &batch).await }
    });
    let taken = tokio::time::Instant::now() + Duration::from_secs(20);
    while mail_to(&fine).await.is_empty() {
        assert!(tokio::time::Instant::now() < taken, "SES never took the e-mail");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = partition_throttles().await;
    let faults =
        inject_dynamodb_faults(json!({ "partition_write_units_per_second": 1000, "capacity_scale": 0.0005 })).await;
    // The SDK sends a request three times at most: a fourth throttled write is the store trying
    // again on its own. Then DynamoDB has capacity again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while partition_throttles().await < before + 4 && !notifier.is_finished() {
        assert!(tokio::time::Instant::now() < deadline, "the notifier neither wrote nor answered");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    drop(faults);
    let (report, failed) = notifier.await.expect("the invocation");
    assert!(!failed, "{report}");
    assert_eq!((report["sent"].as_u64(), report["refused"].as_u64()), (Some(1), Some(1)), "{report}");
    for (id, status) in ids.iter().zip(["REFUSED", "SENT"]) {
        let record = get_item(&format!("EMAIL_SENT#{id}"), "EMAIL")
            .await
            .unwrap_or_else(|| panic!("the record of the {status} e-mail {id} was lost ({report})"));
        assert_eq!(record["status"].as_s().unwrap(), status);
    }

    // Redelivered: nothing is sent again.
    let again = invoke("NotifierFunction", &batch).await;
    assert_eq!((again["sent"].as_u64(), again["already_sent"].as_u64()), (Some(0), Some(2)), "{again}");
    expect_mail(&fine, 1).await;
    assert!(mail_to(&refused).await.is_empty());
}

/// An `order.paid` event's JSON for an order of one line, as the relay produces it.
fn paid_json(email: &str) -> Vec<u8> {
    let order = json!({ "order_id": uuid::Uuid::now_v7(), "user_id": uuid::Uuid::now_v7(), "email": email,
                        "total": {"amount": 100, "currency": "EUR"},
                        "lines": [{"product_id": uuid::Uuid::now_v7(), "name": "Cup", "quantity": 1,
                                   "unit_price": {"amount": 100, "currency": "EUR"}}],
                        "charge_id": "ch_unknown", "previous_state": "PENDING_PAYMENT" });
    event_json("order.paid", order)
}

async fn alarm_fired(id: &str) -> u64 {
    alarm(id).await["fired"].as_u64().unwrap()
}

/// The instance dies after SES took both e-mails and before it heard so: both stay claimed. The
/// redelivery cannot know they went out; it sends the receipt again (a customer may get two) and
/// lets the welcome be (one may be missing), settles both, counts both, and the alarm fires.
#[tokio::test]
async fn an_instance_dying_before_ses_answers_leaves_unknown_outcomes_decided_by_kind() {
    settle().await;
    retire_instances("NotifierFunction").await;
    let (welcome, receipt) = (unique_email("unknown-welcome"), unique_email("unknown-receipt"));
    let events = [signed_up_json(&welcome, ""), paid_json(&receipt)];
    let ids: Vec<String> = events.iter().map(|e| id_of(e)).collect();
    let batch = msk_event(&events);
    let fired_before = alarm_fired("EmailsOutcomeUnknownAlarm").await;

    let late = ses_answers_late(5_000, 2).await;
    crash_next_invocation("NotifierFunction", 2_000).await;
    let (report, failed) = invoke_outcome("NotifierFunction", &batch).await;
    assert!(failed, "the invocation died: {report}");
    drop(late);
    for (address, id) in [&welcome, &receipt].into_iter().zip(&ids) {
        assert_eq!(mail_to(address).await.len(), 1, "SES took the e-mail to {address}");
        let claim = get_item(&format!("EMAIL_SENT#{id}"), "EMAIL").await.expect("claimed");
        assert_eq!(
            (claim["status"].as_s().unwrap().as_str(), claim["attempt"].as_n().unwrap().as_str()),
            ("SENDING", "1")
        );
    }

    let again = invoke("NotifierFunction", &batch).await;
    assert_eq!((again["unknown"].as_u64(), again["sent"].as_u64()), (Some(2), Some(1)), "{again}");
    assert_eq!(mail_to(&welcome).await.len(), 1, "a welcome of unknown outcome is let be");
    expect_mail(&receipt, 2).await;
    let w = get_item(&format!("EMAIL_SENT#{}", ids[0]), "EMAIL").await.unwrap();
    let r = get_item(&format!("EMAIL_SENT#{}", ids[1]), "EMAIL").await.unwrap();
    assert_eq!((w["status"].as_s().unwrap().as_str(), w["attempt"].as_n().unwrap().as_str()), ("UNKNOWN", "1"));
    assert_eq!((r["status"].as_s().unwrap().as_str(), r["attempt"].as_n().unwrap().as_str()), ("SENT", "2"));

    // Settled: a third delivery does nothing, and the operators were told.
    let third = invoke("NotifierFunction", &batch).await;
    assert_eq!(
        (third["sent"].as_u64(), third["unknown"].as_u64(), third["already_sent"].as_u64()),
        (Some(0), Some(0), Some(2))
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while alarm_fired("EmailsOutcomeUnknownAlarm").await <= fired_before {
        assert!(tokio::time::Instant::now() < deadline, "EmailsOutcomeUnknownAlarm did not fire");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
