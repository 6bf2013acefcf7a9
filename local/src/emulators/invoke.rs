//! The Lambda Invoke API (`cargo local invoke`, the Docker-free twin of `sam local invoke`, is
//! [`crate::commands::invoke`], a client of it).
//!
//! The stack serves the Invoke API on its own port (printed by `up`, `SHOP_INVOKE_URL` in
//! tests), with the same path and error convention as Lambda, so an SDK client pointed at it
//! (`AWS_ENDPOINT_URL_LAMBDA`) works unchanged:
//!
//! * `POST /2015-03-31/functions/{LogicalId}/invocations`, body = event → body = result;
//!   a function error is still HTTP 200, flagged by `X-Amz-Function-Error: Unhandled`;
//!   `X-Amz-Invocation-Type: Event` queues it and answers 202 at once;
//! * `GET /_local/functions`: per function, instances, init times (`init_ms`), each live
//!   instance's peak RSS (`peak_rss_kib`) and invocation counts;
//! * `POST /_local/functions/{LogicalId}/crash` `{"after_ms": n}`: the function's next invocation
//!   crashes (see [`crate::emulators::runtime_api::Pool::arm_crash`]);
//! * `POST /_local/functions/{LogicalId}/stall` `{"after_ms": n, "for_ms": m}`: the function's
//!   next invocation stands still for `m` ms — slow, or past its `Timeout` timed out (see
//!   [`crate::emulators::runtime_api::Pool::arm_stall`]);
//! * `POST /_local/functions/{LogicalId}/retire`: the function's idle instances stop, so its next
//!   invocation is a cold start (what a redeploy or an idle reclaim does: e.g. for a test that
//!   changed what a function reads at cold start; see
//!   [`crate::emulators::runtime_api::Pool::retire_idle`]);
//! * `/_local/dynamodb/stats` and `/_local/dynamodb/faults`: the functions' DynamoDB calls per
//!   operation, and fault injection (see [`crate::emulators::dynamodb_proxy`]; merged in by `stack`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::emulators::runtime_api::{Outcome, Pool};

type Pools = Arc<BTreeMap<String, Arc<Pool>>>;

pub fn router(pools: BTreeMap<String, Arc<Pool>>) -> Router {
    Router::new()
        .route("/2015-03-31/functions/{name}/invocations", post(invoke))
        .route("/_local/functions", get(functions))
        .route("/_local/functions/{name}/crash", post(crash))
        .route("/_local/functions/{name}/stall", post(stall))
        .route("/_local/functions/{name}/retire", post(retire))
        .with_state(Arc::new(pools))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Crash {
    after_ms: u64,
}

async fn crash(State(pools): State<Pools>, Path(name): Path<String>, axum::Json(c): axum::Json<Crash>) -> Response {
    match pools.get(&name) {
        Some(pool) => {
            pool.arm_crash(Duration::from_millis(c.after_ms));
            axum::Json(json!({ "function": name, "crash_after_ms": c.after_ms })).into_response()
        }
        None => (StatusCode::NOT_FOUND, format!("no function {name}")).into_response(),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Stall {
    after_ms: u64,
    for_ms: u64,
}

async fn stall(State(pools): State<Pools>, Path(name): Path<String>, axum::Json(s): axum::Json<Stall>) -> Response {
    match pools.get(&name) {
        Some(pool) => {
            pool.arm_stall(Duration::from_millis(s.after_ms), Duration::from_millis(s.for_ms));
            axum::Json(json!({ "function": name, "stall_after_ms": s.after_ms, "stall_for_ms": s.for_ms }))
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, format!("no function {name}")).into_response(),
    }
}

async fn retire(State(pools): State<Pools>, Path(name): Path<String>) -> Response {
    match pools.get(&name) {
        Some(pool) => {
            pool.retire_idle().await;
            axum::Json(json!({ "function": name, "retired": "idle instances" })).into_response()
        }
        None => (StatusCode::NOT_FOUND, format!("no function {name}")).into_response(),
    }
}

async fn functions(State(pools): State<Pools>) -> Response {
    let stats: serde_json::Map<_, _> = pools.iter().map(|(k, p)| (k.clone(), p.stats())).collect();
    axum::Json(stats).into_response()
}

async fn invoke(State(pools): State<Pools>, Path(name): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    // Accept a logical id, or an ARN / qualified name ending in it.
    let id = name.rsplit(':').find(|part| pools.contains_key(*part)).unwrap_or(&name);
    let Some(pool) = pools.get(id).cloned() else {
        return (
            StatusCode::NOT_FOUND,
            [("x-amzn-errortype", "ResourceNotFoundException")],
            axum::Json(json!({ "Type": "User", "Message": format!("Function not found: {name}") })),
        )
            .into_response();
    };
    let payload = if body.is_empty() { Bytes::from_static(b"{}") } else { body };
    match headers.get("x-amz-invocation-type").and_then(|v| v.to_str().ok()) {
        Some("Event") => {
            tokio::spawn(async move { pool.invoke(payload).await });
            return StatusCode::ACCEPTED.into_response();
        }
        Some("DryRun") => return StatusCode::NO_CONTENT.into_response(),
        _ => {}
    }
    let (body, error) = match pool.invoke(payload).await {
        Outcome::Success(b) => (b, false),
        Outcome::FunctionError(b) => (b, true),
        Outcome::Failed { error_type, message } => (Outcome::failure_body(error_type, &message), true),
    };
    let mut response =
        (StatusCode::OK, [("x-amz-executed-version", "$LATEST"), ("content-type", "application/json")], body)
            .into_response();
    if error {
        response.headers_mut().insert("x-amz-function-error", "Unhandled".parse().expect("valid header"));
    }
    response
}

/// Result of one invocation as the CLI reports it.
pub struct Invoked {
    pub body: Bytes,
    pub function_error: bool,
}

/// Posts an event to a running stack's Invoke API.
pub async fn remote(base_url: &str, function: &str, event: Bytes) -> Result<Invoked> {
    let url = format!("{}/2015-03-31/functions/{function}/invocations", base_url.trim_end_matches('/'));
    let response = reqwest::Client::new().post(&url).body(event).send().await.with_context(|| format!("POST {url}"))?;
    let status = response.status();
    let function_error = response.headers().contains_key("x-amz-function-error");
    let body = response.bytes().await?;
    if !status.is_success() {
        bail!("POST {url}: {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(Invoked { body, function_error })
}

/// Invokes a pool of a stack started just for this call.
pub async fn local(pool: &Pool, event: Bytes) -> Invoked {
    match pool.invoke(event).await {
        Outcome::Success(body) => Invoked { body, function_error: false },
        Outcome::FunctionError(body) => Invoked { body, function_error: true },
        Outcome::Failed { error_type, message } => {
            Invoked { body: Outcome::failure_body(error_type, &message), function_error: true }
        }
    }
}
