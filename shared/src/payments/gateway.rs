//! The payment gateway's HTTP contract as the shop uses it, and the client the `payments`
//! function calls it with. The mock gateway (`api::mock_gateway`) serves exactly this contract,
//! so a real provider's adapter only has to map its own API onto these types.
//!
//! - `POST {GATEWAY_URL}/gateway/charges` with `Idempotency-Key` and a [`ChargeRequest`] → [`Charge`]
//!   (a retry with the same key returns the same charge, never a second one);
//! - `GET {GATEWAY_URL}/gateway/charges/{id}` → [`Charge`], the gateway's word on its status;
//! - `POST {GATEWAY_URL}/gateway/refunds` with `Idempotency-Key` and a [`RefundRequest`] →
//!   [`GatewayRefund`] (a retry with the same key returns the same refund);
//! - webhooks: `POST` of a [`WebhookEvent`] to the shop, signed (see [`super::signature`]).
//!
//! Every call carries `Authorization: Bearer <GATEWAY_API_KEY>`, the shop's secret key at the
//! provider (the mock gateway checks it too).
//!
//! Network failures and 5xx are retried here with jittered backoff (safe: creation is idempotent
//! on the key); what remains becomes [`GatewayError::Unavailable`], a 503 for our caller.

use crate::domain::money::{Currency, Money};
use crate::domain::payment::{ChargeStatus, Payment};
use backon::{ExponentialBuilder, Retryable};
use serde::{Deserialize, Serialize};
use std::time::Duration;

pub const CHARGE_SUCCEEDED: &str = "charge.succeeded";
pub const CHARGE_FAILED: &str = "charge.failed";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChargeRequest {
    /// Minor units.
    pub amount: i64,
    pub currency: Currency,
    /// What the customer's payment method was tokenised to (the mock reads the outcome from it).
    pub token: String,
    /// Ours: the order id. Comes back in the charge and in every webhook about it.
    pub reference: String,
    /// Mock gateway only: deliver this charge's webhooks here instead of its configured URL
    /// (tests point it at a proxy that fails first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charge {
    /// `ch_…`
    pub id: String,
    pub amount: i64,
    pub currency: Currency,
    pub reference: String,
    pub status: ChargeStatus,
    /// Unix seconds.
    pub created: i64,
    /// How much of it was paid back, once it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_refunded: Option<i64>,
}

impl Charge {
    pub fn payment(&self) -> Payment {
        Payment {
            charge_id: self.id.clone(),
            status: self.status,
            amount: Money { amount: self.amount, currency: self.currency },
        }
    }
}

/// Paying (part of) a charge back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    pub charge_id: String,
    /// Minor units; at most what the charge took.
    pub amount: i64,
    pub currency: Currency,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayRefund {
    /// `re_…`
    pub id: String,
    pub charge_id: String,
    pub amount: i64,
    pub currency: Currency,
    /// `succeeded`: the money is on its way back.
    pub status: ChargeStatus,
    /// Unix seconds.
    pub created: i64,
}

/// The body of a webhook: `{"id": "evt_…", "type": "charge.succeeded", "created": …, "data": {"charge": {…}}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEvent {
    /// Unique per event, the same on every redelivery of it: the dedupe key.
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub created: i64,
    pub data: WebhookData,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookData {
    /// The charge as the event reports it; its `status` is the outcome.
    pub charge: Charge,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The gateway refused the request (4xx): retrying the same request will not help.
    #[error("gateway refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
    /// Unreachable, timed out or 5xx after retries.
    #[error("gateway unavailable: {0}")]
    Unavailable(String),
}

impl GatewayError {
    fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// Talks to the gateway at `base_url` (`GATEWAY_URL`). Built once at cold start; the connection
/// pool is reused across invocations.
#[derive(Debug, Clone)]
pub struct GatewayClient {
    http: reqwest::Client,
    base_url: String,
    api_key: secrecy::SecretString,
}

fn backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_millis(500))
        .with_max_times(3)
        .with_jitter()
}

/// The HTTP(S) client for calls between the shop and the payment gateway, built once at cold
/// start. TLS is rustls with Mozilla's roots compiled in (`webpki-roots`: nothing read from disk at
/// cold start).
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        // Lambda freezes the process between invocations; an idle pooled connection may be
        // dead when it thaws, so do not keep them around long.
        .pool_idle_timeout(Duration::from_secs(20))
        .build()
}

impl GatewayClient {
    pub fn new(base_url: &str, api_key: secrecy::SecretString) -> Result<Self, reqwest::Error> {
        Ok(Self { http: http_client()?, base_url: base_url.trim_end_matches('/').to_owned(), api_key })
    }

    /// `GATEWAY_URL` and `GATEWAY_API_KEY`, at cold start.
    pub fn from_env() -> Result<Self, crate::config::ConfigError> {
        let url = crate::config::url_from_env("GATEWAY_URL")?;
        let key = crate::config::secret_from_env("GATEWAY_API_KEY")?;
        Self::new(&url, key)
            .map_err(|e| crate::config::ConfigError::Invalid { name: "GATEWAY_URL", why: e.to_string() })
    }

    fn authorised(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        use secrecy::ExposeSecret;
        request.bearer_auth(self.api_key.expose_secret())
    }

    /// Creates (or, for a key already used, returns) the charge.
    pub async fn create_charge(&self, idempotency_key: &str, request: &ChargeRequest) -> Result<Charge, GatewayError> {
        self.post_idempotent("/gateway/charges", idempotency_key, request).await
    }

    /// Refunds (or, for a key already used, returns the refund of) a charge.
    pub async fn refund(&self, idempotency_key: &str, request: &RefundRequest) -> Result<GatewayRefund, GatewayError> {
        self.post_idempotent("/gateway/refunds", idempotency_key, request).await
    }

    /// `POST` of `body` with an `Idempotency-Key`: safe to retry, so transient failures are.
    async fn post_idempotent<B: Serialize, T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        idempotency_key: &str,
        body: &B,
    ) -> Result<T, GatewayError> {
        let url = format!("{}{path}", self.base_url);
        (|| async {
            let resp = self
                .authorised(self.http.post(&url))
                .header("idempotency-key", idempotency_key)
                .json(body)
                .send()
                .await;
            read(resp).await
        })
        .retry(backoff())
        .when(GatewayError::is_transient)
        .await
    }

    /// The charge as the gateway has it; `None` if it does not know the id.
    pub async fn get_charge(&self, id: &str) -> Result<Option<Charge>, GatewayError> {
        // The id comes from the client: only let through what a charge id can look like.
        if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Ok(None);
        }
        let url = format!("{}/gateway/charges/{id}", self.base_url);
        let result = (|| async { read(self.authorised(self.http.get(&url)).send().await).await })
            .retry(backoff())
            .when(GatewayError::is_transient)
            .await;
        match result {
            Ok(charge) => Ok(Some(charge)),
            Err(GatewayError::Refused { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

async fn read<T: serde::de::DeserializeOwned>(
    resp: Result<reqwest::Response, reqwest::Error>,
) -> Result<T, GatewayError> {
    let resp = resp.map_err(|e| GatewayError::Unavailable(e.to_string()))?;
    let status = resp.status();
    if status.is_server_error() {
        return Err(GatewayError::Unavailable(format!("HTTP {status}")));
    }
    if !status.is_success() {
        let message = resp.text().await.unwrap_or_default();
        return Err(GatewayError::Refused { status: status.as_u16(), message });
    }
    resp.json::<T>().await.map_err(|e| GatewayError::Unavailable(format!("unreadable answer: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real provider is `https://`: the client must speak TLS, not refuse the scheme.
    #[tokio::test]
    async fn the_client_speaks_https() {
        // Nothing listens on port 1: the request fails connecting, which proves it got that far.
        let err = http_client().unwrap().get("https://127.0.0.1:1/").send().await.unwrap_err();
        let chain = format!("{err:?}");
        assert!(err.is_connect() && !chain.contains("scheme is not http"), "{chain}");
    }
}
