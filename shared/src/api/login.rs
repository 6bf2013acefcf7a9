//! `POST /auth/login`: exchange e-mail and password for a one-hour access token.
//!
//! Body `{"email", "password"}` → `200 {"token", "token_type": "Bearer", "expires_in": 3600}`.
//! A wrong password and an unknown e-mail get the same 401 and take the same time (an unknown
//! address is checked against a dummy hash), so login does not tell who has an account.
//!
//! **Guessing is slowed down per account**: every attempt at an e-mail address counts (whether an
//! account has it or not, so the limit itself tells nothing), and past [`ATTEMPTS_PER_WINDOW`] in
//! a [`WINDOW`] the answer is `429 too_many_attempts` with `Retry-After`, before any password is
//! checked. A successful log-in starts the count again. The count is one conditional write,
//! made while the credentials are read, so it costs no extra wait (see
//! `store::dynamo::login_attempts`). The flip side, that someone can lock an address out for a
//! window by guessing at it, is the usual price; the window is short.

use crate::auth::jwt::{TOKEN_TTL_SECS, Tokens};
use crate::auth::password::{self, PasswordError};
use crate::domain::user::Email;
use crate::error::ApiError;
use crate::http::{json, json_body};
use crate::store::{Attempt, LoginAttempts, SessionStore, StoreError, UserStore};
use http::StatusCode;
use lambda_http::{Body, Request, Response};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    email: String,
    password: SecretString,
}

#[derive(Serialize)]
struct LoginResponse {
    token: String,
    token_type: &'static str,
    expires_in: i64,
}

/// Attempts at one account per window, before it is throttled.
pub const ATTEMPTS_PER_WINDOW: u32 = 10;
/// The window opens with the first attempt after the last one closed.
pub const WINDOW: time::Duration = time::Duration::minutes(15);

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("too many attempts; retry in {0} s")]
    Throttled(u64),
    #[error(transparent)]
    Hashing(#[from] PasswordError),
    #[error("token signing failed: {0}")]
    Signing(#[from] jsonwebtoken::errors::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<LoginError> for ApiError {
    fn from(e: LoginError) -> Self {
        match e {
            LoginError::InvalidCredentials => {
                ApiError::new(StatusCode::UNAUTHORIZED, "invalid_credentials", "email or password is incorrect")
            }
            LoginError::Throttled(secs) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                format!("too many log-in attempts for this e-mail; try again in {secs} seconds"),
            )
            .with_retry_after(secs),
            LoginError::Hashing(cause) => ApiError::internal(&cause),
            LoginError::Signing(cause) => ApiError::internal(&cause),
            LoginError::Store(cause) => cause.into(),
        }
    }
}

pub struct Login<S> {
    pub store: S,
    pub tokens: Tokens,
}

impl<S: UserStore + LoginAttempts + SessionStore + 'static> crate::http::HttpHandler for Login<S> {
    fn count(&self, _status: StatusCode, code: Option<&'static str>) {
        if code == Some("too_many_attempts") {
            crate::metrics::count(crate::metrics::names::LOGINS_THROTTLED, 1);
        }
    }

    async fn handle(&self, req: Request) -> Result<Response<Body>, ApiError> {
        let body: LoginRequest = json_body(&req)?;
        Ok(json(StatusCode::OK, &self.login(body).await?))
    }
}

impl<S: UserStore + LoginAttempts + SessionStore> Login<S> {
    async fn login(&self, body: LoginRequest) -> Result<LoginResponse, LoginError> {
        let email = Email::parse(&body.email).ok();
        let account =
            fingerprint(email.as_ref().map(Email::normalized).unwrap_or_else(|| body.email.trim().to_lowercase()));
        let now = time::OffsetDateTime::now_utc();
        let counted = self.store.attempt(&account, ATTEMPTS_PER_WINDOW, WINDOW, now);
        // A malformed address cannot have an account: same answer as a wrong password.
        let read = async {
            match &email {
                Some(email) => self.store.credentials(email).await,
                None => Ok(None),
            }
        };
        let (counted, credentials) = tokio::join!(counted, read);
        if let Attempt::Throttled { retry_after_secs } = counted? {
            return Err(LoginError::Throttled(retry_after_secs));
        }
        let credentials = credentials?;
        let hash = credentials.as_ref().map(|c| c.password_hash.clone());
        // The session generation the token is issued in (`auth::session`), read while the
        // password is checked: it costs no wait.
        let session = async {
            match &credentials {
                Some(c) => self.store.session(c.user_id).await,
                None => Ok(None),
            }
        };
        let (verified, session) = tokio::join!(password::verify(body.password, hash), session);
        if !verified? {
            return Err(LoginError::InvalidCredentials);
        }
        let c = credentials.ok_or(LoginError::InvalidCredentials)?;
        let generation = match session? {
            Some(s) if !s.closed => s.generation,
            // Closed between the two reads: its credentials are gone now.
            _ => return Err(LoginError::InvalidCredentials),
        };
        if let Err(e) = self.store.reset(&account).await {
            // The count runs out with its window anyway.
            tracing::warn!(error = %e, "log-in attempts not reset");
        }
        let token = self.tokens.issue(c.user_id, c.role, &c.email, generation, now.unix_timestamp())?;
        tracing::info!(user_id = %c.user_id, "logged in");
        Ok(LoginResponse { token, token_type: "Bearer", expires_in: TOKEN_TTL_SECS })
    }
}

/// The key of an account's attempts: a fingerprint of the address asked for, so the table holds
/// no address anyone typed (nor an unbounded key).
pub fn fingerprint(address: String) -> String {
    format!("{:x}", Sha256::digest(address.as_bytes()))
}
