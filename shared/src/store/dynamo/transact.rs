//! `TransactWriteItems` with the retry DynamoDB asks for.
//!
//! Under contention DynamoDB cancels a transaction with reason `TransactionConflict` when another
//! transaction touches one of its items at the same moment, and with `ThrottlingError` when one of
//! its items' partitions is over its write limit (about 1,000 write units/s, 2 per transactional
//! item: a hot product). Neither is a business failure: both are retried with jittered
//! exponential backoff, a bounded number of times (about 2 s in all, well inside API Gateway's
//! 29 s), and what still fails becomes [`StoreError::Unavailable`], a 503 the client may retry
//! with the same Idempotency-Key. A cancellation for any
//! other reason (a condition failed) is returned with the per-item reasons, in item order, so the
//! caller can say *which* condition failed (e.g. which product is out of stock).

use super::{DynamoStore, store_error};
use crate::store::StoreError;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use backon::{ExponentialBuilder, Retryable};
use std::collections::HashMap;
use std::time::Duration;

/// DynamoDB's limit of actions in one transaction.
pub const MAX_TRANSACT_ITEMS: usize = 100;

/// Why one item of a cancelled transaction failed.
#[derive(Debug, Clone)]
pub struct Reason {
    /// `None` where that item was fine.
    pub code: Option<String>,
    /// The item as it was, for items written with `ReturnValuesOnConditionCheckFailure::AllOld`.
    pub item: Option<HashMap<String, AttributeValue>>,
}

#[derive(Debug, thiserror::Error)]
pub enum TransactError {
    /// Cancelled: one reason per item, in item order.
    #[error("transaction cancelled: {:?}", .0.iter().map(|r| r.code.as_deref()).collect::<Vec<_>>())]
    Cancelled(Vec<Reason>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl TransactError {
    /// Cancelled for a reason that passes with time (conflict, throttling), not for a condition.
    fn is_transient(&self) -> bool {
        matches!(self, Self::Cancelled(reasons)
            if reasons.iter().any(|r| matches!(r.code.as_deref(), Some("TransactionConflict" | "ThrottlingError")))
                && !reasons.iter().any(|r| r.code.as_deref() == Some("ConditionalCheckFailed")))
    }

    /// Indexes of the items whose condition failed.
    pub fn failed_conditions(&self) -> Vec<usize> {
        match self {
            Self::Cancelled(reasons) => reasons
                .iter()
                .enumerate()
                .filter(|(_, r)| r.code.as_deref() == Some("ConditionalCheckFailed"))
                .map(|(i, _)| i)
                .collect(),
            Self::Store(_) => Vec::new(),
        }
    }
}

fn backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(10))
        .with_max_delay(Duration::from_millis(400))
        .with_max_times(8)
        .with_jitter()
}

impl DynamoStore {
    pub(crate) async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), TransactError> {
        debug_assert!(items.len() <= MAX_TRANSACT_ITEMS);
        let attempt = || async {
            match self.client.transact_write_items().set_transact_items(Some(items.clone())).send().await {
                Ok(_) => Ok(()),
                Err(SdkError::ServiceError(service)) => match service.err() {
                    TransactWriteItemsError::TransactionCanceledException(cancelled) => {
                        let reasons = cancelled
                            .cancellation_reasons()
                            .iter()
                            .map(|r| Reason {
                                code: r.code().filter(|c| *c != "None").map(str::to_owned),
                                item: r.item().cloned(),
                            })
                            .collect();
                        Err(TransactError::Cancelled(reasons))
                    }
                    _ => Err(TransactError::Store(store_error(SdkError::ServiceError(service)))),
                },
                Err(other) => Err(TransactError::Store(store_error(other))),
            }
        };
        attempt
            .retry(backoff())
            .when(TransactError::is_transient)
            .notify(|e, after| tracing::debug!(?after, "{e}, retrying"))
            .await
            .map_err(|e| {
                if e.is_transient() {
                    StoreError::Unavailable(format!("still cancelled after retries: {e}")).into()
                } else {
                    e
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cancelled(codes: &[Option<&str>]) -> TransactError {
        TransactError::Cancelled(codes.iter().map(|c| Reason { code: c.map(str::to_owned), item: None }).collect())
    }

    #[test]
    fn conflicts_and_throttling_are_retried_failed_conditions_are_not() {
        assert!(cancelled(&[None, Some("TransactionConflict")]).is_transient());
        assert!(cancelled(&[Some("ThrottlingError"), None]).is_transient());
        assert!(!cancelled(&[Some("ConditionalCheckFailed"), Some("ThrottlingError")]).is_transient());
        assert!(!cancelled(&[None, Some("ConditionalCheckFailed")]).is_transient());
        assert!(!TransactError::Store(StoreError::Other("x".into())).is_transient());
    }
}
