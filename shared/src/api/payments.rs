//! `POST /payments`: the order's owner pays a `PENDING_PAYMENT` order. Two ways, one ending:
//!
//! - `{"order_id", "token"}`: the server charges the gateway itself, for the order's total (the
//!   client never says how much), with `Idempotency-Key: order-<id>`, so a double click or a
//!   retry makes one charge, never two;
//! - `{"order_id", "transaction_id"}`: the client paid on its side; we **ask the gateway** for
//!   that charge and believe only its answer (it must be for this order and this total).
//!
//! Either way the charge's status goes to `payments::settle`, the same one the webhook uses; a
//! webhook arriving before, after or during this request settles the same order once. `200` with
//! the order's state when settled, `202` while the charge is still pending (the webhook finishes it).
//! Someone else's order is a 404; an order that cannot be paid (any state but `PENDING_PAYMENT`
//! for a new charge) is a 422. A client-side charge that must go back (for another amount, or a
//! second one for a paid order) is settled as a refund (see `domain::payment`): the money goes back
//! whatever the client does next; for the wrong amount the answer is a 422 `charge_mismatch`.
//!
//! `GET /refunds` (admins): the refunds still owed — requested ones the worker has not paid back
//! yet (`open`), and those the gateway refused (`failed`: a human must act).

use crate::auth::jwt::Tokens;
use crate::domain::order::{Order, OrderState};
use crate::domain::payment::ChargeStatus;
use crate::error::ApiError;
use crate::http::{json, json_body};
use crate::payments::gateway::{Charge, ChargeRequest, GatewayClient, GatewayError};
use crate::payments::settle::{SettleError, settle};
use crate::store::{PaymentStore, RefundStore, SessionStore, StoreError};
use http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PayRequest {
    order_id: Uuid,
    #[serde(default, deserialize_with = "crate::serde_ext::absent_or_value")]
    token: Option<String>,
    #[serde(default, deserialize_with = "crate::serde_ext::absent_or_value")]
    transaction_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PaymentsError {
    #[error("send exactly one of token and transaction_id")]
    OneOf,
    #[error("order not found")]
    NotFound,
    #[error("order in state {0:?} cannot be paid")]
    NotPayable(OrderState),
    #[error("the gateway knows no such transaction")]
    UnknownTransaction,
    #[error("the charge is not for this order or not for its total")]
    ChargeMismatch,
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<SettleError> for PaymentsError {
    fn from(e: SettleError) -> Self {
        match e {
            SettleError::OrderNotFound => Self::NotFound,
            SettleError::Store(s) => Self::Store(s),
        }
    }
}

impl From<PaymentsError> for ApiError {
    fn from(e: PaymentsError) -> Self {
        use PaymentsError as E;
        match e {
            E::OneOf => ApiError::bad_request("invalid_body", e.to_string()),
            E::NotFound => ApiError::not_found("order"),
            E::NotPayable(state) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "not_payable",
                format!("an order in state {} cannot be paid", state.as_str()),
            )
            .with_details(json!({ "state": state })),
            E::UnknownTransaction => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_transaction",
                "the gateway knows no such transaction",
            ),
            E::ChargeMismatch => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "charge_mismatch", e.to_string())
                .with_details(json!({ "refund": "the charge is paid back" })),
            E::Gateway(GatewayError::Refused { message, .. }) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "payment_rejected",
                "the payment gateway refused the payment",
            )
            .with_details(json!({ "gateway": message })),
            E::Gateway(cause @ GatewayError::Unavailable(_)) => ApiError::unavailable(&cause),
            E::Store(cause) => cause.into(),
        }
    }
}

pub struct Payments<S> {
    pub store: S,
    pub tokens: Tokens,
    pub gateway: GatewayClient,
}

impl<S: PaymentStore + RefundStore + SessionStore + 'static> crate::http::HttpHandler for Payments<S> {
    async fn handle(&self, req: Request) -> Result<Response<Body>, ApiError> {
        match crate::http::route_key(&req).as_str() {
            "POST /payments" => self.pay(&req).await,
            "GET /refunds" => self.refunds(&req).await,
            other => Err(ApiError::not_found(&format!("route {other}"))),
        }
    }
}

/// Refunds listed per call, of each kind: a backlog beyond this is a page of alarms anyway.
const REFUNDS_LISTED: u32 = 100;

impl<S: PaymentStore + RefundStore + SessionStore> Payments<S> {
    async fn refunds(&self, req: &Request) -> Result<Response<Body>, ApiError> {
        crate::http::require_admin(req, &self.tokens, &self.store).await?;
        let open = self.store.open_refunds(REFUNDS_LISTED).await?;
        let failed = self.store.failed_refunds(REFUNDS_LISTED).await?;
        Ok(json(StatusCode::OK, &json!({ "open": open, "failed": failed })))
    }

    async fn pay(&self, req: &Request) -> Result<Response<Body>, ApiError> {
        let me = crate::auth::session::signed_in(req, &self.tokens, &self.store).await?;
        let body: PayRequest = json_body(req)?;
        let order = match self.store.get_order(body.order_id).await? {
            Some(order) if order.user_id == me.user_id => order,
            _ => return Err(PaymentsError::NotFound.into()),
        };
        let charge = match (body.token, body.transaction_id) {
            (Some(token), None) => self.charge(&order, token).await?,
            (None, Some(id)) => self.look_up(&order, &id).await?,
            _ => return Err(PaymentsError::OneOf.into()),
        };
        let dedupe_key = format!("charge:{}:{:?}", charge.id, charge.status).to_lowercase();
        let payment = charge.payment();
        let outcome = settle(&self.store, order.id, &payment, &dedupe_key, &crate::http::trace(req))
            .await
            .map_err(PaymentsError::from)?;
        let (settled, state) = (outcome.settled, outcome.state);
        if charge.status == ChargeStatus::Succeeded && payment.amount != order.total {
            // Settled as a refund (now or by an earlier delivery): the charge goes back.
            return Err(PaymentsError::ChargeMismatch.into());
        }
        let status = if charge.status == ChargeStatus::Pending { StatusCode::ACCEPTED } else { StatusCode::OK };
        Ok(json(
            status,
            &json!({ "order_id": order.id, "state": state, "result": settled.as_str(),
                     "charge": { "id": charge.id, "status": charge.status } }),
        ))
    }
}

impl<S: PaymentStore> Payments<S> {
    /// Server-to-server: charge the order's total with the token.
    async fn charge(&self, order: &Order, token: String) -> Result<Charge, PaymentsError> {
        if order.state != OrderState::PendingPayment {
            return Err(PaymentsError::NotPayable(order.state));
        }
        let request = ChargeRequest {
            amount: order.total.amount,
            currency: order.total.currency,
            token,
            reference: order.id.to_string(),
            webhook_url: None,
        };
        let charge = self.gateway.create_charge(&format!("order-{}", order.id), &request).await?;
        tracing::info!(order_id = %order.id, charge_id = %charge.id, status = ?charge.status, "charge created");
        Ok(charge)
    }

    /// Client-side payment: the gateway's record of the charge, which must be this order's.
    async fn look_up(&self, order: &Order, transaction_id: &str) -> Result<Charge, PaymentsError> {
        let charge = self.gateway.get_charge(transaction_id).await?.ok_or(PaymentsError::UnknownTransaction)?;
        if charge.reference != order.id.to_string() {
            return Err(PaymentsError::ChargeMismatch);
        }
        Ok(charge)
    }
}
