//! What the benchmarks need in the shop: customers, products, orders, and a look at the table.
//!
//! Customers (and the admin who creates products) are JWTs minted with the stack's own
//! `JWT_SECRET`, issuer and audience, exactly as the functions get them, by the shop's
//! [`Tokens`]: a token is all the functions know of their caller, and signing up 500 buyers
//! would spend minutes in argon2 (deliberately slow) measuring nothing this report is about.
//! Products and orders go through the API, like a user's; checks read the table directly.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use aws_sdk_dynamodb::types::AttributeValue;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};
use shop::auth::jwt::Tokens;
use shop::domain::user::Role;

use crate::stack::Stack;

/// Price of every benchmark product, in EUR cents.
pub const PRICE: i64 = 1450;

pub struct Fixtures<'a> {
    pub stack: &'a Stack,
    pub api: String,
    pub http: reqwest::Client,
    /// DynamoDB Local itself (not the proxy: these calls are neither counted nor faulted).
    pub db: aws_sdk_dynamodb::Client,
    pub table: String,
    tokens: Tokens,
    admin: String,
}

impl<'a> Fixtures<'a> {
    pub fn new(stack: &'a Stack) -> Result<Self> {
        let env = |var: &str| function_env(stack, var);
        let tokens =
            Tokens::new(&SecretString::from(env("JWT_SECRET")?.to_owned()), env("JWT_ISSUER")?, env("JWT_AUDIENCE")?);
        let admin = mint(&tokens, Role::Admin, "bench-admin")?;
        Ok(Self {
            stack,
            api: stack.api_url.clone().context("the stack serves no API")?,
            // Many connections at once (the race opens one per buyer), no Nagle delay on loopback.
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(1024)
                .tcp_nodelay(true)
                .timeout(Duration::from_secs(120))
                .build()?,
            db: crate::dynamodb_local::client(&stack.dynamodb_endpoint),
            table: stack.table_name.clone().context("the template has no table")?,
            tokens,
            admin,
        })
    }

    /// A variable as the functions get it (template + env.local.json).
    pub fn env(&self, var: &str) -> Result<&str> {
        function_env(self.stack, var)
    }

    /// Tokens of `n` new customers, each with an e-mail of their own.
    pub fn customers(&self, n: usize) -> Result<Vec<String>> {
        (0..n).map(|_| mint(&self.tokens, Role::Customer, "bench-customer")).collect()
    }

    /// Creates a product with `units` in stock through the API; returns its id.
    pub async fn product(&self, name: &str, units: usize) -> Result<String> {
        let r = self
            .http
            .post(format!("{}/products", self.api))
            .bearer_auth(&self.admin)
            .json(&json!({ "name": name, "price": { "amount": PRICE, "currency": "EUR" }, "stock": units }))
            .send()
            .await?;
        let status = r.status();
        let body: Value = r.json().await.unwrap_or_default();
        body["id"].as_str().map(str::to_owned).with_context(|| format!("creating product {name}: {status} {body}"))
    }

    /// `POST /orders` of `quantity` × `product` with a fresh Idempotency-Key: status and body.
    pub async fn place_order(&self, token: &str, product: &str, quantity: u32) -> Result<(StatusCode, Value)> {
        let r = self
            .http
            .post(format!("{}/orders", self.api))
            .bearer_auth(token)
            .header("idempotency-key", uuid::Uuid::new_v4().to_string())
            .json(&json!({ "lines": [{ "product_id": product, "quantity": quantity }] }))
            .send()
            .await
            .context("POST /orders")?;
        let status = r.status();
        Ok((status, r.json().await.unwrap_or_default()))
    }

    /// Like [`Self::place_order`], for orders that must succeed: the order's JSON.
    pub async fn placed_order(&self, token: &str, product: &str) -> Result<Value> {
        match self.place_order(token, product, 1).await? {
            (StatusCode::CREATED, order) => Ok(order),
            (status, body) => bail!("POST /orders answered {status}: {body}"),
        }
    }

    /// One item's attributes, read consistently.
    pub async fn item(&self, pk: String, sk: &str) -> Result<std::collections::HashMap<String, AttributeValue>> {
        self.db
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.clone()))
            .key("sk", AttributeValue::S(sk.into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(aws_sdk_dynamodb::Error::from)?
            .item
            .with_context(|| format!("no item {pk}/{sk}"))
    }

    /// A product's stock `(available, reserved, sellable)`, from the table.
    pub async fn stock(&self, product: &str) -> Result<(i64, i64, i64)> {
        let item = self.item(format!("PRODUCT#{product}"), "PRODUCT").await?;
        let n = |k: &str| -> Result<i64> {
            item.get(k).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()).with_context(|| format!("no {k}"))
        };
        Ok((n("available_stock")?, n("reserved_stock")?, n("sellable_stock")?))
    }
}

fn function_env<'s>(stack: &'s Stack, var: &str) -> Result<&'s str> {
    stack
        .function_env
        .values()
        .find_map(|env| env.get(var))
        .map(String::as_str)
        .with_context(|| format!("no function gets {var} (template.yaml / env.local.json)"))
}

fn mint(tokens: &Tokens, role: Role, tag: &str) -> Result<String> {
    let id = uuid::Uuid::new_v4();
    let email = format!("{tag}-{}@bench.shop.local", id.simple());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    tokens.issue(id, role, &email, now).context("minting a token")
}
