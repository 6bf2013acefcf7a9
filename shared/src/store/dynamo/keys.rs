//! Key formats of every item type, in one place so no two modules spell them differently.

use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;
use uuid::Uuid;

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const GSI1: &str = "gsi1";
pub const GSI1PK: &str = "gsi1pk";
pub const GSI1SK: &str = "gsi1sk";

pub const GSI2: &str = "gsi2";
/// The catalog index: keys and `id`, `bucket_slots` only (`INCLUDE`), so that the stock
/// counters a reservation moves are not in it (see [`CATALOG`]).
pub const GSI3: &str = "gsi3";
pub const GSI3PK: &str = "gsi3pk";
pub const GSI3SK: &str = "gsi3sk";

/// gsi3 partition of the products on sale, sorted by product id. gsi3 projects no stock
/// counter, so reserving, paying and releasing never write it: only creating, re-bucketing and
/// deleting a product do (`docs/capacity.md`, "The indexes").
pub const CATALOG: &str = "CATALOG";
/// gsi2 partitions of orders that still hold a reservation, sorted by deadline: `PENDING#<n>`
/// (see [`pending`]); items written before the queues were sharded sit in `PENDING` itself.
pub const PENDING: &str = "PENDING";
/// gsi1 partitions of events not yet published: `OUTBOX#<n>` (see [`outbox`]), or `OUTBOX`.
pub const OUTBOX: &str = "OUTBOX";

/// Shards of the `PENDING` queue. Every order is written into it when placed and out of it when
/// it leaves `PENDING_PAYMENT`: two index entry writes per order (1 unit each for an order item
/// under 1 KB), so one partition key (1,000 write units/s, indexes included; `docs/capacity.md`)
/// would cap the whole shop near 500 orders/s. For 10,000 orders/s: 20,000 units/s = 20
/// partitions at their limit, 29 at 70% (the hash is not perfectly even, and bursts) → 32,
/// which take 32 × 700 / 2 = 11,200 orders/s.
pub const PENDING_SHARDS: u8 = 32;
/// Shards of the `OUTBOX` queue: every event is written into it and out of it (published), and a
/// paid order makes two events: 4 entry writes per paid order, twice `PENDING`'s → 64 shards,
/// 64 × 700 / 4 = 11,200 paid orders/s.
pub const OUTBOX_SHARDS: u8 = 64;

/// The shard of an item with id `id` among `shards`: the id's last (random) bits.
fn shard(id: Uuid, shards: u8) -> u8 {
    u8::try_from(id.as_u128() % u128::from(shards)).unwrap_or(0)
}

/// The `PENDING` partition of order `id`.
pub fn pending(order: Uuid) -> String {
    format!("{PENDING}#{}", shard(order, PENDING_SHARDS))
}

/// The `OUTBOX` partition of event `id`.
pub fn outbox(event: Uuid) -> String {
    format!("{OUTBOX}#{}", shard(event, OUTBOX_SHARDS))
}

/// Every partition of a sharded queue, the unsharded one (older items) first.
pub fn queue_partitions(queue: &str, shards: u8) -> Vec<String> {
    std::iter::once(queue.to_owned()).chain((0..shards).map(|n| format!("{queue}#{n}"))).collect()
}

/// A product item's keys: its own `pk`/`sk` and, while it is on sale, its [`CATALOG`] entry on
/// gsi3 (`gsi3pk`/`gsi3sk`); deleting the product removes them.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct Catalogued {
    pub pk: String,
    pub sk: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi3pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi3sk: Option<String>,
}

impl Catalogued {
    /// Product `id`'s keys, in the catalog.
    pub fn product(id: Uuid) -> Self {
        let (pk, sk) = product(id);
        Self { pk, sk: sk.to_owned(), gsi3pk: Some(CATALOG.to_owned()), gsi3sk: Some(id.to_string()) }
    }
}

/// The key attributes of an item that is listed on gsi1 while it waits in a queue or belongs to
/// a list (a refund to do, a webhook to deliver): its own `pk`/`sk`
/// and, while listed, `gsi1pk`/`gsi1sk`. Flattened (`#[serde(flatten)]`) into those items'
/// structs, so they all spell their keys one way; the update that takes an item off the list
/// removes `gsi1pk` and `gsi1sk`, and the item reads back with `None`.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct Listed {
    pub pk: String,
    pub sk: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi1pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi1sk: Option<String>,
}

impl Listed {
    /// An item with keys `(pk, sk)`, listed on gsi1 under `list`, sorted by `sort`.
    pub fn on((pk, sk): (String, &str), list: &str, sort: String) -> Self {
        Self { pk, sk: sk.to_owned(), gsi1pk: Some(list.to_owned()), gsi1sk: Some(sort) }
    }
}

pub fn user(id: Uuid) -> (String, &'static str) {
    (format!("USER#{id}"), "PROFILE")
}

pub fn email(normalized: &str) -> (String, &'static str) {
    (format!("EMAIL#{normalized}"), "CREDENTIALS")
}

/// A password-reset token, by the hash the table keeps of it (see `api::account::reset`).
pub fn reset(token_hash: &str) -> (String, &'static str) {
    (format!("RESET#{token_hash}"), "RESET")
}

pub fn product(id: Uuid) -> (String, &'static str) {
    (format!("PRODUCT#{id}"), "PRODUCT")
}

/// Stock bucket `k` of a product (see `domain::buckets`): bucket 0 is the product item itself,
/// bucket `k > 0` an item with a partition key of its own, so reservations spread over partitions.
pub fn stock_bucket(product: Uuid, k: u16) -> (String, &'static str) {
    if k == 0 { self::product(product) } else { (format!("PRODUCT#{product}#STOCK#{k}"), "STOCK") }
}

pub fn event(id: Uuid) -> (String, &'static str) {
    (format!("EVENT#{id}"), "EVENT")
}

/// The notifier's record of the e-mail of one event (claimed, then sent).
pub fn email_sent(event_id: Uuid) -> (String, &'static str) {
    (format!("EMAIL_SENT#{event_id}"), "EMAIL")
}

pub fn cart_line(user: Uuid, product: Uuid) -> (String, String) {
    (format!("USER#{user}"), format!("CART#{product}"))
}

pub fn order(id: Uuid) -> (String, &'static str) {
    (format!("ORDER#{id}"), "ORDER")
}

/// Dedupe marker of one settled payment outcome (gateway event id, or `charge:<id>`).
pub fn payment_event(key: &str) -> (String, &'static str) {
    (format!("PAYMENT_EVENT#{key}"), "SETTLED")
}

/// A refund, one per charge: creating it twice is a condition failure, never a second refund.
pub fn refund(charge_id: &str) -> (String, &'static str) {
    (format!("REFUND#{charge_id}"), "REFUND")
}

/// gsi1 partition of requested refunds (the worker's queue), sorted by refund id (v7).
pub const REFUNDS: &str = "REFUNDS";
/// gsi1 partition of refunds the gateway refused: money still owed, a human acts.
pub const REFUNDS_FAILED: &str = "REFUNDS_FAILED";

/// Log-in attempts at one account (`account` is a fingerprint of the e-mail asked for).
pub fn login_attempts(account: &str) -> (String, &'static str) {
    (format!("LOGIN_ATTEMPTS#{account}"), "ATTEMPTS")
}

/// Mock gateway: a charge.
pub fn charge(id: &str) -> (String, &'static str) {
    (format!("CHARGE#{id}"), "CHARGE")
}

/// Mock gateway: the claim of an idempotency key, pointing at the charge it made.
pub fn charge_key(key: &crate::domain::idempotency::IdempotencyKey) -> (String, &'static str) {
    (format!("CHARGE_KEY#{key}"), "CHARGE_KEY")
}

/// Mock gateway: the claim of a refund's idempotency key, holding the refund it made.
pub fn refund_key(key: &crate::domain::idempotency::IdempotencyKey) -> (String, &'static str) {
    (format!("GATEWAY_REFUND_KEY#{key}"), "GATEWAY_REFUND_KEY")
}

/// Mock gateway: one webhook to deliver.
pub fn delivery(id: Uuid) -> (String, &'static str) {
    (format!("WEBHOOK_DELIVERY#{id}"), "DELIVERY")
}

/// gsi1 partition of undelivered webhooks, sorted by when they are due.
pub const DELIVERIES: &str = "DELIVERIES";

/// gsi1 partition of one user's orders.
pub fn user_orders(user: Uuid) -> String {
    format!("ORDERS#{user}")
}

pub fn idempotency(user: Uuid, key: &crate::domain::idempotency::IdempotencyKey) -> (String, &'static str) {
    (format!("IDEMPOTENCY#{user}#{key}"), "PLACE_ORDER")
}

/// The marker of an admin's product update made with an `Idempotency-Key`: the same partition
/// as the admin's order markers, another sort key, so one key may serve one of each.
pub fn update_idempotency(user: Uuid, key: &crate::domain::idempotency::IdempotencyKey) -> (String, &'static str) {
    (format!("IDEMPOTENCY#{user}#{key}"), "UPDATE_PRODUCT")
}

/// Sort key of a moment: zero-padded unix milliseconds sort as strings in time order
/// (RFC 3339 with variable fractions would not).
pub fn instant(t: time::OffsetDateTime) -> String {
    format!("{:015}", t.unix_timestamp_nanos() / 1_000_000)
}

/// A timestamp attribute (`created_at`, `published_at`, ...): RFC 3339, as the API shows it.
pub fn rfc3339(t: time::OffsetDateTime) -> Result<String, crate::store::StoreError> {
    t.format(&time::format_description::well_known::Rfc3339).map_err(|e| crate::store::StoreError::Other(e.to_string()))
}

/// The table's TTL attribute (`TimeToLiveSpecification` in template.yaml): DynamoDB deletes an
/// item within a few days after this moment. Only items that are done carry it (published outbox
/// events, spent markers, sent e-mail records); retention per item in `docs/data-model.md`.
pub const TTL: &str = "expires_at";

/// A TTL value: DynamoDB reads only a Number of epoch seconds.
pub fn expires_at(t: time::OffsetDateTime) -> AttributeValue {
    AttributeValue::N(t.unix_timestamp().to_string())
}

/// The primary key as the SDK wants it.
pub fn key<S: Into<String>>((pk, sk): (String, S)) -> HashMap<String, AttributeValue> {
    HashMap::from([(PK.to_owned(), AttributeValue::S(pk)), (SK.to_owned(), AttributeValue::S(sk.into()))])
}
