//! Scheduled: redeliver the mock gateway's due and failed webhooks. See `shop::api::mock_gateway_deliveries`.

use shop::api::mock_gateway_deliveries::Deliveries;
use shop::cold_start::ColdStart;
use shop::mock_gateway::delivery::Deliverer;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let cold = ColdStart::init().await?;
    let deliverer = Deliverer::new(vec![shop::config::secret_from_env("MOCK_SIGNING_SECRET")?])?;
    shop::schedule::serve(Deliveries { store: cold.store, deliverer }).await
}
