//! The mock payment gateway (dev stages and local only). See `shop::api::mock_gateway`.

use shop::api::mock_gateway::MockGateway;
use shop::cold_start::ColdStart;
use shop::config::{mock_delays_from_env, url_from_env, webhook_secrets_from_env};
use shop::mock_gateway::delivery::Deliverer;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let cold = ColdStart::init().await?;
    let deliverer = Deliverer::new(webhook_secrets_from_env()?)?;
    let webhook_url = url_from_env("WEBHOOK_URL")?;
    shop::http::serve(MockGateway { store: cold.store, deliverer, webhook_url, delays: mock_delays_from_env()? }).await
}
