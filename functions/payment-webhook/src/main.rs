//! `POST /webhooks/payment`: verify the gateway's signature, settle the order once. See `shop::api::payment_webhook`.

use shop::api::payment_webhook::PaymentWebhook;
use shop::cold_start::ColdStart;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let cold = ColdStart::init().await?;
    shop::http::serve(PaymentWebhook { secrets: shop::config::webhook_secrets_from_env()?, store: cold.store }).await
}
