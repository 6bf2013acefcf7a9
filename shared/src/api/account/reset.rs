//! Forgot password: `POST /auth/password-reset {"email"}` e-mails a single-use link,
//! `POST /auth/password-reset/confirm {"token", "password"}` sets the new password with it.
//!
//! Following the OWASP Forgot Password Cheat Sheet:
//! - **The same answer whether or not the address has an account**: status, body, and time. The
//!   request is written without reading the account first — one transaction that stores the
//!   token's hash on the credentials item *if it exists*, with the `user.password_reset_requested`
//!   event — so both cases make the same calls (a transaction that commits, or one whose condition
//!   fails), and the answer is the same `202` either way.
//! - **Throttled per address and per client** before anything is written: 5 requests per address
//!   and 50 per client IP in 15 minutes (`429 too_many_attempts`, `Retry-After`), counted like
//!   log-in attempts (`store::dynamo::login_attempts`). Confirming counts against the client too.
//! - **The token**: 256 random bits (`auth::reset_token`), stored only as its SHA-256, valid
//!   [`TOKEN_TTL`], single use, and only the newest one of an address works. Unknown, used,
//!   expired and superseded tokens, and those of a closed account, all get the same
//!   `400 invalid_reset_token`. The token is in the e-mail and its event only, never in a log line.
//! - **Setting the password signs every session out** (the session generation moves in the same
//!   transaction) and does not sign in: the client logs in with the new password.
//! - The e-mail goes through the outbox → Kafka → notifier path like every other; the notifier
//!   sends it only while its token is still the address's current one.

use super::{Account, AccountPorts, client_ip};
use crate::auth::password;
use crate::auth::reset_token::ResetToken;
use crate::domain::user::{Email, check_password_policy};
use crate::error::ApiError;
use crate::events::event::{Event, PasswordResetRequested, Payload};
use crate::http::{json, json_body};
use crate::store::Attempt;
use http::StatusCode;
use lambda_http::{Body, Request, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// How long a reset link works.
pub const TOKEN_TTL: time::Duration = time::Duration::minutes(30);
/// Requests per address, and per client, in a [`WINDOW`].
pub const PER_ADDRESS: u32 = 5;
pub const PER_CLIENT: u32 = 50;
pub const WINDOW: time::Duration = time::Duration::minutes(15);

/// The one answer to every well-formed, unthrottled request.
pub const ACCEPTED: &str = "If an account uses this address, an e-mail with a link to choose a new password is on its way. The link works once, for 30 minutes.";
const DONE: &str = "Your password is changed and every session is signed out. Sign in with the new password.";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetRequest {
    email: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetConfirm {
    token: SecretString,
    password: SecretString,
}

fn invalid_token() -> ApiError {
    ApiError::bad_request("invalid_reset_token", "this reset link is invalid, used or expired; ask for a new one")
}

fn throttled(retry_after_secs: u64) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
        format!("too many password-reset requests; try again in {retry_after_secs} seconds"),
    )
    .with_retry_after(retry_after_secs)
}

/// A throttle's key: a fingerprint, so the table holds no address or IP anyone sent.
fn key(kind: &str, value: &str) -> String {
    format!("{kind}:{:x}", Sha256::digest(value.as_bytes()))
}

/// Counts one request against the client's budget.
async fn count_client<S: AccountPorts>(store: &S, req: &Request, now: time::OffsetDateTime) -> Result<(), ApiError> {
    match store.attempt(&key("reset-client", &client_ip(req)), PER_CLIENT, WINDOW, now).await? {
        Attempt::Allowed => Ok(()),
        Attempt::Throttled { retry_after_secs } => Err(throttled(retry_after_secs)),
    }
}

pub async fn request<S: AccountPorts>(account: &Account<S>, req: &Request) -> Result<Response<Body>, ApiError> {
    let body: ResetRequest = json_body(req)?;
    let email = Email::parse(&body.email).map_err(|e| ApiError::invalid_fields(&[("email", e)]))?;
    let now = time::OffsetDateTime::now_utc();
    let store = &account.store;
    let address_key = key("reset-address", &email.normalized());
    let (client, address) =
        tokio::join!(count_client(store, req, now), store.attempt(&address_key, PER_ADDRESS, WINDOW, now));
    client?;
    if let Attempt::Throttled { retry_after_secs } = address? {
        return Err(throttled(retry_after_secs));
    }
    let token = ResetToken::generate();
    let expires_at = now + TOKEN_TTL;
    let hash = token.hash();
    let event = Event::new(
        now,
        Payload::PasswordResetRequested(PasswordResetRequested {
            reset_id: Uuid::now_v7(),
            email: email.as_str().to_owned(),
            token,
            expires_at,
        }),
    )
    .with_trace(&crate::http::trace(req));
    // Whether an account has the address is known here, and told to no one but the log's reader.
    let sent = store.request_reset(&email, &hash, expires_at, &event).await?;
    tracing::info!(account_exists = sent, "password reset requested");
    Ok(json(StatusCode::ACCEPTED, &json!({ "message": ACCEPTED })))
}

pub async fn confirm<S: AccountPorts>(account: &Account<S>, req: &Request) -> Result<Response<Body>, ApiError> {
    let body: ResetConfirm = json_body(req)?;
    let now = time::OffsetDateTime::now_utc();
    let store = &account.store;
    count_client(store, req, now).await?;
    check_password_policy(body.password.expose_secret()).map_err(|e| ApiError::invalid_fields(&[("password", e)]))?;
    let token = ResetToken::parse(body.token.expose_secret()).ok_or_else(invalid_token)?;
    let hash = token.hash();
    let target = store.reset_target(&hash, now).await?.ok_or_else(invalid_token)?;
    let password_hash = password::hash(body.password).await.map_err(|e| ApiError::internal(&e))?;
    if !store.complete_reset(&target, &hash, &password_hash, now).await? {
        return Err(invalid_token());
    }
    // A fresh start for log-in attempts at the address, like a successful log-in.
    if let Err(e) = store.reset(&crate::api::login::fingerprint(target.email.clone())).await {
        tracing::warn!(error = %e, "log-in attempts not reset");
    }
    tracing::info!(user_id = %target.user_id, "password reset; every session signed out");
    Ok(json(StatusCode::OK, &json!({ "message": DONE })))
}
