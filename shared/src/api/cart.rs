//! The signed-in user's cart: `GET /cart`, `PUT /cart/items/{productId}` `{"quantity": n}`,
//! `DELETE /cart/items/{productId}`.
//!
//! A line remembers the product's name and price when it was added; `POST /orders` without a body
//! orders the cart at those prices, and its transaction refuses if the catalog price moved since.

use crate::auth::jwt::{Principal, Tokens};
use crate::auth::session::{reading, signed_in};
use crate::domain::money::Money;
use crate::domain::order::{MAX_QUANTITY_PER_LINE, max_lines};
use crate::error::ApiError;
use crate::http::{json, json_body, no_content, route_key};
use crate::store::{CartLine, CartStore, ProductStore, SessionStore};
use http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetQuantity {
    quantity: u32,
}

/// The cart as the API shows it: lines with line totals, and the total when all share a currency.
pub fn cart_view(lines: &[CartLine]) -> Value {
    let items: Vec<Value> = lines
        .iter()
        .map(|l| {
            json!({
                "product_id": l.product_id,
                "name": l.name,
                "quantity": l.quantity,
                "unit_price": l.unit_price,
                "line_total": l.unit_price.times(l.quantity),
            })
        })
        .collect();
    let total = lines.first().and_then(|first| {
        lines.iter().try_fold(Money { amount: 0, currency: first.unit_price.currency }, |acc, l| {
            let line = l.unit_price.times(l.quantity)?;
            (line.currency == acc.currency).then_some(Money { amount: acc.amount.checked_add(line.amount)?, ..acc })
        })
    });
    json!({ "items": items, "total": total })
}

fn product_id(req: &Request) -> Result<Uuid, ApiError> {
    crate::http::path_id(req, "productId", "product")
}

pub struct Cart<S> {
    pub store: S,
    pub tokens: Tokens,
}

impl<S: CartStore + ProductStore + SessionStore + 'static> crate::http::HttpHandler for Cart<S> {
    async fn handle(&self, req: Request) -> Result<Response<Body>, ApiError> {
        let (tokens, store) = (&self.tokens, &self.store);
        match route_key(&req).as_str() {
            "GET /cart" => {
                let lines = reading(&req, tokens, store, |me| async move { Ok(store.cart(me.user_id).await?) }).await?;
                Ok(json(StatusCode::OK, &cart_view(&lines)))
            }
            "PUT /cart/items/{productId}" => self.set(&req, &signed_in(&req, tokens, store).await?).await,
            "DELETE /cart/items/{productId}" => self.remove(&req, &signed_in(&req, tokens, store).await?).await,
            other => Err(ApiError::not_found(&format!("route {other}"))),
        }
    }
}

impl<S: CartStore + ProductStore> Cart<S> {
    async fn set(&self, req: &Request, me: &Principal) -> Result<Response<Body>, ApiError> {
        let id = product_id(req)?;
        let body: SetQuantity = json_body(req)?;
        if !(1..=MAX_QUANTITY_PER_LINE).contains(&body.quantity) {
            return Err(ApiError::invalid_fields(&[(
                "quantity",
                format!("must be between 1 and {MAX_QUANTITY_PER_LINE}; DELETE the line to remove it"),
            )]));
        }
        let product = self.store.get_product(id).await?.ok_or_else(|| ApiError::not_found("product"))?;
        let mut lines = self.store.cart(me.user_id).await?;
        let max = max_lines(true);
        if !lines.iter().any(|l| l.product_id == id) && lines.len() >= max {
            return Err(ApiError::bad_request("cart_full", format!("a cart holds at most {max} different products")));
        }
        let line = CartLine {
            product_id: id,
            quantity: body.quantity,
            name: product.name,
            unit_price: product.price,
            stock_buckets: product.stock_buckets,
        };
        self.store.put_cart_line(me.user_id, &line).await?;
        lines.retain(|l| l.product_id != id);
        lines.push(line);
        lines.sort_by_key(|l| l.product_id);
        Ok(json(StatusCode::OK, &cart_view(&lines)))
    }

    async fn remove(&self, req: &Request, me: &Principal) -> Result<Response<Body>, ApiError> {
        let id = product_id(req)?;
        if !self.store.remove_cart_line(me.user_id, id).await? {
            return Err(ApiError::not_found("cart line"));
        }
        Ok(no_content())
    }
}
