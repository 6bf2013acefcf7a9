//! The signed-in user's cart: see `shop::api::cart`.

use shop::api::cart::Cart;
use shop::cold_start::ColdStart;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let cold = ColdStart::init().await?;
    shop::http::serve(Cart { tokens: cold.tokens()?, store: cold.store }).await
}
