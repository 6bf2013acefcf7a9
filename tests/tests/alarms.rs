//! The template's alarms fire when they must: the local stack reads the functions' Embedded
//! Metric Format lines and Lambda's own figures, and evaluates every alarm of template.yaml on
//! them with its own metric, statistic, threshold and comparison, periods scaled to 1/60
//! (`GET /_local/alarms`). An alarm never seen firing is a guess; these make two of them fire for
//! real reasons and watch them clear.
//!
//! Exclusive (see `.config/nextest.toml`): they crash a function and make SES refuse, which
//! other tests would notice.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use shop_tests::mail::*;
use shop_tests::*;

async fn alarm(id: &str) -> Value {
    let url = format!("{}/_local/alarms", stack().invoke);
    let all: Value = client().get(url).send().await.expect("alarms").json().await.expect("alarms JSON");
    all["alarms"]
        .as_array()
        .expect("alarms")
        .iter()
        .find(|a| a["alarm"] == id)
        .unwrap_or_else(|| panic!("{id} is evaluated locally: {all}"))
        .clone()
}

/// Waits (up to `secs`) until `check` holds for the alarm; its last state otherwise.
async fn until(id: &str, secs: u64, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let a = alarm(id).await;
        if check(&a) || std::time::Instant::now() > deadline {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the alarm is not firing (an earlier test's datapoints leave its period), so the
/// next firing is this test's; how often it fired so far.
async fn quiet(id: &str) -> u64 {
    let a = until(id, 15, |a| a["state"] != "ALARM").await;
    assert_ne!(a["state"], "ALARM", "{id} cleared before the test: {a}");
    a["fired"].as_u64().unwrap()
}

#[tokio::test]
async fn a_function_crashing_fires_its_errors_alarm_which_then_clears() {
    let id = "PlaceOrderErrorsAlarm";
    let before = quiet(id).await;
    let admin = admin_token().await;
    let product = new_product(&admin, "alarm-crash", 500, 5).await;
    let (_, me) = new_customer("alarm-crash").await;
    crash_next_invocation("PlaceOrderFunction", 0).await;
    let lines = [(product["id"].as_str().unwrap(), 1)];
    let r = place_order(&me, &uuid::Uuid::new_v4().to_string(), Some(&lines)).await;
    assert!(r.status.is_server_error(), "the crashed invocation fails: {:?}", r.status);

    let a = until(id, 15, |a| a["fired"].as_u64().unwrap() > before).await;
    assert!(a["fired"].as_u64().unwrap() > before, "{id} fired: {a}");
    let a = until(id, 15, |a| a["state"] == "OK").await;
    assert_eq!(a["state"], "OK", "{id} clears once the period moves past the error: {a}");
}

#[tokio::test]
async fn ses_refusing_e_mails_fires_the_refusal_alarm() {
    let id = "EmailsRefusedAlarm";
    let before = quiet(id).await;
    let addresses: Vec<String> = (0..5).map(|_| unique_email("alarm-refused")).collect();
    let _refusing = futures::future::join_all(addresses.iter().map(|a| refuse(a))).await;
    let events: Vec<Vec<u8>> = addresses.iter().map(|a| signed_up_json(a, "")).collect();
    let (report, failed) = invoke_outcome("NotifierFunction", &msk_event(&events)).await;
    assert!(!failed, "{report}");
    assert_eq!(report["refused"], 5, "{report}");

    let a = until(id, 15, |a| a["fired"].as_u64().unwrap() > before).await;
    assert!(a["fired"].as_u64().unwrap() > before, "{id} fired on 5 refusals: {a}");
}

#[tokio::test]
async fn every_alarm_of_the_template_is_evaluated_or_says_why_not() {
    let url = format!("{}/_local/alarms", stack().invoke);
    let all: Value = client().get(url).send().await.unwrap().json().await.unwrap();
    let evaluated: Vec<&str> = all["alarms"].as_array().unwrap().iter().filter_map(|a| a["alarm"].as_str()).collect();
    for must in ["PlaceOrderErrorsAlarm", "EmailsRefusedAlarm", "RefundsFailedAlarm", "OrdersThrottledAlarm"] {
        assert!(evaluated.contains(&must), "{must} is evaluated locally: {all}");
    }
    for skipped in all["not_evaluated"].as_array().unwrap() {
        assert!(!skipped["not_evaluated"].as_str().unwrap().is_empty(), "says why: {skipped}");
    }
    let r = call(Method::GET, "/products", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
}
