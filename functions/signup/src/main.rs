//! `POST /auth/signup`: see `shop::api::signup`.

use shop::api::signup::Signup;
use shop::cold_start::ColdStart;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let cold = ColdStart::init().await?;
    shop::http::serve(Signup { store: cold.store }).await
}
