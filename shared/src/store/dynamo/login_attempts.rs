//! Log-in attempts per account: `LOGIN_ATTEMPTS#<fingerprint of the e-mail>` / `ATTEMPTS`, with
//! `attempts`, `window_ends` (epoch seconds) and `expires_at` (TTL: a day after the window).
//!
//! Counting is one conditional write, so racing attempts cannot all slip under the limit:
//! 1. `attempts + 1` if the window is still open and `attempts < limit` → allowed;
//! 2. refused: with the item as it was (`ALL_OLD`), an open window means the limit is reached →
//!    throttled until it closes; no item, or a closed window → a new window with one attempt,
//!    `PutItem` conditional on there still being no open window (a racer that opened one first
//!    sends us round again).

use super::{DynamoStore, keys, store_error};
use crate::store::{Attempt, LoginAttempts, StoreError};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

/// Rounds of "counted by someone else first": two is plenty, every round makes progress.
const ROUNDS: usize = 3;

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

impl LoginAttempts for DynamoStore {
    async fn attempt(
        &self,
        account: &str,
        limit: u32,
        window: time::Duration,
        now: time::OffsetDateTime,
    ) -> Result<Attempt, StoreError> {
        let t = now.unix_timestamp();
        for _ in 0..ROUNDS {
            let counted = self
                .update(keys::login_attempts(account))
                .update_expression("SET attempts = attempts + :one")
                .condition_expression("window_ends > :now AND attempts < :limit")
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":now", n(t))
                .expression_attribute_values(":limit", n(i64::from(limit)))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
                .await;
            let old = match counted {
                Ok(_) => return Ok(Attempt::Allowed),
                Err(SdkError::ServiceError(refused))
                    if matches!(refused.err(), UpdateItemError::ConditionalCheckFailedException(_)) =>
                {
                    match refused.into_err() {
                        UpdateItemError::ConditionalCheckFailedException(c) => c.item,
                        _ => None,
                    }
                }
                Err(e) => return Err(store_error(e)),
            };
            let window_ends = old
                .as_ref()
                .and_then(|i| i.get("window_ends"))
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<i64>().ok());
            if let Some(ends) = window_ends.filter(|ends| *ends > t) {
                return Ok(Attempt::Throttled { retry_after_secs: u64::try_from(ends - t).unwrap_or(1) });
            }
            let ends = t + window.whole_seconds();
            let mut item = keys::key(keys::login_attempts(account));
            item.insert("attempts".to_owned(), n(1));
            item.insert("window_ends".to_owned(), n(ends));
            item.insert(keys::TTL.to_owned(), n(ends + 24 * 3600));
            let opened = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk) OR window_ends <= :now")
                .expression_attribute_values(":now", n(t))
                .send()
                .await;
            match opened {
                Ok(_) => return Ok(Attempt::Allowed),
                Err(e) if e.code() == Some("ConditionalCheckFailedException") => continue,
                Err(e) => return Err(store_error(e)),
            }
        }
        Err(StoreError::Unavailable("log-in attempts kept changing".into()))
    }

    async fn reset(&self, account: &str) -> Result<(), StoreError> {
        self.delete(keys::login_attempts(account)).send().await.map_err(store_error)?;
        Ok(())
    }
}
