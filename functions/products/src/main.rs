//! Catalog CRUD: see `shop::api::products`.

use shop::api::products::Products;
use shop::cold_start::ColdStart;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let cold = ColdStart::init().await?;
    shop::http::serve(Products { tokens: cold.tokens()?, store: cold.store }).await
}
