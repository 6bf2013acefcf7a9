//! Reading the secondary indexes: every list and every work queue of the shop is one partition.
//!
//! | partition | index | sort key | read as |
//! |---|---|---|---|
//! | `CATALOG` | gsi3 (keys, `id`, `bucket_slots`) | product id | [`DynamoStore::page`], then the items (the product list) |
//! | `ORDERS#<user>` | gsi1 | order id (v7: time-ordered) | [`DynamoStore::page`], newest first |
//! | `OUTBOX#<n>` (64 shards) | gsi1 | event id (v7) | [`DynamoStore::due_sharded`] (the sweeper's redrive) |
//! | `DELIVERIES` | gsi1 | due time | [`DynamoStore::due`] (the mock gateway) |
//! | `PENDING#<n>` (32 shards) | gsi2 | reservation deadline | [`DynamoStore::due_sharded`] (the sweeper) |
//!
//! No partition every order writes is shared by the whole shop. One partition key of an index
//! takes about 1,000 write units/s like any other, and a throttled index throttles the table
//! write: so the queues every order enters are spread over `<name>#<n>` by the item id's last
//! bits and read shard by shard, and the catalog is an index (gsi3) that projects no stock
//! counter, so that a stock write changes no index entry (docs/capacity.md).
//!
//! The queues are sparse: an item leaves its partition (its index attributes are removed) when it
//! is done, so a queue read costs what is due, never a scan of the table.

use super::cursor::{decode_cursor, encode_cursor};
use super::{DynamoStore, keys, store_error};
use crate::store::{ListError, Page, StoreError};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;
use uuid::Uuid;

pub(super) type Item = HashMap<String, AttributeValue>;

/// One partition of one index.
pub(super) struct Partition {
    index: &'static str,
    pk: &'static str,
    sk: &'static str,
    value: String,
}

impl Partition {
    pub(super) fn gsi1(value: impl Into<String>) -> Self {
        Self { index: keys::GSI1, pk: keys::GSI1PK, sk: keys::GSI1SK, value: value.into() }
    }

    pub(super) fn gsi2(value: impl Into<String>) -> Self {
        Self { index: keys::GSI2, pk: "gsi2pk", sk: "gsi2sk", value: value.into() }
    }

    pub(super) fn gsi3(value: impl Into<String>) -> Self {
        Self { index: keys::GSI3, pk: keys::GSI3PK, sk: keys::GSI3SK, value: value.into() }
    }

    fn query(&self, store: &DynamoStore, limit: u32) -> QueryFluentBuilder {
        store
            .client
            .query()
            .table_name(&store.table)
            .index_name(self.index)
            .expression_attribute_names("#pk", self.pk)
            .expression_attribute_values(":pk", AttributeValue::S(self.value.clone()))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
    }
}

/// How a list turns items into values and back into a resume point.
pub(super) struct Listing<T> {
    pub partition: Partition,
    pub newest_first: bool,
    /// The table key of the item with this id (the index sort key is the id itself).
    pub key: fn(Uuid) -> (String, &'static str),
    pub decode: fn(Item) -> Result<T, StoreError>,
    pub id: fn(&T) -> Uuid,
}

impl DynamoStore {
    /// One page of a listing, resumed after the cursor's item. The cursor holds only an id; the
    /// start key is rebuilt from it, so a forged cursor cannot point anywhere else.
    pub(super) async fn page<T>(
        &self,
        listing: &Listing<T>,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<T>, ListError> {
        let p = &listing.partition;
        let start = match cursor {
            Some(c) => {
                let id = decode_cursor(c)?;
                let mut key = keys::key((listing.key)(id));
                key.insert(p.pk.into(), AttributeValue::S(p.value.clone()));
                key.insert(p.sk.into(), AttributeValue::S(id.to_string()));
                Some(key)
            }
            None => None,
        };
        let out = p
            .query(self, limit)
            .key_condition_expression("#pk = :pk")
            .scan_index_forward(!listing.newest_first)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(store_error)?;
        let items = out.items.unwrap_or_default().into_iter().map(listing.decode).collect::<Result<Vec<_>, _>>()?;
        // DynamoDB returns a LastEvaluatedKey whenever it stopped at the limit, even if nothing
        // follows; one extra empty page is the price of not reading ahead.
        let next_cursor = match (&out.last_evaluated_key, items.last()) {
            (Some(_), Some(last)) => Some(encode_cursor((listing.id)(last))),
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }

    /// [`Self::due`] over every shard of a sharded queue (`partitions`, see
    /// `keys::queue_partitions`), read concurrently and merged: the `limit` lowest sort keys of
    /// all shards, oldest first. `after` resumes every shard after that sort key.
    pub(super) async fn due_sharded(
        &self,
        partitions: &[String],
        index: fn(String) -> Partition,
        below: String,
        after: Option<((String, &'static str), String)>,
        limit: u32,
        projection: Option<&str>,
    ) -> Result<Vec<Item>, StoreError> {
        let reads = partitions.iter().map(|p| {
            let queue = index(p.clone());
            let (below, after) = (below.clone(), after.clone());
            async move { self.due(&queue, below, after, limit, projection).await.map(|items| (queue.sk, items)) }
        });
        let mut all: Vec<(String, Item)> = Vec::new();
        for shard in futures::future::join_all(reads).await {
            let (sk, items) = shard?;
            all.extend(items.into_iter().map(|i| {
                let sort = i.get(sk).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                (sort, i)
            }));
        }
        all.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(all.into_iter().take(usize::try_from(limit).unwrap_or(usize::MAX)).map(|(_, i)| i).collect())
    }

    /// Up to `limit` items of a queue whose sort key is below `below`, oldest first, resumed
    /// after the item whose table key is `after` (for queues whose items stay in the partition
    /// while they are worked on); only the attributes in `projection` when given.
    pub(super) async fn due(
        &self,
        queue: &Partition,
        below: String,
        after: Option<((String, &'static str), String)>,
        limit: u32,
        projection: Option<&str>,
    ) -> Result<Vec<Item>, StoreError> {
        let start = after.map(|(table_key, sort)| {
            let mut key = keys::key(table_key);
            key.insert(queue.pk.into(), AttributeValue::S(queue.value.clone()));
            key.insert(queue.sk.into(), AttributeValue::S(sort));
            key
        });
        let out = queue
            .query(self, limit)
            .key_condition_expression("#pk = :pk AND #sk < :below")
            .expression_attribute_names("#sk", queue.sk)
            .expression_attribute_values(":below", AttributeValue::S(below))
            .set_exclusive_start_key(start)
            .set_projection_expression(projection.map(str::to_owned))
            .send()
            .await
            .map_err(store_error)?;
        Ok(out.items.unwrap_or_default())
    }
}
