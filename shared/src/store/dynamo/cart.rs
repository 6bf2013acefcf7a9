//! Cart lines: one item per line under the user's partition (`USER#<id>` / `CART#<product id>`),
//! so reading the cart is one query and placing an order can delete exactly the lines it used.

use super::{DynamoStore, decode_error, keys, store_error};
use crate::domain::buckets::StockBuckets;
use crate::domain::money::{Currency, Money};
use crate::store::{CartLine, CartStore, StoreError};
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Serialize, Deserialize)]
pub(super) struct CartItem {
    pk: String,
    sk: String,
    product_id: Uuid,
    quantity: u32,
    name: String,
    price_amount: i64,
    currency: Currency,
    #[serde(default)]
    stock_buckets: StockBuckets,
}

impl CartItem {
    fn into_line(self) -> CartLine {
        CartLine {
            product_id: self.product_id,
            quantity: self.quantity,
            name: self.name,
            unit_price: Money { amount: self.price_amount, currency: self.currency },
            stock_buckets: self.stock_buckets,
        }
    }
}

impl CartStore for DynamoStore {
    async fn cart(&self, user_id: Uuid) -> Result<Vec<CartLine>, StoreError> {
        let (pk, _) = keys::user(user_id);
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :cart)")
            .expression_attribute_values(":pk", AttributeValue::S(pk))
            .expression_attribute_values(":cart", AttributeValue::S("CART#".into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        out.items
            .unwrap_or_default()
            .into_iter()
            .map(|i| serde_dynamo::from_item::<_, CartItem>(i).map(CartItem::into_line).map_err(decode_error))
            .collect()
    }

    async fn put_cart_line(&self, user_id: Uuid, line: &CartLine) -> Result<(), StoreError> {
        let (pk, sk) = keys::cart_line(user_id, line.product_id);
        let item = CartItem {
            pk,
            sk,
            product_id: line.product_id,
            quantity: line.quantity,
            name: line.name.clone(),
            price_amount: line.unit_price.amount,
            currency: line.unit_price.currency,
            stock_buckets: line.stock_buckets,
        };
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(serde_dynamo::to_item(item).map_err(decode_error)?))
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn remove_cart_line(&self, user_id: Uuid, product_id: Uuid) -> Result<bool, StoreError> {
        let out = self
            .delete(keys::cart_line(user_id, product_id))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(store_error)?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }
}
