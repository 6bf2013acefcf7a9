//! Catalog products.
//!
//! Listing queries the sparse `gsi1` partition `CATALOG`, sorted by product id (UUIDv7, so by
//! creation time). The cursor handed to clients is the last product id, base64url-encoded: it is
//! opaque to them, and since the full index key is rebuilt from a validated UUID, a forged cursor
//! can only ever be "a product id", never an arbitrary key.
//!
//! Deleting takes the product out of the catalog (drops its `gsi1` keys, sets `deleted_at`) but
//! keeps the item, because unpaid orders may still hold reserved units that must be released.

use super::index::{Listing, Partition};
use super::stock::{SELLABLE, stock_write};
use super::{DynamoStore, applied, decode_error, keys, store_error};
use crate::domain::money::{Currency, Money};
use crate::domain::product::{Product, ProductUpdate};
use crate::domain::stock::{Stock, Transition};
use crate::store::{ListError, Page, ProductStore, StoreError, UpdateProductError};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use uuid::Uuid;

#[derive(Serialize, Deserialize)]
struct ProductItem {
    pk: String,
    sk: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi1pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi1sk: Option<String>,
    id: Uuid,
    name: String,
    description: String,
    price_amount: i64,
    currency: Currency,
    available_stock: i64,
    reserved_stock: i64,
    sellable_stock: i64,
    #[serde(with = "time::serde::rfc3339")]
    created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: time::OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deleted_at: Option<String>,
}

impl ProductItem {
    fn from_product(p: &Product) -> Self {
        let (pk, sk) = keys::product(p.id);
        Self {
            pk,
            sk: sk.to_owned(),
            gsi1pk: Some(keys::CATALOG.to_owned()),
            gsi1sk: Some(p.id.to_string()),
            id: p.id,
            name: p.name.clone(),
            description: p.description.clone(),
            price_amount: p.price.amount,
            currency: p.price.currency,
            available_stock: p.stock.available,
            reserved_stock: p.stock.reserved,
            sellable_stock: p.stock.sellable,
            created_at: p.created_at,
            updated_at: p.updated_at,
            deleted_at: None,
        }
    }

    fn into_product(self) -> Product {
        Product {
            id: self.id,
            name: self.name,
            description: self.description,
            price: Money { amount: self.price_amount, currency: self.currency },
            stock: Stock {
                available: self.available_stock,
                reserved: self.reserved_stock,
                sellable: self.sellable_stock,
            },
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

fn decode(item: HashMap<String, AttributeValue>) -> Result<ProductItem, StoreError> {
    serde_dynamo::from_item(item).map_err(decode_error)
}

/// A live product: exists and not deleted.
use super::stock::LIVE;

impl ProductStore for DynamoStore {
    async fn create_product(&self, product: &Product) -> Result<(), StoreError> {
        let item = serde_dynamo::to_item(ProductItem::from_product(product)).map_err(decode_error)?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
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
        match out.item {
            Some(item) => {
                let p = decode(item)?;
                Ok(p.deleted_at.is_none().then(|| p.into_product()))
            }
            None => Ok(None),
        }
    }

    async fn list_products(&self, limit: u32, cursor: Option<&str>) -> Result<Page<Product>, ListError> {
        let listing = Listing {
            partition: Partition::gsi1(keys::CATALOG),
            newest_first: false,
            key: keys::product,
            decode: |i| decode(i).map(ProductItem::into_product),
            id: |p: &Product| p.id,
        };
        self.page(&listing, limit, cursor).await
    }

    async fn update_product(
        &self,
        id: Uuid,
        update: &ProductUpdate,
        now: time::OffsetDateTime,
    ) -> Result<Product, UpdateProductError> {
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
        if let Some(d) = update.stock_adjustment {
            let w = stock_write(Transition::Adjust(d));
            sets.extend(w.assignments);
            condition = format!("{condition} AND {}", w.condition);
            values.extend(w.values);
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::key(keys::product(id))))
            .update_expression(format!("SET {}", sets.join(", ")))
            .condition_expression(condition)
            .set_expression_attribute_names((!names.is_empty()).then_some(names))
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => Ok(decode(out.attributes.unwrap_or_default())?.into_product()),
            Err(SdkError::ServiceError(service)) => match service.err() {
                UpdateItemError::ConditionalCheckFailedException(failed) => match failed.item() {
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
        let now = keys::rfc3339(now)?;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(keys::key(keys::product(id))))
            .update_expression("SET deleted_at = :now, updated_at = :now REMOVE gsi1pk, gsi1sk")
            .condition_expression(LIVE)
            .expression_attribute_values(":now", AttributeValue::S(now))
            .send()
            .await;
        applied(result)
    }
}
