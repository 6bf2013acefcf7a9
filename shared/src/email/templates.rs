//! Which e-mail each event type becomes, and rendering it.
//!
//! Every e-mail has a plain-text and an HTML body, rendered with minijinja from
//! `templates/<name>.txt` and `templates/<name>.html` (HTML auto-escaped; `layout.html` is the
//! shared frame, `lines.*` the order lines). The template sees the event as `event` and its typed
//! payload (`events::event::Payload`, serialised) as `data`, plus two filters: `money`
//! (`{"amount": 1299, "currency": "EUR"}` → `12.99 EUR`) and `when` (RFC 3339 →
//! `2026-01-02 03:04 UTC`), and `storefront_url` (`STOREFRONT_URL`, where links point; without
//! it an e-mail gives codes, not links). Which template and subject each event type gets is [`kind`], an
//! exhaustive match: a new event type does not compile until it says whether it has an e-mail.

use super::Email;
use crate::events::event::{Event, EventType};
use minijinja::{Environment, Value, context};

/// The template name and subject of an event type's e-mail, `None` for types without one.
pub fn kind(t: EventType) -> Option<(&'static str, &'static str)> {
    Some(match t {
        EventType::UserSignedUp => ("welcome", "Welcome to the shop"),
        EventType::OrderPlaced => ("order_placed", "We received your order"),
        EventType::OrderPaid => ("order_paid", "Payment received: your receipt"),
        EventType::OrderPaymentFailed => ("order_payment_failed", "Your payment did not go through"),
        EventType::OrderCancelled => ("order_cancelled", "Your order was cancelled"),
        EventType::OrderExpired => ("order_expired", "Your order expired"),
        EventType::OrderRefundRequired => ("order_refund_required", "A refund is on its way"),
        EventType::RefundRequested => ("refund_requested", "We are paying back a charge"),
        EventType::RefundCompleted => ("refund_completed", "Your refund has been issued"),
        EventType::PasswordResetRequested => ("password_reset", "Reset your password"),
    })
}

macro_rules! embed {
    ($($name:literal),* $(,)?) => { &[$(($name, include_str!(concat!("templates/", $name)))),*] };
}

const FILES: &[(&str, &str)] = embed![
    "layout.html",
    "lines.html",
    "lines.txt",
    "welcome.txt",
    "welcome.html",
    "order_placed.txt",
    "order_placed.html",
    "order_paid.txt",
    "order_paid.html",
    "order_payment_failed.txt",
    "order_payment_failed.html",
    "order_cancelled.txt",
    "order_cancelled.html",
    "order_expired.txt",
    "order_expired.html",
    "order_refund_required.txt",
    "order_refund_required.html",
    "refund_requested.txt",
    "refund_requested.html",
    "refund_completed.txt",
    "refund_completed.html",
    "password_reset.txt",
    "password_reset.html",
];

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// Not an event that e-mails anyone: skip it.
    #[error("no e-mail for event type {0}")]
    NoEmail(EventType),
    /// The event lacks what the e-mail needs (no recipient, a template failed): skip it, loudly.
    #[error("event cannot be rendered: {0}")]
    Malformed(String),
}

pub struct Templates {
    env: Environment<'static>,
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

impl Templates {
    pub fn new() -> Self {
        Self::with_storefront(None)
    }

    /// Templates whose links point at the storefront at `url` (no trailing slash needed).
    pub fn with_storefront(url: Option<&str>) -> Self {
        let mut env = Environment::new();
        if let Some(url) = url.map(|u| u.trim().trim_end_matches('/')).filter(|u| !u.is_empty()) {
            env.add_global("storefront_url", url.to_owned());
        }
        for (name, source) in FILES {
            env.add_template(name, source).expect("embedded e-mail templates parse (checked by unit tests)");
        }
        env.add_filter("money", money);
        env.add_filter("when", when);
        Self { env }
    }

    /// The e-mail for `event`, addressed to its payload's recipient.
    pub fn render(&self, event: &Event) -> Result<Email, RenderError> {
        let (name, subject) = kind(event.event_type()).ok_or(RenderError::NoEmail(event.event_type()))?;
        let to = Some(event.payload.recipient())
            .filter(|e| e.contains('@'))
            .ok_or_else(|| RenderError::Malformed("the event names no recipient".into()))?;
        let json = serde_json::to_value(event).map_err(|e| RenderError::Malformed(e.to_string()))?;
        let ctx = context! { event => Value::from_serialize(&json), data => Value::from_serialize(&json["data"]) };
        let render = |ext: &str| {
            self.env
                .get_template(&format!("{name}.{ext}"))
                .and_then(|t| t.render(&ctx))
                .map_err(|e| RenderError::Malformed(format!("{name}.{ext}: {e}")))
        };
        Ok(Email { to: to.to_owned(), subject: (*subject).to_owned(), text: render("txt")?, html: render("html")? })
    }
}

/// Currencies without minor units (ISO 4217 exponent 0) among those likely here.
const ZERO_DECIMAL: &[&str] = &["JPY", "KRW", "ISK", "CLP", "VND"];

/// `{"amount": 1299, "currency": "EUR"}` → `12.99 EUR`.
fn money(value: Value) -> Result<String, minijinja::Error> {
    let bad = || minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, "money needs {amount, currency}");
    let amount = value.get_attr("amount")?.as_i64().ok_or_else(bad)?;
    let currency = value.get_attr("currency")?.as_str().map(str::to_owned).ok_or_else(bad)?;
    if ZERO_DECIMAL.contains(&currency.as_str()) {
        return Ok(format!("{amount} {currency}"));
    }
    let sign = if amount < 0 { "-" } else { "" };
    Ok(format!("{sign}{}.{:02} {currency}", amount.unsigned_abs() / 100, amount.unsigned_abs() % 100))
}

/// RFC 3339 → `2026-01-02 03:04 UTC`; anything else is shown as it is.
fn when(value: String) -> String {
    use time::format_description::well_known::Rfc3339;
    match time::OffsetDateTime::parse(&value, &Rfc3339) {
        Ok(t) => {
            let t = t.to_offset(time::UtcOffset::UTC);
            format!("{} {:02}:{:02} UTC", t.date(), t.hour(), t.minute())
        }
        Err(_) => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::order::OrderState;
    use crate::events::event::tests::{one_of_each, summary};
    use crate::events::event::{OrderPaid, OrderPlaced, Payload};

    #[test]
    fn every_type_with_an_email_renders_text_and_html() {
        let templates = Templates::new();
        for payload in one_of_each() {
            let event = Event::new(time::OffsetDateTime::now_utc(), payload);
            let Some((_, subject)) = kind(event.event_type()) else { continue };
            let email = templates.render(&event).unwrap();
            assert_eq!(email.to, "ada@example.com");
            assert_eq!(email.subject, subject);
            let t = event.event_type();
            assert!(!email.text.contains("<p>") && !email.text.contains("<html"), "{t}: text body has markup");
            assert!(email.html.contains("<html"), "{t}");
        }
    }

    #[test]
    fn order_placed_shows_amount_deadline_and_escapes_html() {
        let event = Event::new(
            time::OffsetDateTime::now_utc(),
            Payload::OrderPlaced(OrderPlaced {
                order: summary(),
                reservation_deadline: time::macros::datetime!(2026-01-02 03:04:05 UTC),
            }),
        );
        let email = Templates::new().render(&event).unwrap();
        assert!(email.text.contains("25.98 EUR") && email.text.contains("2026-01-02 03:04 UTC"), "{}", email.text);
        assert!(email.html.contains("Mug &lt;b&gt;"), "{}", email.html);
    }

    #[test]
    fn an_event_without_a_recipient_is_refused() {
        let mut order = summary();
        order.email = String::new();
        let paid =
            Payload::OrderPaid(OrderPaid { order, charge_id: "ch".into(), previous_state: OrderState::PendingPayment });
        assert!(matches!(
            Templates::new().render(&Event::new(time::OffsetDateTime::now_utc(), paid)),
            Err(RenderError::Malformed(_))
        ));
    }

    #[test]
    fn money_handles_minor_units() {
        let m =
            |a: i64, c: &str| money(Value::from_serialize(serde_json::json!({"amount": a, "currency": c}))).unwrap();
        assert_eq!(m(1299, "EUR"), "12.99 EUR");
        assert_eq!(m(5, "USD"), "0.05 USD");
        assert_eq!(m(500, "JPY"), "500 JPY");
    }
}
