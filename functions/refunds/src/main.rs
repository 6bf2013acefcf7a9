//! Scheduled every minute: pays back every requested refund through the gateway, settling each
//! record once. See `shop::api::refunds`.

use shop::api::refunds::RefundWorker;
use shop::cold_start::ColdStart;
use shop::payments::gateway::GatewayClient;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let cold = ColdStart::init().await?;
    shop::schedule::serve(RefundWorker { store: cold.store, gateway: GatewayClient::from_env()? }).await
}
