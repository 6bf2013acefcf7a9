//! The shop's metrics: business figures and technical ones, in CloudWatch Embedded Metric Format.
//!
//! **Why EMF.** A Lambda function's stdout already goes to CloudWatch Logs. An EMF document is a
//! JSON log line with an `_aws` header naming the metrics in it; CloudWatch extracts them into
//! metrics as it ingests the log, with no API call on the request path, no agent, no extra IAM
//! grant (the logs permission the role has anyway). Powertools does the same for other languages.
//!
//! **How.** Code counts through the [`metrics`] facade (`metrics::counter!(names::ORDERS_PLACED)`),
//! and the `metrics_cloudwatch_embedded` recorder keeps the counts. [`flush`] writes them as EMF
//! documents to stdout and zeroes them; every Lambda loop of this crate (`http::serve`,
//! `schedule::serve`, the notifier's and the relay's) calls it after each invocation, so each
//! invocation's figures are one or a few lines, timestamped when it ended.
//!
//! **Dimensions stay few.** Every document carries `Service` (the shop's service name, one per
//! stack) and a metric may add one label of a closed set (`Reason` of a refused order: an API
//! error code; `Outcome`): never a user, an order or a request id, which would make one
//! CloudWatch metric per value. The request id goes into the document as a *property* (searchable
//! with Logs Insights, not a dimension).
//!
//! The namespace is `METRICS_NAMESPACE` (template.yaml sets `Shop/<Stage>`); [`names`] is the
//! catalogue, and docs/operations.md says what each counts and which alarm reads it (a test keeps
//! the two in step).

use std::sync::OnceLock;

/// Every metric the shop emits.
pub mod names {
    /// A process started (the first invocation of an instance pays its init).
    pub const COLD_STARTS: &str = "ColdStarts";
    /// `POST /orders` answered 201 (replays of an idempotency key included).
    pub const ORDERS_PLACED: &str = "OrdersPlaced";
    /// `POST /orders` refused; label `Reason` = the API error code (`out_of_stock`,
    /// `price_changed`, `unavailable` when throttled or conflicting beyond retries, …).
    pub const ORDERS_REFUSED: &str = "OrdersRefused";
    /// A payment webhook handled; label `Outcome`: `paid`, `payment_failed` (declined),
    /// `refund_required` and `refund_requested` (a refund opened), `duplicate`, `unchanged`.
    pub const PAYMENTS_SETTLED: &str = "PaymentsSettled";
    /// Refunds the worker had paid by the gateway.
    pub const REFUNDS_PAID: &str = "RefundsPaid";
    /// Refunds the gateway refused for good: a human must act.
    pub const REFUNDS_FAILED: &str = "RefundsFailed";
    /// E-mails SES accepted.
    pub const EMAILS_SENT: &str = "EmailsSent";
    /// E-mails SES refused for good (recorded, never retried).
    pub const EMAILS_REFUSED: &str = "EmailsRefused";
    /// E-mails not sent this time (SES or DynamoDB failing): the batch comes again.
    pub const EMAILS_FAILED: &str = "EmailsFailed";
    /// SES's throttling answers (the account's sending rate exceeded): each e-mail is sent later,
    /// in the same invocation or by the batch's redelivery.
    pub const EMAILS_THROTTLED: &str = "EmailsThrottled";
    /// E-mails found claimed by an attempt that died before recording SES's answer: each may
    /// have reached its customer twice or not at all (`email::unknown` decides which risk).
    pub const EMAILS_OUTCOME_UNKNOWN: &str = "EmailsOutcomeUnknown";
    /// Events the relay published to Kafka.
    pub const EVENTS_RELAYED: &str = "EventsRelayed";
    /// Events the relay could not publish (their records are retried).
    pub const EVENTS_FAILED: &str = "EventsFailed";
    /// Unpaid orders the sweeper expired.
    pub const ORDERS_EXPIRED: &str = "OrdersExpired";
    /// Outbox events the sweeper sent through the stream again.
    pub const EVENTS_REDRIVEN: &str = "EventsRedriven";
    /// Log-ins refused because the account's attempts were used up.
    pub const LOGINS_THROTTLED: &str = "LoginsThrottled";
    /// Records in one batch of the relay or the notifier (a distribution).
    pub const BATCH_SIZE: &str = "BatchSize";
    /// Every name, for the documentation test.
    pub const ALL: &[&str] = &[
        COLD_STARTS,
        ORDERS_PLACED,
        ORDERS_REFUSED,
        PAYMENTS_SETTLED,
        REFUNDS_PAID,
        REFUNDS_FAILED,
        EMAILS_SENT,
        EMAILS_REFUSED,
        EMAILS_FAILED,
        EMAILS_THROTTLED,
        EMAILS_OUTCOME_UNKNOWN,
        EVENTS_RELAYED,
        EVENTS_FAILED,
        ORDERS_EXPIRED,
        EVENTS_REDRIVEN,
        LOGINS_THROTTLED,
        BATCH_SIZE,
    ];
}

/// A report whose figures are metrics: what a scheduled run, a relay batch or a notifier batch
/// counts once it is done.
pub trait Counted {
    fn count(&self);
}

/// `METRICS_NAMESPACE` when unset.
pub const DEFAULT_NAMESPACE: &str = "Shop";

static COLLECTOR: OnceLock<&'static metrics_cloudwatch_embedded::Collector> = OnceLock::new();

/// Installs the recorder (once per process) and counts the cold start. Without it, counting is a
/// no-op (unit tests, tools), as it is when `METRICS_DISABLED` is `true` (Powertools'
/// `POWERTOOLS_METRICS_DISABLED`: for a stage that wants no metrics, and for `cargo local bench
/// --no-metrics`, which measures what they cost).
pub fn init() {
    if COLLECTOR.get().is_some() || std::env::var("METRICS_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true")) {
        return;
    }
    let namespace = std::env::var("METRICS_NAMESPACE").unwrap_or_else(|_| DEFAULT_NAMESPACE.into());
    let service = std::env::var("METRICS_SERVICE").unwrap_or_else(|_| "shop".into());
    match metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(namespace)
        .with_dimension("Service", service)
        .init()
    {
        Ok(collector) => {
            let _ = COLLECTOR.set(collector);
            metrics::counter!(names::COLD_STARTS).increment(1);
        }
        Err(e) => tracing::warn!("metrics recorder not installed: {e}"),
    }
}

/// Writes what was counted since the last flush as EMF documents to stdout, tagged with the
/// invocation's `request_id` (a property, not a dimension).
pub fn flush(request_id: &str) {
    if let Some(collector) = COLLECTOR.get() {
        collector.set_property("request_id", request_id.to_owned());
        let out = std::io::stdout();
        if let Err(e) = collector.flush(out.lock()) {
            tracing::warn!("metrics not written: {e}");
        }
    }
}

/// Counts `n` of `name`, when `n` is not zero (a zero would still make a document).
pub fn count(name: &'static str, n: usize) {
    if n > 0 {
        metrics::counter!(name).increment(n as u64);
    }
}

/// Counts one of `name` with one label of a closed set.
pub fn count_labelled(name: &'static str, label: &'static str, value: &'static str) {
    metrics::counter!(name, label => value).increment(1);
}

/// Records one value of a distribution (a batch's size).
pub fn record(name: &'static str, value: usize) {
    metrics::histogram!(name).record(value as f64);
}

#[cfg(test)]
mod tests {
    use super::names;

    /// docs/operations.md lists every metric, with what it counts and where: kept in step here.
    #[test]
    fn every_metric_is_documented() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/operations.md")).unwrap();
        for name in names::ALL {
            assert!(doc.contains(&format!("| `{name}` |")), "docs/operations.md has no row for `{name}`");
        }
        let rows = doc.lines().filter(|l| l.starts_with("| `")).count();
        assert_eq!(rows, names::ALL.len(), "docs/operations.md lists a metric the code does not emit");
    }
}
