//! What the benchmarks need in the shop: customers, products, orders, and a look at the table.
//!
//! Customers are JWTs minted with the stack's own `JWT_SECRET`, issuer and audience, exactly as
//! the functions get them, by the shop's [`Tokens`](shop::auth::jwt::Tokens), each with its profile
//! item written straight to the table (signed-in requests check the account behind a token):
//! signing up 500 buyers would spend minutes in argon2 (deliberately slow) measuring nothing this
//! report is about. The admin who creates products is the seeded one (signed up, then
//! promoted like an operator does): admin writes check the stored role, not only the token's.
//! Products and orders go through the API, like a user's; checks read the table directly.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use aws_sdk_dynamodb::types::AttributeValue;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};
use shop::auth::jwt::Tokens;
use shop::domain::user::Role;
use shop::store::dynamo::keys;
use uuid::Uuid;

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
    /// Function binary file name → logical id (to tell the stack's processes apart).
    pub binaries: BTreeMap<String, String>,
    tokens: Tokens,
    admin: String,
}

impl<'a> Fixtures<'a> {
    pub async fn new(stack: &'a Stack) -> Result<Self> {
        let env = |var: &str| function_env(stack, var);
        let tokens =
            Tokens::new(&SecretString::from(env("JWT_SECRET")?.to_owned()), env("JWT_ISSUER")?, env("JWT_AUDIENCE")?);
        crate::commands::seed::admin(stack).await?;
        let admin =
            crate::commands::seed::admin_token(stack.api_url.as_deref().context("the stack serves no API")?).await?;
        Ok(Self {
            stack,
            api: stack.api_url.clone().context("the stack serves no API")?,
            // Many connections at once (the race opens one per buyer), no Nagle delay on loopback.
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(1024)
                .tcp_nodelay(true)
                .timeout(Duration::from_secs(120))
                .build()?,
            db: crate::emulators::dynamodb_local::client(&stack.dynamodb_endpoint),
            table: stack.table_name.clone().context("the template has no table")?,
            binaries: BTreeMap::new(),
            tokens,
            admin,
        })
    }

    /// The seeded admin's token (products are created, and changed, by the admin).
    pub fn admin_token(&self) -> &str {
        &self.admin
    }

    /// The seeded admin's user id (its stored role is what admin writes re-check).
    pub fn admin_id(&self) -> Result<Uuid> {
        self.tokens.verify(&self.admin).map(|p| p.user_id).context("the admin's token does not verify")
    }

    /// A variable as the functions get it (template + env.local.json).
    pub fn env(&self, var: &str) -> Result<&str> {
        function_env(self.stack, var)
    }

    /// Tokens of `n` new customers, each with an e-mail of their own and a profile in the table
    /// (signed-in requests check the account behind a token: `shop::auth::session`).
    pub async fn customers(&self, n: usize) -> Result<Vec<String>> {
        use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
        let minted: Vec<(String, shop::domain::user::User)> =
            (0..n).map(|_| mint(&self.tokens, Role::Customer, "bench-customer")).collect::<Result<_>>()?;
        for chunk in minted.chunks(25) {
            let writes = chunk
                .iter()
                .map(|(_, user)| {
                    let item = shop::store::dynamo::profile_item(user).map_err(|e| anyhow::anyhow!("{e}"))?;
                    Ok(WriteRequest::builder().put_request(PutRequest::builder().set_item(Some(item)).build()?).build())
                })
                .collect::<Result<Vec<_>>>()?;
            let mut pending = Some(HashMap::from([(self.table.clone(), writes)]));
            while let Some(items) = pending.take().filter(|m| m.values().any(|w| !w.is_empty())) {
                let out = self
                    .db
                    .batch_write_item()
                    .set_request_items(Some(items))
                    .send()
                    .await
                    .context("writing the benchmark customers' profiles")?;
                pending = out.unprocessed_items;
            }
        }
        Ok(minted.into_iter().map(|(token, _)| token).collect())
    }

    /// Creates a product with `units` in stock through the API; returns its id.
    pub async fn product(&self, name: &str, units: usize) -> Result<String> {
        self.product_in_buckets(name, units, 1).await
    }

    /// Creates a product with `units` in stock spread over `buckets` stock buckets.
    pub async fn product_in_buckets(&self, name: &str, units: usize, buckets: u16) -> Result<String> {
        let body = json!({
            "name": name,
            "price": { "amount": PRICE, "currency": "EUR" },
            "stock": units,
            "stock_buckets": buckets,
        });
        let r = self.http.post(format!("{}/products", self.api)).bearer_auth(&self.admin).json(&body).send().await?;
        let status = r.status();
        let body: Value = r.json().await.unwrap_or_default();
        body["id"].as_str().map(str::to_owned).with_context(|| format!("creating product {name}: {status} {body}"))
    }

    /// `POST /orders` of `quantity` × `product` with a fresh Idempotency-Key: status and body.
    pub async fn place_order(&self, token: &str, product: &str, quantity: u32) -> Result<(StatusCode, Value)> {
        self.place_order_keyed(token, product, quantity, &Uuid::new_v4().to_string()).await
    }

    async fn place_order_keyed(
        &self,
        token: &str,
        product: &str,
        quantity: u32,
        idempotency_key: &str,
    ) -> Result<(StatusCode, Value)> {
        let r = self
            .http
            .post(format!("{}/orders", self.api))
            .bearer_auth(token)
            .header("idempotency-key", idempotency_key)
            .json(&json!({ "lines": [{ "product_id": product, "quantity": quantity }] }))
            .send()
            .await
            .context("POST /orders")?;
        let status = r.status();
        Ok((status, r.json().await.unwrap_or_default()))
    }

    /// One unit of `product`, an order that must succeed: its JSON and its Idempotency-Key.
    pub async fn placed_order(&self, token: &str, product: &str) -> Result<Placed> {
        let idempotency_key = Uuid::new_v4().to_string();
        match self.place_order_keyed(token, product, 1, &idempotency_key).await? {
            (StatusCode::CREATED, order) => Ok(Placed { order, idempotency_key }),
            (status, body) => bail!("POST /orders answered {status}: {body}"),
        }
    }

    /// One item's attributes, read consistently, by its key (`keys::order(id)`, ...).
    pub async fn item<S: Into<String>>(&self, key: (String, S)) -> Result<Item> {
        let key = keys::key(key);
        let shown = |k: &str| key.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        let what = format!("{}/{}", shown(keys::PK), shown(keys::SK));
        self.db
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(aws_sdk_dynamodb::Error::from)?
            .item
            .with_context(|| format!("no item {what}"))
    }

    /// Sets the DynamoDB proxy's faults and limits (`POST /_local/dynamodb/faults`; `{}`: none).
    pub async fn set_dynamodb_faults(&self, faults: Value) -> Result<()> {
        let url = format!("{}/_local/dynamodb/faults", self.invoke_url()?);
        self.http.post(url).json(&faults).send().await?.error_for_status().context("setting DynamoDB faults")?;
        Ok(())
    }

    /// Zeroes the DynamoDB proxy's call counters (`POST /_local/dynamodb/stats/reset`).
    pub async fn reset_dynamodb_calls(&self) -> Result<()> {
        let url = format!("{}/_local/dynamodb/stats/reset", self.invoke_url()?);
        self.http.post(url).send().await?.error_for_status().context("resetting the DynamoDB call counts")?;
        Ok(())
    }

    /// `function`'s DynamoDB calls since the last reset, per operation and `total`, as the proxy
    /// counted them (`by_function` of `GET /_local/dynamodb/stats`).
    pub async fn dynamodb_calls(&self, function: &str) -> Result<BTreeMap<String, u64>> {
        let url = format!("{}/_local/dynamodb/stats", self.invoke_url()?);
        let stats: Value = self.http.get(url).send().await?.error_for_status()?.json().await?;
        let calls = stats["by_function"][function].as_object().cloned().unwrap_or_default();
        Ok(calls.into_iter().filter_map(|(op, n)| Some((op, n.as_u64()?))).collect())
    }

    fn invoke_url(&self) -> Result<&str> {
        self.stack.invoke_url.as_deref().context("the stack serves no Invoke API")
    }

    /// A product's stock `(available, reserved, sellable)`, summed over its stock buckets, from
    /// the table; an error if one bucket breaks `0 <= reserved <= available`.
    pub async fn stock(&self, product: &str) -> Result<(i64, i64, i64)> {
        let id = uuid(product)?;
        let first = self.item(keys::product(id)).await?;
        let n = |item: &Item, k: &str| -> Result<i64> {
            item.get(k).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()).with_context(|| format!("no {k}"))
        };
        let slots = n(&first, "bucket_slots").unwrap_or(1);
        let mut total = (0, 0, 0);
        for k in 0..u16::try_from(slots)? {
            let item = if k == 0 { first.clone() } else { self.item(keys::stock_bucket(id, k)).await? };
            let s = (n(&item, "available_stock")?, n(&item, "reserved_stock")?, n(&item, "sellable_stock")?);
            if !(0 <= s.1 && s.1 <= s.0 && s.2 == s.0 - s.1) {
                bail!("product {product} bucket {k}: stock invariant broken: {s:?}");
            }
            total = (total.0 + s.0, total.1 + s.1, total.2 + s.2);
        }
        Ok(total)
    }
}

/// A table item.
pub type Item = HashMap<String, AttributeValue>;

/// An order placed by [`Fixtures::placed_order`].
pub struct Placed {
    /// The order's JSON, as `POST /orders` answered it.
    pub order: Value,
    pub idempotency_key: String,
}

impl Placed {
    pub fn id(&self) -> Result<Uuid> {
        uuid(self.order["id"].as_str().context("order without id")?)
    }
}

/// An id as the API shows it.
pub fn uuid(id: &str) -> Result<Uuid> {
    Uuid::parse_str(id).with_context(|| format!("{id:?} is not a UUID"))
}

fn function_env<'s>(stack: &'s Stack, var: &str) -> Result<&'s str> {
    stack
        .function_env
        .values()
        .find_map(|env| env.get(var))
        .map(String::as_str)
        .with_context(|| format!("no function gets {var} (template.yaml / env.local.json)"))
}

fn mint(tokens: &Tokens, role: Role, tag: &str) -> Result<(String, shop::domain::user::User)> {
    let id = Uuid::new_v4();
    let email = format!("{tag}-{}@bench.shop.local", id.simple());
    let now = time::OffsetDateTime::now_utc();
    let token = tokens.issue(id, role, &email, 0, now.unix_timestamp()).context("minting a token")?;
    let email = shop::domain::user::Email::parse(&email).map_err(anyhow::Error::msg)?;
    Ok((token, shop::domain::user::User { id, email, name: String::new(), role, created_at: now }))
}
