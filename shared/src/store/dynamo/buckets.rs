//! Stock buckets in the table (the model is `domain::buckets`).
//!
//! Bucket 0 is the product item; bucket `k > 0` is `PRODUCT#<id>#STOCK#<k>` / `STOCK`, created
//! when the admin first asks for `k + 1` buckets and never deleted (orders may hold units in it
//! after `N` shrinks). The product item says how many buckets new reservations use
//! (`stock_buckets`, absent = 1) and how many exist (`bucket_slots`, absent = 1).
//!
//! A bucket item carries a copy of what a reservation's condition checks — the price, and
//! `deleted_at` once the product is deleted — so that reserving touches **only** its bucket: the
//! product item's partition is then just one of `N`. Every write that changes those copies (a
//! price change, a delete) writes all buckets in one transaction.

use super::{DynamoStore, Item, decode_error, keys};
use crate::domain::money::Currency;
use crate::domain::stock::Stock;
use crate::store::StoreError;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use uuid::Uuid;

/// A bucket `k > 0`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct BucketItem {
    pub pk: String,
    pub sk: String,
    pub product_id: Uuid,
    pub bucket: u16,
    pub price_amount: i64,
    pub currency: Currency,
    pub available_stock: i64,
    pub reserved_stock: i64,
    pub sellable_stock: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
}

impl BucketItem {
    pub fn new(product_id: Uuid, bucket: u16, price_amount: i64, currency: Currency, stock: Stock) -> Self {
        let (pk, sk) = keys::stock_bucket(product_id, bucket);
        Self {
            pk,
            sk: sk.to_owned(),
            product_id,
            bucket,
            price_amount,
            currency,
            available_stock: stock.available,
            reserved_stock: stock.reserved,
            sellable_stock: stock.sellable,
            deleted_at: None,
        }
    }

    pub fn stock(&self) -> Stock {
        Stock { available: self.available_stock, reserved: self.reserved_stock, sellable: self.sellable_stock }
    }
}

/// The part of a product item that says where its stock is.
#[derive(Deserialize)]
pub(super) struct Slots {
    pub id: Uuid,
    pub available_stock: i64,
    pub reserved_stock: i64,
    pub sellable_stock: i64,
    #[serde(default = "one")]
    pub bucket_slots: u16,
}

pub(super) fn one() -> u16 {
    1
}

impl DynamoStore {
    /// Buckets `1..slots` of each product, `(bucket, stock)`; `consistent` when deciding on them.
    pub(super) async fn extra_buckets(
        &self,
        products: &[(Uuid, u16)],
        consistent: bool,
    ) -> Result<HashMap<Uuid, Vec<(u16, Stock)>>, StoreError> {
        let keys: Vec<Item> = products
            .iter()
            .flat_map(|(id, slots)| (1..*slots).map(|k| keys::key(keys::stock_bucket(*id, k))))
            .collect();
        let mut out: HashMap<Uuid, Vec<(u16, Stock)>> = HashMap::new();
        if keys.is_empty() {
            return Ok(out);
        }
        for item in self.batch_get(keys, consistent).await? {
            let b: BucketItem = serde_dynamo::from_item(item).map_err(decode_error)?;
            out.entry(b.product_id).or_default().push((b.bucket, b.stock()));
        }
        Ok(out)
    }
}

/// The sum of buckets' stock.
pub(super) fn total(buckets: impl IntoIterator<Item = Stock>) -> Stock {
    buckets.into_iter().fold(Stock::default(), |t, s| Stock {
        available: t.available + s.available,
        reserved: t.reserved + s.reserved,
        sellable: t.sellable + s.sellable,
    })
}
