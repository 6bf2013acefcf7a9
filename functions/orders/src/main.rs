//! A user's orders and cancelling them: see `shop::api::orders`.

use shop::api::orders::Orders;
use shop::cold_start::ColdStart;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let cold = ColdStart::init().await?;
    shop::http::serve(Orders { tokens: cold.tokens()?, store: cold.store }).await
}
