//! Who is an admin, decided by an operator with AWS credentials of their own: the `shop-admin`
//! command (crate `admin/`) calls these, and nothing reachable over HTTP does.
//!
//! Signing up never makes an admin. Addresses are not verified at sign-up, so a role given to
//! "whoever signs up first with `admin@…`" is a role given to whoever guesses it first. Instead
//! the owner signs up like anyone, then promotes that account from a machine with their own AWS
//! credentials (which can write the table; the HTTP API cannot change roles at all). A demotion
//! takes effect at once: admin routes check the stored role on every write, not only the token's.

use crate::domain::user::{Email, Role};
use crate::store::{Member, RoleStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    BadEmail(String),
    #[error("no account with the e-mail {0}: sign up with it first")]
    NoAccount(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Gives the account with `email` the admin role.
pub async fn promote<S: RoleStore>(store: &S, email: &str) -> Result<Member, AdminError> {
    set_role(store, email, Role::Admin).await
}

/// Takes the admin role away (the account stays, as a customer).
pub async fn demote<S: RoleStore>(store: &S, email: &str) -> Result<Member, AdminError> {
    set_role(store, email, Role::Customer).await
}

async fn set_role<S: RoleStore>(store: &S, email: &str, role: Role) -> Result<Member, AdminError> {
    let email = Email::parse(email).map_err(AdminError::BadEmail)?;
    let member = store.set_role(&email, role).await?.ok_or_else(|| AdminError::NoAccount(email.to_string()))?;
    tracing::info!(user_id = %member.user_id, ?role, "role changed by an operator");
    Ok(member)
}

/// Every admin.
pub async fn list<S: RoleStore>(store: &S) -> Result<Vec<Member>, AdminError> {
    Ok(store.admins().await?)
}
