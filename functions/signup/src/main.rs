//! `POST /auth/signup`. Cold start builds the DynamoDB client once; see `shop::api::signup`.

use shop::api::signup::Signup;
use shop::config::{StoreConfig, admin_emails_from_env};
use shop::store::dynamo::DynamoStore;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shop::telemetry::init();
    let store = DynamoStore::from_env(&StoreConfig::from_env()?).await;
    let app = Arc::new(Signup { store, admin_emails: admin_emails_from_env() });
    shop::http::serve(move |req| {
        let app = app.clone();
        async move { app.handle(req).await }
    })
    .await
}
