//! The shop's shared library: everything the Lambda functions in `functions/` have in common.
//!
//! - [`admin`]: who is an admin, changed only by an operator (`shop-admin`);
//! - [`domain`]: the rules (money, stock transitions, users, products), pure and unit-tested;
//! - [`store`]: storage ports (traits) and the DynamoDB adapter, the only place SDK types appear;
//! - [`auth`]: argon2id password hashing and JWT access tokens;
//! - [`api`]: one module per function, handling its HTTP routes over the ports;
//! - [`http`], [`error`]: JSON bodies, the error shape, the request loop;
//! - [`events`]: domain events written to the outbox, and publishing them to Kafka;
//! - [`email`]: the e-mail each event becomes (templates) and sending it (SESv2);
//! - [`payments`]: the gateway contract, webhook signatures and the one `settle` of payment outcomes;
//! - [`mock_gateway`]: the simulated payment provider used in development and tests;
//! - [`schedule`]: the loop of schedule-triggered functions;
//! - [`config`], [`telemetry`], [`cold_start`], [`aws`]: typed environment config, JSON logs and
//!   the AWS clients, set up once per instance; [`metrics`]: the business and technical figures,
//!   in CloudWatch Embedded Metric Format; [`trace`]: the request and X-Ray ids that follow a
//!   change from its HTTP request to its e-mail.

pub mod admin;
pub mod api;
pub mod auth;
pub mod aws;
pub mod cold_start;
pub mod config;
pub mod domain;
pub mod email;
pub mod error;
pub mod events;
pub mod http;
pub mod metrics;
pub mod mock_gateway;
pub mod payments;
pub mod schedule;
pub mod serde_ext;
pub mod store;
pub mod telemetry;
pub mod trace;
