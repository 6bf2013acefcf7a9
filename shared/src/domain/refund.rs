//! A refund: money taken for an order that must go back, one per charge.
//!
//! ```text
//! REQUESTED ──gateway refunded──▶ REFUNDED
//!     └──────gateway refused────▶ FAILED   (money still owed: a human acts)
//! ```
//!
//! A refund is created by the settlement that decided the charge goes back (`domain::payment`),
//! in the same transaction, and keyed by the charge: a charge is refunded at most once, however
//! often its outcome is delivered. The refund worker (`api::refunds`) moves it on.

use super::money::Money;
use super::order::Order;
use super::payment::RefundReason;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefundState {
    Requested,
    Refunded,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub id: Uuid,
    /// The gateway's charge that is paid back: the refund's identity.
    pub charge_id: String,
    pub order_id: Uuid,
    pub user_id: Uuid,
    /// Where the refund e-mails go: the order's address.
    pub email: String,
    pub amount: Money,
    pub reason: RefundReason,
    pub state: RefundState,
    /// The gateway's id of the refund, once it paid it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_refund_id: Option<String>,
    /// Why the gateway refused it, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: time::OffsetDateTime,
    /// The ids of the request whose settlement opened it (`crate::trace`), when known: the
    /// worker logs under them and stamps them on `refund.completed`. Stored, not shown by the API.
    #[serde(skip)]
    pub trace: Option<crate::trace::Trace>,
}

impl Refund {
    /// A new refund of `amount` of charge `charge_id`, taken for `order`, opened by the request
    /// `trace` names.
    pub fn request(
        order: &Order,
        charge_id: &str,
        amount: Money,
        reason: RefundReason,
        now: time::OffsetDateTime,
        trace: &crate::trace::Trace,
    ) -> Self {
        Self {
            id: Uuid::now_v7(),
            charge_id: charge_id.to_owned(),
            order_id: order.id,
            user_id: order.user_id,
            email: order.email.clone(),
            amount,
            reason,
            state: RefundState::Requested,
            gateway_refund_id: None,
            failure: None,
            created_at: now,
            updated_at: now,
            trace: Some(trace.clone()),
        }
    }
}
