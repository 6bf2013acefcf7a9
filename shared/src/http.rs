//! What every HTTP function shares: reading a JSON body safely, the caller's identity, the
//! API Gateway route, and turning a handler's `Result` into a Lambda HTTP response.
//!
//! API Gateway has already matched the route when a function runs, so a function with several
//! routes dispatches on the `routeKey` it was given (`"GET /products/{id}"`) instead of parsing
//! paths again.

use crate::auth::jwt::{Principal, Tokens};
use crate::error::ApiError;
use http::{HeaderValue, StatusCode, header};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response, service_fn};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use tracing::Instrument;

/// Request bodies above this are refused with 413 before parsing: nothing here needs more.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Parses the JSON body into `T`: 413 when too large, 400 `invalid_json` when it is not JSON,
/// 400 `invalid_body` when it is JSON of the wrong shape (missing field, wrong type, unknown field).
pub fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    json_from_bytes(raw_body(req)?)
}

/// The body exactly as received (API Gateway's base64 already undone): what signatures are over.
/// 413 when larger than [`MAX_BODY_BYTES`].
pub fn raw_body(req: &Request) -> Result<&[u8], ApiError> {
    let bytes: &[u8] = match req.body() {
        Body::Empty => b"",
        Body::Text(s) => s.as_bytes(),
        Body::Binary(b) => b,
        _ => b"",
    };
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body is larger than {MAX_BODY_BYTES} bytes"),
        ));
    }
    Ok(bytes)
}

/// Like [`json_body`], for bytes already read (and, for webhooks, already verified).
pub fn json_from_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("invalid_json", "a JSON request body is required"));
    }
    // serde would also build a struct from a JSON array; every body here is an object.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            Ok(_) => Err(ApiError::bad_request("invalid_body", "the request body must be a JSON object")),
            Err(e) => Err(ApiError::bad_request("invalid_json", format!("request body is not valid JSON: {e}"))),
        };
    }
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => ApiError::bad_request("invalid_body", e.to_string()),
            _ => ApiError::bad_request("invalid_json", format!("request body is not valid JSON: {e}")),
        }
    })
}

pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let body = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
    let mut resp = Response::new(Body::Text(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

pub fn no_content() -> Response<Body> {
    let mut resp = Response::new(Body::Empty);
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp
}

/// `"POST /products"` as API Gateway matched it, or `"METHOD /raw/path"` if absent.
pub fn route_key(req: &Request) -> String {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) if ctx.route_key.is_some() => ctx.route_key.clone().unwrap_or_default(),
        _ => format!("{} {}", req.method(), req.uri().path()),
    }
}

/// API Gateway's request id (what the client sees in `apigw-requestid`), else Lambda's.
pub fn request_id(req: &Request) -> String {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) if ctx.request_id.is_some() => {
            ctx.request_id.clone().unwrap_or_default()
        }
        _ => req.lambda_context_ref().map(|c| c.request_id.clone()).unwrap_or_default(),
    }
}

/// The ids of this request, for what it writes (see [`crate::trace`]): API Gateway's request id
/// and, when the function traces, X-Ray's trace id of the invocation.
pub fn trace(req: &Request) -> crate::trace::Trace {
    let xray = req.lambda_context_ref().and_then(|c| c.xray_trace_id.as_deref());
    crate::trace::Trace::new(request_id(req), xray)
}

/// The `Idempotency-Key` header, if present and valid (see
/// [`crate::domain::idempotency::IdempotencyKey::parse`]).
pub fn idempotency_key(req: &Request) -> Option<crate::domain::idempotency::IdempotencyKey> {
    req.headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .and_then(crate::domain::idempotency::IdempotencyKey::parse)
}

pub fn path_param(req: &Request, name: &str) -> Option<String> {
    req.path_parameters_ref().and_then(|p| p.first(name)).map(str::to_owned)
}

pub fn query_param(req: &Request, name: &str) -> Option<String> {
    req.query_string_parameters_ref().and_then(|q| q.first(name)).map(str::to_owned)
}

/// The id in path parameter `name`: a malformed id names nothing, so it is a 404 for `what`,
/// exactly like an unknown one.
pub fn path_id(req: &Request, name: &str, what: &str) -> Result<uuid::Uuid, ApiError> {
    path_param(req, name).and_then(|s| uuid::Uuid::parse_str(&s).ok()).ok_or_else(|| ApiError::not_found(what))
}

/// Items per page of a list when `limit` is absent, and the most a client may ask for.
pub const DEFAULT_PAGE_SIZE: u32 = 20;
pub const MAX_PAGE_SIZE: u32 = 100;

/// The `limit` query parameter of a list: 1 to [`MAX_PAGE_SIZE`], default [`DEFAULT_PAGE_SIZE`].
pub fn page_size(req: &Request) -> Result<u32, ApiError> {
    match query_param(req, "limit") {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(raw) => raw.parse::<u32>().ok().filter(|n| (1..=MAX_PAGE_SIZE).contains(n)).ok_or_else(|| {
            ApiError::bad_request("invalid_limit", format!("limit must be an integer from 1 to {MAX_PAGE_SIZE}"))
        }),
    }
}

/// The caller a valid `Authorization: Bearer <jwt>` names: 401 without one. Whether that
/// session is still open is [`crate::auth::session::signed_in`]'s: routes use that.
pub fn authenticate(req: &Request, tokens: &Tokens) -> Result<Principal, ApiError> {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("sign in first: the Authorization header is missing"))?;
    let token = header
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .ok_or_else(|| ApiError::unauthorized("the Authorization header must be `Bearer <token>`"))?;
    let principal =
        tokens.verify(token.trim()).ok_or_else(|| ApiError::unauthorized("the token is invalid or expired"))?;
    tracing::Span::current().record("user_id", tracing::field::display(principal.user_id));
    Ok(principal)
}

/// 403 unless the caller is an admin now; see [`crate::auth::session`].
pub use crate::auth::session::require_admin;

/// A function's request handling, built once at cold start and shared by every invocation.
pub trait HttpHandler: Send + Sync + 'static {
    fn handle(&self, req: Request) -> impl Future<Output = Result<Response<Body>, ApiError>> + Send;

    /// The business metrics of one answer (see [`crate::metrics`]): its status and, for an
    /// error, its code. Most routes count nothing here.
    fn count(&self, _status: StatusCode, _code: Option<&'static str>) {}
}

/// Runs the Lambda HTTP loop around `app`: one span per request carrying the request id, X-Ray's
/// trace id (when tracing), the route and (once known) user id; errors become the JSON error
/// shape with the request id.
///
/// **Run it on a `current_thread` runtime** (`#[tokio::main(flavor = "current_thread")]`, as every
/// HTTP function's `main` does). An instance handles one invocation at a time and its work is a
/// chain of waits (event, SDK calls, response): on the default multi-thread runtime, `main`'s
/// future (this loop) runs on the main thread while the workers own the sockets, so every hop
/// — event read, each SDK call's request and answer, the response — is a futex wake-up from one
/// thread to another, each of which may wait for a core, and a thaw (SIGCONT) wakes three threads
/// instead of one. `cargo local bench`, c=1, 2 and 3 runs on 2 busy shared cores: the function's
/// CPU per `GET /products/{id}` 1.28–1.40 → 0.99–1.20 ms, its wait for a core 1.15–1.46 →
/// 0.49–0.69 ms, its own time 1.64–1.66 → 1.31–1.55 ms; `PUT` 2.28–2.51 → 1.81–1.92 ms of CPU;
/// `POST /orders` 2.55–2.89 → 2.34–2.50 ms. CPU-bound work (argon2) goes to `spawn_blocking`,
/// which a `current_thread` runtime has too.
pub async fn serve<A: HttpHandler>(app: A) -> Result<(), lambda_http::Error> {
    let app = std::sync::Arc::new(app);
    lambda_http::run(service_fn(move |req: Request| {
        let app = app.clone();
        async move {
            let request_id = request_id(&req);
            let trace_id = trace(&req).trace_id;
            let route = route_key(&req);
            let span = tracing::info_span!("request", %request_id, trace_id, %route, user_id = tracing::field::Empty);
            async move {
                let mut resp = match app.handle(req).await {
                    Ok(resp) => {
                        app.count(resp.status(), None);
                        resp
                    }
                    Err(err) => {
                        app.count(err.status, Some(err.code));
                        if err.status.is_server_error() {
                            tracing::error!(status = err.status.as_u16(), code = err.code, "request failed");
                        } else {
                            tracing::info!(status = err.status.as_u16(), code = err.code, "request refused");
                        }
                        let mut resp = json(err.status, &err.body(&request_id));
                        if let Some(v) = err.retry_after.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
                            resp.headers_mut().insert(http::header::RETRY_AFTER, v);
                        }
                        resp
                    }
                };
                if let Ok(v) = HeaderValue::from_str(&request_id) {
                    resp.headers_mut().insert("x-request-id", v);
                }
                tracing::info!(status = resp.status().as_u16(), "request done");
                crate::metrics::flush(&request_id);
                Ok::<_, std::convert::Infallible>(resp)
            }
            .instrument(span)
            .await
        }
    }))
    .await
}
