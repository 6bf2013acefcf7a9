//! Scheduled every minute: expires overdue unpaid orders, redrives outbox events the stream path gave up on. See `shop::api::sweeper`.

use shop::api::sweeper::Sweeper;
use shop::cold_start::ColdStart;
use shop::events::redrive::redrive_after_from_env;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let cold = ColdStart::init().await?;
    let redrive_after = redrive_after_from_env()?;
    shop::schedule::serve(Sweeper { store: cold.store, redrive_after }).await
}
