//! Payments, as the shop sees them (`docs/payments.md`):
//!
//! - [`gateway`]: the gateway's HTTP contract (charges, webhook events) and the client for it;
//! - [`signature`]: the `Payment-Signature` webhook header, made and checked;
//! - [`settle`]: the one place a payment outcome changes an order and its stock.
//!
//! The rules themselves (which outcome does what to which order state) are pure, in
//! `domain::payment`. The HTTP functions are `api::payments`, `api::payment_webhook`, and the
//! development gateway `api::mock_gateway`.

pub mod gateway;
pub mod settle;
pub mod signature;
