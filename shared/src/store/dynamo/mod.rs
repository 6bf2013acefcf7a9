//! The DynamoDB adapter: the only module where AWS SDK types appear.
//!
//! One table, keys and access patterns documented in `docs/data-model.md`:
//!
//! | item | pk | sk | gsi1pk / gsi1sk (gsi2, gsi3 where said) |
//! |---|---|---|---|
//! | user profile | `USER#<id>` | `PROFILE` | |
//! | e-mail claim + credentials (+ the current reset token's hash) | `EMAIL#<lower-case email>` | `CREDENTIALS` | |
//! | password-reset token (its hash → the address) | `RESET#<sha-256 of the token>` | `RESET` | |
//! | product (and its stock bucket 0) | `PRODUCT#<id>` | `PRODUCT` | gsi3 `CATALOG` / `<id>` (absent once deleted) |
//! | stock bucket `k > 0` of a product | `PRODUCT#<id>#STOCK#<k>` | `STOCK` | |
//! | cart line | `USER#<id>` | `CART#<product id>` | |
//! | order | `ORDER#<id>` | `ORDER` | `ORDERS#<user id>` / `<order id>`; gsi2 `PENDING#<0–31>` / `<deadline>#<id>` while pending |
//! | idempotency marker | `IDEMPOTENCY#<user id>#<key>` | `PLACE_ORDER` | |
//! | product update marker | `IDEMPOTENCY#<admin id>#<key>` | `UPDATE_PRODUCT` | |
//! | outbox event | `EVENT#<id>` | `EVENT` | `OUTBOX#<0–63>` / `<event id>` (absent once published) |
//! | sent e-mail marker (notifier) | `EMAIL_SENT#<event id>` | `EMAIL` | |
//! | payment dedupe marker | `PAYMENT_EVENT#<event id or charge:id>` | `SETTLED` | |
//! | refund (one per charge) | `REFUND#<charge id>` | `REFUND` | `REFUNDS` / `<refund id>` while requested, `REFUNDS_FAILED` / … if the gateway refused |
//! | admin (the profile, while an admin) | `USER#<id>` | `PROFILE` | `ADMINS` / `<lower-case email>` |
//! | mock gateway charge | `CHARGE#<id>` | `CHARGE` | |
//! | mock gateway key claim | `CHARGE_KEY#<idempotency key>` | `CHARGE_KEY` | |
//! | mock gateway webhook | `WEBHOOK_DELIVERY#<id>` | `DELIVERY` | `DELIVERIES` / `<due ms>#<id>` (absent once delivered) |
//!
//! The client is built once at cold start; `AWS_ENDPOINT_URL_DYNAMODB` points it at DynamoDB
//! Local or LocalStack without code changes.

mod accounts;
mod buckets;
mod cart;
mod charges;
mod cursor;
mod index;
pub mod keys;
mod login_attempts;
mod orders;
mod outbox;
mod products;
mod refunds;
mod release;
mod reserve;
mod sent_emails;
mod settle;
pub mod stock;
mod transact;
mod transition;
mod users;

pub use users::profile_item;

use super::StoreError;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// How long spent markers (idempotency keys, payment dedupe markers) are kept before the table's
/// TTL deletes them: longer than any client or payment provider retries (providers retry webhooks
/// for up to 3 days; a buyer retries `POST /orders` within minutes).
pub const MARKER_RETENTION: time::Duration = time::Duration::days(30);

/// A raw DynamoDB item.
type Item = HashMap<String, AttributeValue>;

#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    /// An `UpdateItem` of the item at `key`, for the caller to give its expression and condition.
    fn update<S: Into<String>>(
        &self,
        key: (String, S),
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client.update_item().table_name(&self.table).set_key(Some(keys::key(key)))
    }

    /// A `DeleteItem` of the item at `key`.
    fn delete<S: Into<String>>(
        &self,
        key: (String, S),
    ) -> aws_sdk_dynamodb::operation::delete_item::builders::DeleteItemFluentBuilder {
        self.client.delete_item().table_name(&self.table).set_key(Some(keys::key(key)))
    }

    /// One item by key, read strongly consistent: every caller decides on what it reads (a
    /// claim, a marker, an order's state), so it must see the latest committed write.
    async fn get_item(&self, key: (String, impl Into<String>)) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(keys::key(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        Ok(out.item)
    }

    /// [`Self::get_item`], decoded.
    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        key: (String, impl Into<String>),
    ) -> Result<Option<T>, StoreError> {
        self.get_item(key).await?.map(|i| serde_dynamo::from_item(i).map_err(decode_error)).transpose()
    }

    /// Items by key with `BatchGetItem` (100 keys a call), in no particular order; missing keys are
    /// left out. Keys DynamoDB leaves unprocessed (throttling) are asked again, a bounded number
    /// of times.
    async fn batch_get(&self, keys: Vec<Item>, consistent: bool) -> Result<Vec<Item>, StoreError> {
        self.batch_get_projected(keys, consistent, None).await
    }

    /// [`Self::batch_get`] of only the attributes in `projection`, when given.
    async fn batch_get_projected(
        &self,
        keys: Vec<Item>,
        consistent: bool,
        projection: Option<&str>,
    ) -> Result<Vec<Item>, StoreError> {
        use aws_sdk_dynamodb::types::KeysAndAttributes;
        let mut items = Vec::new();
        for chunk in keys.chunks(100) {
            let request = KeysAndAttributes::builder()
                .set_keys(Some(chunk.to_vec()))
                .consistent_read(consistent)
                .set_projection_expression(projection.map(str::to_owned))
                .build()
                .map_err(|e| StoreError::Other(e.to_string()))?;
            let mut pending = Some(HashMap::from([(self.table.clone(), request)]));
            for _ in 0..5 {
                let Some(request_items) = pending.take().filter(|m| !m.is_empty()) else { break };
                let out = self
                    .client
                    .batch_get_item()
                    .set_request_items(Some(request_items))
                    .send()
                    .await
                    .map_err(store_error)?;
                items.extend(out.responses.unwrap_or_default().remove(&self.table).unwrap_or_default());
                pending = out.unprocessed_keys;
            }
            if pending.is_some_and(|m| !m.is_empty()) {
                return Err(StoreError::Unavailable("batch read left keys unprocessed".into()));
            }
        }
        Ok(items)
    }

    /// The client from the environment Lambda provides (see [`crate::aws`]).
    pub fn from_env(config: &crate::config::StoreConfig, aws: &crate::aws::AwsEnv) -> Self {
        Self::new(aws.dynamodb(), &config.table_name)
    }
}

/// Error codes that mean "try again later" rather than "this request is wrong".
const TRANSIENT: &[&str] = &[
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionInProgressException",
];

/// Maps an SDK failure to the store's error. The SDK's own retries have already run.
pub(crate) fn store_error<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => StoreError::Unavailable(format!("{err:?}")),
        SdkError::ServiceError(service) => {
            let e = service.err();
            let code = e.code().unwrap_or("Unknown");
            let msg = format!("{code}: {}", e.message().unwrap_or_default());
            if TRANSIENT.contains(&code) { StoreError::Unavailable(msg) } else { StoreError::Other(msg) }
        }
        _ => StoreError::Other(format!("{err:?}")),
    }
}

/// The outcome of a conditional write: `true` when it applied, `false` when DynamoDB refused it
/// because its condition did not hold (what that means is the caller's to say); other failures
/// as [`store_error`].
pub(crate) fn applied<T, E, R>(result: Result<T, SdkError<E, R>>) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error().and_then(ProvideErrorMetadata::code) == Some("ConditionalCheckFailedException") =>
        {
            Ok(false)
        }
        Err(e) => Err(store_error(e)),
    }
}

pub(crate) fn decode_error(e: serde_dynamo::Error) -> StoreError {
    StoreError::Other(format!("malformed item: {e}"))
}
