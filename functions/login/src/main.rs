//! `POST /auth/login`: see `shop::api::login`.

use shop::api::login::Login;
use shop::cold_start::ColdStart;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let cold = ColdStart::init().await?;
    shop::http::serve(Login { tokens: cold.tokens()?, store: cold.store }).await
}
