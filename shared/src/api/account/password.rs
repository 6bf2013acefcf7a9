//! `POST /me/password {"current_password", "new_password"}` and `POST /me/sign-out-everywhere`.
//!
//! Both end every session of the account (`auth::session`: the generation moves on). Changing the
//! password answers with a fresh token for the caller, in the new generation, so the device that
//! changed it stays signed in while every other one is signed out. A wrong current password is a
//! `403 wrong_password` and counts against the account's log-in attempts (`api::login`): a stolen
//! token cannot be used to guess the password faster than log-in allows.

use super::{Account, AccountPorts, wrong_password};
use crate::auth::jwt::TOKEN_TTL_SECS;
use crate::auth::password;
use crate::auth::session::{check, ended};
use crate::domain::user::check_password_policy;
use crate::error::ApiError;
use crate::http::{json, json_body, no_content};
use crate::store::{Attempt, Credentials, LoginAttempts};
use http::StatusCode;
use lambda_http::{Body, Request, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangePassword {
    current_password: SecretString,
    new_password: SecretString,
}

/// Checks `given` is the account's password, counted like a log-in attempt at its address.
pub(super) async fn verify_password<S: LoginAttempts>(
    store: &S,
    credentials: &Credentials,
    given: SecretString,
) -> Result<(), ApiError> {
    use crate::api::login::{ATTEMPTS_PER_WINDOW, WINDOW, fingerprint};
    let account = fingerprint(credentials.email.to_lowercase());
    let now = time::OffsetDateTime::now_utc();
    if let Attempt::Throttled { retry_after_secs } = store.attempt(&account, ATTEMPTS_PER_WINDOW, WINDOW, now).await? {
        return Err(crate::api::login::LoginError::Throttled(retry_after_secs).into());
    }
    if !password::verify(given, Some(credentials.password_hash.clone())).await.map_err(|e| ApiError::internal(&e))? {
        return Err(wrong_password());
    }
    Ok(())
}

pub async fn change<S: AccountPorts>(account: &Account<S>, req: &Request) -> Result<Response<Body>, ApiError> {
    let (me, state) = check(req, &account.tokens, &account.store).await?;
    let body: ChangePassword = json_body(req)?;
    check_password_policy(body.new_password.expose_secret())
        .map_err(|e| ApiError::invalid_fields(&[("new_password", e)]))?;
    let store = &account.store;
    let credentials = store.password_of(me.user_id).await?.ok_or_else(ended)?;
    verify_password(store, &credentials, body.current_password).await?;
    let hash = password::hash(body.new_password).await.map_err(|e| ApiError::internal(&e))?;
    // Conditional on the generation checked above: a sign-out racing this one wins, and this
    // request's token is then as ended as the others.
    if !store.change_password(&credentials, &hash, state.generation).await? {
        return Err(ended());
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let token = account
        .tokens
        .issue(me.user_id, state.role, &credentials.email, state.generation + 1, now)
        .map_err(|e| ApiError::internal(&e))?;
    tracing::info!(user_id = %me.user_id, "password changed; every other session signed out");
    Ok(json(StatusCode::OK, &json!({ "token": token, "token_type": "Bearer", "expires_in": TOKEN_TTL_SECS })))
}

pub async fn sign_out_everywhere<S: AccountPorts>(
    account: &Account<S>,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let (me, _) = check(req, &account.tokens, &account.store).await?;
    if !account.store.sign_out_everywhere(me.user_id).await? {
        return Err(ended());
    }
    tracing::info!(user_id = %me.user_id, "signed out everywhere");
    Ok(no_content())
}
