//! `POST /webhooks/payment`: the gateway tells us how a charge ended.
//!
//! In this order, and nothing is read or written before step 2 passes:
//! 1. the raw body, as received (≤ 64 KiB);
//! 2. `Payment-Signature` over those bytes (`payments::signature`): missing or unparseable → 400,
//!    wrong or older than 300 s → 401;
//! 3. the JSON (a `payments::gateway::WebhookEvent`): malformed → 400;
//! 4. a `charge.failed` is **confirmed with the gateway** before anything is released: webhooks
//!    are notifications, not the truth, and may arrive in any order. A stale failure delivered
//!    after (or instead of) the charge's success would otherwise release the units, other buyers
//!    would take them, and the success would then find them gone: the buyer paid and loses the
//!    goods. So the outcome settled is the charge's current status at the gateway
//!    (`GET /gateway/charges/{id}`): still failed → release; succeeded → pay; pending → nothing yet
//!    (the final webhook will come); gateway unreachable → 503, and the gateway redelivers;
//! 5. `payments::settle` with the **event id** as the dedupe key.
//!
//! Answers: 200 for anything settled, duplicated or deliberately ignored (an unknown order or
//! event type: retrying would not change that); 5xx only for transient failures, so the gateway
//! retries exactly what may succeed later.

use crate::domain::money::Money;
use crate::domain::payment::{ChargeStatus, Payment};
use crate::error::ApiError;
use crate::http::{json, json_from_bytes, raw_body};
use crate::payments::gateway::{CHARGE_FAILED, CHARGE_SUCCEEDED, GatewayClient, GatewayError, WebhookEvent};
use crate::payments::settle::{SettleError, settle};
use crate::payments::signature::{self, SignatureError};
use crate::store::{PaymentStore, StoreError};
use http::StatusCode;
use lambda_http::{Body, Request, Response};
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("could not confirm the charge with the gateway: {0}")]
    Gateway(GatewayError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        match e {
            WebhookError::Signature(s @ SignatureError::Malformed) => {
                ApiError::bad_request("invalid_signature_header", s.to_string())
            }
            WebhookError::Signature(s) => ApiError::new(StatusCode::UNAUTHORIZED, "invalid_signature", s.to_string()),
            WebhookError::Gateway(cause) => ApiError::unavailable(&cause),
            WebhookError::Store(cause) => cause.into(),
        }
    }
}

pub struct PaymentWebhook<S> {
    pub store: S,
    /// Every secret currently accepted (rotation).
    pub secrets: Vec<SecretString>,
    /// To confirm a failure before releasing anything.
    pub gateway: GatewayClient,
}

fn received(result: &str) -> Response<Body> {
    json(StatusCode::OK, &json!({ "received": true, "result": result }))
}

impl<S: PaymentStore + 'static> crate::http::HttpHandler for PaymentWebhook<S> {
    async fn handle(&self, req: Request) -> Result<Response<Body>, ApiError> {
        let body = raw_body(&req)?;
        let header = req.headers().get(signature::HEADER).and_then(|v| v.to_str().ok());
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        signature::verify(header, body, &self.secrets, now).map_err(WebhookError::from)?;
        let event: WebhookEvent = json_from_bytes(body)?;

        let status = match event.event_type.as_str() {
            CHARGE_SUCCEEDED => ChargeStatus::Succeeded,
            CHARGE_FAILED => ChargeStatus::Failed,
            other => {
                tracing::info!(event_id = %event.id, event_type = other, "webhook type not handled, ignored");
                return Ok(received("ignored"));
            }
        };
        let charge = &event.data.charge;
        let Ok(order_id) = Uuid::parse_str(&charge.reference) else {
            tracing::warn!(event_id = %event.id, reference = %charge.reference, "webhook for no order of ours, ignored");
            return Ok(received("ignored"));
        };
        let reported = Payment {
            charge_id: charge.id.clone(),
            status,
            amount: Money { amount: charge.amount, currency: charge.currency },
        };
        let payment = match status {
            ChargeStatus::Failed => match self.gateway.get_charge(&charge.id).await {
                Ok(Some(current)) if current.reference == charge.reference => {
                    if current.status != ChargeStatus::Failed {
                        tracing::warn!(event_id = %event.id, charge_id = %charge.id, now = ?current.status,
                            "a charge.failed the gateway no longer stands by: settled as it is now");
                    }
                    current.payment()
                }
                Ok(_) => {
                    tracing::warn!(event_id = %event.id, charge_id = %charge.id, "the gateway does not know this charge, ignored");
                    return Ok(received("ignored"));
                }
                Err(e) => return Err(WebhookError::Gateway(e).into()),
            },
            _ => reported,
        };
        match settle(&self.store, order_id, &payment, &event.id, &crate::http::trace(&req)).await {
            Ok(outcome) => {
                let settled = outcome.settled.as_str();
                crate::metrics::count_labelled(crate::metrics::names::PAYMENTS_SETTLED, "Outcome", settled);
                Ok(received(settled))
            }
            Err(SettleError::OrderNotFound) => {
                tracing::warn!(event_id = %event.id, %order_id, "webhook for an unknown order, ignored");
                Ok(received("ignored"))
            }
            Err(SettleError::Store(e)) => Err(WebhookError::Store(e).into()),
        }
    }
}
