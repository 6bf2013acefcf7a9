//! Sessions that can be ended at once: every signed-in request checks its token against the account.
//!
//! An access token is a one-hour JWT (`auth::jwt`), and a JWT alone cannot be taken back: a
//! stolen laptop's token would live its hour whatever the owner did. So a token also carries the
//! account's **session generation** (`gen`), and each signed-in request reads the account's
//! profile — one strongly consistent `GetItem` of a small item — to check that:
//! - the account still exists and is not closed,
//! - its generation is still the token's (signing out everywhere, a password change or reset, and
//!   closing the account move it on: every token issued before is refused from the next request),
//! - and, for admin routes, that its role *now* is admin (a demotion takes effect at once).
//!
//! Why this and not short access tokens with rotating refresh tokens (RFC 9700): a refresh scheme
//! still leaves every access token valid until it expires (minutes), needs a token family store
//! with reuse detection, and changes every client; one read per request revokes at once and keeps
//! the API as it is. Its cost is the read: about half a read unit and one round trip per signed-in
//! request, taken concurrently with the route's own reads where it has any (`docs/sessions.md`
//! has the figures). Place-order does not pay it at all: its transaction carries the same check as
//! a `ConditionCheck` (`store::dynamo::reserve`), which also makes "the account was closed while
//! the order was being placed" impossible rather than unlikely.

use super::jwt::{Principal, Tokens};
use crate::domain::user::Role;
use crate::error::ApiError;
use crate::store::{SessionState, SessionStore};
use lambda_http::Request;
use std::future::Future;

/// Why a well-signed token is refused; one answer for all, the owner can only sign in again.
const ENDED: &str = "this session has ended (signed out, password changed or account closed); sign in again";

/// Whether `state` still honours a token issued in `generation`.
pub fn honours(state: Option<SessionState>, generation: u64) -> bool {
    state.is_some_and(|s| !s.closed && s.generation == generation)
}

/// The signed-in caller and their account as it is now: 401 without a valid token, or when the
/// token's session has ended.
pub async fn check<S: SessionStore>(
    req: &Request,
    tokens: &Tokens,
    store: &S,
) -> Result<(Principal, SessionState), ApiError> {
    let principal = crate::http::authenticate(req, tokens)?;
    let state = store.session(principal.user_id).await?;
    match state {
        Some(s) if honours(state, principal.generation) => Ok((principal, s)),
        _ => Err(ApiError::unauthorized(ENDED)),
    }
}

/// [`check`], for routes that need only the caller.
pub async fn signed_in<S: SessionStore>(req: &Request, tokens: &Tokens, store: &S) -> Result<Principal, ApiError> {
    Ok(check(req, tokens, store).await?.0)
}

/// [`check`], then 403 unless the caller is an admin now (the token says what the role was when
/// it was issued; the account says what it is).
pub async fn require_admin<S: SessionStore>(req: &Request, tokens: &Tokens, store: &S) -> Result<Principal, ApiError> {
    let (principal, state) = check(req, tokens, store).await?;
    if principal.role != Role::Admin || state.role != Role::Admin {
        return Err(ApiError::forbidden("this needs the admin role"));
    }
    Ok(principal)
}

/// A read-only route's answer, read concurrently with the session check and given only if the
/// session holds: the check then costs no extra wait.
pub async fn reading<S, T, F>(
    req: &Request,
    tokens: &Tokens,
    store: &S,
    read: impl FnOnce(Principal) -> F,
) -> Result<T, ApiError>
where
    S: SessionStore,
    F: Future<Output = Result<T, ApiError>>,
{
    let principal = crate::http::authenticate(req, tokens)?;
    let generation = principal.generation;
    let (state, answer) = tokio::join!(store.session(principal.user_id), read(principal));
    if !honours(state?, generation) {
        return Err(ended());
    }
    answer
}

/// The error for a token whose session a store write found ended (place-order's transaction).
pub fn ended() -> ApiError {
    ApiError::unauthorized(ENDED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_open_account_at_the_tokens_generation_honours_it() {
        let open = SessionState { role: Role::Customer, generation: 2, closed: false };
        assert!(honours(Some(open), 2));
        assert!(!honours(Some(open), 1), "an earlier generation was signed out");
        assert!(!honours(Some(open), 3));
        assert!(!honours(Some(SessionState { closed: true, ..open }), 2));
        assert!(!honours(None, 0), "no such account");
    }
}
