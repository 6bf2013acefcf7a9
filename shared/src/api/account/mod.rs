//! The account after sign-up: `POST /auth/password-reset`, `POST /auth/password-reset/confirm`,
//! `POST /me/password`, `POST /me/sign-out-everywhere`, `DELETE /me`, `GET /me/export`.
//!
//! One function serves them all (they share the account's items and its throttles), one concept
//! per file: [`reset`] (forgot password, by e-mail), [`password`] (change it, sign out everywhere),
//! [`close`] (the shopper deletes the account) and [`export`] (their data as JSON). Every route
//! but the two reset routes needs a signed-in caller whose session is still open
//! (`auth::session`); everything that ends sessions moves the account's session generation.

pub mod close;
pub mod export;
pub mod password;
pub mod reset;

use crate::auth::jwt::Tokens;
use crate::error::ApiError;
use crate::http::route_key;
use crate::store::{AccountStore, CartStore, LoginAttempts, OrderStore, ReleaseStore};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};

/// Everything the account routes use from the store.
pub trait AccountPorts: AccountStore + LoginAttempts + OrderStore + ReleaseStore + CartStore {}
impl<S: AccountStore + LoginAttempts + OrderStore + ReleaseStore + CartStore> AccountPorts for S {}

pub struct Account<S> {
    pub store: S,
    pub tokens: Tokens,
}

impl<S: AccountPorts + 'static> crate::http::HttpHandler for Account<S> {
    fn count(&self, _status: http::StatusCode, code: Option<&'static str>) {
        if code == Some("too_many_attempts") {
            crate::metrics::count(crate::metrics::names::LOGINS_THROTTLED, 1);
        }
    }

    async fn handle(&self, req: Request) -> Result<Response<Body>, ApiError> {
        match route_key(&req).as_str() {
            "POST /auth/password-reset" => reset::request(self, &req).await,
            "POST /auth/password-reset/confirm" => reset::confirm(self, &req).await,
            "POST /me/password" => password::change(self, &req).await,
            "POST /me/sign-out-everywhere" => password::sign_out_everywhere(self, &req).await,
            "DELETE /me" => close::close(self, &req).await,
            "GET /me/export" => export::export(self, &req).await,
            other => Err(ApiError::not_found(&format!("route {other}"))),
        }
    }
}

/// The caller's address as API Gateway saw the connection (`requestContext.http.sourceIp`: not a
/// header a client could write), for per-client throttles.
fn client_ip(req: &Request) -> String {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.http.source_ip.clone().unwrap_or_default(),
        _ => String::new(),
    }
}

/// 403 for a wrong current password (the caller is signed in: it is not a 401).
fn wrong_password() -> ApiError {
    ApiError::new(http::StatusCode::FORBIDDEN, "wrong_password", "the password is not this account's")
}
