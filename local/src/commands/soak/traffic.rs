//! The soak's traffic: every planned customer as a task of its own, doing whole journeys through
//! the public API with [`Client`] (retrying as a real client does), and the admin changing the
//! catalog at the planned times. What each one saw is kept for the reconcile: the orders it placed
//! (with when and how the journey meant to end), the stock adjustments that were applied (or may
//! have been), and every answer the API is not documented to give.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use super::client::{Answer, Client};
use super::plan::{AdminChange, CustomerSpec, Ending, Journey, Plan, Token};

pub const PASSWORD: &str = "soak-password-0123";

/// What the traffic did and saw.
#[derive(Default)]
pub struct Records {
    pub customers: Vec<CustomerRecord>,
    pub adjustments: Vec<Adjustment>,
    /// Answers the API is not documented to give: `(seconds into the run, what)`.
    pub unexpected: Vec<(f64, String)>,
    /// `POST /orders` refused with 409, by code (`out_of_stock`, `price_changed`).
    pub refused_orders: std::collections::BTreeMap<String, u64>,
    /// Admin changes applied, by kind.
    pub admin_changes: std::collections::BTreeMap<&'static str, u64>,
}

pub struct CustomerRecord {
    pub email: String,
    pub refused: bool,
    pub signed_up: bool,
    pub orders: Vec<OrderRecord>,
}

pub struct OrderRecord {
    pub id: Uuid,
    /// Seconds into the run when it was placed.
    pub at: f64,
    pub ending: Ending,
}

/// A stock adjustment the admin asked for: `applied` when it was answered 200; `ambiguous`
/// attempts (an instance died, a timeout) were retried with the same `Idempotency-Key`, so they
/// apply at most once.
pub struct Adjustment {
    pub product: usize,
    pub delta: i64,
    pub applied: bool,
    pub ambiguous: u32,
}

/// Everything a task needs, shared.
pub struct Traffic {
    pub client: Client,
    pub plan: Arc<Plan>,
    /// The products' ids, in the plan's order.
    pub products: Vec<String>,
    pub invoke: String,
    pub admin_token: String,
    pub started: Instant,
    /// Unique per run, in every address (a stack shared with the test suite has other customers).
    pub tag: String,
    pub records: Mutex<Records>,
}

impl Traffic {
    fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    async fn until(&self, offset: Duration) {
        tokio::time::sleep_until((self.started + offset).into()).await;
    }

    fn unexpected(&self, what: String) {
        let at = self.now();
        tracing::warn!("soak: unexpected answer at {at:.1}s: {what}");
        self.records.lock().unwrap().unexpected.push((at, what));
    }

    /// Checks an answer against the statuses the route may give; an unexpected one is recorded.
    fn expect(&self, what: &str, answer: &Answer, allowed: &[StatusCode]) -> bool {
        let ok = allowed.contains(&answer.status);
        if !ok {
            self.unexpected(format!("{what} answered {} {}", answer.status, answer.body));
        }
        ok
    }

    /// Runs every customer and the admin to the end of their plans.
    pub async fn run(self: Arc<Self>) {
        let mut tasks = Vec::new();
        for (i, spec) in self.plan.customers.iter().enumerate() {
            let traffic = self.clone();
            let spec = spec.clone();
            tasks.push(tokio::spawn(async move { traffic.customer(i, spec).await }));
        }
        let traffic = self.clone();
        tasks.push(tokio::spawn(async move { traffic.admin().await }));
        for task in tasks {
            if let Err(e) = task.await {
                self.unexpected(format!("a traffic task failed: {e}"));
            }
        }
    }

    async fn customer(&self, index: usize, spec: CustomerSpec) {
        let Some(first) = spec.journeys.first() else { return };
        let kind = if spec.refused { "refused" } else { "soak" };
        let email = format!("{kind}-{index}-{}@soak.shop.local", self.tag);
        self.until(first.start.saturating_sub(Duration::from_secs(2))).await;
        let mut record =
            CustomerRecord { email: email.clone(), refused: spec.refused, signed_up: false, orders: vec![] };
        match self.sign_up(&email, spec.refused).await {
            Ok(Some(token)) => {
                record.signed_up = true;
                for journey in &spec.journeys {
                    self.until(journey.start).await;
                    if let Err(e) = self.journey(&token, journey, &mut record.orders).await {
                        self.unexpected(format!("{email}: {e:#}"));
                    }
                }
            }
            Ok(None) => {}
            Err(e) => self.unexpected(format!("{email}: {e:#}")),
        }
        self.records.lock().unwrap().customers.push(record);
    }

    async fn sign_up(&self, email: &str, refused: bool) -> Result<Option<String>> {
        if refused {
            let url = format!("{}/_local/ses/refusals", self.invoke);
            self.client.http.post(url).json(&json!({ "address": email })).send().await?.error_for_status()?;
        }
        let body = json!({ "email": email, "password": PASSWORD, "name": "Soak Customer" });
        let a = self.client.send("POST /auth/signup", Method::POST, "/auth/signup", None, Some(&body), None).await?;
        // 409: a first attempt that died after its commit signed the address up.
        let allowed: &[StatusCode] =
            if a.ambiguous > 0 { &[StatusCode::CREATED, StatusCode::CONFLICT] } else { &[StatusCode::CREATED] };
        if !self.expect(&format!("sign-up of {email}"), &a, allowed) {
            return Ok(None);
        }
        let body = json!({ "email": email, "password": PASSWORD });
        let a = self.client.send("POST /auth/login", Method::POST, "/auth/login", None, Some(&body), None).await?;
        if !self.expect(&format!("log-in of {email}"), &a, &[StatusCode::OK]) {
            return Ok(None);
        }
        Ok(Some(a.body["token"].as_str().context("no token in the log-in answer")?.to_owned()))
    }

    /// Browse, fill the cart or not, order (kept in `orders` as soon as it is placed), and end as
    /// planned.
    async fn journey(&self, token: &str, j: &Journey, orders: &mut Vec<OrderRecord>) -> Result<()> {
        let c = &self.client;
        let t = Some(token);
        let a = c.send("GET /products", Method::GET, "/products?limit=20", None, None, None).await?;
        self.expect("GET /products", &a, &[StatusCode::OK]);
        for &p in &j.browse {
            let path = format!("/products/{}", self.products[p]);
            let a = c.send("GET /products/{id}", Method::GET, &path, None, None, None).await?;
            self.expect(&format!("GET {path}"), &a, &[StatusCode::OK]);
            tokio::time::sleep(j.think).await;
        }
        let key = j.idempotency_key.to_string();
        let placed = if j.via_cart {
            for &(p, quantity) in &j.lines {
                let path = format!("/cart/items/{}", self.products[p]);
                let body = json!({ "quantity": quantity });
                let a = c.send("PUT /cart/items/{id}", Method::PUT, &path, t, Some(&body), None).await?;
                self.expect(&format!("PUT {path}"), &a, &[StatusCode::OK, StatusCode::CREATED]);
            }
            c.send("POST /orders", Method::POST, "/orders", t, None, Some(&key)).await?
        } else {
            let lines: Vec<Value> =
                j.lines.iter().map(|&(p, q)| json!({ "product_id": self.products[p], "quantity": q })).collect();
            let body = json!({ "lines": lines });
            c.send("POST /orders", Method::POST, "/orders", t, Some(&body), Some(&key)).await?
        };
        // 409 out_of_stock, or price_changed (the admin repriced since the page was shown): the
        // customer gives up on this one.
        if placed.status == StatusCode::CONFLICT && matches!(placed.code(), "out_of_stock" | "price_changed") {
            *self.records.lock().unwrap().refused_orders.entry(placed.code().to_owned()).or_default() += 1;
            if j.via_cart {
                // Leave no lines behind for the next journey's cart.
                for &(p, _) in &j.lines {
                    let path = format!("/cart/items/{}", self.products[p]);
                    let a = c.send("DELETE /cart/items/{id}", Method::DELETE, &path, t, None, None).await?;
                    self.expect(&format!("DELETE {path}"), &a, &[StatusCode::NO_CONTENT, StatusCode::NOT_FOUND]);
                }
            }
            return Ok(());
        }
        // 200: the same key again, after an attempt that had in fact placed it.
        if !self.expect("POST /orders", &placed, &[StatusCode::CREATED, StatusCode::OK]) {
            return Ok(());
        }
        let id: Uuid = placed.body["id"].as_str().context("an order without id")?.parse()?;
        orders.push(OrderRecord { id, at: self.now(), ending: j.ending });
        tokio::time::sleep(j.think).await;
        match j.ending {
            Ending::Pay(token_kind) => self.pay(token, id, token_kind).await?,
            Ending::Cancel => self.cancel(token, id).await?,
            Ending::LetExpire => {}
            Ending::PayDelayedThenCancel => {
                self.pay(token, id, Token::Delay).await?;
                self.cancel(token, id).await?;
            }
            Ending::PayRacingCancel => {
                let (paid, cancelled) = tokio::join!(self.pay(token, id, Token::Success), self.cancel(token, id));
                paid?;
                cancelled?;
            }
        }
        // The customer looks at the order once more, as the storefront does.
        let path = format!("/orders/{id}");
        let a = c.send("GET /orders/{id}", Method::GET, &path, t, None, None).await?;
        self.expect(&format!("GET {path}"), &a, &[StatusCode::OK]);
        Ok(())
    }

    async fn pay(&self, token: &str, order: Uuid, kind: Token) -> Result<()> {
        let body = json!({ "order_id": order, "token": kind.as_str() });
        let a = self.client.send("POST /payments", Method::POST, "/payments", Some(token), Some(&body), None).await?;
        // 422: not payable any more (expired, cancelled first) or declined.
        self.expect(
            &format!("paying {order} with {}", kind.as_str()),
            &a,
            &[StatusCode::OK, StatusCode::ACCEPTED, StatusCode::UNPROCESSABLE_ENTITY],
        );
        Ok(())
    }

    async fn cancel(&self, token: &str, order: Uuid) -> Result<()> {
        let path = format!("/orders/{order}/cancel");
        let a = self.client.send("POST /orders/{id}/cancel", Method::POST, &path, Some(token), None, None).await?;
        // 422 not_cancellable: paid, failed or expired first.
        self.expect(&format!("cancelling {order}"), &a, &[StatusCode::OK, StatusCode::UNPROCESSABLE_ENTITY]);
        Ok(())
    }

    async fn admin(&self) {
        for action in &self.plan.admin {
            self.until(action.at).await;
            let path = format!("/products/{}", self.products[action.product]);
            let (kind, body) = match action.change {
                AdminChange::Restock(n) => ("restock", json!({ "stock_adjustment": n })),
                AdminChange::Reprice(cents) => ("reprice", json!({ "price": { "amount": cents, "currency": "EUR" } })),
                AdminChange::Rebucket(k) => ("rebucket", json!({ "stock_buckets": k })),
            };
            let t = Some(self.admin_token.as_str());
            // One key per change, kept across its retries: a restock that died after its commit
            // is not applied again (docs: PUT /products/{id}).
            let key = uuid::Uuid::new_v4().to_string();
            let sent = self.client.send("PUT /products/{id}", Method::PUT, &path, t, Some(&body), Some(&key)).await;
            let a = match sent {
                Ok(a) => a,
                Err(e) => {
                    if let AdminChange::Restock(delta) = action.change {
                        // Given up on (a break of its own): it may have been applied once.
                        let adjustment = Adjustment { product: action.product, delta, applied: false, ambiguous: 1 };
                        self.records.lock().unwrap().adjustments.push(adjustment);
                    }
                    self.unexpected(format!("admin {kind} of {path}: {e:#}"));
                    continue;
                }
            };
            // 409: a stock adjustment below the reserved units is refused.
            let refused = a.status == StatusCode::CONFLICT && a.code() == "insufficient_stock";
            if !refused && !self.expect(&format!("admin {kind} {body} of {path}"), &a, &[StatusCode::OK]) {
                continue;
            }
            let mut records = self.records.lock().unwrap();
            if a.status == StatusCode::OK {
                *records.admin_changes.entry(kind).or_default() += 1;
            }
            if let AdminChange::Restock(delta) = action.change {
                records.adjustments.push(Adjustment {
                    product: action.product,
                    delta,
                    applied: a.status == StatusCode::OK,
                    ambiguous: a.ambiguous,
                });
            }
        }
    }
}
