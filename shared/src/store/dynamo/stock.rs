//! Stock writes: turns a domain [`Transition`] into one DynamoDB update expression and its guard.
//!
//! This is where `available_stock`, `reserved_stock` and `sellable_stock` are changed, always
//! together, and always under the condition that keeps `0 <= reserved <= available`. Reserving
//! stock for an order, deducting it when paid, releasing it, and an admin's adjustment all go
//! through [`stock_write`].

use crate::domain::stock::{Counter, Transition};
use aws_sdk_dynamodb::types::AttributeValue;

/// The product is in the catalog: it exists and was not deleted (reserving, and a late payment
/// taking units again, need it; paying and releasing what an order holds do not).
pub const LIVE: &str = "attribute_exists(pk) AND attribute_not_exists(deleted_at)";

pub const AVAILABLE: &str = "available_stock";
pub const RESERVED: &str = "reserved_stock";
pub const SELLABLE: &str = "sellable_stock";

/// The parts of an `UpdateItem` (or transaction `Update`) that apply one transition.
#[derive(Debug, Clone, PartialEq)]
pub struct StockWrite {
    /// `SET` assignments, without the `SET` keyword, e.g. `reserved_stock = reserved_stock + :st_reserved`.
    pub assignments: Vec<String>,
    /// e.g. `sellable_stock >= :st_guard`.
    pub condition: String,
    pub values: Vec<(String, AttributeValue)>,
}

pub fn stock_write(t: Transition) -> StockWrite {
    let d = t.delta();
    let mut assignments = Vec::new();
    let mut values = Vec::new();
    for (attr, delta) in [(AVAILABLE, d.available), (RESERVED, d.reserved), (SELLABLE, d.sellable)] {
        if delta != 0 {
            let placeholder = format!(":st_{attr}");
            assignments.push(format!("{attr} = {attr} + {placeholder}"));
            values.push((placeholder, AttributeValue::N(delta.to_string())));
        }
    }
    let guard = t.condition();
    let counter = match guard.counter {
        Counter::Reserved => RESERVED,
        Counter::Sellable => SELLABLE,
    };
    values.push((":st_guard".to_owned(), AttributeValue::N(guard.at_least.to_string())));
    StockWrite { assignments, condition: format!("{counter} >= :st_guard"), values }
}

/// A transaction's `Update` of one stock item (a product's bucket `bucket`): the transition's
/// assignments under its guard, after the conditions in `also` (e.g. [`LIVE`]), joined by `AND`.
/// The caller adds the values its own conditions name.
pub fn stock_update(
    table: &str,
    product: uuid::Uuid,
    bucket: u16,
    transition: Transition,
    also: &[&str],
) -> aws_sdk_dynamodb::types::builders::UpdateBuilder {
    let w = stock_write(transition);
    let condition = also.iter().copied().chain(std::iter::once(w.condition.as_str())).collect::<Vec<_>>().join(" AND ");
    let update = aws_sdk_dynamodb::types::Update::builder()
        .table_name(table)
        .set_key(Some(super::keys::key(super::keys::stock_bucket(product, bucket))))
        .update_expression(format!("SET {}", w.assignments.join(", ")))
        .condition_expression(condition);
    w.values.into_iter().fold(update, |u, (k, v)| u.expression_attribute_values(k, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_moves_sellable_to_reserved_if_enough_is_sellable() {
        let w = stock_write(Transition::Reserve(3));
        assert_eq!(
            w.assignments,
            vec![
                "reserved_stock = reserved_stock + :st_reserved_stock",
                "sellable_stock = sellable_stock + :st_sellable_stock"
            ]
        );
        assert_eq!(w.condition, "sellable_stock >= :st_guard");
        assert_eq!(
            w.values,
            vec![
                (":st_reserved_stock".into(), AttributeValue::N("3".into())),
                (":st_sellable_stock".into(), AttributeValue::N("-3".into())),
                (":st_guard".into(), AttributeValue::N("3".into())),
            ]
        );
    }

    #[test]
    fn negative_adjust_is_guarded_by_sellable() {
        let w = stock_write(Transition::Adjust(-4));
        assert_eq!(w.condition, "sellable_stock >= :st_guard");
        assert!(w.values.contains(&(":st_guard".into(), AttributeValue::N("4".into()))));
        assert_eq!(w.assignments.len(), 2, "available and sellable move together");
    }

    #[test]
    fn deduct_and_release_are_guarded_by_reserved() {
        assert_eq!(stock_write(Transition::Deduct(2)).condition, "reserved_stock >= :st_guard");
        assert_eq!(stock_write(Transition::Release(2)).condition, "reserved_stock >= :st_guard");
    }
}
