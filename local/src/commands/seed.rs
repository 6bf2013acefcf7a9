//! Demo data, created through the API itself rather than written into the table.
//!
//! Going through the public endpoints means the seed exercises the same code paths a user
//! does (password hashing, validation) and can never drift from the data model: there is no second
//! writer of items to keep in sync. The one thing the API cannot do, making an admin, the seed does
//! the way an operator does it: the `shop-admin` command's code (`shop::admin::promote`), against
//! the table itself.

use anyhow::{Context, Result, bail};
use reqwest::StatusCode;
use serde_json::{Value, json};

use shop::store::dynamo::DynamoStore;

use crate::stack::{ADMIN_EMAIL, ADMIN_PASSWORD, Stack};

const PRODUCTS: &[(&str, &str, i64, i64)] = &[
    ("Espresso cup", "Double-walled glass, 80 ml", 1299, 25),
    ("Pour-over kettle", "Gooseneck, 1 l, stovetop", 4590, 10),
    ("Coffee beans", "Single origin, 250 g, medium roast", 1450, 40),
];

/// Signs up the admin (an existing account is fine) and promotes it, as an operator would.
pub async fn admin(stack: &Stack) -> Result<()> {
    let api = stack.api_url.as_deref().context("the stack serves no API")?;
    signup(api, ADMIN_EMAIL, ADMIN_PASSWORD, "Local Admin").await?;
    let table = stack.table_name.as_deref().context("the template has no table")?;
    let store = DynamoStore::new(crate::emulators::dynamodb_local::client(&stack.dynamodb_endpoint), table);
    shop::admin::promote(&store, ADMIN_EMAIL).await.context("promoting the local admin")?;
    Ok(())
}

/// Logs in as the admin and returns the bearer token.
pub async fn admin_token(api: &str) -> Result<String> {
    token(api, ADMIN_EMAIL, ADMIN_PASSWORD).await
}

/// Signs up an account (an existing one is fine).
pub async fn signup(api: &str, email: &str, password: &str, name: &str) -> Result<()> {
    let client = reqwest::Client::new();
    let url = format!("{api}/auth/signup");
    let response = client
        .post(&url)
        .json(&json!({ "email": email, "password": password, "name": name }))
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = response.status();
    if !(status.is_success() || status == StatusCode::CONFLICT) {
        bail!("POST {url} (sign-up of {email}) answered {status}: {}", response.text().await.unwrap_or_default());
    }
    Ok(())
}

/// Logs in and returns the bearer token.
pub async fn token(api: &str, email: &str, password: &str) -> Result<String> {
    let url = format!("{api}/auth/login");
    let response = reqwest::Client::new()
        .post(&url)
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("POST {url} (log-in of {email}) answered {status}: {body}");
    }
    let json: Value = serde_json::from_str(&body).with_context(|| format!("POST {url}: not JSON: {body}"))?;
    json.get("token")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("POST {url}: no token in {body}"))
}

/// Admin plus demo products (for `up`). Returns the number of products created.
pub async fn demo(stack: &Stack) -> Result<usize> {
    admin(stack).await?;
    let api = stack.api_url.as_deref().context("the stack serves no API")?;
    let token = admin_token(api).await?;
    let client = reqwest::Client::new();
    let url = format!("{api}/products");
    for (name, description, amount, stock) in PRODUCTS {
        let response = client
            .post(&url)
            .bearer_auth(&token)
            .json(&json!({
                "name": name,
                "description": description,
                "price": { "amount": amount, "currency": "EUR" },
                "stock": stock,
            }))
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = response.status();
        if !status.is_success() {
            bail!("POST {url} ({name}) answered {status}: {}", response.text().await.unwrap_or_default());
        }
    }
    Ok(PRODUCTS.len())
}
