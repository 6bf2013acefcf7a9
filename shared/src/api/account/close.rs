//! `DELETE /me {"password"}`: the shopper closes their account.
//!
//! What closing means (GDPR's erasure, with what accounting must keep):
//! - **the account is gone at once**: one transaction deletes the credentials item (the address
//!   can sign up again, as a new account with a new id) and turns the profile into a tombstone
//!   without e-mail or name, moving the session generation on, so every token is refused from the
//!   next request (`store::dynamo::accounts`);
//! - **orders awaiting payment are cancelled** and their units released, each like
//!   `POST /orders/{id}/cancel` does; a payment arriving later for one is refunded by the usual
//!   path (a charge for a cancelled order goes back, `domain::payment::decide`);
//! - **orders and payments stay, anonymised**: the address kept on each order, and on the refund
//!   of its charge, is erased; the cart is emptied;
//! - **no e-mail afterwards**: the notifier drops every e-mail of a closed account, including those
//!   of events already on their way (the cancellations' too);
//! - an admin must be demoted first (`409 admin_cannot_be_deleted`); the password is asked again
//!   (`403 wrong_password`, counted like a log-in attempt).
//!
//! Order of work, and why: the closing transaction first, then the orders are cancelled and
//! anonymised. Not before: a cancellation's e-mail could then reach the notifier while the account
//! is still open, and go out. After the close no order can be placed (place-order's transaction
//! checks the profile), so one pass sees them all — except one the per-user order index does not
//! show yet (it is eventually consistent), or all of them if the function dies right after the
//! close: those keep their units only until their reservation deadline, when the sweeper releases
//! them (with no e-mail), and keep their address until an operator runs the clean-up again.
//! Closing twice is harmless: the second request finds the account closed and answers the same.

use super::password::verify_password;
use super::{Account, AccountPorts};
use crate::auth::session::{check, ended};
use crate::domain::order::{Order, OrderState, Release};
use crate::domain::user::Role;
use crate::error::ApiError;
use crate::events::event::{Event, OrderCancelled, Payload};
use crate::http::{json, json_body};
use crate::store::{OrderStore, StoreError};
use http::StatusCode;
use lambda_http::{Body, Request, Response};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseRequest {
    password: SecretString,
}

pub async fn close<S: AccountPorts>(account: &Account<S>, req: &Request) -> Result<Response<Body>, ApiError> {
    let (me, state) = check(req, &account.tokens, &account.store).await?;
    let body: CloseRequest = json_body(req)?;
    if state.role == Role::Admin {
        return Err(ApiError::conflict(
            "admin_cannot_be_deleted",
            "an admin account cannot be closed; an operator must demote it first (shop-admin demote)",
        ));
    }
    let store = &account.store;
    // Closed by a request racing this one: the same answer.
    let Some(credentials) = store.password_of(me.user_id).await? else { return Ok(closed(0)) };
    verify_password(store, &credentials, body.password).await?;
    let trace = crate::http::trace(req);

    let now = time::OffsetDateTime::now_utc();
    if !store.close_account(&credentials, now).await? {
        // Not closed by us: closed by a racing request (fine), or the role changed meanwhile.
        return match store.session(me.user_id).await? {
            Some(s) if s.closed => Ok(closed(0)),
            Some(s) if s.role == Role::Admin => {
                Err(ApiError::conflict("admin_cannot_be_deleted", "an admin account cannot be closed"))
            }
            _ => Err(ended()),
        };
    }
    let cancelled = tidy(store, me.user_id, &trace).await?;
    tracing::info!(user_id = %me.user_id, orders_cancelled = cancelled, "account closed");
    Ok(closed(cancelled))
}

fn closed(orders_cancelled: usize) -> Response<Body> {
    json(StatusCode::OK, &json!({ "deleted": true, "orders_cancelled": orders_cancelled }))
}

/// Cancels the user's orders awaiting payment, erases the address on all of them and empties the
/// cart; returns how many orders this call cancelled.
async fn tidy<S: AccountPorts>(store: &S, user_id: Uuid, trace: &crate::trace::Trace) -> Result<usize, StoreError> {
    let mut cancelled = 0;
    for order in all_orders(store, user_id).await? {
        if order.state == OrderState::PendingPayment {
            let now = time::OffsetDateTime::now_utc();
            let event =
                Event::new(now, Payload::OrderCancelled(OrderCancelled { order: (&order).into() })).with_trace(trace);
            if store.release_order(&order, Release::Cancelled, &event, now).await? {
                cancelled += 1;
            }
        }
        if !order.email.is_empty() {
            store.anonymise_order(&order).await?;
        }
    }
    for line in store.cart(user_id).await? {
        store.remove_cart_line(user_id, line.product_id).await?;
    }
    Ok(cancelled)
}

/// Every order of the user, newest first.
pub(super) async fn all_orders<S: OrderStore>(store: &S, user_id: Uuid) -> Result<Vec<Order>, StoreError> {
    let mut orders = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page =
            store.list_orders(user_id, crate::http::MAX_PAGE_SIZE, cursor.as_deref()).await.map_err(|e| match e {
                crate::store::ListError::Store(e) => e,
                crate::store::ListError::BadCursor => {
                    StoreError::Other("the order list's own cursor was refused".into())
                }
            })?;
        orders.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(orders),
        }
    }
}
