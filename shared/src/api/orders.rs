//! A user's orders: `GET /orders` (newest first, paginated), `GET /orders/{id}`,
//! `POST /orders/{id}/cancel`.
//!
//! Someone else's order is a 404, exactly like a missing one. Cancelling is only possible while
//! the order is `PENDING_PAYMENT`; it releases the reservation in the same transaction as the
//! state change, with its `order.cancelled` event (see `store::dynamo::release`). Cancelling a
//! cancelled order is a no-op 200.

use crate::auth::jwt::{Principal, Tokens};
use crate::auth::session::{reading, signed_in};
use crate::domain::order::{Order, OrderState, Release};
use crate::error::ApiError;
use crate::events::event::{Event, OrderCancelled, Payload};
use crate::http::{json, page_size, path_id, query_param, route_key};
use crate::store::{OrderStore, ReleaseStore, SessionStore};
use http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::json;

pub struct Orders<S> {
    pub store: S,
    pub tokens: Tokens,
}

impl<S: OrderStore + ReleaseStore + SessionStore + 'static> crate::http::HttpHandler for Orders<S> {
    async fn handle(&self, req: Request) -> Result<Response<Body>, ApiError> {
        let (tokens, store, req) = (&self.tokens, &self.store, &req);
        match route_key(req).as_str() {
            // Reads run alongside the session check (`auth::session::reading`).
            "GET /orders" => reading(req, tokens, store, |me| async move { self.list(req, &me).await }).await,
            "GET /orders/{id}" => {
                let order = reading(req, tokens, store, |me| async move { self.own_order(req, &me).await }).await?;
                Ok(json(StatusCode::OK, &order))
            }
            "POST /orders/{id}/cancel" => self.cancel(req, &signed_in(req, tokens, store).await?).await,
            other => Err(ApiError::not_found(&format!("route {other}"))),
        }
    }
}

impl<S: OrderStore + ReleaseStore> Orders<S> {
    async fn list(&self, req: &Request, me: &Principal) -> Result<Response<Body>, ApiError> {
        let limit = page_size(req)?;
        let cursor = query_param(req, "cursor");
        let page = self.store.list_orders(me.user_id, limit, cursor.as_deref()).await?;
        Ok(json(StatusCode::OK, &json!({ "items": page.items, "next_cursor": page.next_cursor })))
    }

    async fn own_order(&self, req: &Request, me: &Principal) -> Result<Order, ApiError> {
        let id = path_id(req, "id", "order")?;
        match self.store.get_order(id).await? {
            Some(order) if order.user_id == me.user_id => Ok(order),
            _ => Err(ApiError::not_found("order")),
        }
    }

    async fn cancel(&self, req: &Request, me: &Principal) -> Result<Response<Body>, ApiError> {
        let order = self.own_order(req, me).await?;
        if order.state == OrderState::PendingPayment {
            let now = time::OffsetDateTime::now_utc();
            let event = Event::new(now, Payload::OrderCancelled(OrderCancelled { order: (&order).into() }))
                .with_trace(&crate::http::trace(req));
            if self.store.release_order(&order, Release::Cancelled, &event, now).await? {
                tracing::info!(order_id = %order.id, "order cancelled");
            }
        }
        // Whoever moved it (this request, a concurrent cancel, the sweeper), answer with what it is now.
        let order = self.own_order(req, me).await?;
        match order.state {
            OrderState::Cancelled => Ok(json(StatusCode::OK, &order)),
            state => Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "not_cancellable",
                format!("an order in state {} cannot be cancelled", state.as_str()),
            )
            .with_details(json!({ "state": state }))),
        }
    }
}
