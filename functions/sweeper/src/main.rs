//! Scheduled every minute: expires overdue unpaid orders, republishes pending events. See `shop::api::sweeper`.

use shop::api::sweeper::Sweeper;
use shop::cold_start::ColdStart;
use shop::events::relay::republish_after_from_env;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let cold = ColdStart::init().await?;
    let (events, republish_after) = (cold.publisher()?, republish_after_from_env()?);
    shop::schedule::serve(Sweeper { store: cold.store, events, republish_after }).await
}
