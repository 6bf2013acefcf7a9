//! The template's alarms fire when they must: the local stack reads the functions' Embedded
//! Metric Format lines and Lambda's own figures, and evaluates every alarm of template.yaml on
//! them with its own metric, statistic, threshold and comparison, periods scaled to 1/60
//! (`GET /_local/alarms`). An alarm never seen firing is a guess; these make two of them fire for
//! real reasons and watch them clear, and run whole journeys on a healthy shop to see none fire.
//!
//! Exclusive (see `.config/nextest.toml`): they crash a function and make SES refuse, which
//! other tests would notice.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use shop_tests::mail::*;
use shop_tests::*;

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

/// Every alarm's `fired` count, once none is firing and the event pipeline has settled: what an
/// earlier test left behind has cleared.
async fn all_quiet() -> Value {
    settle().await;
    let url = format!("{}/_local/alarms", stack().invoke);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let all: Value = client().get(&url).send().await.expect("alarms").json().await.expect("alarms JSON");
        let firing: Vec<&Value> = all["alarms"].as_array().unwrap().iter().filter(|a| a["state"] == "ALARM").collect();
        if firing.is_empty() {
            return all;
        }
        assert!(std::time::Instant::now() < deadline, "alarms still firing before the clean run: {firing:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An alarm that fires on a healthy shop is noise, and noise gets alarms ignored: a run of whole
/// journeys at once (sign-ups, browsing, orders paid, declined and cancelled, their e-mails) fires
/// none, also after the longest of their scaled evaluation windows has passed.
#[tokio::test]
async fn a_clean_run_of_whole_journeys_fires_no_alarm() {
    let before = all_quiet().await;
    let admin = admin_token().await;
    let product = new_product(&admin, "alarm-clean", 1250, 100).await["id"].as_str().unwrap().to_owned();
    let journeys = (0..6).map(|i| {
        let product = product.clone();
        async move {
            let (email, me) = new_customer("alarm-clean").await;
            assert_eq!(call(Method::GET, "/products", None, None).await.status, StatusCode::OK);
            let placed = place_order(&me, &uuid::Uuid::new_v4().to_string(), Some(&[(&product, 1)])).await;
            assert_eq!(placed.status, StatusCode::CREATED, "{:?}", placed.body);
            let order = placed.body["id"].as_str().unwrap().to_owned();
            // Paid, declined, or cancelled by the buyer: every outcome a healthy shop has.
            let r = match ["tok_success", "tok_fail"].get(i % 3) {
                Some(token) => {
                    let body = serde_json::json!({"order_id": order, "token": token});
                    call(Method::POST, "/payments", Some(&me), Some(body)).await
                }
                None => call(Method::POST, &format!("/orders/{order}/cancel"), Some(&me), None).await,
            };
            assert!(!r.status.is_server_error(), "{:?} {:?}", r.status, r.body);
            // Welcome, placed, and the outcome's e-mail.
            expect_mail(&email, 3).await;
        }
    });
    futures::future::join_all(journeys).await;
    settle().await;
    // The longest evaluation window of the template's alarms, scaled: 3 periods of 5 minutes → 15 s.
    tokio::time::sleep(Duration::from_secs(16)).await;

    let url = format!("{}/_local/alarms", stack().invoke);
    let after: Value = client().get(url).send().await.unwrap().json().await.unwrap();
    let fired_before = |id: &Value| {
        before["alarms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| &a["alarm"] == id)
            .map_or(0, |a| a["fired"].as_u64().unwrap())
    };
    let noisy: Vec<String> = after["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["state"] == "ALARM" || a["fired"].as_u64().unwrap() > fired_before(&a["alarm"]))
        .map(|a| a.to_string())
        .collect();
    assert!(noisy.is_empty(), "alarms fired on a clean run: {noisy:?}");
}

#[tokio::test]
async fn every_alarm_of_the_template_is_evaluated_or_says_why_not() {
    let url = format!("{}/_local/alarms", stack().invoke);
    let all: Value = client().get(url).send().await.unwrap().json().await.unwrap();
    let evaluated: Vec<&str> = all["alarms"].as_array().unwrap().iter().filter_map(|a| a["alarm"].as_str()).collect();
    for must in [
        "PlaceOrderErrorsAlarm",
        "EmailsRefusedAlarm",
        "EmailsOutcomeUnknownAlarm",
        "RefundsFailedAlarm",
        "OrdersThrottledAlarm",
    ] {
        assert!(evaluated.contains(&must), "{must} is evaluated locally: {all}");
    }
    for skipped in all["not_evaluated"].as_array().unwrap() {
        assert!(!skipped["not_evaluated"].as_str().unwrap().is_empty(), "says why: {skipped}");
    }
    let r = call(Method::GET, "/products", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
}
