//! What every function does once, at cold start, before its first request: JSON logs, typed
//! config from the environment, and the DynamoDB client (connection pool, credentials) that all
//! invocations of this instance then reuse — and, for functions that write events, the Kafka
//! producer.

use crate::auth::jwt::Tokens;
use crate::config::{AuthConfig, ConfigError, StoreConfig};
use crate::events::publisher::Publisher;
use crate::store::dynamo::DynamoStore;

pub struct ColdStart {
    pub store: DynamoStore,
}

impl ColdStart {
    pub async fn init() -> Result<Self, ConfigError> {
        crate::telemetry::init();
        let config = StoreConfig::from_env()?;
        Ok(Self { store: DynamoStore::from_env(&config).await })
    }

    /// Token issuing and checking, for functions given `JWT_SECRET`.
    pub fn tokens(&self) -> Result<Tokens, ConfigError> {
        let auth = AuthConfig::from_env()?;
        Ok(Tokens::new(&auth.jwt_secret, &auth.issuer, &auth.audience))
    }

    /// The Kafka producer, for functions that publish the events they write (`KAFKA_*`; publishing
    /// is off when `KAFKA_BOOTSTRAP_SERVERS` is unset). One per instance, reused by every invocation.
    pub fn publisher(&self) -> Result<Publisher, ConfigError> {
        Publisher::from_env()
    }
}
