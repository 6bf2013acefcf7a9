//! Catalog products and the validation of what an admin may write.
//!
//! Stock is not a plain field an update can overwrite: a new product starts with `stock` units,
//! and afterwards only a signed `stock_adjustment` moves it, through [`crate::domain::stock::Transition::Adjust`],
//! so an admin edit can never clobber units that orders reserved in the meantime.
//!
//! `stock_buckets` (1 to 32, default 1) spreads a product's stock over that many items so that a
//! hot product is not one hot partition (see [`crate::domain::buckets`]); `stock` always shows
//! the sum.

use super::buckets::StockBuckets;
use super::money::{Currency, Money};
use super::stock::Stock;
use crate::serde_ext::absent_or_value;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

const MAX_NAME_CHARS: usize = 200;
const MAX_DESCRIPTION_CHARS: usize = 4_000;
/// Bounds one admin operation; stops typos like an extra six zeros.
pub const MAX_STOCK_CHANGE: i64 = 1_000_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub price: Money,
    /// The sum over every bucket.
    pub stock: Stock,
    pub stock_buckets: StockBuckets,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: time::OffsetDateTime,
}

/// `POST /products` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProductInput {
    pub name: String,
    #[serde(default, deserialize_with = "absent_or_value")]
    pub description: Option<String>,
    pub price: PriceInput,
    #[serde(default, deserialize_with = "absent_or_value")]
    pub stock: Option<i64>,
    #[serde(default, deserialize_with = "absent_or_value")]
    pub stock_buckets: Option<i64>,
}

/// `PUT /products/{id}` body: every field optional, at least one present.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductUpdateInput {
    #[serde(default, deserialize_with = "absent_or_value")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "absent_or_value")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "absent_or_value")]
    pub price: Option<PriceInput>,
    /// Units to add (> 0) or remove (< 0); refused if it would take reserved units.
    #[serde(default, deserialize_with = "absent_or_value")]
    pub stock_adjustment: Option<i64>,
    /// Spread the stock over this many buckets from now on (units move by conditional transaction).
    #[serde(default, deserialize_with = "absent_or_value")]
    pub stock_buckets: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceInput {
    pub amount: i64,
    pub currency: String,
}

/// A validated creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProduct {
    pub name: String,
    pub description: String,
    pub price: Money,
    pub stock: i64,
    pub stock_buckets: StockBuckets,
}

/// A validated update.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProductUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub price: Option<Money>,
    pub stock_adjustment: Option<i64>,
    pub stock_buckets: Option<StockBuckets>,
}

impl ProductUpdate {
    /// Whether the update moves stock between or into buckets (else it only edits the catalog).
    pub fn moves_stock(&self) -> bool {
        self.stock_adjustment.is_some() || self.stock_buckets.is_some()
    }
}

/// Field name → reason, reported together so a form can show every problem at once.
pub type FieldErrors = Vec<(&'static str, String)>;

fn check_name(name: &str, errors: &mut FieldErrors) -> String {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        errors.push(("name", format!("must be 1 to {MAX_NAME_CHARS} characters")));
    }
    name.to_owned()
}

fn check_description(d: &str, errors: &mut FieldErrors) -> String {
    if d.chars().count() > MAX_DESCRIPTION_CHARS {
        errors.push(("description", format!("must be at most {MAX_DESCRIPTION_CHARS} characters")));
    }
    d.trim().to_owned()
}

fn check_buckets(n: Option<i64>, errors: &mut FieldErrors) -> Option<StockBuckets> {
    n.and_then(|n| StockBuckets::parse(n).map_err(|e| errors.push(("stock_buckets", e))).ok())
}

fn check_price(p: &PriceInput, errors: &mut FieldErrors) -> Option<Money> {
    match Currency::parse(&p.currency).and_then(|c| Money::price(p.amount, c)) {
        Ok(m) => Some(m),
        Err(e) => {
            errors.push(("price", e));
            None
        }
    }
}

impl NewProductInput {
    pub fn validate(self) -> Result<NewProduct, FieldErrors> {
        let mut errors = FieldErrors::new();
        let name = check_name(&self.name, &mut errors);
        let description = check_description(self.description.as_deref().unwrap_or(""), &mut errors);
        let price = check_price(&self.price, &mut errors);
        let stock = self.stock.unwrap_or(0);
        if !(0..=MAX_STOCK_CHANGE).contains(&stock) {
            errors.push(("stock", format!("must be between 0 and {MAX_STOCK_CHANGE}")));
        }
        let stock_buckets = check_buckets(self.stock_buckets, &mut errors).unwrap_or_default();
        match price {
            Some(price) if errors.is_empty() => Ok(NewProduct { name, description, price, stock, stock_buckets }),
            _ => Err(errors),
        }
    }
}

impl ProductUpdateInput {
    pub fn validate(self) -> Result<ProductUpdate, FieldErrors> {
        let mut errors = FieldErrors::new();
        let update = ProductUpdate {
            name: self.name.as_deref().map(|n| check_name(n, &mut errors)),
            description: self.description.as_deref().map(|d| check_description(d, &mut errors)),
            price: self.price.as_ref().and_then(|p| check_price(p, &mut errors)),
            stock_adjustment: self.stock_adjustment,
            stock_buckets: check_buckets(self.stock_buckets, &mut errors),
        };
        match update.stock_adjustment {
            Some(0) => errors.push(("stock_adjustment", "must not be 0".into())),
            // `contains`, not `d.abs()`: i64::MIN has no absolute value (it wraps in release builds).
            Some(d) if !(-MAX_STOCK_CHANGE..=MAX_STOCK_CHANGE).contains(&d) => {
                errors.push(("stock_adjustment", format!("must be between -{MAX_STOCK_CHANGE} and {MAX_STOCK_CHANGE}")))
            }
            _ => {}
        }
        if errors.is_empty() && update == ProductUpdate::default() {
            errors.push((
                "body",
                "nothing to update: give name, description, price, stock_adjustment or stock_buckets".into(),
            ));
        }
        if errors.is_empty() { Ok(update) } else { Err(errors) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(amount: i64, currency: &str, stock: Option<i64>) -> NewProductInput {
        NewProductInput {
            name: " Mug ".into(),
            description: None,
            price: PriceInput { amount, currency: currency.into() },
            stock,
            stock_buckets: None,
        }
    }

    #[test]
    fn valid_creation_is_trimmed_and_defaults_stock_to_zero() {
        let p = input(1299, "EUR", None).validate().unwrap();
        assert_eq!(p.name, "Mug");
        assert_eq!(p.stock, 0);
        assert_eq!(p.price.amount, 1299);
    }

    #[test]
    fn every_invalid_field_is_reported() {
        let mut bad = input(0, "eur", Some(-1));
        bad.name = "  ".into();
        bad.stock_buckets = Some(0);
        let errors = bad.validate().unwrap_err();
        let fields: Vec<_> = errors.iter().map(|(f, _)| *f).collect();
        assert_eq!(fields, vec!["name", "price", "stock", "stock_buckets"]);
    }

    #[test]
    fn optional_fields_may_be_absent_but_not_null() {
        let absent: ProductUpdateInput = serde_json::from_str(r#"{"name": "x"}"#).unwrap();
        assert_eq!(absent.stock_adjustment, None);
        assert!(serde_json::from_str::<ProductUpdateInput>(r#"{"name": "x", "stock_adjustment": null}"#).is_err());
        assert!(
            serde_json::from_str::<NewProductInput>(
                r#"{"name": "x", "price": {"amount": 1, "currency": "EUR"}, "description": null}"#
            )
            .is_err()
        );
    }

    #[test]
    fn update_needs_something_and_a_nonzero_bounded_adjustment() {
        assert!(ProductUpdateInput::default().validate().is_err());
        let zero = ProductUpdateInput { stock_adjustment: Some(0), ..Default::default() };
        assert!(zero.validate().is_err());
        for extreme in [-MAX_STOCK_CHANGE - 1, MAX_STOCK_CHANGE + 1, i64::MIN, i64::MAX] {
            let huge = ProductUpdateInput { stock_adjustment: Some(extreme), ..Default::default() };
            assert!(huge.validate().is_err(), "{extreme}");
        }
        let edge = ProductUpdateInput { stock_adjustment: Some(-MAX_STOCK_CHANGE), ..Default::default() };
        assert!(edge.validate().is_ok());
        let ok = ProductUpdateInput { stock_adjustment: Some(-3), ..Default::default() };
        assert_eq!(ok.validate().unwrap().stock_adjustment, Some(-3));
    }
}
