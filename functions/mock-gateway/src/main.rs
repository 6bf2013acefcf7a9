//! Development stages only: the simulated payment provider. See `shop::api::mock_gateway`.

use shop::api::mock_gateway::MockGateway;
use shop::cold_start::ColdStart;
use shop::config::{flag_from_env, mock_delays_from_env, secret_from_env, url_from_env};
use shop::mock_gateway::delivery::Deliverer;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let cold = ColdStart::init().await?;
    let deliverer = Deliverer::new(vec![secret_from_env("MOCK_SIGNING_SECRET")?])?;
    shop::http::serve(MockGateway {
        store: cold.store,
        deliverer,
        webhook_url: url_from_env("WEBHOOK_URL")?,
        delays: mock_delays_from_env()?,
        api_key: secret_from_env("MOCK_API_KEY")?,
        allow_webhook_url: flag_from_env("MOCK_ALLOW_WEBHOOK_URL")?,
    })
    .await
}
