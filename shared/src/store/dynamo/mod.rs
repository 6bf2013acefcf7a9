//! The DynamoDB adapter: the only module where AWS SDK types appear.
//!
//! One table, keys and access patterns documented in `docs/data-model.md`:
//!
//! | item | pk | sk | gsi1pk / gsi1sk |
//! |---|---|---|---|
//! | user profile | `USER#<id>` | `PROFILE` | |
//! | e-mail claim + credentials | `EMAIL#<lower-case email>` | `CREDENTIALS` | |
//! | product | `PRODUCT#<id>` | `PRODUCT` | `CATALOG` / `<id>` (absent once deleted) |
//! | outbox event | `EVENT#<id>` | `EVENT` | `OUTBOX` / `<occurred_at>#<id>` (absent once published) |
//!
//! The client is built once at cold start; `AWS_ENDPOINT_URL_DYNAMODB` points it at DynamoDB
//! Local or LocalStack without code changes.

mod keys;
mod outbox;
mod products;
pub mod stock;
mod transact;
mod users;

use super::StoreError;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    /// Loads AWS config from the environment (region, credentials, endpoint variables).
    pub async fn from_env(config: &crate::config::StoreConfig) -> Self {
        let sdk = aws_config::load_from_env().await;
        Self::new(Client::new(&sdk), &config.table_name)
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

pub(crate) fn decode_error(e: serde_dynamo::Error) -> StoreError {
    StoreError::Other(format!("malformed item: {e}"))
}
