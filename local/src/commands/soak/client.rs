//! The soak's HTTP client: what a well-behaved client of the shop does, and a record of it.
//!
//! A `5xx` (a `503 unavailable`, a `500`/`502` from an instance that died, a `504`) or a request
//! that got no answer in time is retried, the same request again (the same `Idempotency-Key` for
//! `POST /orders`), after a backoff that doubles from 100 ms up to 3 s with jitter, for up to
//! [`GIVE_UP_AFTER`]. Every answer is counted per route; a request still failing when the client
//! gives up is kept for the reconcile ("every 5xx a client saw was retried to an answer").
//!
//! A failed attempt is *ambiguous* when the client cannot tell whether the server applied it: a
//! dead instance or a timeout may come after the commit. A `503` whose body says `unavailable` is
//! the shop's own "nothing was done, retry". The reconcile needs the count for requests that are
//! not idempotent (a stock adjustment).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use rand::Rng;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// How long a client keeps retrying one request before it gives up.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(90);
/// One attempt's limit (the API functions' timeout is 10 s).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub api: String,
    log: Arc<Mutex<Log>>,
    started: Instant,
}

/// One request's end.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    /// Attempts that failed in a way that may have been applied (see the module docs).
    pub ambiguous: u32,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
}

#[derive(Default)]
pub struct Log {
    /// route → figures
    pub routes: BTreeMap<String, RouteFigures>,
    /// Requests still failing when the client gave up: `(seconds into the run, route, last status)`.
    pub gave_up: Vec<(f64, String, String)>,
}

#[derive(Default, Clone)]
pub struct RouteFigures {
    pub requests: u64,
    pub attempts: u64,
    /// Attempts answered 5xx or not at all.
    pub failed_attempts: u64,
    /// Requests that saw at least one such attempt and then got an answer.
    pub retried_to_an_answer: u64,
    /// Final answers by status.
    pub answers: BTreeMap<u16, u64>,
}

impl Client {
    pub fn new(api: &str, started: Instant) -> Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .tcp_nodelay(true)
                .timeout(ATTEMPT_TIMEOUT)
                .build()?,
            api: api.to_owned(),
            log: Arc::default(),
            started,
        })
    }

    pub fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap()
    }

    /// Sends `method path` (with the token, the JSON body and the Idempotency-Key given) until it
    /// gets an answer below 500, or [`GIVE_UP_AFTER`]; `route` names it in the figures.
    pub async fn send(
        &self,
        route: &str,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Result<Answer> {
        let first = Instant::now();
        let mut backoff = Duration::from_millis(100);
        let (mut attempts, mut failed, mut ambiguous) = (0u64, 0u64, 0u32);
        loop {
            attempts += 1;
            let mut request = self.http.request(method.clone(), format!("{}{path}", self.api));
            if let Some(t) = token {
                request = request.bearer_auth(t);
            }
            if let Some(b) = body {
                request = request.json(b);
            }
            if let Some(k) = idempotency_key {
                request = request.header("idempotency-key", k);
            }
            let outcome = match request.send().await {
                Ok(r) => {
                    let status = r.status();
                    let bytes = r.bytes().await.unwrap_or_default();
                    Ok((status, serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null)))
                }
                Err(e) => Err(if e.is_timeout() { "timeout".to_owned() } else { format!("no answer: {e}") }),
            };
            let last = match outcome {
                Ok((status, body)) if !status.is_server_error() => {
                    self.record(route, attempts, failed, Some(status));
                    return Ok(Answer { status, body, ambiguous });
                }
                Ok((status, body)) => {
                    let unavailable =
                        status == StatusCode::SERVICE_UNAVAILABLE && body["error"]["code"] == "unavailable";
                    if !unavailable {
                        ambiguous += 1;
                    }
                    format!(
                        "{status} {}",
                        body["error"]["code"].as_str().unwrap_or_else(|| body["message"].as_str().unwrap_or(""))
                    )
                }
                Err(e) => {
                    ambiguous += 1;
                    e
                }
            };
            failed += 1;
            if first.elapsed() >= GIVE_UP_AFTER {
                self.record(route, attempts, failed, None);
                let at = self.started.elapsed().as_secs_f64();
                self.log().gave_up.push((at, format!("{route} {path}"), last.clone()));
                anyhow::bail!("{route} {path}: still failing after {attempts} attempts: {last}");
            }
            let jitter = rand::rng().random_range(0.5..1.0);
            tokio::time::sleep(backoff.mul_f64(jitter)).await;
            backoff = (backoff * 2).min(Duration::from_secs(3));
        }
    }

    fn record(&self, route: &str, attempts: u64, failed: u64, status: Option<StatusCode>) {
        let mut log = self.log();
        let figures = log.routes.entry(route.to_owned()).or_default();
        figures.requests += 1;
        figures.attempts += attempts;
        figures.failed_attempts += failed;
        if let Some(status) = status {
            if failed > 0 {
                figures.retried_to_an_answer += 1;
            }
            *figures.answers.entry(status.as_u16()).or_default() += 1;
        }
    }
}
