//! MSK-triggered: domain events from Kafka become e-mails sent with SESv2. See `shop::api::notifier`.

use shop::api::notifier::{Notifier, NotifierConfig};
use shop::cold_start::ColdStart;
use shop::email::pace::Pace;
use shop::email::{sender::SesSender, templates::Templates};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let cold = ColdStart::init().await?;
    let config = NotifierConfig::from_env()?;
    let sender = SesSender::from_env(config.sender_email, &cold.aws);
    // The account's sending rate, read once here (unless NOTIFIER_MAX_SEND_RATE sets it).
    let pace = Pace::new(config.max_send_rate);
    pace.load(&sender).await;
    let notifier = Notifier {
        markers: cold.store,
        sender,
        templates: Templates::with_storefront(config.storefront_url.as_deref()),
        concurrency: config.concurrency,
        pace,
    };
    shop::api::notifier::serve(notifier).await
}
