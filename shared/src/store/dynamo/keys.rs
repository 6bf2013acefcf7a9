//! Key formats of every item type, in one place so no two modules spell them differently.

use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;
use uuid::Uuid;

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const GSI1: &str = "gsi1";
pub const GSI1PK: &str = "gsi1pk";
pub const GSI1SK: &str = "gsi1sk";

pub const CATALOG: &str = "CATALOG";
pub const OUTBOX: &str = "OUTBOX";

pub fn user(id: Uuid) -> (String, &'static str) {
    (format!("USER#{id}"), "PROFILE")
}

pub fn email(normalized: &str) -> (String, &'static str) {
    (format!("EMAIL#{normalized}"), "CREDENTIALS")
}

pub fn product(id: Uuid) -> (String, &'static str) {
    (format!("PRODUCT#{id}"), "PRODUCT")
}

pub fn event(id: Uuid) -> (String, &'static str) {
    (format!("EVENT#{id}"), "EVENT")
}

/// The primary key as the SDK wants it.
pub fn key((pk, sk): (String, &'static str)) -> HashMap<String, AttributeValue> {
    HashMap::from([(PK.to_owned(), AttributeValue::S(pk)), (SK.to_owned(), AttributeValue::S(sk.to_owned()))])
}
