//! An `Idempotency-Key`: what a client sends so that a retried request is recognised as the same
//! one (`POST /orders`, and the mock gateway's charges and refunds).
//!
//! Parsed once, where the header is read: 1 to 128 visible ASCII characters, surrounding spaces
//! trimmed. Afterwards it is a type, not a string, so it cannot be swapped with another string
//! argument, and it is safe to put in a DynamoDB key as it is.

use std::fmt;

/// Longest key accepted: it becomes part of a DynamoDB key.
pub const MAX_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// `None` unless `raw` (trimmed) is 1 to [`MAX_LEN`] visible ASCII characters.
    pub fn parse(raw: &str) -> Option<Self> {
        let key = raw.trim();
        let valid = !key.is_empty() && key.len() <= MAX_LEN && key.bytes().all(|b| b.is_ascii_graphic());
        valid.then(|| Self(key.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_short_visible_ascii() {
        assert_eq!(IdempotencyKey::parse("  order-1 ").unwrap().as_str(), "order-1");
        assert!(IdempotencyKey::parse("").is_none());
        assert!(IdempotencyKey::parse("   ").is_none());
        assert!(IdempotencyKey::parse("a b").is_none(), "inner space");
        assert!(IdempotencyKey::parse("clé").is_none(), "non-ASCII");
        assert!(IdempotencyKey::parse("a\u{0}").is_none());
        assert!(IdempotencyKey::parse(&"k".repeat(MAX_LEN)).is_some());
        assert!(IdempotencyKey::parse(&"k".repeat(MAX_LEN + 1)).is_none());
    }
}
