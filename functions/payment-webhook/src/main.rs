//! `POST /webhooks/payment`: verify the gateway's signature, confirm a failure with the gateway,
//! settle the order once. See `shop::api::payment_webhook`.

use shop::api::payment_webhook::PaymentWebhook;
use shop::cold_start::ColdStart;
use shop::payments::gateway::GatewayClient;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let cold = ColdStart::init().await?;
    let (secrets, gateway) = (shop::config::webhook_secrets_from_env()?, GatewayClient::from_env()?);
    shop::http::serve(PaymentWebhook { secrets, gateway, store: cold.store }).await
}
