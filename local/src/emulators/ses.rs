//! The local stand-in for Amazon SESv2: moto's server mode, and reading back what was "sent".
//!
//! `moto_server` (PyPI `moto[server]`, in the stack's venv) answers the SESv2 API and keeps every
//! message it accepts; like SES it refuses a From address that is not a verified identity, so the
//! stack creates the notifier's `SENDER_EMAIL` identity at start. Functions reach it through an
//! [`Outage`] relay (`AWS_ENDPOINT_URL_SESV2`), so `POST /_local/ses/stop` makes SES unreachable
//! while the sent mail survives; tests read mail straight from moto (`SHOP_SES_ENDPOINT`,
//! `GET /moto-api/data.json` → `ses.Message[]`: `{id, source, destinations.ToAddresses, subject, body}`).
//!
//! Between the relay and moto sits a small **gate** that refuses what real SES refuses and moto
//! accepts: a recipient whose local part is not 7-bit ASCII (`400 BadRequestException`: SES has no
//! SMTPUTF8), and any recipient put on its refusal list (`400 MessageRejected`, "Email address is
//! not verified", what an account still in the SES sandbox answers for an unverified recipient).
//! `POST /_local/ses/refusals` `{"address": "…"}` adds one, `GET` lists them, `DELETE` clears them
//! (on the Invoke API). The gate is also where IAM is checked: the caller is the function whose
//! credentials signed the request ([`crate::emulators::iam::authorizer`]), and `SendEmail` is
//! authorized as SES authorizes it — `ses:SendEmail` on the sending identity (the From address's
//! own identity when it is verified, else its domain's) and on the configuration set when one is
//! named —; a denial is SES's `403 AccessDeniedException` with AWS's message.
//!
//! The gate also keeps the account's **sending quota** ([`SendQuota`]), which moto has none of:
//! `MaxSendRate` e-mails a second and, optionally, `Max24HourSend` in any 24 hours, counted per
//! recipient as SES counts them. Past the rate, `SendEmail` gets what SESv2 answers, HTTP 429
//! `TooManyRequestsException` "Maximum sending rate exceeded." (the e-mail is dropped), past the
//! day's quota the same with "Daily message quota exceeded.". SES does not document how it
//! measures the rate and says short bursts are tolerated; the gate's model is a token bucket that
//! holds one second's worth (at least one e-mail) and refills at the rate. SESv2 `GetAccount`
//! (`GET /v2/email/account`, which moto does not serve) is answered by the gate itself with the
//! configured `SendQuota` and `SentLast24Hours`, authorized as `ses:GetAccount` on `*`.
//! `PUT /_local/ses/quota` `{"max_send_rate": 5, "max_24_hour_send": 200}` (the second optional;
//! `-1` or absent is unlimited) sets it at runtime and starts its statistics afresh; `DELETE`
//! puts back the default, a generous [`DEFAULT_MAX_SEND_RATE`] a second and no daily quota;
//! `GET` answers the quota and what the gate saw since it was set: e-mails accepted and throttled,
//! the most accepted in any one second (`peak_per_second`) and the time from the first accepted
//! to the last (`span_ms`). Everything else passes through untouched.
//!
//! The gate can also answer **late**: `PUT /_local/ses/late` `{"ms": 3000, "count": 1}` holds the
//! answer to the next `count` `SendEmail`s for `ms` *after* moto took the e-mail (`DELETE` stops
//! it) — a slow network on the way back, and the way a test makes a notifier die between SES
//! accepting an e-mail and the notifier hearing so (an unknown outcome, `email::unknown`).
//!
//! For people: `GET /_local/mail` on the Invoke API lists the sent mail as JSON, and
//! `cargo local mail` prints it.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::template::{ACCOUNT_ID, REGION};

use crate::emulators::emulator::Emulator;
use crate::emulators::iam::authorizer::{Access, Authorizer, Caller};
use crate::emulators::outage::Outage;

pub struct Ses {
    /// moto itself: tests and `/_local/mail` read mail here.
    pub endpoint: String,
    /// What functions get as `AWS_ENDPOINT_URL_SESV2` (through the relay).
    pub functions_endpoint: String,
    pub relay: Outage,
    /// Recipients the gate refuses as an SES sandbox would.
    pub refusals: Refusals,
    /// The account's sending quota the gate enforces.
    pub quota: SendQuota,
    /// Answers the gate holds back after moto took the e-mail.
    pub late: Late,
    moto: Emulator,
}

/// How many `SendEmail` answers are still to be held back, and for how long.
#[derive(Clone, Default)]
pub struct Late(std::sync::Arc<std::sync::Mutex<(Duration, u32)>>);

impl Late {
    pub fn set(&self, ms: u64, count: u32) {
        *self.0.lock().unwrap() = (Duration::from_millis(ms), count);
    }

    /// How long to hold this answer back, counting it.
    fn take(&self) -> Option<Duration> {
        let mut late = self.0.lock().unwrap();
        (late.1 > 0).then(|| {
            late.1 -= 1;
            late.0
        })
    }

    pub fn left(&self) -> serde_json::Value {
        let late = self.0.lock().unwrap();
        serde_json::json!({ "ms": late.0.as_millis() as u64, "count": late.1 })
    }
}

/// Recipients SES is to refuse, lower-case.
#[derive(Clone, Default)]
pub struct Refusals(std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>);

impl Refusals {
    pub fn add(&self, address: &str) {
        self.0.lock().unwrap().insert(address.trim().to_lowercase());
    }

    pub fn clear(&self) {
        self.0.lock().unwrap().clear();
    }

    pub fn list(&self) -> Vec<String> {
        self.0.lock().unwrap().iter().cloned().collect()
    }

    fn refuses(&self, address: &str) -> bool {
        self.0.lock().unwrap().contains(&address.trim().to_lowercase())
    }
}

/// `MaxSendRate` when no quota was set: generous enough that no test meets it by accident.
pub const DEFAULT_MAX_SEND_RATE: f64 = 1000.0;
/// How far back `Max24HourSend` counts.
const DAY: Duration = Duration::from_secs(24 * 60 * 60);
/// Accepted sends remembered for the statistics (beyond, the oldest are forgotten).
const TIMELINE_LIMIT: usize = 100_000;

/// The account's sending quota, as `PUT /_local/ses/quota` sets it and `GetAccount` answers it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaConfig {
    /// E-mails (recipients) a second.
    pub max_send_rate: f64,
    /// E-mails in any 24 hours; `-1` (or absent) is unlimited.
    #[serde(default = "unlimited")]
    pub max_24_hour_send: f64,
}

fn unlimited() -> f64 {
    -1.0
}

impl Default for QuotaConfig {
    fn default() -> Self {
        Self { max_send_rate: DEFAULT_MAX_SEND_RATE, max_24_hour_send: unlimited() }
    }
}

impl QuotaConfig {
    fn check(&self) -> Result<(), String> {
        if !(self.max_send_rate.is_finite() && self.max_send_rate > 0.0) {
            return Err("max_send_rate must be a positive number".into());
        }
        if !(self.max_24_hour_send == -1.0 || (self.max_24_hour_send.is_finite() && self.max_24_hour_send >= 0.0)) {
            return Err("max_24_hour_send must be -1 (unlimited) or a number of e-mails".into());
        }
        Ok(())
    }
}

/// The quota's state: a token bucket of one second's worth, the last 24 hours' sends, and what
/// was accepted and throttled since the quota was set.
#[derive(Debug)]
struct QuotaState {
    config: QuotaConfig,
    tokens: f64,
    refilled: Instant,
    day: std::collections::VecDeque<Instant>,
    since: Instant,
    accepted: Vec<Instant>,
    accepted_count: u64,
    throttled: u64,
}

impl QuotaState {
    fn new(config: QuotaConfig, now: Instant) -> Self {
        Self {
            config,
            tokens: Self::capacity(&config),
            refilled: now,
            day: Default::default(),
            since: now,
            accepted: Vec::new(),
            accepted_count: 0,
            throttled: 0,
        }
    }

    fn capacity(config: &QuotaConfig) -> f64 {
        config.max_send_rate.max(1.0)
    }

    /// A new quota, with a full bucket and fresh statistics (the last 24 hours still count).
    fn set(&mut self, config: QuotaConfig, now: Instant) {
        let day = std::mem::take(&mut self.day);
        *self = Self { day, ..Self::new(config, now) };
    }

    /// One `SendEmail` to `recipients` at `now`: accepted (and counted), or SES's throttling answer.
    /// As SES does for several recipients, a send goes through while any of the rate is left,
    /// and takes its recipients from it (the bucket may go below zero: later sends wait longer).
    fn admit(&mut self, recipients: usize, now: Instant) -> Result<(), &'static str> {
        let n = recipients.max(1);
        while self.day.front().is_some_and(|t| now.duration_since(*t) >= DAY) {
            self.day.pop_front();
        }
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.config.max_send_rate).min(Self::capacity(&self.config));
        self.refilled = now;
        let daily = self.config.max_24_hour_send;
        if daily >= 0.0 && (self.day.len() + n) as f64 > daily {
            self.throttled += 1;
            return Err("Daily message quota exceeded.");
        }
        if self.tokens < 1.0 {
            self.throttled += 1;
            return Err("Maximum sending rate exceeded.");
        }
        self.tokens -= n as f64;
        for _ in 0..n {
            self.day.push_back(now);
            if self.accepted.len() < TIMELINE_LIMIT {
                self.accepted.push(now);
            }
        }
        self.accepted_count += n as u64;
        Ok(())
    }

    fn sent_last_24_hours(&self, now: Instant) -> usize {
        self.day.iter().filter(|t| now.duration_since(**t) < DAY).count()
    }

    /// The most sends accepted within any one second since the quota was set.
    fn peak_per_second(&self) -> usize {
        let mut peak = 0;
        let mut first = 0;
        for (last, t) in self.accepted.iter().enumerate() {
            while t.duration_since(self.accepted[first]) >= Duration::from_secs(1) {
                first += 1;
            }
            peak = peak.max(last - first + 1);
        }
        peak
    }

    fn stats(&self, now: Instant) -> Value {
        let span = match (self.accepted.first(), self.accepted.last()) {
            (Some(first), Some(last)) => last.duration_since(*first).as_millis() as u64,
            _ => 0,
        };
        serde_json::json!({
            "max_send_rate": self.config.max_send_rate,
            "max_24_hour_send": self.config.max_24_hour_send,
            "sent_last_24_hours": self.sent_last_24_hours(now),
            "accepted": self.accepted_count,
            "throttled": self.throttled,
            "peak_per_second": self.peak_per_second(),
            "span_ms": span,
            "since_ms_ago": now.duration_since(self.since).as_millis() as u64,
        })
    }
}

/// The account's sending quota, shared by the gate and the control endpoints. Cheap to clone.
#[derive(Clone)]
pub struct SendQuota(std::sync::Arc<std::sync::Mutex<QuotaState>>);

impl Default for SendQuota {
    fn default() -> Self {
        Self(std::sync::Arc::new(std::sync::Mutex::new(QuotaState::new(QuotaConfig::default(), Instant::now()))))
    }
}

impl SendQuota {
    /// Sets the quota (statistics start afresh); an invalid one is refused with why.
    pub fn set(&self, config: QuotaConfig) -> Result<(), String> {
        config.check()?;
        self.0.lock().unwrap().set(config, Instant::now());
        Ok(())
    }

    /// Back to [`QuotaConfig::default`].
    pub fn reset(&self) {
        self.0.lock().unwrap().set(QuotaConfig::default(), Instant::now());
    }

    /// The quota and what the gate saw since it was set (`GET /_local/ses/quota`).
    pub fn stats(&self) -> Value {
        self.0.lock().unwrap().stats(Instant::now())
    }

    fn admit(&self, recipients: usize) -> Result<(), &'static str> {
        self.0.lock().unwrap().admit(recipients, Instant::now())
    }

    /// SESv2 `GetAccount`'s answer.
    fn account(&self) -> Value {
        let state = self.0.lock().unwrap();
        serde_json::json!({
            "DedicatedIpAutoWarmupEnabled": false,
            "EnforcementStatus": "HEALTHY",
            "ProductionAccessEnabled": true,
            "SendingEnabled": true,
            "SendQuota": {
                "Max24HourSend": state.config.max_24_hour_send,
                "MaxSendRate": state.config.max_send_rate,
                "SentLast24Hours": state.sent_last_24_hours(Instant::now()) as f64,
            },
            "SuppressionAttributes": { "SuppressedReasons": [] },
        })
    }
}

/// What SES answers a `SendEmail` to these recipients, if it refuses it.
fn refusal(recipients: &[&str], refusals: &Refusals) -> Option<(&'static str, String)> {
    if let Some(bad) = recipients.iter().find(|a| !a.split('@').next().unwrap_or_default().is_ascii()) {
        return Some(("BadRequestException", format!("Local address contains non-ASCII characters: {bad}")));
    }
    let refused: Vec<&str> = recipients.iter().copied().filter(|a| refusals.refuses(a)).collect();
    (!refused.is_empty()).then(|| {
        (
            "MessageRejected",
            format!(
                "Email address is not verified. The following identities failed the check in region US-EAST-1: {}",
                refused.join(", ")
            ),
        )
    })
}

/// Starts the gate in front of moto; returns its address.
async fn gate(
    moto: std::net::SocketAddr,
    refusals: Refusals,
    quota: SendQuota,
    late: Late,
    iam: Authorizer,
    verified: Vec<String>,
) -> Result<std::net::SocketAddr> {
    use axum::body::{Body, Bytes};
    use axum::extract::{Request, State};
    use axum::response::{IntoResponse, Response};
    type Gate = (reqwest::Client, String, Refusals, SendQuota, Late, Authorizer, std::sync::Arc<Vec<String>>);
    async fn pass(
        State((http, upstream, refusals, quota, late, iam, verified)): State<Gate>,
        request: Request,
    ) -> Response {
        let (parts, body) = request.into_parts();
        let Ok(body): Result<Bytes, _> = axum::body::to_bytes(body, 16 * 1024 * 1024).await else {
            return axum::http::StatusCode::PAYLOAD_TOO_LARGE.into_response();
        };
        let error = |status: axum::http::StatusCode, code: &'static str, message: String| {
            let mut r = (status, axum::Json(serde_json::json!({ "__type": code, "message": message }))).into_response();
            r.headers_mut().insert("x-amzn-errortype", axum::http::HeaderValue::from_static(code));
            r
        };
        // The caller's signature, then its role's grants: the answer SES gives when either fails.
        let refuse = |accesses: &[Access]| match iam.caller(&parts.headers, parts.uri.query()) {
            Caller::BadToken => Some(error(
                axum::http::StatusCode::FORBIDDEN,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.".into(),
            )),
            Caller::Function(function) => iam
                .authorize(&function, accesses)
                .err()
                .map(|denied| error(axum::http::StatusCode::FORBIDDEN, "AccessDeniedException", denied.message)),
            Caller::Operator => None,
        };
        if parts.method == axum::http::Method::GET && parts.uri.path() == "/v2/email/account" {
            if let Some(refused) = refuse(&[Access::new("ses:GetAccount", "*")]) {
                return refused;
            }
            return axum::Json(quota.account()).into_response();
        }
        let sending = parts.method == axum::http::Method::POST && parts.uri.path() == "/v2/email/outbound-emails";
        if sending {
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if let Some(refused) = refuse(&send_email_accesses(&v, &verified)) {
                return refused;
            }
            let recipients: Vec<&str> = ["ToAddresses", "CcAddresses", "BccAddresses"]
                .iter()
                .filter_map(|k| v.pointer(&format!("/Destination/{k}")).and_then(Value::as_array))
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if let Some((code, message)) = refusal(&recipients, &refusals) {
                return error(axum::http::StatusCode::BAD_REQUEST, code, message);
            }
            if let Err(message) = quota.admit(recipients.len()) {
                return error(axum::http::StatusCode::TOO_MANY_REQUESTS, "TooManyRequestsException", message.into());
            }
        }
        let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let mut forward = http.request(parts.method, format!("{upstream}{path}")).body(body);
        for (name, value) in &parts.headers {
            if name != "host" && name != "content-length" {
                forward = forward.header(name, value);
            }
        }
        match forward.send().await {
            Ok(answer) => {
                let status = answer.status();
                let headers = answer.headers().clone();
                let bytes = answer.bytes().await.unwrap_or_default();
                if sending && let Some(wait) = late.take() {
                    tokio::time::sleep(wait).await;
                }
                let mut response = Response::new(Body::from(bytes));
                *response.status_mut() = status;
                for (name, value) in &headers {
                    if name != "transfer-encoding" && name != "content-length" && name != "connection" {
                        response.headers_mut().append(name, value.clone());
                    }
                }
                response
            }
            Err(e) => (axum::http::StatusCode::BAD_GATEWAY, format!("moto unreachable: {e}")).into_response(),
        }
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.context("binding the SES gate")?;
    let addr = listener.local_addr()?;
    let state =
        (reqwest::Client::new(), format!("http://{moto}"), refusals, quota, late, iam, std::sync::Arc::new(verified));
    let app = axum::Router::new().fallback(pass).with_state(state);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("SES gate on {addr} stopped: {e}");
        }
    });
    Ok(addr)
}

/// What IAM judges for one `SendEmail`: `ses:SendEmail` on the identity SES sends as (the From
/// address's identity if it is verified, else its domain's) and on the configuration set, if any.
fn send_email_accesses(request: &Value, verified: &[String]) -> Vec<Access> {
    let arn = |kind: &str, name: &str| format!("arn:aws:ses:{REGION}:{ACCOUNT_ID}:{kind}/{name}");
    let from = request.get("FromEmailAddress").and_then(Value::as_str).unwrap_or_default();
    // `Name <address>` or a bare address.
    let address = from.rsplit_once('<').map_or(from, |(_, rest)| rest.trim_end_matches('>')).trim().to_lowercase();
    let identity = match address.split_once('@') {
        Some((_, domain)) if !verified.contains(&address) => arn("identity", domain),
        _ => arn("identity", &address),
    };
    let mut out = vec![Access::new("ses:SendEmail", identity)];
    if let Some(set) = request.get("ConfigurationSetName").and_then(Value::as_str) {
        out.push(Access::new("ses:SendEmail", arn("configuration-set", set)));
    }
    out
}

/// One sent e-mail as moto recorded it (moto keeps the HTML body when there is one, else the text).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SentMail {
    pub id: String,
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
}

/// A SigV4-shaped header: moto routes REST calls to a service by the credential scope.
const SES_AUTH: &str =
    "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/ses/aws4_request, SignedHeaders=host, Signature=0";

impl Ses {
    pub async fn start(venv_bin: &Path, log: &Path, sender: Option<&str>, iam: &Authorizer) -> Result<Self> {
        let port = crate::process::free_port()?;
        let mut cmd = crate::process::command(venv_bin.join("moto_server"));
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        let moto = Emulator::spawn("moto", cmd, port, log).await?;
        let refusals = Refusals::default();
        let quota = SendQuota::default();
        let late = Late::default();
        let verified: Vec<String> = sender.into_iter().map(str::to_lowercase).collect();
        let gate = match gate(moto.addr, refusals.clone(), quota.clone(), late.clone(), iam.clone(), verified).await {
            Ok(g) => g,
            Err(e) => {
                moto.stop().await;
                return Err(e);
            }
        };
        let relay = Outage::start(gate).await?;
        let ses = Self {
            endpoint: format!("http://{}", moto.addr),
            functions_endpoint: format!("http://{}", relay.addr),
            relay,
            refusals,
            quota,
            late,
            moto,
        };
        if let Some(sender) = sender
            && let Err(e) = ses.create_identity(sender).await
        {
            ses.stop().await;
            return Err(e);
        }
        Ok(ses)
    }

    /// SESv2 `CreateEmailIdentity`: moto marks it verified at once.
    async fn create_identity(&self, email: &str) -> Result<()> {
        let url = format!("{}/v2/email/identities", self.endpoint);
        let response = reqwest::Client::new()
            .post(&url)
            .header("authorization", SES_AUTH)
            .json(&serde_json::json!({ "EmailIdentity": email }))
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        if !response.status().is_success() {
            bail!("creating SES identity {email}: {}", response.text().await.unwrap_or_default());
        }
        Ok(())
    }

    pub async fn stop(self) {
        self.relay.stop();
        self.moto.stop().await;
    }
}

/// Every e-mail moto accepted, oldest first.
pub async fn sent_mail(moto_endpoint: &str) -> Result<Vec<SentMail>> {
    let url = format!("{}/moto-api/data.json", moto_endpoint.trim_end_matches('/'));
    let data: Value = reqwest::get(&url).await.with_context(|| format!("GET {url}"))?.json().await?;
    let messages = data.pointer("/ses/Message").and_then(Value::as_array).cloned().unwrap_or_default();
    let text = |m: &Value, k: &str| m.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    Ok(messages
        .iter()
        .map(|m| SentMail {
            id: text(m, "id"),
            from: text(m, "source"),
            to: m
                .pointer("/destinations/ToAddresses")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
            subject: text(m, "subject"),
            body: text(m, "body"),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_gate_refuses_what_ses_refuses() {
        let r = super::Refusals::default();
        assert_eq!(super::refusal(&["ann@example.com"], &r), None);
        assert_eq!(super::refusal(&["josé@example.com"], &r).map(|x| x.0), Some("BadRequestException"));
        r.add("Sandboxed@Example.com");
        let (code, message) = super::refusal(&["ok@example.com", "sandboxed@example.com"], &r).unwrap();
        assert_eq!(code, "MessageRejected");
        assert!(message.contains("not verified") && message.contains("sandboxed@example.com"), "{message}");
        r.clear();
        assert_eq!(super::refusal(&["sandboxed@example.com"], &r), None);
    }

    fn at(start: std::time::Instant, ms: u64) -> std::time::Instant {
        start + std::time::Duration::from_millis(ms)
    }

    #[test]
    fn the_quota_allows_a_second_of_burst_then_the_rate() {
        let t0 = std::time::Instant::now();
        let mut q = super::QuotaState::new(super::QuotaConfig { max_send_rate: 5.0, max_24_hour_send: -1.0 }, t0);
        for _ in 0..5 {
            assert_eq!(q.admit(1, t0), Ok(()));
        }
        assert_eq!(q.admit(1, t0), Err("Maximum sending rate exceeded."));
        assert_eq!(q.admit(1, at(t0, 100)), Err("Maximum sending rate exceeded."), "half a token back");
        assert_eq!(q.admit(1, at(t0, 200)), Ok(()), "one token back after 1/5 s");
        // Paced at the rate from then on: never throttled.
        for i in 1..=20 {
            assert_eq!(q.admit(1, at(t0, 200 + 200 * i)), Ok(()), "send {i}");
        }
        let stats = q.stats(at(t0, 5000));
        assert_eq!((stats["accepted"].as_u64(), stats["throttled"].as_u64()), (Some(26), Some(2)), "{stats}");
        assert_eq!(stats["peak_per_second"], 9, "the burst of 5 and four more within its second: {stats}");
        assert_eq!(stats["span_ms"], 4200);
    }

    #[test]
    fn a_send_to_several_recipients_goes_while_any_rate_is_left_and_the_day_quota_counts_recipients() {
        let t0 = std::time::Instant::now();
        let mut q = super::QuotaState::new(super::QuotaConfig { max_send_rate: 1.0, max_24_hour_send: 4.0 }, t0);
        assert_eq!(q.admit(3, t0), Ok(()), "one token left: three recipients go");
        assert_eq!(q.admit(1, at(t0, 1500)), Err("Maximum sending rate exceeded."), "the bucket is at -0.5");
        assert_eq!(q.admit(1, at(t0, 3000)), Ok(()));
        assert_eq!(q.admit(1, at(t0, 10_000)), Err("Daily message quota exceeded."), "4 of 4 today");
        assert_eq!(q.stats(at(t0, 10_000))["sent_last_24_hours"], 4);
        // A new quota starts the statistics afresh, not the day.
        q.set(super::QuotaConfig { max_send_rate: 2.0, max_24_hour_send: 4.0 }, at(t0, 20_000));
        let stats = q.stats(at(t0, 20_000));
        assert_eq!((stats["accepted"].as_u64(), stats["throttled"].as_u64()), (Some(0), Some(0)), "{stats}");
        assert_eq!(stats["sent_last_24_hours"], 4);
        assert_eq!(q.admit(1, at(t0, 21_000)), Err("Daily message quota exceeded."));
        assert_eq!(q.admit(1, t0 + super::DAY + std::time::Duration::from_secs(1)), Ok(()), "a day later");
    }

    #[test]
    fn invalid_quotas_are_refused_and_get_account_answers_the_configured_one() {
        let bad = |r: f64, d: f64| super::QuotaConfig { max_send_rate: r, max_24_hour_send: d }.check().is_err();
        assert!(bad(0.0, -1.0) && bad(f64::NAN, -1.0) && bad(5.0, -2.0));
        assert!(!bad(0.5, -1.0) && !bad(14.0, 50_000.0));
        let quota = super::SendQuota::default();
        assert_eq!(quota.account()["SendQuota"]["MaxSendRate"], super::DEFAULT_MAX_SEND_RATE);
        quota.set(super::QuotaConfig { max_send_rate: 14.0, max_24_hour_send: 200.0 }).unwrap();
        let account = quota.account();
        assert_eq!(
            account["SendQuota"],
            serde_json::json!({"Max24HourSend": 200.0, "MaxSendRate": 14.0, "SentLast24Hours": 0.0})
        );
        let parsed: super::QuotaConfig = serde_json::from_str(r#"{"max_send_rate": 5}"#).unwrap();
        assert_eq!(parsed.max_24_hour_send, -1.0);
    }

    #[test]
    fn send_email_is_authorized_on_the_sending_identity_and_the_configuration_set() {
        let verified = vec!["no-reply@shop.example.com".to_owned()];
        let of = |v: serde_json::Value| {
            super::send_email_accesses(&v, &verified).into_iter().map(|a| a.resource).collect::<Vec<_>>()
        };
        assert_eq!(
            of(serde_json::json!({ "FromEmailAddress": "Shop <No-Reply@shop.example.com>" })),
            vec!["arn:aws:ses:us-east-1:123456789012:identity/no-reply@shop.example.com"]
        );
        assert_eq!(
            of(serde_json::json!({ "FromEmailAddress": "other@shop.example.com", "ConfigurationSetName": "cs" })),
            vec![
                "arn:aws:ses:us-east-1:123456789012:identity/shop.example.com",
                "arn:aws:ses:us-east-1:123456789012:configuration-set/cs"
            ]
        );
    }
}
