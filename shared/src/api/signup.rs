//! `POST /auth/signup`: create an account.
//!
//! Body `{"email", "password", "name"?}` → `201 {"id", "email", "name", "role", "created_at"}`.
//! The password is hashed with argon2id before anything is stored; the profile, the e-mail claim
//! and the `user.signed_up` event (which becomes the welcome e-mail, stamped with the request's
//! ids: see `crate::trace`) are written in one transaction.

use crate::auth::password::{self, PasswordError};
use crate::domain::user::{Email, Role, User, check_password_policy, parse_display_name};
use crate::error::ApiError;
use crate::events::event::{Event, Payload, UserSignedUp};
use crate::http::json_body;
use crate::store::{CreateUserError, StoreError, UserStore};
use http::StatusCode;
use lambda_http::{Body, Request, Response};
use secrecy::SecretString;
use serde::Deserialize;
use uuid::Uuid;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignupRequest {
    email: String,
    password: SecretString,
    #[serde(default, deserialize_with = "crate::serde_ext::absent_or_value")]
    name: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SignupError {
    #[error("invalid input")]
    Invalid(Vec<(&'static str, String)>),
    #[error("email already registered")]
    EmailTaken,
    #[error(transparent)]
    Hashing(#[from] PasswordError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<SignupError> for ApiError {
    fn from(e: SignupError) -> Self {
        match e {
            SignupError::Invalid(fields) => ApiError::invalid_fields(&fields),
            SignupError::EmailTaken => ApiError::conflict("email_taken", "an account with this email already exists"),
            SignupError::Hashing(cause) => ApiError::internal(&cause),
            SignupError::Store(cause) => cause.into(),
        }
    }
}

pub struct Signup<S> {
    pub store: S,
}

impl<S: UserStore + 'static> crate::http::HttpHandler for Signup<S> {
    async fn handle(&self, req: Request) -> Result<Response<Body>, ApiError> {
        let body: SignupRequest = json_body(&req)?;
        let user = self.signup(body, &crate::http::trace(&req)).await?;
        Ok(crate::http::json(StatusCode::CREATED, &user))
    }
}

impl<S: UserStore> Signup<S> {
    async fn signup(&self, body: SignupRequest, trace: &crate::trace::Trace) -> Result<User, SignupError> {
        use secrecy::ExposeSecret;
        let mut invalid = Vec::new();
        let email = Email::parse(&body.email).map_err(|e| invalid.push(("email", e))).ok();
        if let Err(e) = check_password_policy(body.password.expose_secret()) {
            invalid.push(("password", e));
        }
        let name = parse_display_name(body.name.as_deref()).map_err(|e| invalid.push(("name", e))).ok();
        let (Some(email), Some(name), true) = (email, name, invalid.is_empty()) else {
            return Err(SignupError::Invalid(invalid));
        };

        let hash = password::hash(body.password).await?;
        let now = time::OffsetDateTime::now_utc();
        // Never an admin: roles are given out of band (`shop-admin`), not by an address nobody proved.
        let role = Role::Customer;
        let user = User { id: Uuid::now_v7(), email, name, role, created_at: now };
        let event = Event::new(now, Payload::UserSignedUp(UserSignedUp::from(&user))).with_trace(trace);
        match self.store.create_user(&user, &hash, &event).await {
            Ok(()) => {
                tracing::info!(user_id = %user.id, ?role, "user signed up");
                Ok(user)
            }
            Err(CreateUserError::EmailTaken) => Err(SignupError::EmailTaken),
            Err(CreateUserError::Store(e)) => Err(e.into()),
        }
    }
}
