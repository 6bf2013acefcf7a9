//! Money as integer minor units plus an ISO-4217 currency code.
//!
//! Floating point never touches prices: `12.99 EUR` is `Money { amount: 1299, currency: EUR }`.
//! Amounts are `i64` so sums of many lines cannot overflow in practice, yet a price itself must be
//! positive and bounded (see [`Money::price`]).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Largest price accepted for one unit: 1,000,000.00 in major units. Bounds arithmetic and typos.
pub const MAX_PRICE_MINOR: i64 = 100_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    pub fn parse(code: &str) -> Result<Self, String> {
        let bytes = code.as_bytes();
        if bytes.len() == 3 && bytes.iter().all(u8::is_ascii_uppercase) {
            Ok(Self([bytes[0], bytes[1], bytes[2]]))
        } else {
            Err(format!("currency must be a 3-letter ISO 4217 code in upper case, got {code:?}"))
        }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII upper-case letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

impl TryFrom<String> for Currency {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Currency> for String {
    fn from(value: Currency) -> Self {
        value.as_str().to_owned()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Money {
    /// Minor units (cents for EUR/USD).
    pub amount: i64,
    pub currency: Currency,
}

impl Money {
    /// A unit price: strictly positive and at most [`MAX_PRICE_MINOR`].
    pub fn price(amount: i64, currency: Currency) -> Result<Self, String> {
        if amount <= 0 || amount > MAX_PRICE_MINOR {
            return Err(format!("price amount must be between 1 and {MAX_PRICE_MINOR} minor units"));
        }
        Ok(Self { amount, currency })
    }

    /// `self * quantity`, `None` on overflow.
    pub fn times(self, quantity: u32) -> Option<Self> {
        self.amount.checked_mul(i64::from(quantity)).map(|amount| Self { amount, ..self })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_must_be_three_upper_case_letters() {
        assert!(Currency::parse("EUR").is_ok());
        for bad in ["eur", "EU", "EURO", "E1R", "", "ÉUR"] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn price_is_positive_and_bounded() {
        let eur = Currency::parse("EUR").unwrap();
        assert!(Money::price(1, eur).is_ok());
        assert!(Money::price(MAX_PRICE_MINOR, eur).is_ok());
        assert!(Money::price(0, eur).is_err());
        assert!(Money::price(-5, eur).is_err());
        assert!(Money::price(MAX_PRICE_MINOR + 1, eur).is_err());
    }

    #[test]
    fn serialises_as_amount_and_code() {
        let m = Money::price(1299, Currency::parse("EUR").unwrap()).unwrap();
        assert_eq!(serde_json::to_value(m).unwrap(), serde_json::json!({"amount": 1299, "currency": "EUR"}));
        assert_eq!(m.times(3).unwrap().amount, 3897);
        assert!(Money { amount: i64::MAX, ..m }.times(2).is_none());
    }
}
