//! One id from click to e-mail: the ids that tie a request to everything it caused.
//!
//! A buyer's `POST /orders` is one HTTP request, but what it causes runs later and elsewhere: the
//! outbox relay's batch, a Kafka record, the notifier's batch, the e-mail. Each of those logs its
//! own invocation ids, which say nothing about the order's request. So the request's ids travel
//! with what it wrote:
//!
//! - `request_id`: API Gateway's request id (what the client sees in `x-request-id` and in every
//!   error body); for a change with no HTTP request behind it (the sweeper expiring an order, the
//!   refund worker), the Lambda invocation id of that scheduled run;
//! - `trace_id`: X-Ray's trace id (the `Root` of `_X_AMZN_TRACE_ID`, `1-5759e988-bd86…`), when the
//!   function runs with `Tracing: Active` (Lambda hands it to every invocation).
//!
//! The use case that writes an event is given the [`Trace`] of its invocation and stamps it on the
//! event (`events::event::Event::trace`) and, for a new order, on the order item; the relay sends
//! it as Kafka record headers ([`REQUEST_ID_HEADER`], [`TRACE_ID_HEADER`]); the relay, the notifier
//! and the refund worker log under a span carrying both as `request_id` and `trace_id`. So one id
//! finds an order's whole path in the logs: `cargo local logs --trace <id>` locally, a Logs
//! Insights query in AWS (README, "Logs").

use serde::{Deserialize, Serialize};

/// Kafka header carrying [`Trace::request_id`].
pub const REQUEST_ID_HEADER: &str = "request_id";
/// Kafka header carrying [`Trace::trace_id`] (only when there is one).
pub const TRACE_ID_HEADER: &str = "trace_id";

/// The ids of the invocation that caused something (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trace {
    /// API Gateway's request id, or the Lambda invocation id of a run without an HTTP request.
    pub request_id: String,
    /// X-Ray's trace id (`1-<8 hex>-<24 hex>`), when tracing is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

impl Trace {
    /// From a request id and Lambda's X-Ray header value (`Root=1-…;Parent=…;Sampled=…`), if any.
    pub fn new(request_id: impl Into<String>, xray: Option<&str>) -> Self {
        Self { request_id: request_id.into(), trace_id: xray.and_then(xray_root) }
    }

    /// The ids of a Lambda invocation with no HTTP request behind it (a scheduled run).
    pub fn of_invocation(context: &lambda_http::lambda_runtime::Context) -> Self {
        Self::new(context.request_id.clone(), context.xray_trace_id.as_deref())
    }

    /// The span (`trace`) every log line about what this trace caused is written under: its
    /// fields `request_id` and `trace_id` are what the README's Logs Insights query and `cargo
    /// local logs --trace` look for. `None` (an event written before traces existed) gives the
    /// span without them.
    pub fn span(trace: Option<&Self>) -> tracing::Span {
        let request_id = trace.map(|t| t.request_id.as_str());
        let trace_id = trace.and_then(|t| t.trace_id.as_deref());
        tracing::info_span!("trace", request_id, trace_id)
    }

    /// The Kafka record headers that carry it.
    pub fn headers(&self) -> Vec<(&'static str, &str)> {
        let mut headers = vec![(REQUEST_ID_HEADER, self.request_id.as_str())];
        if let Some(t) = &self.trace_id {
            headers.push((TRACE_ID_HEADER, t.as_str()));
        }
        headers
    }

    /// Back from Kafka record headers (`(key, value)` pairs); `None` without a request id.
    pub fn from_headers<'a>(headers: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Option<Self> {
        let mut trace = Self::default();
        for (key, value) in headers {
            let Ok(value) = std::str::from_utf8(value) else { continue };
            match key {
                REQUEST_ID_HEADER => trace.request_id = value.to_owned(),
                TRACE_ID_HEADER => trace.trace_id = Some(value.to_owned()),
                _ => {}
            }
        }
        (!trace.request_id.is_empty()).then_some(trace)
    }
}

/// The `Root` of an X-Ray header (`Root=1-…;Parent=…;Sampled=1`), or the value itself when it is
/// already a bare trace id.
fn xray_root(header: &str) -> Option<String> {
    let root = header.split(';').find_map(|part| part.trim().strip_prefix("Root=")).unwrap_or(header).trim();
    (root.starts_with("1-") && !root.contains('=')).then(|| root.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trace_id_is_the_root_of_the_xray_header() {
        let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let t = Trace::new("req-1", Some(header));
        assert_eq!(t.request_id, "req-1");
        assert_eq!(t.trace_id.as_deref(), Some("1-5759e988-bd862e3fe1be46a994272793"));
        assert_eq!(Trace::new("r", Some("1-5759e988-bd862e3fe1be46a994272793")).trace_id, t.trace_id);
        assert_eq!(Trace::new("r", Some("Parent=53995c3f42cd8ad8")).trace_id, None);
        assert_eq!(Trace::new("r", None).trace_id, None);
    }

    #[test]
    fn headers_round_trip_and_a_missing_trace_id_is_left_out() {
        let t = Trace { request_id: "AbCd+EfGh/IjKw=".into(), trace_id: Some("1-abc-def".into()) };
        let headers = t.headers();
        assert_eq!(headers, [(REQUEST_ID_HEADER, "AbCd+EfGh/IjKw="), (TRACE_ID_HEADER, "1-abc-def")]);
        let back = Trace::from_headers(headers.iter().map(|(k, v)| (*k, v.as_bytes())));
        assert_eq!(back, Some(t));
        let bare = Trace { request_id: "r".into(), trace_id: None };
        assert_eq!(bare.headers().len(), 1);
        assert_eq!(Trace::from_headers([("other", b"x".as_slice())]), None);
    }

    #[test]
    fn serde_leaves_out_an_absent_trace_id_and_reads_it_back() {
        let bare = Trace { request_id: "r".into(), trace_id: None };
        assert_eq!(serde_json::to_string(&bare).unwrap(), r#"{"request_id":"r"}"#);
        assert_eq!(serde_json::from_str::<Trace>(r#"{"request_id":"r"}"#).unwrap(), bare);
    }
}
