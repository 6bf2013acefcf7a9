//! Scheduled every minute: expires overdue unpaid orders. See `shop::api::sweeper`.

use shop::api::sweeper::Sweeper;
use shop::cold_start::ColdStart;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let cold = ColdStart::init().await?;
    shop::schedule::serve(Sweeper { store: cold.store }).await
}
