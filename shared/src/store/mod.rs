//! Ports: what the use cases need from storage, as traits with no AWS types in them.
//!
//! [`dynamo`] is the adapter that implements them over DynamoDB, each trait in the file where its
//! queries live (`OrderStore` in `orders.rs`, `PlacementStore` in `reserve.rs`, `ReleaseStore` in
//! `release.rs`, …). The traits are the size of an operation, so a use case asks for exactly what
//! it uses (place-order: placing, reading an order, the cart; the sweeper: releasing and the
//! outbox), and a fake for unit tests (`fake`) implements only those. The use cases in
//! [`crate::api`] are generic over these traits, so the rules they hold do not depend on the SDK.

pub mod dynamo;
#[cfg(test)]
pub(crate) mod fake;

use crate::domain::money::Money;
use crate::domain::order::{Order, PriceQuote, Release};
use crate::domain::payment::Settlement;
use crate::domain::product::{Product, ProductUpdate};
use crate::domain::refund::Refund;
use crate::domain::user::{Role, User};
use crate::events::event::Event;
use std::collections::{HashMap, HashSet};
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
    /// The hash of the address's current password-reset token, if one was asked for (closing
    /// the account deletes its item with the credentials, in the same transaction).
    pub reset_hash: Option<String>,
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

    /// Credentials of the account with this e-mail (compared normalised).
    fn credentials(
        &self,
        email: &crate::domain::user::Email,
    ) -> impl Future<Output = Result<Option<Credentials>, StoreError>> + Send;
}

/// An account as the operator's `shop-admin` command sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub user_id: Uuid,
    pub email: String,
    pub role: Role,
}

/// Who is an admin: changed only by an operator, read on every admin write.
pub trait RoleStore: Send + Sync {
    /// Gives the account with this (normalised) e-mail `role`; `Ok(None)` if there is none.
    fn set_role(
        &self,
        email: &crate::domain::user::Email,
        role: Role,
    ) -> impl Future<Output = Result<Option<Member>, StoreError>> + Send;
    /// Every admin, by e-mail.
    fn admins(&self) -> impl Future<Output = Result<Vec<Member>, StoreError>> + Send;
}

/// An account as every signed-in request checks it (see `auth::session`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionState {
    /// The role now (a token says what it was when it was issued).
    pub role: Role,
    /// Tokens of an earlier generation are signed out.
    pub generation: u64,
    /// Closed by its owner (`DELETE /me`): nothing of it is valid any more.
    pub closed: bool,
}

/// The account behind a token, read on every signed-in request.
pub trait SessionStore: Send + Sync {
    /// `None`: no such account.
    fn session(&self, user_id: Uuid) -> impl Future<Output = Result<Option<SessionState>, StoreError>> + Send;
}

/// The account a current, unexpired reset token is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetTarget {
    pub user_id: Uuid,
    /// The credentials item's key (the normalised address).
    pub email: String,
}

/// What the account routes change (see `api::account`).
pub trait AccountStore: SessionStore + Send + Sync {
    /// Stores `token_hash` (valid until `expires_at`) on the account with this address, replacing
    /// any earlier token, with `event`, in one transaction. `Ok(false)`: no account has the
    /// address, and nothing was written.
    fn request_reset(
        &self,
        email: &crate::domain::user::Email,
        token_hash: &str,
        expires_at: time::OffsetDateTime,
        event: &Event,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// The account `token_hash` resets, while it is that account's current token and unexpired.
    fn reset_target(
        &self,
        token_hash: &str,
        now: time::OffsetDateTime,
    ) -> impl Future<Output = Result<Option<ResetTarget>, StoreError>> + Send;
    /// Sets the password, spends the token and signs every session out, in one transaction, if the
    /// token is still current and unexpired (`Ok(false)` otherwise: nothing changed).
    fn complete_reset(
        &self,
        target: &ResetTarget,
        token_hash: &str,
        password_hash: &str,
        now: time::OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// The password hash of the open account `user_id` signs in with, and the address it is kept under.
    fn password_of(&self, user_id: Uuid) -> impl Future<Output = Result<Option<Credentials>, StoreError>> + Send;
    /// Sets the password and moves the account to generation `from + 1`, if it is still at `from`
    /// (`Ok(false)`: a concurrent change won; nothing changed).
    fn change_password(
        &self,
        credentials: &Credentials,
        password_hash: &str,
        from: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Moves the open account to its next generation: every token issued before is refused.
    fn sign_out_everywhere(&self, user_id: Uuid) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// The open account's profile.
    fn profile(&self, user_id: Uuid) -> impl Future<Output = Result<Option<User>, StoreError>> + Send;
    /// Closes the customer account: frees its address (the credentials item goes), erases the
    /// profile's personal data and signs every session out, in one transaction. `Ok(false)`: it
    /// was closed already, or is an admin's (nothing changed).
    fn close_account(
        &self,
        credentials: &Credentials,
        now: time::OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Erases the address kept on an order (and on the refund of its charge, if any).
    fn anonymise_order(&self, order: &Order) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Whether e-mails may still go out (the notifier asks once per batch).
pub trait Recipients: Send + Sync {
    /// Which of these accounts are closed (their tombstone says so): their e-mails are dropped.
    fn closed_accounts(&self, users: &[Uuid]) -> impl Future<Output = Result<HashSet<Uuid>, StoreError>> + Send;
    /// Which of these `(normalised address, token hash)` reset requests are still the address's
    /// current, unexpired token: the others' e-mails are moot.
    fn current_resets(
        &self,
        resets: &[(String, String)],
        now: time::OffsetDateTime,
    ) -> impl Future<Output = Result<HashSet<String>, StoreError>> + Send;
}

/// What counting a log-in attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Allowed,
    /// The window's attempts are used up: try again in this many seconds.
    Throttled {
        retry_after_secs: u64,
    },
}

/// Log-in attempts per account (by the e-mail asked for, whether an account has it or not).
pub trait LoginAttempts: Send + Sync {
    /// Counts one attempt at `account` in the window that started with the first of them (and ends
    /// `window` later); refuses the one past `limit`.
    fn attempt(
        &self,
        account: &str,
        limit: u32,
        window: time::Duration,
        now: time::OffsetDateTime,
    ) -> impl Future<Output = Result<Attempt, StoreError>> + Send;
    /// A log-in succeeded: the count starts again.
    fn reset(&self, account: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
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
    /// The update's [`UpdateOnce`] key was used before, for the request `request_hash`: nothing
    /// was written this time.
    #[error("the idempotency key was used before")]
    KeyUsed { request_hash: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What makes a product update happen at most once: the admin's `Idempotency-Key` and a hash of
/// the request, kept (30 days) in a marker the update writes in the same transaction.
#[derive(Debug, Clone)]
pub struct UpdateOnce {
    pub admin: Uuid,
    pub key: crate::domain::idempotency::IdempotencyKey,
    pub request_hash: String,
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
    /// With `once`, the update and its marker are one transaction, and a key used before is
    /// [`UpdateProductError::KeyUsed`].
    fn update_product(
        &self,
        id: Uuid,
        update: &ProductUpdate,
        once: Option<&UpdateOnce>,
        now: time::OffsetDateTime,
    ) -> impl Future<Output = Result<Product, UpdateProductError>> + Send;
    /// Takes the product out of the catalog. Orders that hold units of it can still settle.
    fn delete_product(
        &self,
        id: Uuid,
        now: time::OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// One line of a user's cart, with the name and price seen when it was added: placing an order
/// from the cart prices it with these, and the transaction checks they are still current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartLine {
    pub product_id: Uuid,
    pub quantity: u32,
    pub name: String,
    pub unit_price: Money,
    /// The product's stock buckets when the line was added: where placing the order first looks.
    pub stock_buckets: crate::domain::buckets::StockBuckets,
}

pub trait CartStore: Send + Sync {
    fn cart(&self, user_id: Uuid) -> impl Future<Output = Result<Vec<CartLine>, StoreError>> + Send;
    /// Adds or replaces a line.
    fn put_cart_line(&self, user_id: Uuid, line: &CartLine) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Removes a line; true if it was there.
    fn remove_cart_line(
        &self,
        user_id: Uuid,
        product_id: Uuid,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// Everything `POST /orders` writes, in one transaction.
#[derive(Debug, Clone)]
pub struct Placement {
    pub order: Order,
    pub idempotency_key: crate::domain::idempotency::IdempotencyKey,
    /// Fingerprint of the request body: the same key with another body is refused.
    pub request_hash: String,
    pub event: Event,
    /// Cart lines to delete (placing from the cart), with the quantity the order used.
    pub clear_cart: Vec<(Uuid, u32)>,
    /// The session generation of the buyer's token: the transaction checks the account is still
    /// open at it (`auth::session`).
    pub generation: u64,
}

/// A placement that an earlier request with the same idempotency key already made.
#[derive(Debug, Clone)]
pub struct PriorPlacement {
    pub order_id: Uuid,
    pub request_hash: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    /// The products as a whole are short.
    #[error("out of stock: {0:?}")]
    OutOfStock(Vec<Uuid>),
    /// A stock bucket the order tried was short (or gone), which says nothing of the product's
    /// other buckets: look at all of them before answering.
    #[error("stock buckets short: {0:?}")]
    BucketsShort(Vec<Uuid>),
    #[error("price changed: {0:?}")]
    PriceChanged(Vec<Uuid>),
    #[error("no longer sold: {0:?}")]
    Unavailable(Vec<Uuid>),
    #[error("the cart changed while the order was placed")]
    CartChanged,
    #[error("idempotency key already used")]
    KeyUsed,
    /// The buyer's session ended (signed out everywhere, password changed, account closed).
    #[error("the buyer's session has ended")]
    SessionEnded,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Reading orders (by id, a user's list).
pub trait OrderStore: Send + Sync {
    fn get_order(&self, id: Uuid) -> impl Future<Output = Result<Option<Order>, StoreError>> + Send;
    /// A user's orders, newest first.
    fn list_orders(
        &self,
        user_id: Uuid,
        limit: u32,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<Page<Order>, ListError>> + Send;
}

/// Placing an order: pricing, the reservation transaction, the stock buckets to retry in, and
/// what an earlier request with the same key placed.
pub trait PlacementStore: Send + Sync {
    /// Current name and price of the live products among `ids` (one batch read).
    fn quotes(&self, ids: &[Uuid]) -> impl Future<Output = Result<HashMap<Uuid, PriceQuote>, StoreError>> + Send;
    /// Reserves every line, creates the order, the idempotency marker and the outbox event, and
    /// clears the cart lines, all or nothing.
    fn place_order(&self, placement: &Placement) -> impl Future<Output = Result<(), PlaceError>> + Send;
    /// Every stock bucket of these products, `(bucket, stock)`, read strongly consistent.
    fn bucket_stock(
        &self,
        ids: &[Uuid],
    ) -> impl Future<Output = Result<HashMap<Uuid, Vec<(u16, crate::domain::stock::Stock)>>, StoreError>> + Send;
    fn prior_placement(
        &self,
        user_id: Uuid,
        idempotency_key: &crate::domain::idempotency::IdempotencyKey,
    ) -> impl Future<Output = Result<Option<PriorPlacement>, StoreError>> + Send;
}

/// Orders leaving `PENDING_PAYMENT` unpaid (cancelled, expired), and the queue of overdue ones.
pub trait ReleaseStore: Send + Sync {
    /// Moves `order` out of `PENDING_PAYMENT` and releases its units, with `event`, atomically.
    /// `Ok(false)` when the order had already left `PENDING_PAYMENT` (nothing changed).
    fn release_order(
        &self,
        order: &Order,
        release: Release,
        event: &Event,
        now: time::OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Up to `limit` orders still `PENDING_PAYMENT` whose deadline is before `now`, via the sparse
    /// index; each read on its own, so one item that does not decode never hides the others.
    fn overdue_orders(
        &self,
        now: time::OffsetDateTime,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Result<Order, StoreError>>, StoreError>> + Send;
}

/// One settlement, as `payments::settle` decided it on the order it read.
#[derive(Debug, Clone)]
pub struct SettleWrite<'a> {
    /// The order as read: the write applies only while its state is still `order.state`.
    pub order: &'a Order,
    pub settlement: Settlement,
    /// The charge settled: recorded on the order when the settlement makes it the order's own.
    pub charge_id: &'a str,
    /// Gateway event id (webhooks) or charge id (confirmations): recorded in the same transaction,
    /// so the same outcome can never be applied twice.
    pub dedupe_key: &'a str,
    pub event: &'a Event,
    /// The refund record, for the settlements that pay the charge back (keyed by the charge: a
    /// charge already being refunded makes the write a duplicate).
    pub refund: Option<&'a Refund>,
    pub now: time::OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettleWriteResult {
    Applied,
    /// This dedupe key was applied before: nothing changed.
    Duplicate,
    /// The order left the state the settlement was decided on: decide again.
    StateChanged,
    /// A product line's stock condition failed (a retake found too few sellable units, or the
    /// product is no longer sold).
    Short,
}

pub trait PaymentStore: OrderStore {
    /// The order's state change, its stock moves, the dedupe marker, the refund record and the
    /// outbox event, in one transaction (see `store::dynamo::settle`).
    fn settle_order(
        &self,
        write: &SettleWrite<'_>,
    ) -> impl Future<Output = Result<SettleWriteResult, StoreError>> + Send;
}

/// Refunds on their way back to the customer (see `api::refunds`).
pub trait RefundStore: Send + Sync {
    /// Up to `limit` requested refunds, oldest first (sparse index, no scan).
    fn open_refunds(&self, limit: u32) -> impl Future<Output = Result<Vec<Refund>, StoreError>> + Send;
    /// Up to `limit` refunds the gateway refused, oldest first: money still owed.
    fn failed_refunds(&self, limit: u32) -> impl Future<Output = Result<Vec<Refund>, StoreError>> + Send;
    /// `REQUESTED → REFUNDED` with its event, once: `Ok(false)` if it was not `REQUESTED` any more.
    fn complete_refund(
        &self,
        refund: &Refund,
        gateway_refund_id: &str,
        event: &Event,
        now: time::OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// `REQUESTED → FAILED`, out of the work queue into the one a human reads.
    fn fail_refund(
        &self,
        refund: &Refund,
        why: &str,
        now: time::OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The transactional outbox after the commit: the relay marks what reached Kafka, the sweeper
/// redrives what the stream path gave up on (see `events::redrive`).
pub trait OutboxStore: Send + Sync {
    /// Takes the event out of the pending index, records when it was published and lets the
    /// table's TTL delete it later.
    fn mark_published(
        &self,
        event_id: Uuid,
        now: time::OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Up to `limit` ids of unpublished events that occurred before `before`, oldest first,
    /// after the id `after` (sparse index, no scan).
    fn pending_events(
        &self,
        before: time::OffsetDateTime,
        after: Option<Uuid>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Uuid>, StoreError>> + Send;
    /// Touches a still pending event so the table's stream delivers it again; `Ok(false)` when it
    /// was published meanwhile.
    fn redrive(
        &self,
        event_id: Uuid,
        now: time::OffsetDateTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// What became of one event's e-mail. `attempt` is the claim's (see [`SentEmails::claim`]): 2 or
/// more means an earlier attempt's outcome was unknown and this kind of e-mail is sent again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailRecord {
    /// SES accepted it.
    Sent { message_id: String, attempt: u32 },
    /// SES refused it for good (the address, not the moment): it is never tried again.
    Refused { reason: String, attempt: u32 },
    /// Attempt `attempt` died between its claim and its record, so whether SES accepted it is
    /// unknown, and this kind of e-mail is not sent again (`email::unknown`): settled as it is.
    Unknown { attempt: u32 },
}

/// An event's e-mail as the records have it before a batch is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailState {
    /// Sent, refused for good, or settled as unknown: nothing more to do.
    Settled,
    /// Claimed by attempt `attempt`, which never recorded what SES did: it may have gone out.
    Claimed { attempt: u32 },
}

/// The notifier's per-event record of e-mails, which makes redelivered batches harmless.
pub trait SentEmails: Send + Sync {
    /// The state of those of `events` that have a record; an event without one was never tried
    /// (or its attempt was released: SES surely did not take it).
    fn states(&self, events: &[Uuid]) -> impl Future<Output = Result<HashMap<Uuid, EmailState>, StoreError>> + Send;
    /// Claims the event's e-mail just before it is sent: attempt 1 if the event has no record,
    /// else `after + 1` if it is still claimed by attempt `after` (an unknown outcome sent again).
    /// `Ok(None)` when the record is not as expected (another copy got there first).
    fn claim(
        &self,
        event: Uuid,
        after: Option<u32>,
        now: time::OffsetDateTime,
    ) -> impl Future<Output = Result<Option<u32>, StoreError>> + Send;
    /// Drops claim `attempt` of an e-mail SES surely did not accept (it answered an error, was
    /// unreachable, or the send never started), so a redelivery sends it as if never tried.
    fn release(&self, event: Uuid, attempt: u32) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Records what became of these e-mails.
    fn record(
        &self,
        records: &[(Uuid, EmailRecord)],
        now: time::OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
