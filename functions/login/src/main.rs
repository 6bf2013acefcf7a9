//! `POST /auth/login`. Cold start builds the DynamoDB client and token keys once; see `shop::api::login`.

use shop::api::login::Login;
use shop::auth::jwt::Tokens;
use shop::config::{AuthConfig, StoreConfig};
use shop::store::dynamo::DynamoStore;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shop::telemetry::init();
    let auth = AuthConfig::from_env()?;
    let store = DynamoStore::from_env(&StoreConfig::from_env()?).await;
    let app = Arc::new(Login { store, tokens: Tokens::new(&auth.jwt_secret, &auth.issuer, &auth.audience) });
    shop::http::serve(move |req| {
        let app = app.clone();
        async move { app.handle(req).await }
    })
    .await
}
