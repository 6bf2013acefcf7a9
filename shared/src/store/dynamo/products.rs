//! Catalog products.
//!
//! Listing queries the sparse `gsi3` partition `CATALOG`, sorted by product id (UUIDv7, so by
//! creation time), then reads the page's product items and stock buckets with one
//! `BatchGetItem` (per 100 keys). gsi3 projects only the keys, `id` and `bucket_slots`: the stock
//! counters, which every reservation, payment and release changes, are not in it, so those
//! writes never touch the index — one `CATALOG` partition key for the whole shop would otherwise
//! take every stock write of every product's bucket 0 (docs/capacity.md). The entry's
//! `bucket_slots` says which bucket items to read with the product; the index is eventually
//! consistent, so a product re-bucketed since has its other buckets read in a second call.
//! The cursor handed to clients is the last product id, base64url-encoded: it is
//! opaque to them, and since the full index key is rebuilt from a validated UUID, a forged cursor
//! can only ever be "a product id", never an arbitrary key.
//!
//! Deleting takes the product out of the catalog (drops its `gsi3` keys, sets `deleted_at`) but
//! keeps the item, because unpaid orders may still hold reserved units that must be released.
//! A product deleted between the index read and the item read is left out of the page.
//!
//! A product whose stock is spread over buckets (see [`super::buckets`]) is read as the sum of
//! them; a write that moves its stock, changes `N`, its price or deletes it reads every bucket
//! consistently and writes all it changes in one transaction, guarded so that a concurrent
//! reservation makes it start again from a fresh read rather than overwrite anything.
//!
//! An update sent with an `Idempotency-Key` ([`UpdateOnce`]) takes that transactional path too,
//! whatever it changes, with one more item: a marker `IDEMPOTENCY#<admin>#<key>` /
//! `UPDATE_PRODUCT` put only if absent. A stock adjustment is not idempotent by itself (`+5`
//! twice is `+10`), and a client cannot tell an update that died after its commit from one that
//! never ran: with the key, its retry finds the marker and writes nothing.

use super::buckets::{BucketItem, one, total};
use super::index::{Listing, Partition};
use super::stock::{SELLABLE, stock_write};
use super::transact::TransactError;
use super::transition::{built, put_new};
use super::{DynamoStore, applied, decode_error, keys, store_error};
use crate::domain::buckets::{StockBuckets, redistribute};
use crate::domain::money::{Currency, Money};
use crate::domain::product::{Product, ProductUpdate};
use crate::domain::stock::{Stock, Transition};
use crate::store::{ListError, Page, ProductStore, StoreError, UpdateOnce, UpdateProductError};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use uuid::Uuid;

#[derive(Clone, Serialize, Deserialize)]
struct ProductItem {
    #[serde(flatten)]
    keys: keys::Catalogued,
    id: Uuid,
    name: String,
    description: String,
    price_amount: i64,
    currency: Currency,
    available_stock: i64,
    reserved_stock: i64,
    sellable_stock: i64,
    /// Buckets new reservations use (absent on products older than buckets: 1).
    #[serde(default)]
    stock_buckets: StockBuckets,
    /// Buckets that exist, `0..bucket_slots`.
    #[serde(default = "one")]
    bucket_slots: u16,
    #[serde(with = "time::serde::rfc3339")]
    created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: time::OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deleted_at: Option<String>,
}

impl ProductItem {
    /// The item of a new product whose bucket 0 holds `own`.
    fn from_product(p: &Product, own: Stock) -> Self {
        Self {
            keys: keys::Catalogued::product(p.id),
            id: p.id,
            name: p.name.clone(),
            description: p.description.clone(),
            price_amount: p.price.amount,
            currency: p.price.currency,
            available_stock: own.available,
            reserved_stock: own.reserved,
            sellable_stock: own.sellable,
            stock_buckets: p.stock_buckets,
            bucket_slots: p.stock_buckets.get(),
            created_at: p.created_at,
            updated_at: p.updated_at,
            deleted_at: None,
        }
    }

    fn own_stock(&self) -> Stock {
        Stock { available: self.available_stock, reserved: self.reserved_stock, sellable: self.sellable_stock }
    }

    /// The product, with `stock` the sum over all its buckets (`extra`: buckets `1..`).
    fn into_product(self, extra: &[(u16, Stock)]) -> Product {
        let stock = total(std::iter::once(self.own_stock()).chain(extra.iter().map(|(_, s)| *s)));
        Product {
            id: self.id,
            name: self.name,
            description: self.description,
            price: Money { amount: self.price_amount, currency: self.currency },
            stock,
            stock_buckets: self.stock_buckets,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

fn decode(item: HashMap<String, AttributeValue>) -> Result<ProductItem, StoreError> {
    serde_dynamo::from_item(item).map_err(decode_error)
}

/// A product's entry in the catalog index (gsi3 projects these besides the keys).
#[derive(Deserialize)]
struct CatalogEntry {
    id: Uuid,
    #[serde(default = "one")]
    bucket_slots: u16,
}

fn decode_entry(item: HashMap<String, AttributeValue>) -> Result<CatalogEntry, StoreError> {
    serde_dynamo::from_item(item).map_err(decode_error)
}

/// A live product: exists and not deleted.
use super::stock::LIVE;

impl DynamoStore {
    /// Products with their totals: one more (batch) read for those whose stock is in buckets.
    async fn with_totals(&self, items: Vec<ProductItem>, consistent: bool) -> Result<Vec<Product>, StoreError> {
        let bucketed: Vec<(Uuid, u16)> =
            items.iter().filter(|p| p.bucket_slots > 1).map(|p| (p.id, p.bucket_slots)).collect();
        let extra = self.extra_buckets(&bucketed, consistent).await?;
        Ok(items
            .into_iter()
            .map(|p| {
                let buckets = extra.get(&p.id).cloned().unwrap_or_default();
                p.into_product(&buckets)
            })
            .collect())
    }

    /// The live products of a catalog page, in its order, with their stock: their items and
    /// buckets in one `BatchGetItem` (eventually consistent, like the index).
    async fn catalog_products(&self, entries: &[CatalogEntry]) -> Result<Vec<Product>, StoreError> {
        let wanted: Vec<super::Item> = entries
            .iter()
            .flat_map(|e| (0..e.bucket_slots).map(move |k| keys::key(keys::stock_bucket(e.id, k))))
            .collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let mut products: HashMap<Uuid, ProductItem> = HashMap::new();
        let mut buckets: HashMap<Uuid, Vec<(u16, Stock)>> = HashMap::new();
        for item in self.batch_get(wanted, false).await? {
            if item.get(keys::SK).and_then(|v| v.as_s().ok()).is_some_and(|sk| sk == keys::product(Uuid::nil()).1) {
                let p = decode(item)?;
                products.insert(p.id, p);
            } else {
                let b: BucketItem = serde_dynamo::from_item(item).map_err(decode_error)?;
                buckets.entry(b.product_id).or_default().push((b.bucket, b.stock()));
            }
        }
        // Re-bucketed since the index entry was written: read all its buckets.
        let stale: Vec<(Uuid, u16)> = entries
            .iter()
            .filter_map(|e| products.get(&e.id).filter(|p| p.bucket_slots > e.bucket_slots))
            .map(|p| (p.id, p.bucket_slots))
            .collect();
        if !stale.is_empty() {
            buckets.extend(self.extra_buckets(&stale, false).await?);
        }
        Ok(entries
            .iter()
            .filter_map(|e| {
                let p = products.remove(&e.id).filter(|p| p.deleted_at.is_none())?;
                Some(p.into_product(&buckets.remove(&e.id).unwrap_or_default()))
            })
            .collect())
    }
}

impl ProductStore for DynamoStore {
    async fn create_product(&self, product: &Product) -> Result<(), StoreError> {
        let n = product.stock_buckets;
        if n == StockBuckets::ONE {
            let item =
                serde_dynamo::to_item(ProductItem::from_product(product, product.stock)).map_err(decode_error)?;
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .send()
                .await
                .map_err(store_error)?;
            return Ok(());
        }
        // Spread the initial units evenly: bucket k starts with what redistribution gives it.
        let shares = redistribute(&[], n, product.stock.sellable).unwrap_or_default();
        let start = |k: u16| Stock::new(shares.iter().find_map(|(b, d)| (*b == k).then_some(*d)).unwrap_or(0));
        let own = ProductItem::from_product(product, start(0));
        let mut items = vec![put_new(&self.table, serde_dynamo::to_item(own).map_err(decode_error)?)?];
        for k in 1..n.get() {
            let bucket = BucketItem::new(product.id, k, product.price.amount, product.price.currency, start(k));
            items.push(put_new(&self.table, serde_dynamo::to_item(bucket).map_err(decode_error)?)?);
        }
        self.transact(items).await.map_err(|e| match e {
            TransactError::Store(e) => e,
            other => StoreError::Other(format!("creating product {}: {other}", product.id)),
        })
    }

    async fn get_product(&self, id: Uuid) -> Result<Option<Product>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(keys::key(keys::product(id))))
            .send()
            .await
            .map_err(store_error)?;
        let Some(item) = out.item else { return Ok(None) };
        let p = decode(item)?;
        if p.deleted_at.is_some() {
            return Ok(None);
        }
        Ok(self.with_totals(vec![p], false).await?.pop())
    }

    async fn list_products(&self, limit: u32, cursor: Option<&str>) -> Result<Page<Product>, ListError> {
        let listing = Listing {
            partition: Partition::gsi3(keys::CATALOG),
            newest_first: false,
            key: keys::product,
            decode: decode_entry,
            id: |e: &CatalogEntry| e.id,
        };
        let page = self.page(&listing, limit, cursor).await?;
        Ok(Page { items: self.catalog_products(&page.items).await?, next_cursor: page.next_cursor })
    }

    async fn update_product(
        &self,
        id: Uuid,
        update: &ProductUpdate,
        once: Option<&UpdateOnce>,
        now: time::OffsetDateTime,
    ) -> Result<Product, UpdateProductError> {
        if update.stock_buckets.is_some() || once.is_some() {
            return self.update_buckets(id, update, once, now).await;
        }
        let at = now;
        let now = keys::rfc3339(now)?;
        let mut sets = vec!["updated_at = :now".to_owned()];
        let mut values: HashMap<String, AttributeValue> = HashMap::from([(":now".into(), AttributeValue::S(now))]);
        let mut names: HashMap<String, String> = HashMap::new();
        if let Some(name) = &update.name {
            // `name` is a DynamoDB reserved word.
            sets.push("#name = :name".into());
            names.insert("#name".into(), "name".into());
            values.insert(":name".into(), AttributeValue::S(name.clone()));
        }
        if let Some(d) = &update.description {
            sets.push("description = :description".into());
            values.insert(":description".into(), AttributeValue::S(d.clone()));
        }
        if let Some(price) = &update.price {
            sets.push("price_amount = :price_amount, currency = :currency".into());
            values.insert(":price_amount".into(), AttributeValue::N(price.amount.to_string()));
            values.insert(":currency".into(), AttributeValue::S(price.currency.to_string()));
        }
        let mut condition = LIVE.to_owned();
        if update.price.is_some() || update.stock_adjustment.is_some() {
            // Only a product whose stock is one item may be changed by this one write.
            condition.push_str(" AND (attribute_not_exists(bucket_slots) OR bucket_slots <= :one_slot)");
            values.insert(":one_slot".into(), AttributeValue::N("1".into()));
        }
        if let Some(d) = update.stock_adjustment {
            let w = stock_write(Transition::Adjust(d));
            sets.extend(w.assignments);
            condition = format!("{condition} AND {}", w.condition);
            values.extend(w.values);
        }
        let result = self
            .update(keys::product(id))
            .update_expression(format!("SET {}", sets.join(", ")))
            .condition_expression(condition)
            .set_expression_attribute_names((!names.is_empty()).then_some(names))
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => Ok(decode(out.attributes.unwrap_or_default())?.into_product(&[])),
            Err(SdkError::ServiceError(service)) => match service.err() {
                UpdateItemError::ConditionalCheckFailedException(failed) => match failed.item() {
                    // Its stock is in buckets: they all change together.
                    Some(old)
                        if !old.contains_key("deleted_at")
                            && old.get("bucket_slots").and_then(|v| v.as_n().ok()).is_some_and(|n| n != "1") =>
                    {
                        self.update_buckets(id, update, None, at).await
                    }
                    // The item exists and is live, so the stock guard is what failed.
                    Some(old) if !old.contains_key("deleted_at") => {
                        let sellable =
                            old.get(SELLABLE).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()).unwrap_or(0);
                        Err(UpdateProductError::InsufficientStock { sellable })
                    }
                    _ => Err(UpdateProductError::NotFound),
                },
                _ => Err(store_error(SdkError::ServiceError(service)).into()),
            },
            Err(e) => Err(store_error(e).into()),
        }
    }

    async fn delete_product(&self, id: Uuid, now: time::OffsetDateTime) -> Result<bool, StoreError> {
        let slots = match self.get::<ProductItem>(keys::product(id)).await? {
            Some(p) if p.deleted_at.is_none() => p.bucket_slots,
            _ => return Ok(false),
        };
        let now = keys::rfc3339(now)?;
        const DELETE: &str = "SET deleted_at = :now, updated_at = :now REMOVE gsi3pk, gsi3sk";
        let condition = format!("{LIVE} AND (attribute_not_exists(bucket_slots) OR bucket_slots = :slots)");
        if slots <= 1 {
            let result = self
                .update(keys::product(id))
                .update_expression(DELETE)
                .condition_expression(condition)
                .expression_attribute_values(":now", AttributeValue::S(now))
                .expression_attribute_values(":slots", AttributeValue::N(slots.to_string()))
                .send()
                .await;
            return applied(result);
        }
        let product = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::key(keys::product(id))))
            .update_expression(DELETE)
            .condition_expression(condition)
            .expression_attribute_values(":now", AttributeValue::S(now.clone()))
            .expression_attribute_values(":slots", AttributeValue::N(slots.to_string()));
        // Every bucket carries `deleted_at` too: a reservation checks only its bucket.
        let mut items = vec![TransactWriteItem::builder().update(built(product.build())?).build()];
        for k in 1..slots {
            let bucket = Update::builder()
                .table_name(&self.table)
                .set_key(Some(keys::key(keys::stock_bucket(id, k))))
                .update_expression("SET deleted_at = :now")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_values(":now", AttributeValue::S(now.clone()));
            items.push(TransactWriteItem::builder().update(built(bucket.build())?).build());
        }
        match self.transact(items).await {
            Ok(()) => Ok(true),
            Err(TransactError::Store(e)) => Err(e),
            // Deleted (or re-bucketed) meanwhile: whoever won decided.
            Err(e) if e.failed_conditions().first() == Some(&0) => Ok(false),
            Err(e) => Err(StoreError::Other(format!("deleting product {id}: {e}"))),
        }
    }
}

impl DynamoStore {
    /// Changes stock, `N` or price of a product whose stock is (or becomes) in buckets: reads
    /// every bucket, decides with [`redistribute`], writes every change in one transaction whose
    /// conditions fail if a bucket changed under it (then reads again, a bounded number of times).
    async fn update_buckets(
        &self,
        id: Uuid,
        update: &ProductUpdate,
        once: Option<&UpdateOnce>,
        now: time::OffsetDateTime,
    ) -> Result<Product, UpdateProductError> {
        let marker = once.map(|once| (once, marker_item(once, id, now)));
        for _ in 0..5 {
            let item = match self.get::<ProductItem>(keys::product(id)).await? {
                Some(p) if p.deleted_at.is_none() => p,
                _ => return Err(UpdateProductError::NotFound),
            };
            let extra = self.extra_buckets(&[(id, item.bucket_slots)], true).await?.remove(&id).unwrap_or_default();
            let mut all = vec![(0, item.own_stock())];
            all.extend(extra.iter().copied());
            let n = update.stock_buckets.unwrap_or(item.stock_buckets);
            let change = update.stock_adjustment.unwrap_or(0);
            let deltas =
                redistribute(&all, n, change).map_err(|sellable| UpdateProductError::InsufficientStock { sellable })?;
            let delta = |k: u16| deltas.iter().find_map(|(b, d)| (*b == k).then_some(*d)).unwrap_or(0);
            let slots = item.bucket_slots.max(n.get());
            let price = update.price.unwrap_or(Money { amount: item.price_amount, currency: item.currency });

            let mut product = item.clone();
            product.stock_buckets = n;
            product.bucket_slots = slots;
            product.updated_at = now;
            product.price_amount = price.amount;
            product.currency = price.currency;
            if let Some(name) = &update.name {
                product.name.clone_from(name);
            }
            if let Some(d) = &update.description {
                product.description.clone_from(d);
            }
            let mut items = vec![self.product_write(&item, &product, delta(0))?];
            for k in 1..item.bucket_slots {
                if update.price.is_some() || delta(k) != 0 {
                    items.push(bucket_write(&self.table, id, k, update.price, delta(k))?);
                }
            }
            for k in item.bucket_slots..slots {
                let bucket = BucketItem::new(id, k, price.amount, price.currency, Stock::new(delta(k)));
                items.push(put_new(&self.table, serde_dynamo::to_item(bucket).map_err(decode_error)?)?);
            }
            let marker_at = items.len();
            if let Some((_, marker)) = &marker {
                items.push(put_new(&self.table, serde_dynamo::to_item(marker).map_err(decode_error)?)?);
            }
            match self.transact(items).await {
                Ok(()) => {
                    let mut p = product.into_product(&[]);
                    let before = total(all.iter().map(|(_, s)| *s));
                    p.stock = Stock {
                        available: before.available + change,
                        reserved: before.reserved,
                        sellable: before.sellable + change,
                    };
                    return Ok(p);
                }
                Err(TransactError::Store(e)) => return Err(e.into()),
                Err(e)
                    if let Some((once, _)) = marker
                        && e.failed_conditions().contains(&marker_at) =>
                {
                    return Err(self.key_used(once).await?);
                }
                // A reservation (or another admin) changed a bucket since the read: read again.
                Err(e) => tracing::debug!(product_id = %id, "bucket update cancelled ({e}), reading again"),
            }
        }
        Err(StoreError::Unavailable(format!("stock of product {id} kept changing")).into())
    }

    /// What an update's key was used for before (its marker is there: the transaction said so).
    async fn key_used(&self, once: &UpdateOnce) -> Result<UpdateProductError, StoreError> {
        let marker: Option<UpdateMarker> = self.get(keys::update_idempotency(once.admin, &once.key)).await?;
        let marker = marker.ok_or_else(|| StoreError::Other("the update's marker vanished".into()))?;
        Ok(UpdateProductError::KeyUsed { request_hash: marker.request_hash })
    }

    /// The product item's part of a bucketed update: catalog fields, `N`, and bucket 0's share.
    fn product_write(
        &self,
        before: &ProductItem,
        after: &ProductItem,
        delta: i64,
    ) -> Result<TransactWriteItem, StoreError> {
        let w = stock_write(Transition::Adjust(delta));
        let mut sets = vec![
            "#name = :name".to_owned(),
            "description = :description".to_owned(),
            "price_amount = :price_amount".to_owned(),
            "currency = :currency".to_owned(),
            "stock_buckets = :n".to_owned(),
            "bucket_slots = :slots".to_owned(),
            "updated_at = :now".to_owned(),
        ];
        if delta != 0 {
            sets.extend(w.assignments);
        }
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(keys::key(keys::product(after.id))))
            .update_expression(format!("SET {}", sets.join(", ")))
            .condition_expression(format!(
                "{LIVE} AND (attribute_not_exists(bucket_slots) OR bucket_slots = :old_slots){}",
                if delta != 0 { format!(" AND {}", w.condition) } else { String::new() }
            ))
            .expression_attribute_names("#name", "name")
            .expression_attribute_values(":name", AttributeValue::S(after.name.clone()))
            .expression_attribute_values(":description", AttributeValue::S(after.description.clone()))
            .expression_attribute_values(":price_amount", AttributeValue::N(after.price_amount.to_string()))
            .expression_attribute_values(":currency", AttributeValue::S(after.currency.to_string()))
            .expression_attribute_values(":n", AttributeValue::N(after.stock_buckets.get().to_string()))
            .expression_attribute_values(":slots", AttributeValue::N(after.bucket_slots.to_string()))
            .expression_attribute_values(":old_slots", AttributeValue::N(before.bucket_slots.to_string()))
            .expression_attribute_values(":now", AttributeValue::S(keys::rfc3339(after.updated_at)?));
        if delta != 0 {
            for (k, v) in w.values {
                update = update.expression_attribute_values(k, v);
            }
        }
        Ok(TransactWriteItem::builder().update(built(update.build())?).build())
    }
}

/// The marker of an update made with an `Idempotency-Key` (see the module docs).
#[derive(Serialize, Deserialize)]
struct UpdateMarker {
    pk: String,
    sk: String,
    product_id: Uuid,
    request_hash: String,
    expires_at: i64,
}

fn marker_item(once: &UpdateOnce, product_id: Uuid, now: time::OffsetDateTime) -> UpdateMarker {
    let (pk, sk) = keys::update_idempotency(once.admin, &once.key);
    UpdateMarker {
        pk,
        sk: sk.to_owned(),
        product_id,
        request_hash: once.request_hash.clone(),
        expires_at: (now + super::MARKER_RETENTION).unix_timestamp(),
    }
}

/// Bucket `k`'s part: the price copy, and its share of the move (guarded like any adjustment).
fn bucket_write(
    table: &str,
    id: Uuid,
    k: u16,
    price: Option<Money>,
    delta: i64,
) -> Result<TransactWriteItem, StoreError> {
    let mut sets = Vec::new();
    let mut update = Update::builder().table_name(table).set_key(Some(keys::key(keys::stock_bucket(id, k))));
    let mut condition = "attribute_exists(pk)".to_owned();
    if let Some(price) = price {
        sets.push("price_amount = :price_amount, currency = :currency".to_owned());
        update = update
            .expression_attribute_values(":price_amount", AttributeValue::N(price.amount.to_string()))
            .expression_attribute_values(":currency", AttributeValue::S(price.currency.to_string()));
    }
    if delta != 0 {
        let w = stock_write(Transition::Adjust(delta));
        sets.extend(w.assignments);
        condition = format!("{condition} AND {}", w.condition);
        for (k, v) in w.values {
            update = update.expression_attribute_values(k, v);
        }
    }
    let update = update.update_expression(format!("SET {}", sets.join(", "))).condition_expression(condition);
    Ok(TransactWriteItem::builder().update(built(update.build())?).build())
}
