//! The AWS services and the parts of Lambda the shop runs on, one per module, each standing in
//! for the real thing on loopback: real emulators (DynamoDB Local, tansu, moto) behind fronts that
//! add what AWS does and they do not (faults, partition limits, refusals), and the Lambda pieces
//! written here (Runtime API, Invoke API, API Gateway, the event source mappings, the schedule).
//!
//! Emulators import only [`crate::template`], [`crate::process`] and each other; never the stack
//! or a command.

pub mod api_gateway;
pub mod aws_json;
pub mod cloudwatch;
pub mod dynamodb_local;
pub mod dynamodb_proxy;
pub mod emulator;
pub mod iam;
pub mod invoke;
pub mod kafka;
pub mod kafka_front;
pub mod logs;
pub mod msk;
pub mod outage;
pub mod runtime_api;
pub mod schedule;
pub mod ses;
pub mod settle;
pub mod sqs;
pub mod streams;
