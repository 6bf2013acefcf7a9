//! `POST /payments`: charge an order, or confirm a client-side payment with the gateway. See `shop::api::payments`.

use shop::api::payments::Payments;
use shop::cold_start::ColdStart;
use shop::payments::gateway::GatewayClient;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let cold = ColdStart::init().await?;
    let gateway = GatewayClient::from_env()?;
    shop::http::serve(Payments { tokens: cold.tokens()?, store: cold.store, gateway }).await
}
