//! The catalog: `GET /products` (paginated), `GET /products/{id}` for anyone;
//! `POST /products`, `PUT /products/{id}`, `DELETE /products/{id}` for admins.
//!
//! `PUT` changes name, description or price, and moves stock only by a signed
//! `stock_adjustment`, applied as the conditional adjust of `docs/data-model.md` ("Product
//! stock"): an admin can add units at any time and remove only units nobody has reserved.
//! `stock_buckets` (on `POST` and `PUT`) spreads the stock over that many items for a hot product
//! (`domain::buckets`); the store moves the units, reads show the sum.
//!
//! `PUT` takes an optional `Idempotency-Key`: a stock adjustment is not idempotent (`+5` twice
//! is `+10`), and an admin whose request timed out cannot tell whether it was applied. With the
//! key, the update is written at most once (`store::UpdateOnce`); the same key and body again
//! answer 200 with the product as it is now and write nothing, the same key with another
//! request is a 422. Without it, a retry applies the adjustment again.

use crate::auth::jwt::Tokens;
use crate::domain::product::{NewProductInput, Product, ProductUpdateInput};
use crate::domain::stock::Stock;
use crate::error::ApiError;
use crate::http::{json, json_body, no_content, page_size, path_id, query_param, require_admin, route_key};
use crate::store::{ProductStore, SessionStore, UpdateOnce, UpdateProductError};
use http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

impl From<UpdateProductError> for ApiError {
    fn from(e: UpdateProductError) -> Self {
        match e {
            UpdateProductError::NotFound => ApiError::not_found("product"),
            UpdateProductError::InsufficientStock { sellable } => {
                ApiError::conflict("insufficient_stock", format!("only {sellable} unreserved units can be removed"))
                    .with_details(json!({ "sellable": sellable }))
            }
            UpdateProductError::KeyUsed { .. } => key_reused(),
            UpdateProductError::Store(cause) => cause.into(),
        }
    }
}

fn key_reused() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        "this Idempotency-Key was used for a different product update",
    )
}

/// The `Idempotency-Key` of a `PUT`, if one was sent; a malformed one is refused, not ignored
/// (the client meant the update to happen once).
fn update_once(req: &Request, admin: Uuid, id: Uuid) -> Result<Option<UpdateOnce>, ApiError> {
    if !req.headers().contains_key("idempotency-key") {
        return Ok(None);
    }
    let key = crate::http::idempotency_key(req).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_idempotency_key",
            format!(
                "send an Idempotency-Key header of 1 to {} visible ASCII characters",
                crate::domain::idempotency::MAX_LEN
            ),
        )
    })?;
    // The request as the client sent it: a retry sends the same product and body.
    let mut hash = Sha256::new();
    hash.update(id.as_bytes());
    hash.update(req.body().as_ref());
    Ok(Some(UpdateOnce { admin, key, request_hash: format!("{:x}", hash.finalize()) }))
}

fn product_id(req: &Request) -> Result<Uuid, ApiError> {
    path_id(req, "id", "product")
}

pub struct Products<S> {
    pub store: S,
    pub tokens: Tokens,
}

impl<S: ProductStore + SessionStore + 'static> crate::http::HttpHandler for Products<S> {
    async fn handle(&self, req: Request) -> Result<Response<Body>, ApiError> {
        match route_key(&req).as_str() {
            "GET /products" => self.list(&req).await,
            "GET /products/{id}" => self.get(&req).await,
            "POST /products" => self.create(&req).await,
            "PUT /products/{id}" => self.update(&req).await,
            "DELETE /products/{id}" => self.delete(&req).await,
            other => Err(ApiError::not_found(&format!("route {other}"))),
        }
    }
}

impl<S: ProductStore + SessionStore> Products<S> {
    async fn list(&self, req: &Request) -> Result<Response<Body>, ApiError> {
        let limit = page_size(req)?;
        let cursor = query_param(req, "cursor");
        let page = self.store.list_products(limit, cursor.as_deref()).await?;
        Ok(json(StatusCode::OK, &json!({ "items": page.items, "next_cursor": page.next_cursor })))
    }

    async fn get(&self, req: &Request) -> Result<Response<Body>, ApiError> {
        let id = product_id(req)?;
        let product = self.store.get_product(id).await?.ok_or_else(|| ApiError::not_found("product"))?;
        Ok(json(StatusCode::OK, &product))
    }

    async fn create(&self, req: &Request) -> Result<Response<Body>, ApiError> {
        require_admin(req, &self.tokens, &self.store).await?;
        let input: NewProductInput = json_body(req)?;
        let new = input.validate().map_err(|e| ApiError::invalid_fields(&e))?;
        let now = time::OffsetDateTime::now_utc();
        let product = Product {
            id: Uuid::now_v7(),
            name: new.name,
            description: new.description,
            price: new.price,
            stock: Stock::new(new.stock),
            stock_buckets: new.stock_buckets,
            created_at: now,
            updated_at: now,
        };
        self.store.create_product(&product).await?;
        tracing::info!(product_id = %product.id, "product created");
        Ok(json(StatusCode::CREATED, &product))
    }

    async fn update(&self, req: &Request) -> Result<Response<Body>, ApiError> {
        let admin = require_admin(req, &self.tokens, &self.store).await?;
        let id = product_id(req)?;
        let input: ProductUpdateInput = json_body(req)?;
        let update = input.validate().map_err(|e| ApiError::invalid_fields(&e))?;
        let once = update_once(req, admin.user_id, id)?;
        let now = time::OffsetDateTime::now_utc();
        match self.store.update_product(id, &update, once.as_ref(), now).await {
            Ok(product) => {
                tracing::info!(product_id = %id, stock_adjustment = ?update.stock_adjustment, "product updated");
                Ok(json(StatusCode::OK, &product))
            }
            Err(UpdateProductError::KeyUsed { request_hash }) => {
                if once.is_none_or(|once| once.request_hash != request_hash) {
                    return Err(key_reused());
                }
                tracing::info!(product_id = %id, "product update repeated with its Idempotency-Key: not applied again");
                let product = self.store.get_product(id).await?.ok_or_else(|| ApiError::not_found("product"))?;
                Ok(json(StatusCode::OK, &product))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn delete(&self, req: &Request) -> Result<Response<Body>, ApiError> {
        require_admin(req, &self.tokens, &self.store).await?;
        let id = product_id(req)?;
        if !self.store.delete_product(id, time::OffsetDateTime::now_utc()).await? {
            return Err(ApiError::not_found("product"));
        }
        tracing::info!(product_id = %id, "product deleted");
        Ok(no_content())
    }
}
