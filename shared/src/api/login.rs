//! `POST /auth/login`: exchange e-mail and password for a one-hour access token.
//!
//! Body `{"email", "password"}` → `200 {"token", "token_type": "Bearer", "expires_in": 3600}`.
//! A wrong password and an unknown e-mail get the same 401 and take the same time (an unknown
//! address is checked against a dummy hash), so login does not tell who has an account.

use crate::auth::jwt::{TOKEN_TTL_SECS, Tokens};
use crate::auth::password::{self, PasswordError};
use crate::domain::user::Email;
use crate::error::ApiError;
use crate::http::{json, json_body};
use crate::store::{StoreError, UserStore};
use http::StatusCode;
use lambda_http::{Body, Request, Response};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

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

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("invalid credentials")]
    InvalidCredentials,
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

impl<S: UserStore + 'static> crate::http::HttpHandler for Login<S> {
    async fn handle(&self, req: Request) -> Result<Response<Body>, ApiError> {
        let body: LoginRequest = json_body(&req)?;
        Ok(json(StatusCode::OK, &self.login(body).await?))
    }
}

impl<S: UserStore> Login<S> {
    async fn login(&self, body: LoginRequest) -> Result<LoginResponse, LoginError> {
        // A malformed address cannot have an account: same answer as a wrong password.
        let credentials = match Email::parse(&body.email) {
            Ok(email) => self.store.credentials(&email.normalized()).await?,
            Err(_) => None,
        };
        let hash = credentials.as_ref().map(|c| c.password_hash.clone());
        if !password::verify(body.password, hash).await? {
            return Err(LoginError::InvalidCredentials);
        }
        let c = credentials.ok_or(LoginError::InvalidCredentials)?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let token = self.tokens.issue(c.user_id, c.role, &c.email, now)?;
        tracing::info!(user_id = %c.user_id, "logged in");
        Ok(LoginResponse { token, token_type: "Bearer", expires_in: TOKEN_TTL_SECS })
    }
}
