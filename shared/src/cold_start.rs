//! What every function does once, at cold start, before its first request: JSON logs, typed
//! config from the environment, and the DynamoDB client (connection pool, credentials) that all
//! invocations of this instance then reuse.

use crate::auth::jwt::Tokens;
use crate::aws::AwsEnv;
use crate::config::{AuthConfig, ConfigError, StoreConfig};
use crate::store::dynamo::DynamoStore;

pub struct ColdStart {
    pub store: DynamoStore,
    /// Region, credentials and the one HTTPS client, for any further AWS client.
    pub aws: AwsEnv,
}

impl ColdStart {
    pub async fn init() -> Result<Self, ConfigError> {
        crate::telemetry::init();
        crate::metrics::init();
        let config = StoreConfig::from_env()?;
        let aws = AwsEnv::from_env();
        Ok(Self { store: DynamoStore::from_env(&config, &aws), aws })
    }

    /// Token issuing and checking, for functions given `JWT_SECRET`.
    pub fn tokens(&self) -> Result<Tokens, ConfigError> {
        let auth = AuthConfig::from_env()?;
        Ok(Tokens::new(&auth.jwt_secret, &auth.issuer, &auth.audience))
    }
}
