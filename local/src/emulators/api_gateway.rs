//! API Gateway HTTP API emulation: HTTP request → payload format 2.0 event → function → HTTP.
//!
//! Routes come from the functions' `HttpApi` events in the template (`Path` with `{param}` and
//! greedy `{proxy+}`, `Method` including `ANY`). Everything a handler can observe is built the
//! way API Gateway builds it, so code that works here works there:
//!
//! * the event: `version: "2.0"`, `routeKey`, `rawPath`, `rawQueryString`, `cookies` (taken out
//!   of the `cookie` header), lower-cased `headers` with repeated values joined by `,`,
//!   `queryStringParameters` (repeated keys joined by `,`), `pathParameters`, `requestContext`
//!   (`requestId`, `http.sourceIp`, `stage: "$default"`, `time`, ...), and a `body` that is
//!   base64-encoded unless the content type is textual;
//! * the result: a structured `{statusCode, headers, cookies, body, isBase64Encoded}` is used
//!   as-is; anything else valid JSON becomes a 200 with that JSON as body;
//! * errors: no route → 404 `{"message":"Not Found"}`; function error, crash or timeout → 500
//!   `{"message":"Internal Server Error"}`; a malformed result → 502; a body over 10 MB → 413;
//! * CORS from the API's `CorsConfiguration`: preflights are answered by the gateway itself and
//!   CORS headers are added to the responses of API routes, overriding the function's, as API
//!   Gateway does (the 404 for no route and the local router below get none);
//! * every response carries `apigw-requestid` and `x-request-id` (the event's `requestId`).
//!
//! With [`Gateway::with_access_log`] switched on (`cargo local up`, once the walkthrough is
//! printed), each request an API route answered is printed as one line, as an API Gateway access log would record it: time, method, path, status,
//! latency, the function and the request id (what `cargo local logs --trace` takes).
//!
//! Local only, never part of the deployed API: a `GET` or `HEAD` that matches no API route goes to
//! the gateway's *local* router ([`Gateway::with_local`]) before it becomes a 404 (other methods
//! get the 404 straight away), and its responses carry no CORS headers. The stack puts
//! `GET /_local/mail` there (the e-mails the stack sent, see [`crate::stack::messaging`]) and, behind
//! it, the storefront's static files (`/` → `storefront/index.html`, see [`crate::stack::storefront`]),
//! so the page and the API share one origin. API routes always win, because only what they
//! leave unmatched reaches the local router.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};
use tower::ServiceExt;

use crate::emulators::runtime_api::{Outcome, Pool};
use crate::template::{ACCOUNT_ID, Cors, Route};

/// API Gateway's payload limit.
pub const MAX_BODY: usize = 10 * 1024 * 1024;
/// Shown as `requestContext.apiId` and in `domainName`.
const API_ID: &str = "local";

pub struct Gateway {
    routes: Vec<(Route, Arc<Pool>)>,
    cors: Option<Cors>,
    /// What answers requests no API route matches (local extras); `None` = 404.
    local: Option<Router>,
    /// While on, print one line per API request (see the module docs).
    access_log: Arc<std::sync::atomic::AtomicBool>,
}

impl Gateway {
    pub fn new(routes: Vec<(Route, Arc<Pool>)>, cors: Option<Cors>) -> Self {
        Self { routes, cors, local: None, access_log: Arc::default() }
    }

    /// While `switch` is on, prints one line per request an API route answered (see the module
    /// docs).
    pub fn with_access_log(mut self, switch: Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.access_log = switch;
        self
    }

    /// Hands every request that matches no API route to `router` (see the module docs).
    pub fn with_local(mut self, router: Router) -> Self {
        self.local = Some(router);
        self
    }

    pub fn router(self) -> Router {
        Router::new().fallback(handle).with_state(Arc::new(self))
    }

    /// The most specific route for `method path`, as API Gateway picks it: literal segments beat
    /// `{param}`, which beats greedy `{proxy+}`; a specific method beats `ANY`.
    fn find(&self, method: &str, path: &str) -> Option<(&Route, &Arc<Pool>, BTreeMap<String, String>)> {
        self.routes
            .iter()
            .filter(|(r, _)| r.method == "ANY" || r.method == method)
            .filter_map(|(r, pool)| match_path(&r.path, path).map(|params| (r, pool, params)))
            .max_by_key(|(r, _, _)| {
                let greedy = r.path.contains("+}");
                let literals = r.path.split('/').filter(|s| !s.starts_with('{')).count();
                (!greedy, literals, r.method != "ANY")
            })
    }
}

/// Matches a route path against a request path, returning the (decoded) path parameters.
fn match_path(pattern: &str, path: &str) -> Option<BTreeMap<String, String>> {
    let mut params = BTreeMap::new();
    let pattern: Vec<&str> = pattern.trim_start_matches('/').split('/').collect();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    for (i, p) in pattern.iter().enumerate() {
        if let Some(name) = p.strip_prefix('{').and_then(|p| p.strip_suffix("+}")) {
            let rest = segments.get(i..)?.join("/");
            if rest.is_empty() {
                return None;
            }
            params.insert(name.to_owned(), decode(&rest));
            return Some(params);
        }
        let segment = segments.get(i)?;
        if let Some(name) = p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            if segment.is_empty() {
                return None;
            }
            params.insert(name.to_owned(), decode(segment));
        } else if p != segment {
            return None;
        }
    }
    (segments.len() == pattern.len()).then_some(params)
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

fn message(status: StatusCode, text: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], json!({ "message": text }).to_string()).into_response()
}

/// API Gateway's answer when no route matches.
pub fn not_found() -> Response {
    message(StatusCode::NOT_FOUND, "Not Found")
}

async fn handle(
    State(gw): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let request_id = request_id();
    let origin = request.headers().get(header::ORIGIN).cloned();
    let started = std::time::Instant::now();
    let logged = gw
        .access_log
        .load(std::sync::atomic::Ordering::Relaxed)
        .then(|| (request.method().clone(), request.uri().path().to_owned()));
    let (mut response, api) = match &gw.cors {
        Some(cors) if is_preflight(&request) => (preflight(cors, origin.as_ref()), true),
        _ => route(&gw, peer, request, &request_id).await,
    };
    if let Some((method, path)) = logged
        && let Some((_, pool, _)) = gw.find(method.as_str(), &path).filter(|_| api)
    {
        println!(
            "{}",
            access_line(
                time::OffsetDateTime::now_utc(),
                method.as_str(),
                &path,
                response.status(),
                started.elapsed(),
                pool.logical_id(),
                &request_id
            )
        );
    }
    // Only the API's own responses get CORS headers: the local router's (mailbox, storefront
    // files) are same-origin only, so no other website open in the browser can read them.
    if api && let Some(cors) = &gw.cors {
        add_cors(cors, origin.as_ref(), response.headers_mut());
    }
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert("apigw-requestid", v.clone());
        headers.entry("x-request-id").or_insert(v);
    }
    response
}

/// The response to a request that is not a preflight, and whether an API route answered it
/// (`false`: the gateway's 404 or the local router).
async fn route(gw: &Gateway, peer: SocketAddr, request: Request, request_id: &str) -> (Response, bool) {
    let Some((route, pool, path_params)) = gw.find(request.method().as_str(), request.uri().path()) else {
        let readable = matches!(*request.method(), Method::GET | Method::HEAD);
        let response = match &gw.local {
            // The local extras are read-only: anything else is the gateway's 404, not a 405.
            Some(local) if readable => local.clone().oneshot(request).await.unwrap_or_else(|never| match never {}),
            _ => not_found(),
        };
        return (response, false);
    };
    (invoke(route, pool, path_params, peer, request, request_id).await, true)
}

/// Runs the route's function for the request and maps its result to HTTP.
async fn invoke(
    route: &Route,
    pool: &Pool,
    path_params: BTreeMap<String, String>,
    peer: SocketAddr,
    request: Request,
    request_id: &str,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return message(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large"),
    };
    let route_key = format!("{} {}", route.method, route.path);
    let event = build_event(&parts, &body, peer, &route_key, path_params, request_id);
    let outcome = pool.invoke(Bytes::from(event.to_string())).await;
    match outcome {
        Outcome::Success(result) => to_http(&result).unwrap_or_else(|why| {
            tracing::warn!("{route_key}: malformed function response ({why})");
            message(StatusCode::BAD_GATEWAY, "Internal Server Error")
        }),
        Outcome::FunctionError(e) => {
            tracing::warn!("{route_key}: function error {}", String::from_utf8_lossy(&e));
            message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
        Outcome::Failed { error_type, message: m } => {
            tracing::warn!("{route_key}: {error_type}: {m}");
            message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
    }
}

/// One access log line: `12:00:00.123  POST /orders  201  23 ms  PlaceOrderFunction  <request id>`.
fn access_line(
    at: time::OffsetDateTime,
    method: &str,
    path: &str,
    status: StatusCode,
    latency: std::time::Duration,
    function: &str,
    request_id: &str,
) -> String {
    format!(
        "{:02}:{:02}:{:02}.{:03}  {method:<6} {path:<40} {}  {:>5} ms  {function:<26} {request_id}",
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond(),
        status.as_u16(),
        latency.as_millis()
    )
}

/// API Gateway's request id format: 16 base64 characters ending in `=`.
fn request_id() -> String {
    BASE64.encode(&uuid::Uuid::new_v4().as_bytes()[..11])
}

/// The payload format 2.0 event for one request.
pub fn build_event(
    parts: &http::request::Parts,
    body: &[u8],
    peer: SocketAddr,
    route_key: &str,
    path_params: BTreeMap<String, String>,
    request_id: &str,
) -> Value {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies = Vec::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == header::COOKIE {
            cookies.extend(value.split(';').map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned));
            continue;
        }
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let source_ip = peer.ip().to_string();
    headers.entry("x-forwarded-for".into()).or_insert_with(|| source_ip.clone());
    headers.entry("x-forwarded-proto".into()).or_insert_with(|| "http".into());
    headers.entry("x-forwarded-port".into()).or_insert_with(|| {
        let host = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        host.rsplit_once(':').map(|(_, p)| p.to_owned()).unwrap_or_else(|| "80".into())
    });

    let raw_query = parts.uri.query().unwrap_or("").to_owned();
    let mut query: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(raw_query.as_bytes()) {
        query
            .entry(k.into_owned())
            .and_modify(|existing| {
                existing.push(',');
                existing.push_str(&v);
            })
            .or_insert_with(|| v.into_owned());
    }

    let host = headers.get("host").cloned().unwrap_or_else(|| format!("{API_ID}.execute-api.localhost"));
    let domain_prefix = host.split(['.', ':']).next().unwrap_or(&host).to_owned();
    let now = time::OffsetDateTime::now_utc();
    let time_format =
        time::macros::format_description!("[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000");

    let mut event = Map::new();
    event.insert("version".into(), json!("2.0"));
    event.insert("routeKey".into(), json!(route_key));
    event.insert("rawPath".into(), json!(parts.uri.path()));
    event.insert("rawQueryString".into(), json!(raw_query));
    if !cookies.is_empty() {
        event.insert("cookies".into(), json!(cookies));
    }
    event.insert("headers".into(), json!(headers));
    if !query.is_empty() {
        event.insert("queryStringParameters".into(), json!(query));
    }
    event.insert(
        "requestContext".into(),
        json!({
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "domainName": host,
            "domainPrefix": domain_prefix,
            "http": {
                "method": parts.method.as_str(),
                "path": parts.uri.path(),
                "protocol": format!("{:?}", parts.version),
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent").cloned().unwrap_or_default(),
            },
            "requestId": request_id,
            "routeKey": route_key,
            "stage": "$default",
            "time": now.format(&time_format).unwrap_or_default(),
            "timeEpoch": (now.unix_timestamp_nanos() / 1_000_000) as i64,
        }),
    );
    if !path_params.is_empty() {
        event.insert("pathParameters".into(), json!(path_params));
    }
    let is_base64 = !body.is_empty() && !is_textual(headers.get("content-type").map(String::as_str));
    if !body.is_empty() {
        let text = if is_base64 { BASE64.encode(body) } else { String::from_utf8_lossy(body).into_owned() };
        event.insert("body".into(), json!(text));
    }
    event.insert("isBase64Encoded".into(), json!(is_base64));
    Value::Object(event)
}

/// Content types API Gateway passes as text; everything else (or no type) is base64.
fn is_textual(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return false };
    let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    mime.starts_with("text/")
        || mime.ends_with("+json")
        || mime.ends_with("+xml")
        || matches!(
            mime.as_str(),
            "application/json"
                | "application/xml"
                | "application/javascript"
                | "application/x-www-form-urlencoded"
                | "application/graphql"
        )
}

/// Maps a function result to HTTP (payload format 2.0 rules).
pub fn to_http(result: &[u8]) -> Result<Response, String> {
    let value: Value = serde_json::from_slice(result).map_err(|e| format!("not JSON: {e}"))?;
    let structured = value.as_object().filter(|o| o.contains_key("statusCode"));
    let Some(obj) = structured else {
        // Not a structured response: API Gateway answers 200 with the result as JSON body.
        return Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response());
    };
    let status = obj
        .get("statusCode")
        .and_then(|s| s.as_u64().or_else(|| s.as_str().and_then(|s| s.parse().ok())))
        .and_then(|s| StatusCode::from_u16(u16::try_from(s).ok()?).ok())
        .ok_or("invalid statusCode")?;

    let mut headers = HeaderMap::new();
    let text = |v: &Value| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string());
    for (k, v) in obj.get("headers").and_then(Value::as_object).into_iter().flatten() {
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|e| e.to_string())?;
        headers.insert(name, HeaderValue::from_str(&text(v)).map_err(|e| e.to_string())?);
    }
    for (k, values) in obj.get("multiValueHeaders").and_then(Value::as_object).into_iter().flatten() {
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|e| e.to_string())?;
        // `headers` wins when both carry the same name (lambda_http fills only `headers`).
        if headers.contains_key(&name) {
            continue;
        }
        for v in values.as_array().into_iter().flatten() {
            headers.append(name.clone(), HeaderValue::from_str(&text(v)).map_err(|e| e.to_string())?);
        }
    }
    for cookie in obj.get("cookies").and_then(Value::as_array).into_iter().flatten() {
        headers.append(header::SET_COOKIE, HeaderValue::from_str(&text(cookie)).map_err(|e| e.to_string())?);
    }
    let body = match obj.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) if obj.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) => {
            BASE64.decode(s).map_err(|e| format!("body is not base64: {e}"))?
        }
        Some(Value::String(s)) => s.clone().into_bytes(),
        Some(other) => other.to_string().into_bytes(),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

fn is_preflight(request: &Request) -> bool {
    request.method() == Method::OPTIONS
        && request.headers().contains_key(header::ORIGIN)
        && request.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

fn allowed_origin(cors: &Cors, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
    if cors.allow_origins.iter().any(|o| o == "*") {
        return Some(HeaderValue::from_static("*"));
    }
    let origin = origin?;
    cors.allow_origins.iter().any(|o| o.as_bytes() == origin.as_bytes()).then(|| origin.clone())
}

/// API Gateway answers preflights itself (no function runs) with 204.
fn preflight(cors: &Cors, origin: Option<&HeaderValue>) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    if allowed_origin(cors, origin).is_none() {
        return response;
    }
    let h = response.headers_mut();
    let mut put = |name: HeaderName, values: &[String]| {
        if !values.is_empty()
            && let Ok(v) = HeaderValue::from_str(&values.join(","))
        {
            h.insert(name, v);
        }
    };
    put(header::ACCESS_CONTROL_ALLOW_METHODS, &cors.allow_methods);
    put(header::ACCESS_CONTROL_ALLOW_HEADERS, &cors.allow_headers);
    if let Some(age) = cors.max_age {
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(age));
    }
    response
}

fn add_cors(cors: &Cors, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
    if origin.is_none() {
        return;
    }
    // The gateway's configuration overrides whatever CORS headers the function returned.
    for name in [
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
    ] {
        headers.remove(name);
    }
    let Some(allowed) = allowed_origin(cors, origin) else { return };
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
    if !cors.expose_headers.is_empty()
        && let Ok(v) = HeaderValue::from_str(&cors.expose_headers.join(","))
    {
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
    }
    if cors.allow_credentials {
        headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_params_and_greedy_paths() {
        assert_eq!(match_path("/products", "/products"), Some(BTreeMap::new()));
        assert_eq!(match_path("/products/{id}", "/products/a%20b").unwrap()["id"], "a b");
        assert_eq!(match_path("/products/{id}", "/products"), None);
        assert_eq!(match_path("/products/{id}", "/products/1/x"), None);
        assert_eq!(match_path("/files/{proxy+}", "/files/a/b").unwrap()["proxy"], "a/b");
        assert_eq!(match_path("/files/{proxy+}", "/files/"), None);
    }

    #[test]
    fn an_access_line_says_when_what_how_long_who_and_the_id() {
        let line = access_line(
            time::macros::datetime!(2026-12-07 12:03:04.567 UTC),
            "POST",
            "/orders",
            StatusCode::CREATED,
            std::time::Duration::from_millis(23),
            "PlaceOrderFunction",
            "AbCdEfGhIjKlMg=",
        );
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            words,
            ["12:03:04.567", "POST", "/orders", "201", "23", "ms", "PlaceOrderFunction", "AbCdEfGhIjKlMg="]
        );
    }

    #[test]
    fn structured_and_plain_results() {
        let r = to_http(br#"{"statusCode":201,"headers":{"x-a":"1"},"cookies":["c=1"],"body":"hi"}"#).unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(r.headers()["x-a"], "1");
        assert_eq!(r.headers()["set-cookie"], "c=1");
        let r = to_http(br#"{"hello":"world"}"#).unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(to_http(b"not json").is_err());
        assert!(to_http(br#"{"statusCode":"abc"}"#).is_err());
    }

    #[tokio::test]
    async fn local_router_gets_reads_only_and_no_cors() {
        let cors = Cors { allow_origins: vec!["*".into()], allow_methods: vec!["GET".into()], ..Cors::default() };
        let local = Router::new().route("/_local/mail", axum::routing::get(|| async { "[]" }));
        let app = Gateway::new(Vec::new(), Some(cors)).with_local(local).router();
        let send = |method: &str, path: &str, preflight: bool| {
            let mut request =
                http::Request::builder().method(method).uri(path).header("Origin", "https://evil.example");
            if preflight {
                request = request.header("Access-Control-Request-Method", "GET");
            }
            let mut request = request.body(Body::empty()).unwrap();
            request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 9))));
            app.clone().oneshot(request)
        };

        let r = send("GET", "/_local/mail", false).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers().get("access-control-allow-origin").is_none());
        assert!(r.headers().contains_key("apigw-requestid"));

        for (method, path) in [("POST", "/_local/mail"), ("DELETE", "/_local/mail"), ("POST", "/nope")] {
            let r = send(method, path, false).await.unwrap();
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{method} {path}");
            assert!(r.headers().get("access-control-allow-origin").is_none(), "{method} {path}");
            let body = axum::body::to_bytes(r.into_body(), 1024).await.unwrap();
            assert_eq!(&body[..], br#"{"message":"Not Found"}"#, "{method} {path}");
        }

        // Preflights are still the gateway's (they let nothing be read by themselves).
        let r = send("OPTIONS", "/products", true).await.unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert_eq!(r.headers()["access-control-allow-origin"], "*");
    }

    #[test]
    fn event_has_the_v2_shape() {
        let req = http::Request::builder()
            .method("POST")
            .uri("/products/42?a=1&a=2&b=x%20y")
            .header("Host", "127.0.0.1:3000")
            .header("Content-Type", "application/json")
            .header("Cookie", "s=1; t=2")
            .header("X-Multi", "1")
            .header("X-Multi", "2")
            .body(())
            .unwrap();
        let (parts, _) = req.into_parts();
        let params = [("id".to_owned(), "42".to_owned())].into();
        let e = build_event(&parts, b"{}", "127.0.0.1:9".parse().unwrap(), "POST /products/{id}", params, "rid=");
        assert_eq!(e["version"], "2.0");
        assert_eq!(e["rawQueryString"], "a=1&a=2&b=x%20y");
        assert_eq!(e["queryStringParameters"]["a"], "1,2");
        assert_eq!(e["queryStringParameters"]["b"], "x y");
        assert_eq!(e["cookies"], json!(["s=1", "t=2"]));
        assert_eq!(e["headers"]["x-multi"], "1,2");
        assert!(e["headers"].get("cookie").is_none());
        assert_eq!(e["pathParameters"]["id"], "42");
        assert_eq!(e["body"], "{}");
        assert_eq!(e["isBase64Encoded"], false);
        assert_eq!(e["requestContext"]["http"]["protocol"], "HTTP/1.1");
        assert_eq!(e["requestContext"]["stage"], "$default");
    }
}
