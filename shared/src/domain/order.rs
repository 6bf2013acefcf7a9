//! Orders: lines, pricing, the state machine and the limits of one transaction.
//!
//! ```text
//! PENDING_PAYMENT ──paid──────────▶ PAID
//!        │ ──payment failed──▶ PAYMENT_FAILED ──┐
//!        │ ──cancelled───────▶ CANCELLED        ├─ late payment: units taken again ─▶ PAID
//!        └ ──deadline passed─▶ EXPIRED ─────────┘   none left (or product gone) ─▶ REFUND_REQUIRED
//! ```
//! Leaving `PENDING_PAYMENT` releases (or, when paid, deducts) the reserved units in the same
//! transaction as the state change, conditional on the state still being `PENDING_PAYMENT`, so a
//! second cancel, a sweeper racing a cancel, or a late duplicate message can never apply twice.
//! A payment that arrives after the order gave its units back (expired, payment failed) takes them
//! again if it can, else the order becomes `REFUND_REQUIRED` and the money goes back; a payment
//! after a *cancel* always goes back (the customer said no), and the order stays `CANCELLED`. Every
//! other charge that must go back (a second charge, the wrong amount) leaves the order as it is
//! and creates a refund record (see `domain::payment` and `domain::refund`).

use super::money::Money;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// Most units of one product in one order: a shop, not a wholesaler.
pub const MAX_QUANTITY_PER_LINE: u32 = 99;
/// DynamoDB's limit of actions in one `TransactWriteItems`.
pub const MAX_TRANSACTION_ACTIONS: usize = 100;
/// Besides one update per line, placing an order writes the order, the idempotency marker and the
/// outbox event.
const FIXED_ACTIONS: usize = 3;

/// Lines that fit one transaction; placing from the cart also deletes each cart line.
pub const fn max_lines(from_cart: bool) -> usize {
    let per_line = if from_cart { 2 } else { 1 };
    (MAX_TRANSACTION_ACTIONS - FIXED_ACTIONS) / per_line
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderState {
    PendingPayment,
    Paid,
    PaymentFailed,
    Cancelled,
    Expired,
    RefundRequired,
}

impl OrderState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingPayment => "PENDING_PAYMENT",
            Self::Paid => "PAID",
            Self::PaymentFailed => "PAYMENT_FAILED",
            Self::Cancelled => "CANCELLED",
            Self::Expired => "EXPIRED",
            Self::RefundRequired => "REFUND_REQUIRED",
        }
    }

    /// Whether the order still holds reserved units.
    pub fn holds_reservation(self) -> bool {
        self == Self::PendingPayment
    }
}

/// Why an order leaves `PENDING_PAYMENT` without being paid: all release the reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    Cancelled,
    Expired,
    PaymentFailed,
}

impl Release {
    pub fn target(self) -> OrderState {
        match self {
            Self::Cancelled => OrderState::Cancelled,
            Self::Expired => OrderState::Expired,
            Self::PaymentFailed => OrderState::PaymentFailed,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub product_id: Uuid,
    /// Name and price as they were when the order was placed: later catalog edits do not rewrite history.
    pub name: String,
    pub quantity: u32,
    pub unit_price: Money,
    /// Which stock buckets hold the line's units (see [`super::buckets`]); empty = all in bucket
    /// 0, the product item. Settling touches exactly these. Internal: not part of the API.
    #[serde(skip)]
    pub buckets: Vec<super::buckets::Share>,
}

impl OrderLine {
    /// The line's units per bucket.
    pub fn shares(&self) -> Vec<super::buckets::Share> {
        if self.buckets.is_empty() {
            vec![super::buckets::Share { bucket: 0, quantity: self.quantity }]
        } else {
            self.buckets.clone()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: Uuid,
    pub user_id: Uuid,
    /// Where order e-mails go, as it was when the order was placed.
    pub email: String,
    pub state: OrderState,
    pub lines: Vec<OrderLine>,
    pub total: Money,
    /// The gateway's charge that paid the order (or, when it could not be fulfilled, the one being
    /// refunded): a later copy of the same success is recognised as a duplicate, any other charge
    /// goes back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charge_id: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: time::OffsetDateTime,
    /// Until when the units stay reserved without payment.
    #[serde(with = "time::serde::rfc3339")]
    pub reservation_deadline: time::OffsetDateTime,
}

/// One line as the client asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestedLine {
    pub product_id: Uuid,
    pub quantity: u32,
}

/// What pricing needs to know of a product, from the catalog or the cart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceQuote {
    pub name: String,
    pub price: Money,
    /// How many stock buckets the product's reservations spread over.
    pub stock_buckets: super::buckets::StockBuckets,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinesError {
    #[error("an order needs at least one line")]
    Empty,
    #[error("an order can have at most {max} lines, this one has {got}")]
    TooMany { max: usize, got: usize },
    #[error("quantity of {product_id} must be between 1 and {MAX_QUANTITY_PER_LINE}")]
    BadQuantity { product_id: Uuid },
    #[error("product {0} appears on more than one line")]
    Duplicate(Uuid),
}

/// Checks the shape of the requested lines before anything is read or written.
pub fn check_lines(lines: &[RequestedLine], from_cart: bool) -> Result<(), LinesError> {
    if lines.is_empty() {
        return Err(LinesError::Empty);
    }
    let max = max_lines(from_cart);
    if lines.len() > max {
        return Err(LinesError::TooMany { max, got: lines.len() });
    }
    let mut seen = HashSet::new();
    for l in lines {
        if !(1..=MAX_QUANTITY_PER_LINE).contains(&l.quantity) {
            return Err(LinesError::BadQuantity { product_id: l.product_id });
        }
        if !seen.insert(l.product_id) {
            return Err(LinesError::Duplicate(l.product_id));
        }
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    #[error("unknown products: {0:?}")]
    UnknownProducts(Vec<Uuid>),
    #[error("all lines of an order must be in one currency")]
    MixedCurrencies,
    #[error("order total overflows")]
    Overflow,
}

/// Prices `lines` with server-side prices only; the total is the sum of the lines.
pub fn price(
    lines: &[RequestedLine],
    quotes: &HashMap<Uuid, PriceQuote>,
) -> Result<(Vec<OrderLine>, Money), PricingError> {
    let unknown: Vec<Uuid> =
        lines.iter().filter(|l| !quotes.contains_key(&l.product_id)).map(|l| l.product_id).collect();
    if !unknown.is_empty() {
        return Err(PricingError::UnknownProducts(unknown));
    }
    let priced: Vec<OrderLine> = lines
        .iter()
        .map(|l| {
            let q = &quotes[&l.product_id];
            OrderLine {
                product_id: l.product_id,
                name: q.name.clone(),
                quantity: l.quantity,
                unit_price: q.price,
                buckets: Vec::new(),
            }
        })
        .collect();
    let currency = priced[0].unit_price.currency;
    let mut total = Money { amount: 0, currency };
    for l in &priced {
        if l.unit_price.currency != currency {
            return Err(PricingError::MixedCurrencies);
        }
        let line_total = l.unit_price.times(l.quantity).ok_or(PricingError::Overflow)?;
        total.amount = total.amount.checked_add(line_total.amount).ok_or(PricingError::Overflow)?;
    }
    Ok((priced, total))
}

/// Orders for the unit tests of the modules that decide on them.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::{Order, OrderLine, OrderState};
    use crate::domain::money::{Currency, Money};
    use uuid::Uuid;

    pub fn eur(amount: i64) -> Money {
        Money { amount, currency: Currency::parse("EUR").unwrap() }
    }

    /// 2 mugs at 7.50 EUR (15.00 EUR), in `state`, reserved for 15 minutes from now.
    pub fn order(state: OrderState) -> Order {
        let now = time::OffsetDateTime::now_utc();
        Order {
            id: Uuid::now_v7(),
            user_id: Uuid::now_v7(),
            email: "buyer@example.com".into(),
            state,
            lines: vec![OrderLine {
                product_id: Uuid::now_v7(),
                name: "Mug".into(),
                quantity: 2,
                unit_price: eur(750),
                buckets: vec![],
            }],
            total: eur(1500),
            charge_id: None,
            created_at: now,
            updated_at: now,
            reservation_deadline: now + time::Duration::minutes(15),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::money::Currency;

    fn quote(amount: i64, currency: &str) -> PriceQuote {
        PriceQuote {
            name: "P".into(),
            price: Money { amount, currency: Currency::parse(currency).unwrap() },
            stock_buckets: Default::default(),
        }
    }

    #[test]
    fn transaction_limit_bounds_the_lines() {
        assert_eq!(max_lines(false), 97);
        assert_eq!(max_lines(true), 48);
        let lines: Vec<_> = (0..49).map(|_| RequestedLine { product_id: Uuid::new_v4(), quantity: 1 }).collect();
        assert!(check_lines(&lines[..48], true).is_ok());
        assert_eq!(check_lines(&lines, true), Err(LinesError::TooMany { max: 48, got: 49 }));
        assert!(check_lines(&lines, false).is_ok());
    }

    #[test]
    fn lines_need_sane_quantities_and_distinct_products() {
        let id = Uuid::new_v4();
        assert_eq!(check_lines(&[], false), Err(LinesError::Empty));
        for q in [0, MAX_QUANTITY_PER_LINE + 1] {
            assert!(check_lines(&[RequestedLine { product_id: id, quantity: q }], false).is_err());
        }
        let dup = [RequestedLine { product_id: id, quantity: 1 }, RequestedLine { product_id: id, quantity: 2 }];
        assert_eq!(check_lines(&dup, false), Err(LinesError::Duplicate(id)));
    }

    #[test]
    fn pricing_uses_server_prices_and_sums_lines() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let quotes = HashMap::from([(a, quote(250, "EUR")), (b, quote(1000, "EUR"))]);
        let lines = [RequestedLine { product_id: a, quantity: 3 }, RequestedLine { product_id: b, quantity: 1 }];
        let (priced, total) = price(&lines, &quotes).unwrap();
        assert_eq!(priced[0].unit_price.amount, 250);
        assert_eq!(total.amount, 1750);
    }

    #[test]
    fn pricing_refuses_unknown_products_and_mixed_currencies() {
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let quotes = HashMap::from([(a, quote(1, "EUR")), (b, quote(1, "USD"))]);
        let line = |id| RequestedLine { product_id: id, quantity: 1 };
        assert_eq!(price(&[line(a), line(c)], &quotes), Err(PricingError::UnknownProducts(vec![c])));
        assert_eq!(price(&[line(a), line(b)], &quotes), Err(PricingError::MixedCurrencies));
    }

    #[test]
    fn only_pending_orders_hold_a_reservation() {
        assert!(OrderState::PendingPayment.holds_reservation());
        for s in [OrderState::Paid, OrderState::Cancelled, OrderState::Expired, OrderState::PaymentFailed] {
            assert!(!s.holds_reservation());
        }
        assert_eq!(serde_json::to_value(OrderState::PendingPayment).unwrap(), "PENDING_PAYMENT");
        assert_eq!(Release::Expired.target().as_str(), "EXPIRED");
    }
}
