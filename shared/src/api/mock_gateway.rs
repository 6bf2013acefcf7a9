//! The mock payment gateway's HTTP API (development stages and the local stack only):
//! `POST /gateway/charges`, `GET /gateway/charges/{id}` and `POST /gateway/refunds`, the
//! contract of `payments::gateway`.
//!
//! It behaves like a provider that holds money, because it signs webhooks that pay orders:
//! - every call needs `Authorization: Bearer <MOCK_API_KEY>` (the shop's `GATEWAY_API_KEY`), like a
//!   provider's secret key; anything else is a 401 before anything is read;
//! - it signs with a secret of its own (`MOCK_SIGNING_SECRET`), never the provider's: the webhook
//!   accepts it only where the mock is deployed (and the template refuses the mock on a production
//!   stage);
//! - a charge's own `webhook_url` (tests point it at a proxy that fails first) is accepted only
//!   with `MOCK_ALLOW_WEBHOOK_URL=true`, which only the local stack sets: elsewhere the mock would
//!   be an oracle signing bodies for any URL anyone names.
//!
//! Creating a charge requires an `Idempotency-Key`: the same key again returns the same charge
//! (`200`), the same key with another request is a `422`. The token picks the scenario
//! (`mock_gateway::scenario`). The charge and its webhooks are stored in one transaction, then the
//! webhooks due now are delivered before answering (a real provider would do it in the background;
//! a Lambda cannot, it is frozen once it answers). Whatever is not delivered now, late and delayed
//! webhooks included, is delivered by the schedule (`api::mock_gateway_deliveries`).

use crate::domain::idempotency::IdempotencyKey;
use crate::domain::payment::ChargeStatus;
use crate::error::ApiError;
use crate::http::{idempotency_key, json, json_body, path_param, route_key};
use crate::mock_gateway::delivery::Deliverer;
use crate::mock_gateway::scenario::{Delays, Token, plan, status_at};
use crate::mock_gateway::store::{CreateCharge, CreateRefund, Delivery, GatewayStore, StoredCharge};
use crate::payments::gateway::{
    CHARGE_FAILED, CHARGE_SUCCEEDED, Charge, ChargeRequest, GatewayRefund, RefundRequest, WebhookData, WebhookEvent,
};
use crate::store::StoreError;
use http::StatusCode;
use lambda_http::{Body, Request, Response};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Webhooks due "now" are stored as due this much later, so the schedule leaves them to the
/// request that is delivering them (and takes over if that request dies).
const INLINE_LEASE_SECS: i64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum GatewayApiError {
    #[error("send the gateway API key as `Authorization: Bearer <key>`")]
    Unauthorized,
    #[error("webhook_url is accepted by the local stack only")]
    WebhookUrlNotAllowed,
    #[error("the charge cannot be refunded: {0}")]
    NotRefundable(String),
    #[error("the charge was refunded before")]
    AlreadyRefunded,
    #[error("an Idempotency-Key header is required")]
    NoKey,
    #[error("unknown test token {0:?}")]
    UnknownToken(String),
    #[error("amount must be positive")]
    BadAmount,
    #[error("idempotency key reused with another request")]
    KeyReused,
    #[error("charge not found")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<GatewayApiError> for ApiError {
    fn from(e: GatewayApiError) -> Self {
        use GatewayApiError as E;
        match e {
            E::Unauthorized => ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string()),
            E::WebhookUrlNotAllowed => ApiError::bad_request("webhook_url_not_allowed", e.to_string()),
            E::NotRefundable(_) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "not_refundable", e.to_string()),
            E::AlreadyRefunded => ApiError::conflict("already_refunded", e.to_string()),
            E::NoKey => ApiError::bad_request("idempotency_key_required", e.to_string()),
            E::UnknownToken(_) => ApiError::bad_request("invalid_token", e.to_string()),
            E::BadAmount => ApiError::bad_request("invalid_amount", e.to_string()),
            E::KeyReused => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused", e.to_string()),
            E::NotFound => ApiError::not_found("charge"),
            E::Store(cause) => cause.into(),
        }
    }
}

pub struct MockGateway<S> {
    pub store: S,
    pub deliverer: Deliverer,
    /// Where webhooks go unless a charge asks otherwise (`WEBHOOK_URL`).
    pub webhook_url: String,
    pub delays: Delays,
    /// What callers must present (`MOCK_API_KEY`).
    pub api_key: secrecy::SecretString,
    /// Whether a charge may name its own `webhook_url` (`MOCK_ALLOW_WEBHOOK_URL`, local stack only).
    pub allow_webhook_url: bool,
}

/// `Authorization: Bearer <key>`, compared in constant time.
fn authorised(req: &Request, key: &secrecy::SecretString) -> bool {
    use secrecy::ExposeSecret;
    use subtle::ConstantTimeEq;
    let presented = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    bool::from(presented.as_bytes().ct_eq(key.expose_secret().as_bytes()))
}

/// The charge as a client reading it at `now` sees it.
fn view(c: &StoredCharge, now: i64) -> Charge {
    Charge { status: status_at(c.final_status, c.settles_at, now), ..c.charge.clone() }
}

impl<S: GatewayStore + 'static> crate::http::HttpHandler for MockGateway<S> {
    async fn handle(&self, req: Request) -> Result<Response<Body>, ApiError> {
        let now = time::OffsetDateTime::now_utc();
        if !authorised(&req, &self.api_key) {
            return Err(GatewayApiError::Unauthorized.into());
        }
        match route_key(&req).as_str() {
            "POST /gateway/charges" => {
                let key = idempotency_key(&req).ok_or(GatewayApiError::NoKey)?;
                let (status, charge) = self.create(&key, json_body(&req)?, now).await?;
                Ok(json(status, &charge))
            }
            "GET /gateway/charges/{id}" => {
                let id = path_param(&req, "id").unwrap_or_default();
                let c = self.store.get_charge(&id).await?.ok_or(GatewayApiError::NotFound)?;
                Ok(json(StatusCode::OK, &view(&c, now.unix_timestamp())))
            }
            "POST /gateway/refunds" => {
                let key = idempotency_key(&req).ok_or(GatewayApiError::NoKey)?;
                let (status, refund) = self.refund(&key, json_body(&req)?, now).await?;
                Ok(json(status, &refund))
            }
            other => Err(ApiError::not_found(&format!("route {other}"))),
        }
    }
}

impl<S: GatewayStore> MockGateway<S> {
    async fn create(
        &self,
        key: &IdempotencyKey,
        request: ChargeRequest,
        now: time::OffsetDateTime,
    ) -> Result<(StatusCode, Charge), GatewayApiError> {
        let token = Token::parse(&request.token).ok_or_else(|| GatewayApiError::UnknownToken(request.token.clone()))?;
        if request.webhook_url.is_some() && !self.allow_webhook_url {
            return Err(GatewayApiError::WebhookUrlNotAllowed);
        }
        if request.amount <= 0 {
            return Err(GatewayApiError::BadAmount);
        }
        let request_hash = format!("{:x}", Sha256::digest(serde_json::to_vec(&request).unwrap_or_default()));
        let t = now.unix_timestamp();
        let plan = plan(token, self.delays);
        let charge = Charge {
            id: format!("ch_{}", Uuid::now_v7().simple()),
            amount: request.amount,
            currency: request.currency,
            reference: request.reference.clone(),
            status: status_at(plan.final_status, t + plan.settles_after, t),
            created: t,
            amount_refunded: None,
        };
        let stored =
            StoredCharge { charge, final_status: plan.final_status, settles_at: t + plan.settles_after, request_hash };

        // One event per distinct index; a webhook planned twice is the same event, byte for byte.
        let url = request.webhook_url.clone().unwrap_or_else(|| self.webhook_url.clone());
        let mut bodies: Vec<Option<String>> = vec![None; plan.webhooks.len()];
        let mut deliveries = Vec::new();
        for w in &plan.webhooks {
            let body = bodies[w.event]
                .get_or_insert_with(|| {
                    let event = WebhookEvent {
                        id: format!("evt_{}", Uuid::now_v7().simple()),
                        event_type: if w.status == ChargeStatus::Succeeded { CHARGE_SUCCEEDED } else { CHARGE_FAILED }
                            .to_owned(),
                        created: t + w.after,
                        data: WebhookData { charge: Charge { status: w.status, ..stored.charge.clone() } },
                    };
                    serde_json::to_string(&event).unwrap_or_default()
                })
                .clone();
            let after = if w.after == 0 { INLINE_LEASE_SECS } else { w.after };
            deliveries.push(Delivery {
                id: Uuid::now_v7(),
                url: url.clone(),
                body,
                due_at: now + time::Duration::seconds(after),
                attempts: 0,
            });
        }

        match self.store.create_charge(key, &stored, &deliveries).await? {
            CreateCharge::Existing(prior) if prior.request_hash == stored.request_hash => {
                Ok((StatusCode::OK, view(&prior, t)))
            }
            CreateCharge::Existing(_) => Err(GatewayApiError::KeyReused),
            CreateCharge::Created => {
                tracing::info!(charge_id = %stored.charge.id, ?token, "charge created");
                let now_due: Vec<&Delivery> =
                    plan.webhooks.iter().zip(&deliveries).filter(|(w, _)| w.after == 0).map(|(_, d)| d).collect();
                if plan.concurrent {
                    let results =
                        futures::future::join_all(now_due.iter().map(|d| self.deliverer.deliver(&self.store, d))).await;
                    results.into_iter().collect::<Result<Vec<_>, _>>()?;
                } else {
                    for d in now_due {
                        self.deliverer.deliver(&self.store, d).await?;
                    }
                }
                Ok((StatusCode::CREATED, view(&stored, t)))
            }
        }
    }
}

impl<S: GatewayStore> MockGateway<S> {
    /// Pays back (part of) a succeeded charge, once per charge; the same key again returns the same refund.
    async fn refund(
        &self,
        key: &IdempotencyKey,
        request: RefundRequest,
        now: time::OffsetDateTime,
    ) -> Result<(StatusCode, GatewayRefund), GatewayApiError> {
        let charge = self.store.get_charge(&request.charge_id).await?.ok_or(GatewayApiError::NotFound)?;
        let current = view(&charge, now.unix_timestamp());
        if current.status != ChargeStatus::Succeeded {
            return Err(GatewayApiError::NotRefundable(format!("it is {:?}", current.status).to_lowercase()));
        }
        if request.currency != current.currency || !(1..=current.amount).contains(&request.amount) {
            return Err(GatewayApiError::NotRefundable("the amount is not within the charge's".into()));
        }
        let refund = GatewayRefund {
            id: format!("re_{}", Uuid::now_v7().simple()),
            charge_id: request.charge_id,
            amount: request.amount,
            currency: request.currency,
            status: ChargeStatus::Succeeded,
            created: now.unix_timestamp(),
        };
        match self.store.create_refund(key, &refund).await? {
            CreateRefund::Created => {
                tracing::info!(refund_id = %refund.id, charge_id = %refund.charge_id, "charge refunded");
                Ok((StatusCode::CREATED, refund))
            }
            CreateRefund::Existing(prior) => Ok((StatusCode::OK, prior)),
            CreateRefund::AlreadyRefunded => Err(GatewayApiError::AlreadyRefunded),
        }
    }
}
