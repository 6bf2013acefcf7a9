//! A simulated payment provider for development and tests (deployed only to dev stages, see the
//! `DeployMockGateway` condition in `template.yaml`). It behaves like a real one where the shop
//! can tell: charges are idempotent on the caller's key, webhooks are signed and delivered
//! at-least-once with retries until a 2xx, and undelivered webhooks survive restarts.
//!
//! - [`scenario`]: what a payment token makes happen (success, decline, delays and chaos);
//! - [`delivery`]: signing and posting one webhook, and when to try again;
//! - [`store`]: what it keeps (its own storage port).
//!
//! Its HTTP routes are `api::mock_gateway`; the schedule that redelivers is `api::mock_gateway_deliveries`.

pub mod delivery;
pub mod scenario;
pub mod store;
