//! Domain events: what happened, typed, as written to the outbox and carried on Kafka.
//!
//! On the wire (the outbox item's `payload`, the Kafka message value) an event is this JSON:
//!
//! ```json
//! {"id": "<uuid v7>", "occurred_at": "<rfc 3339>", "aggregate_id": "<order or user id>",
//!  "type": "order.placed", "data": {"order_id": "…", "email": "…", "total": {…}, "lines": […], …},
//!  "trace": {"request_id": "<API Gateway request id>", "trace_id": "<X-Ray trace id>"}}
//! ```
//!
//! `trace` (optional, see [`crate::trace`]) names the invocation that caused the event: the HTTP
//! request's id, or a scheduled run's invocation id, and X-Ray's trace id when there is one. It
//! was added later: an event without it (an older outbox item) still reads, and it is written only
//! when known.
//!
//! `type` and `data` are one [`Payload`] variant: one struct per event type, so a producer cannot
//! write an event that lacks what its e-mail needs, and the notifier reads fields the compiler
//! checks. [`EventType`] names the types; `docs/events.md` documents exactly these (a unit test
//! keeps the two in step). Consumers must ignore a `type` they do not know: the notifier does.
//!
//! An event is written to the outbox in the same DynamoDB transaction as the change it describes,
//! so "the change happened" and "someone will be told" can never disagree; the table's stream
//! then carries it to the relay (`api::outbox_relay`), which produces it to Kafka.

use crate::domain::money::Money;
use crate::domain::order::{Order, OrderLine, OrderState};
use crate::domain::payment::RefundReason;
use crate::domain::refund::Refund;
use crate::domain::user::User;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: time::OffsetDateTime,
    /// The entity the event is about (user id, order id); the Kafka message key, so one entity's
    /// events stay in order on one partition.
    pub aggregate_id: String,
    /// `type` and `data`.
    #[serde(flatten)]
    pub payload: Payload,
    /// The invocation that caused the event (see the module docs); absent in older events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<crate::trace::Trace>,
}

impl Event {
    /// A new event (a fresh UUIDv7 id) about the payload's aggregate.
    pub fn new(occurred_at: time::OffsetDateTime, payload: Payload) -> Self {
        Self { id: Uuid::now_v7(), occurred_at, aggregate_id: payload.aggregate_id().to_string(), payload, trace: None }
    }

    /// The same event, caused by the invocation `trace` names.
    pub fn with_trace(mut self, trace: &crate::trace::Trace) -> Self {
        self.trace = Some(trace.clone());
        self
    }

    pub fn event_type(&self) -> EventType {
        self.payload.event_type()
    }
}

/// Every event type there is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    UserSignedUp,
    OrderPlaced,
    OrderPaid,
    OrderPaymentFailed,
    OrderCancelled,
    OrderExpired,
    OrderRefundRequired,
    RefundRequested,
    RefundCompleted,
    PasswordResetRequested,
}

impl EventType {
    pub const ALL: [Self; 10] = [
        Self::UserSignedUp,
        Self::OrderPlaced,
        Self::OrderPaid,
        Self::OrderPaymentFailed,
        Self::OrderCancelled,
        Self::OrderExpired,
        Self::OrderRefundRequired,
        Self::RefundRequested,
        Self::RefundCompleted,
        Self::PasswordResetRequested,
    ];

    /// The `type` on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserSignedUp => "user.signed_up",
            Self::OrderPlaced => "order.placed",
            Self::OrderPaid => "order.paid",
            Self::OrderPaymentFailed => "order.payment_failed",
            Self::OrderCancelled => "order.cancelled",
            Self::OrderExpired => "order.expired",
            Self::OrderRefundRequired => "order.refund_required",
            Self::RefundRequested => "refund.requested",
            Self::RefundCompleted => "refund.completed",
            Self::PasswordResetRequested => "user.password_reset_requested",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened, by type. The serde names are [`EventType::as_str`] (a unit test checks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum Payload {
    #[serde(rename = "user.signed_up")]
    UserSignedUp(UserSignedUp),
    #[serde(rename = "order.placed")]
    OrderPlaced(OrderPlaced),
    #[serde(rename = "order.paid")]
    OrderPaid(OrderPaid),
    #[serde(rename = "order.payment_failed")]
    OrderPaymentFailed(OrderPaymentFailed),
    #[serde(rename = "order.cancelled")]
    OrderCancelled(OrderCancelled),
    #[serde(rename = "order.expired")]
    OrderExpired(OrderExpired),
    #[serde(rename = "order.refund_required")]
    OrderRefundRequired(OrderRefundRequired),
    #[serde(rename = "refund.requested")]
    RefundRequested(RefundRequested),
    #[serde(rename = "refund.completed")]
    RefundCompleted(RefundCompleted),
    #[serde(rename = "user.password_reset_requested")]
    PasswordResetRequested(PasswordResetRequested),
}

impl Payload {
    pub fn event_type(&self) -> EventType {
        match self {
            Self::UserSignedUp(_) => EventType::UserSignedUp,
            Self::OrderPlaced(_) => EventType::OrderPlaced,
            Self::OrderPaid(_) => EventType::OrderPaid,
            Self::OrderPaymentFailed(_) => EventType::OrderPaymentFailed,
            Self::OrderCancelled(_) => EventType::OrderCancelled,
            Self::OrderExpired(_) => EventType::OrderExpired,
            Self::OrderRefundRequired(_) => EventType::OrderRefundRequired,
            Self::RefundRequested(_) => EventType::RefundRequested,
            Self::RefundCompleted(_) => EventType::RefundCompleted,
            Self::PasswordResetRequested(_) => EventType::PasswordResetRequested,
        }
    }

    /// The user (`user.*`) or order (`order.*`, `refund.*`) the event is about: one order's
    /// events, its refunds' included, share a Kafka partition and keep their order.
    pub fn aggregate_id(&self) -> Uuid {
        match self {
            Self::UserSignedUp(e) => e.user_id,
            Self::PasswordResetRequested(e) => e.reset_id,
            Self::RefundRequested(e) => e.order.order_id,
            Self::RefundCompleted(e) => e.order_id,
            Self::OrderPlaced(OrderPlaced { order, .. })
            | Self::OrderPaid(OrderPaid { order, .. })
            | Self::OrderPaymentFailed(OrderPaymentFailed { order, .. })
            | Self::OrderCancelled(OrderCancelled { order })
            | Self::OrderExpired(OrderExpired { order })
            | Self::OrderRefundRequired(OrderRefundRequired { order, .. }) => order.order_id,
        }
    }

    /// Who the event's e-mail goes to.
    pub fn recipient(&self) -> &str {
        match self {
            Self::UserSignedUp(e) => &e.email,
            Self::PasswordResetRequested(e) => &e.email,
            Self::RefundRequested(e) => &e.order.email,
            Self::RefundCompleted(e) => &e.email,
            Self::OrderPlaced(OrderPlaced { order, .. })
            | Self::OrderPaid(OrderPaid { order, .. })
            | Self::OrderPaymentFailed(OrderPaymentFailed { order, .. })
            | Self::OrderCancelled(OrderCancelled { order })
            | Self::OrderExpired(OrderExpired { order })
            | Self::OrderRefundRequired(OrderRefundRequired { order, .. }) => &order.email,
        }
    }

    /// The account the e-mail is for: the notifier sends nothing for a closed one (see
    /// `api::account::close`). A reset request names no account (it is written without reading
    /// one, see `api::account::reset`): its e-mail goes out only while its token is the current one.
    pub fn account(&self) -> Option<Uuid> {
        match self {
            Self::UserSignedUp(e) => Some(e.user_id),
            Self::PasswordResetRequested(_) => None,
            Self::RefundRequested(e) => Some(e.order.user_id),
            Self::RefundCompleted(e) => Some(e.user_id),
            Self::OrderPlaced(OrderPlaced { order, .. })
            | Self::OrderPaid(OrderPaid { order, .. })
            | Self::OrderPaymentFailed(OrderPaymentFailed { order, .. })
            | Self::OrderCancelled(OrderCancelled { order })
            | Self::OrderExpired(OrderExpired { order })
            | Self::OrderRefundRequired(OrderRefundRequired { order, .. }) => Some(order.user_id),
        }
    }
}

/// `user.password_reset_requested`: someone asked for a reset link for an address that has an
/// account (the request is written only then). `token` is the only copy of the secret outside the
/// e-mail: the table keeps its hash; the event item leaves the table with the outbox's TTL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PasswordResetRequested {
    /// This request's own id (the Kafka key: the account is not read to write it).
    pub reset_id: Uuid,
    pub email: String,
    pub token: crate::auth::reset_token::ResetToken,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: time::OffsetDateTime,
}

/// `user.signed_up`: a new account (the welcome e-mail).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserSignedUp {
    pub user_id: Uuid,
    pub email: String,
    /// As given at sign-up; may be empty.
    pub name: String,
}

impl From<&User> for UserSignedUp {
    fn from(u: &User) -> Self {
        Self { user_id: u.id, email: u.email.as_str().to_owned(), name: u.name.clone() }
    }
}

/// What every order event carries: whose order, to which address, what and how much.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderSummary {
    pub order_id: Uuid,
    pub user_id: Uuid,
    /// The address the order was placed with.
    pub email: String,
    pub total: Money,
    pub lines: Vec<OrderLine>,
}

impl From<&Order> for OrderSummary {
    fn from(o: &Order) -> Self {
        Self { order_id: o.id, user_id: o.user_id, email: o.email.clone(), total: o.total, lines: o.lines.clone() }
    }
}

/// `order.placed`: units reserved until `reservation_deadline`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderPlaced {
    #[serde(flatten)]
    pub order: OrderSummary,
    #[serde(with = "time::serde::rfc3339")]
    pub reservation_deadline: time::OffsetDateTime,
}

/// `order.paid`: the charge settled the order (from `PENDING_PAYMENT`, or late from a state that
/// had given its units back, when they could be taken again).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderPaid {
    #[serde(flatten)]
    pub order: OrderSummary,
    pub charge_id: String,
    pub previous_state: OrderState,
}

/// `order.payment_failed`: the charge failed; the units went back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderPaymentFailed {
    #[serde(flatten)]
    pub order: OrderSummary,
    pub charge_id: String,
}

/// `order.cancelled`: the customer cancelled before paying; the units went back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderCancelled {
    #[serde(flatten)]
    pub order: OrderSummary,
}

/// `order.expired`: not paid by the deadline; the units went back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderExpired {
    #[serde(flatten)]
    pub order: OrderSummary,
}

/// `order.refund_required`: money was taken for an order that cannot be fulfilled; the refund
/// `refund_id` pays it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderRefundRequired {
    #[serde(flatten)]
    pub order: OrderSummary,
    pub charge_id: String,
    pub previous_state: OrderState,
    pub refund_id: Uuid,
}

/// `refund.requested`: a charge goes back while the order stays as it is (a second charge, the
/// wrong amount, a payment after the customer cancelled).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefundRequested {
    #[serde(flatten)]
    pub order: OrderSummary,
    pub refund_id: Uuid,
    pub charge_id: String,
    /// What is paid back: the charge's amount, which may differ from the order's total.
    pub amount: Money,
    pub reason: RefundReason,
}

/// `refund.completed`: the gateway paid the money back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefundCompleted {
    pub refund_id: Uuid,
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub email: String,
    pub charge_id: String,
    pub amount: Money,
    pub reason: RefundReason,
    /// The gateway's id of the refund.
    pub gateway_refund_id: String,
}

impl RefundCompleted {
    pub fn of(refund: &Refund, gateway_refund_id: &str) -> Self {
        Self {
            refund_id: refund.id,
            order_id: refund.order_id,
            user_id: refund.user_id,
            email: refund.email.clone(),
            charge_id: refund.charge_id.clone(),
            amount: refund.amount,
            reason: refund.reason,
            gateway_refund_id: gateway_refund_id.to_owned(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::money::Currency;

    pub(crate) fn summary() -> OrderSummary {
        let eur = Currency::parse("EUR").unwrap();
        OrderSummary {
            order_id: Uuid::now_v7(),
            user_id: Uuid::now_v7(),
            email: "ada@example.com".into(),
            total: Money { amount: 2598, currency: eur },
            lines: vec![OrderLine {
                product_id: Uuid::now_v7(),
                name: "Mug <b>".into(),
                quantity: 2,
                unit_price: Money { amount: 1299, currency: eur },
                buckets: Vec::new(),
            }],
        }
    }

    /// One payload of every type.
    pub(crate) fn one_of_each() -> Vec<Payload> {
        let order = summary();
        let deadline = time::macros::datetime!(2026-01-02 03:04:05 UTC);
        let all = vec![
            Payload::UserSignedUp(UserSignedUp {
                user_id: Uuid::now_v7(),
                email: "ada@example.com".into(),
                name: "Ada".into(),
            }),
            Payload::OrderPlaced(OrderPlaced { order: order.clone(), reservation_deadline: deadline }),
            Payload::OrderPaid(OrderPaid {
                order: order.clone(),
                charge_id: "ch_1".into(),
                previous_state: OrderState::PendingPayment,
            }),
            Payload::OrderPaymentFailed(OrderPaymentFailed { order: order.clone(), charge_id: "ch_1".into() }),
            Payload::OrderCancelled(OrderCancelled { order: order.clone() }),
            Payload::OrderExpired(OrderExpired { order: order.clone() }),
            Payload::OrderRefundRequired(OrderRefundRequired {
                order: order.clone(),
                charge_id: "ch_1".into(),
                previous_state: OrderState::Expired,
                refund_id: Uuid::now_v7(),
            }),
            Payload::RefundRequested(RefundRequested {
                order: order.clone(),
                refund_id: Uuid::now_v7(),
                charge_id: "ch_2".into(),
                amount: order.total,
                reason: RefundReason::DuplicateCharge,
            }),
            Payload::RefundCompleted(RefundCompleted {
                refund_id: Uuid::now_v7(),
                order_id: order.order_id,
                user_id: order.user_id,
                email: order.email.clone(),
                charge_id: "ch_2".into(),
                amount: order.total,
                reason: RefundReason::DuplicateCharge,
                gateway_refund_id: "re_1".into(),
            }),
            Payload::PasswordResetRequested(PasswordResetRequested {
                reset_id: Uuid::now_v7(),
                email: order.email.clone(),
                token: crate::auth::reset_token::ResetToken::generate(),
                expires_at: time::OffsetDateTime::UNIX_EPOCH,
            }),
        ];
        // Exhaustive on purpose: a new type fails here until it has a sample.
        for p in &all {
            match p {
                Payload::UserSignedUp(_)
                | Payload::OrderPlaced(_)
                | Payload::OrderPaid(_)
                | Payload::OrderPaymentFailed(_)
                | Payload::OrderCancelled(_)
                | Payload::OrderExpired(_)
                | Payload::OrderRefundRequired(_)
                | Payload::RefundRequested(_)
                | Payload::RefundCompleted(_)
                | Payload::PasswordResetRequested(_) => {}
            }
        }
        all
    }

    #[test]
    fn the_wire_type_is_the_event_types_name_and_the_json_round_trips() {
        let samples = one_of_each();
        assert_eq!(samples.len(), EventType::ALL.len(), "one sample per type");
        for payload in samples {
            let event = Event::new(time::OffsetDateTime::now_utc(), payload);
            let json = serde_json::to_value(&event).unwrap();
            assert_eq!(json["type"], event.event_type().as_str());
            assert_eq!(json["aggregate_id"], event.payload.aggregate_id().to_string());
            assert!(json["data"].is_object(), "{json}");
            let back: Event = serde_json::from_value(json).unwrap();
            assert_eq!(back, event);
            assert_eq!(EventType::parse(event.event_type().as_str()), Some(event.event_type()));
        }
    }

    #[test]
    fn order_events_carry_the_order_fields_flat_in_data() {
        let event = Event::new(
            time::OffsetDateTime::now_utc(),
            Payload::OrderPlaced(OrderPlaced {
                order: summary(),
                reservation_deadline: time::macros::datetime!(2026-01-02 03:04:05 UTC),
            }),
        );
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["data"]["email"], "ada@example.com");
        assert_eq!(json["data"]["total"]["amount"], 2598);
        assert_eq!(json["data"]["reservation_deadline"], "2026-01-02T03:04:05Z");
        assert_eq!(json["data"]["lines"][0]["quantity"], 2);
    }

    /// `trace` is optional both ways: an event written before it existed reads (as `None`), one
    /// without it is written without the key, and one with it round-trips.
    #[test]
    fn the_trace_is_optional_and_round_trips() {
        let untraced = Event::new(time::OffsetDateTime::now_utc(), one_of_each().remove(0));
        let json = serde_json::to_value(&untraced).unwrap();
        assert!(json.get("trace").is_none(), "{json}");
        let old = r#"{"id":"0199a1b2-0000-7000-8000-000000000000","occurred_at":"2026-01-02T03:04:05Z",
            "aggregate_id":"u1","type":"user.signed_up",
            "data":{"user_id":"0199a1b2-0000-7000-8000-000000000001","email":"a@example.com","name":""}}"#;
        assert_eq!(serde_json::from_str::<Event>(old).unwrap().trace, None);

        let trace = crate::trace::Trace { request_id: "AbCdEfGhIjKlMg=".into(), trace_id: Some("1-abc-def".into()) };
        let traced = untraced.with_trace(&trace);
        let json = serde_json::to_value(&traced).unwrap();
        assert_eq!(json["trace"]["request_id"], "AbCdEfGhIjKlMg=");
        assert_eq!(json["trace"]["trace_id"], "1-abc-def");
        assert_eq!(serde_json::from_value::<Event>(json).unwrap(), traced);
    }

    /// `docs/events.md` documents exactly the types there are: each as a `### \`type\`` heading.
    #[test]
    fn docs_list_exactly_these_types() {
        let docs = include_str!("../../../docs/events.md");
        let documented: Vec<&str> =
            docs.lines().filter_map(|l| l.strip_prefix("### `")).filter_map(|l| l.split('`').next()).collect();
        let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        for t in &known {
            assert!(documented.contains(t), "docs/events.md does not document {t}");
        }
        for d in &documented {
            assert!(known.contains(d), "docs/events.md documents {d}, which is not an event type");
        }
    }
}
