//! `POST /auth/signup`: see `shop::api::signup`.

use shop::api::signup::Signup;
use shop::cold_start::ColdStart;
use shop::config::admin_emails_from_env;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let cold = ColdStart::init().await?;
    shop::http::serve(Signup { store: cold.store, admin_emails: admin_emails_from_env() }).await
}
