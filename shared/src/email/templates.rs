//! Which e-mail each event type becomes, and rendering it.
//!
//! Every e-mail has a plain-text and an HTML body, rendered with minijinja from
//! `templates/<name>.txt` and `templates/<name>.html` (HTML auto-escaped; `layout.html` is the
//! shared frame, `lines.*` the order lines). The template sees the event as `event` and its data as
//! `data`, plus two filters: `money` (`{"amount": 1299, "currency": "EUR"}` → `12.99 EUR`) and
//! `when` (RFC 3339 → `2026-01-02 03:04 UTC`). An event type not listed in [`KINDS`] has no e-mail.

use super::Email;
use crate::events::event::{self, Event};
use minijinja::{Environment, Value, context};

/// Event type → (template name, subject).
pub const KINDS: &[(&str, &str, &str)] = &[
    (event::USER_SIGNED_UP, "welcome", "Welcome to the shop"),
    (event::ORDER_PLACED, "order_placed", "We received your order"),
    (event::ORDER_PAID, "order_paid", "Payment received: your receipt"),
    (event::ORDER_PAYMENT_FAILED, "order_payment_failed", "Your payment did not go through"),
    (event::ORDER_CANCELLED, "order_cancelled", "Your order was cancelled"),
    (event::ORDER_EXPIRED, "order_expired", "Your order expired"),
    (event::ORDER_REFUND_REQUIRED, "order_refund_required", "A refund is on its way"),
];

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
];

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// Not an event that e-mails anyone: skip it.
    #[error("no e-mail for event type {0:?}")]
    UnknownType(String),
    /// The event lacks what the e-mail needs (no recipient, malformed data): skip it, loudly.
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
        let mut env = Environment::new();
        for (name, source) in FILES {
            env.add_template(name, source).expect("embedded e-mail templates parse (checked by unit tests)");
        }
        env.add_filter("money", money);
        env.add_filter("when", when);
        Self { env }
    }

    /// The e-mail for `event`, addressed to `data.email`.
    pub fn render(&self, event: &Event) -> Result<Email, RenderError> {
        let (_, name, subject) = KINDS
            .iter()
            .find(|(t, _, _)| *t == event.event_type)
            .ok_or_else(|| RenderError::UnknownType(event.event_type.clone()))?;
        let to = event
            .data
            .get("email")
            .and_then(|e| e.as_str())
            .filter(|e| e.contains('@'))
            .ok_or_else(|| RenderError::Malformed("data.email is missing".into()))?;
        let ctx = context! { event => Value::from_serialize(event), data => Value::from_serialize(&event.data) };
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
    use serde_json::json;

    fn order_data() -> serde_json::Value {
        json!({ "order_id": "0190-x", "email": "ada@example.com", "total": {"amount": 2598, "currency": "EUR"},
                "lines": [{"product_id": "p", "name": "Mug <b>", "quantity": 2, "unit_price": {"amount": 1299, "currency": "EUR"}}],
                "reservation_deadline": "2026-01-02T03:04:05Z" })
    }

    #[test]
    fn every_kind_renders_text_and_html() {
        let templates = Templates::new();
        for (kind, _, subject) in KINDS {
            let mut data = order_data();
            data["name"] = json!("Ada");
            let email = templates.render(&Event::new(kind, "agg", time::OffsetDateTime::now_utc(), data)).unwrap();
            assert_eq!(email.to, "ada@example.com");
            assert_eq!(&email.subject, subject);
            assert!(!email.text.contains("<p>") && !email.text.contains("<html"), "{kind}: text body has markup");
            assert!(email.html.contains("<html"), "{kind}");
        }
    }

    #[test]
    fn order_placed_shows_amount_deadline_and_escapes_html() {
        let event = Event::new(event::ORDER_PLACED, "o", time::OffsetDateTime::now_utc(), order_data());
        let email = Templates::new().render(&event).unwrap();
        assert!(email.text.contains("25.98 EUR") && email.text.contains("2026-01-02 03:04 UTC"), "{}", email.text);
        assert!(email.html.contains("Mug &lt;b&gt;"), "{}", email.html);
    }

    #[test]
    fn unknown_types_and_missing_recipients_are_refused() {
        let now = time::OffsetDateTime::now_utc();
        assert!(matches!(
            Templates::new().render(&Event::new("order.teleported", "o", now, order_data())),
            Err(RenderError::UnknownType(_))
        ));
        assert!(matches!(
            Templates::new().render(&Event::new(event::ORDER_PAID, "o", now, json!({}))),
            Err(RenderError::Malformed(_))
        ));
    }

    #[test]
    fn money_handles_minor_units() {
        let m = |a: i64, c: &str| money(Value::from_serialize(json!({"amount": a, "currency": c}))).unwrap();
        assert_eq!(m(1299, "EUR"), "12.99 EUR");
        assert_eq!(m(5, "USD"), "0.05 USD");
        assert_eq!(m(500, "JPY"), "500 JPY");
    }
}
