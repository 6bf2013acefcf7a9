//! `TransactWriteItems` with the retry DynamoDB asks for.
//!
//! Under contention DynamoDB cancels a transaction with reason `TransactionConflict` when another
//! transaction touches one of its items at the same moment. That is not a business failure: it is
//! retried with jittered exponential backoff, a bounded number of times. A cancellation for any
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
    fn is_conflict(&self) -> bool {
        matches!(self, Self::Cancelled(reasons) if reasons.iter().any(|r| r.code.as_deref() == Some("TransactionConflict")))
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
        .with_max_delay(Duration::from_millis(200))
        .with_max_times(6)
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
            .when(TransactError::is_conflict)
            .notify(|_, after| tracing::debug!(?after, "transaction conflict, retrying"))
            .await
            .map_err(|e| {
                if e.is_conflict() {
                    StoreError::Unavailable("transaction conflict persisted".into()).into()
                } else {
                    e
                }
            })
    }
}
