//! Ports: what the use cases need from storage, as traits with no AWS types in them.
//!
//! [`dynamo`] is the adapter that implements them over DynamoDB. The use cases in [`crate::api`]
//! are generic over these traits, so the rules they hold do not depend on the SDK.

pub mod dynamo;

use crate::domain::product::{Product, ProductUpdate};
use crate::domain::user::{Role, User};
use crate::events::event::Event;
use std::future::Future;
use uuid::Uuid;

/// A failure of the store itself, not of a business rule.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Throttled, timed out or transiently failing after retries: the caller may try again later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store error: {0}")]
    Other(String),
}

/// What login needs to check a password.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user_id: Uuid,
    pub email: String,
    pub role: Role,
    pub password_hash: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("email already registered")]
    EmailTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub trait UserStore: Send + Sync {
    /// Creates the user, its e-mail uniqueness claim and `event`, atomically.
    fn create_user(
        &self,
        user: &User,
        password_hash: &str,
        event: &Event,
    ) -> impl Future<Output = Result<(), CreateUserError>> + Send;

    /// Credentials by normalised (lower-case) e-mail.
    fn credentials(
        &self,
        email_normalized: &str,
    ) -> impl Future<Output = Result<Option<Credentials>, StoreError>> + Send;
}

/// A page of results and the opaque cursor of the next one.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("the cursor is not one this API returned")]
    BadCursor,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum UpdateProductError {
    #[error("product not found")]
    NotFound,
    /// Removing units would take reserved ones: only `sellable` can be removed.
    #[error("only {sellable} units can be removed")]
    InsufficientStock { sellable: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub trait ProductStore: Send + Sync {
    fn create_product(&self, product: &Product) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn get_product(&self, id: Uuid) -> impl Future<Output = Result<Option<Product>, StoreError>> + Send;
    /// Live (not deleted) products in id order, which is creation order (ids are UUIDv7).
    fn list_products(
        &self,
        limit: u32,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<Page<Product>, ListError>> + Send;
    /// Applies `update` (stock only through the conditional adjust), returns the product after it.
    fn update_product(
        &self,
        id: Uuid,
        update: &ProductUpdate,
        now: time::OffsetDateTime,
    ) -> impl Future<Output = Result<Product, UpdateProductError>> + Send;
    /// Takes the product out of the catalog. Orders that hold units of it can still settle.
    fn delete_product(
        &self,
        id: Uuid,
        now: time::OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
