//! Password reset, change password, sign out everywhere, close and export the account: see
//! `shop::api::account`.

use shop::api::account::Account;
use shop::cold_start::ColdStart;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let cold = ColdStart::init().await?;
    shop::http::serve(Account { tokens: cold.tokens()?, store: cold.store }).await
}
