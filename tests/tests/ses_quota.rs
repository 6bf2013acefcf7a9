//! SES's sending quota: the notifier keeps pace with the account's `MaxSendRate` (read with
//! `GetAccount` at cold start), and what SES throttles anyway is sent later, never lost, never
//! twice. The local SES gate enforces the quota as SES answers it (429
//! `TooManyRequestsException`, "Maximum sending rate exceeded.") and counts what it accepted.
//!
//! Exclusive (see `.config/nextest.toml`): the quota is the whole stack's, and the notifier's
//! instances are retired so that the next ones read it.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shop_tests::mail::*;
use shop_tests::*;
use std::time::Duration;

/// Signs up `n` customers at once (no log-in: only the welcome e-mail matters) and returns their addresses.
async fn sign_up_at_once(tag: &str, n: usize) -> Vec<String> {
    let emails: Vec<String> = (0..n).map(|_| unique_email(tag)).collect();
    let replies =
        futures::future::join_all(emails.iter().map(|email| {
            call(Method::POST, "/auth/signup", None, Some(json!({"email": email, "password": PASSWORD})))
        }))
        .await;
    for r in &replies {
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }
    emails
}

/// Waits (up to `secs`) until every address has an e-mail, then until the pipeline settled, and
/// checks that each has exactly one.
async fn expect_one_each(emails: &[String], secs: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let mut missing = 0;
        for email in emails {
            if mail_to(email).await.is_empty() {
                missing += 1;
            }
        }
        if missing == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{missing} of {} e-mails still missing", emails.len());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    settle().await;
    for email in emails {
        let mail = mail_to(email).await;
        assert_eq!(mail.len(), 1, "e-mails to {email}: {:?}", mail.iter().map(|m| &m.subject).collect::<Vec<_>>());
        assert_eq!(mail[0].subject, "Welcome to the shop");
    }
}

fn figure(stats: &Value, key: &str) -> u64 {
    stats[key].as_u64().unwrap_or_else(|| panic!("{key} in {stats}"))
}

/// 40 sign-ups at once with the account's rate at 5 a second: a fresh notifier instance reads
/// the rate with `GetAccount` and sends at it, so SES sees at most about the rate in any second
/// (its bucket would let twice as many through), nothing lands in the dead-letter queue, and
/// every welcome e-mail arrives exactly once.
#[tokio::test]
async fn a_burst_of_email_keeps_to_the_accounts_sending_rate_and_arrives_once() {
    const RATE: f64 = 5.0;
    const CUSTOMERS: usize = 40;
    settle().await;
    let dead_before = queue_messages("NotifierDeadLetters").await.len();
    let _quota = limit_ses_rate(RATE).await;
    retire_instances("NotifierFunction").await;

    let emails = sign_up_at_once("paced", CUSTOMERS).await;
    expect_one_each(&emails, 120).await;

    let stats = ses_quota().await;
    eprintln!("SES gate, {RATE}/s: {stats}");
    let (accepted, peak, span_ms) =
        (figure(&stats, "accepted"), figure(&stats, "peak_per_second"), figure(&stats, "span_ms"));
    assert_eq!(accepted, CUSTOMERS as u64, "only these e-mails were sent meanwhile: {stats}");
    assert!(
        peak <= RATE as u64 + 2,
        "the notifier paced its sends (SES's bucket allows up to {}): {stats}",
        2 * RATE as u64
    );
    let average = (accepted - 1) as f64 / (span_ms as f64 / 1000.0);
    assert!(average <= RATE * 1.1, "{average:.2} e-mails a second on average: {stats}");
    assert_eq!(queue_messages("NotifierDeadLetters").await.len(), dead_before, "no batch was given up on");
}

/// A notifier instance that read a generous rate at its cold start (the quota was lowered since,
/// as when several instances share it): SES throttles its sends, and every throttled e-mail is
/// sent again later, within the invocation or by the batch's redelivery — each exactly once, and
/// no batch in the dead-letter queue.
#[tokio::test]
async fn throttled_sends_are_sent_later_never_lost_never_twice() {
    settle().await;
    let dead_before = queue_messages("NotifierDeadLetters").await.len();
    // A warm instance that knows the default rate.
    retire_instances("NotifierFunction").await;
    let warm_up = unique_email("throttle-warm-up");
    let report = invoke("NotifierFunction", &msk_event(&[signed_up_json(&warm_up, "")])).await;
    assert_eq!(report["sent"], 1, "{report}");

    let _quota = limit_ses_rate(2.0).await;
    let emails = sign_up_at_once("throttled", 16).await;
    expect_one_each(&emails, 120).await;

    let stats = ses_quota().await;
    eprintln!("SES gate, 2/s under an instance pacing at the default rate: {stats}");
    assert_eq!(figure(&stats, "accepted"), 16, "{stats}");
    assert!(figure(&stats, "throttled") > 0, "the instance did exceed the lowered rate: {stats}");
    assert_eq!(queue_messages("NotifierDeadLetters").await.len(), dead_before, "no batch was given up on");
}

/// The notifier reads the quota at cold start with `GetAccount`, which its role is granted in
/// template.yaml (the stack enforces IAM: a missing grant would be a denial in the report, and
/// the instance would crawl at the fallback rate of 1 a second).
#[tokio::test]
async fn the_notifier_reads_the_quota_with_get_account_as_its_role_allows() {
    let _quota = limit_ses_rate(14.0).await;
    let stats = ses_quota().await;
    assert_eq!(
        (stats["max_send_rate"].as_f64(), stats["max_24_hour_send"].as_f64()),
        (Some(14.0), Some(-1.0)),
        "{stats}"
    );
    retire_instances("NotifierFunction").await;
    let email = unique_email("quota-read");
    let report = invoke("NotifierFunction", &msk_event(&[signed_up_json(&email, "")])).await;
    assert_eq!(report["sent"], 1, "{report}");
    expect_one_each(&[email], 60).await;
    let iam = iam_report().await;
    let notifier = iam["functions"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["function"] == "NotifierFunction"))
        .unwrap_or_else(|| panic!("NotifierFunction in the report: {iam}"))
        .clone();
    assert!(notifier["used"].to_string().contains("ses:GetAccount"), "GetAccount used: {}", notifier["used"]);
    assert!(!notifier["denied"].to_string().contains("ses:GetAccount"), "and never denied: {}", notifier["denied"]);
}

/// An instance that dies in the middle of a paced batch: what SES accepted before was recorded
/// e-mail by e-mail, so the batch's redelivery sends only the rest, and every e-mail arrives
/// once. When the records were written at the end of the batch, every e-mail sent before the
/// crash went out twice (the 30-minute soak found it: a notifier killed 19 ms into a batch).
#[tokio::test]
async fn an_instance_dying_in_a_paced_batch_leaves_nothing_to_send_twice() {
    settle().await;
    let _quota = limit_ses_rate(0.5).await;
    retire_instances("NotifierFunction").await;
    let emails: Vec<String> = (0..5).map(|_| unique_email("crash-paced")).collect();
    let batch = msk_event(&emails.iter().map(|e| signed_up_json(e, "")).collect::<Vec<_>>());

    // At one every 2 s the sends start at about 0, 2 and 4 s (after the batch's first reads): dead
    // at 3 s, a second away from either, however slow the machine is about the reads.
    crash_next_invocation("NotifierFunction", 3_000).await;
    let (report, failed) = invoke_outcome("NotifierFunction", &batch).await;
    assert!(failed, "the invocation died: {report}");
    let mut sent_before = 0;
    for email in &emails {
        sent_before += usize::from(!mail_to(email).await.is_empty());
    }
    assert!((1..emails.len()).contains(&sent_before), "the crash came mid-batch: {sent_before} sent");

    let again = invoke("NotifierFunction", &batch).await;
    assert_eq!(again["already_sent"].as_u64(), Some(sent_before as u64), "{again}");
    assert_eq!(again["sent"].as_u64(), Some((emails.len() - sent_before) as u64), "{again}");
    for email in &emails {
        let mail = mail_to(email).await;
        assert_eq!(mail.len(), 1, "e-mails to {email}: {:?}", mail.iter().map(|m| &m.subject).collect::<Vec<_>>());
    }
}
