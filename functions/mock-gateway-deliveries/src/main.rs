//! Scheduled: redeliver the mock gateway's due and failed webhooks. See `shop::api::mock_gateway_deliveries`.

use shop::api::mock_gateway_deliveries::Deliveries;
use shop::cold_start::ColdStart;
use shop::mock_gateway::delivery::Deliverer;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let cold = ColdStart::init().await?;
    let deliverer = Deliverer::new(shop::config::webhook_secrets_from_env()?)?;
    shop::schedule::serve(Deliveries { store: cold.store, deliverer }).await
}
