//! The notifier's e-mail records outlast DynamoDB throttling their write. Each is written after
//! its send, so a lost record is a refusal nobody knows of, or an e-mail that any redelivery of
//! its event sends twice. The soak found it (`cargo local soak --seed 7`): under a DynamoDB
//! throttling window the records' `BatchWriteItem` was throttled past the SDK's three attempts,
//! the notifier answered OK and the records were gone.
//!
//! Exclusive (see `.config/nextest.toml`): it limits every partition's writes for the whole stack.

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

    let before = partition_throttles().await;
    // Every write throttled (a partition budget below one write unit a second); reads are not
    // limited, so the notifier reads its records, sends, and then meets the throttling.
    let faults =
        inject_dynamodb_faults(json!({ "partition_write_units_per_second": 1000, "capacity_scale": 0.0005 })).await;
    let notifier = tokio::spawn({
        let batch = batch.clone();
        async move { invoke_outcome("NotifierFunction", &batch).await }
    });
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
