//! `POST /orders`, which reserves stock: see `shop::api::place_order` and `shop::store::dynamo::reserve`.

use shop::api::place_order::PlaceOrder;
use shop::cold_start::ColdStart;
use shop::config::reservation_window_from_env;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let cold = ColdStart::init().await?;
    let reservation_window = reservation_window_from_env()?;
    shop::http::serve(PlaceOrder { tokens: cold.tokens()?, store: cold.store, reservation_window }).await
}
