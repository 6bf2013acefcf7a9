//! The catalog: `GET /products` (paginated), `GET /products/{id}` for anyone;
//! `POST /products`, `PUT /products/{id}`, `DELETE /products/{id}` for admins.
//!
//! `PUT` changes name, description or price, and moves stock only by a signed
//! `stock_adjustment`, applied as the conditional adjust of `docs/data-model.md` ("Product
//! stock"): an admin can add units at any time and remove only units nobody has reserved.
//! `stock_buckets` (on `POST` and `PUT`) spreads the stock over that many items for a hot product
//! (`domain::buckets`); the store moves the units, reads show the sum.

use crate::auth::jwt::Tokens;
use crate::domain::product::{NewProductInput, Product, ProductUpdateInput};
use crate::domain::stock::Stock;
use crate::error::ApiError;
use crate::http::{json, json_body, no_content, page_size, path_id, query_param, require_admin, route_key};
use crate::store::{ProductStore, SessionStore, UpdateProductError};
use http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::json;
use uuid::Uuid;

impl From<UpdateProductError> for ApiError {
    fn from(e: UpdateProductError) -> Self {
        match e {
            UpdateProductError::NotFound => ApiError::not_found("product"),
            UpdateProductError::InsufficientStock { sellable } => {
                ApiError::conflict("insufficient_stock", format!("only {sellable} unreserved units can be removed"))
                    .with_details(json!({ "sellable": sellable }))
            }
            UpdateProductError::Store(cause) => cause.into(),
        }
    }
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
        require_admin(req, &self.tokens, &self.store).await?;
        let id = product_id(req)?;
        let input: ProductUpdateInput = json_body(req)?;
        let update = input.validate().map_err(|e| ApiError::invalid_fields(&e))?;
        let product = self.store.update_product(id, &update, time::OffsetDateTime::now_utc()).await?;
        tracing::info!(product_id = %id, stock_adjustment = ?update.stock_adjustment, "product updated");
        Ok(json(StatusCode::OK, &product))
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
