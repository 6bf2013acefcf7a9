//! Pure domain logic: no AWS types, no I/O. Everything here is unit-tested.

pub mod buckets;
pub mod idempotency;
pub mod money;
pub mod order;
pub mod payment;
pub mod product;
pub mod refund;
pub mod stock;
pub mod user;
