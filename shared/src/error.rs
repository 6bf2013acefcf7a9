//! The one error shape every endpoint returns:
//! `{"error": {"code": "out_of_stock", "message": "...", "details": ..., "request_id": "..."}}`.
//!
//! Routes whose failures are their own (placing an order, paying, logging in, …) have a
//! `thiserror` enum that says what can go wrong there; simple routes use the store's errors and
//! [`ApiError`]'s constructors directly. Either way everything converts into [`ApiError`], which
//! only knows statuses, codes and messages safe to show a client. Internal
//! causes are logged where they happen ([`ApiError::internal`]) and never reach the response.

use http::StatusCode;
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Option<Value>,
    /// Seconds for the `Retry-After` header (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), details: None, retry_after: None }
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 400 listing every invalid field: `details: {"fields": {"name": "must be ..."}}`.
    pub fn invalid_fields(errors: &[(&'static str, String)]) -> Self {
        let fields: serde_json::Map<String, Value> =
            errors.iter().map(|(f, why)| ((*f).to_owned(), Value::String(why.clone()))).collect();
        Self::bad_request("invalid_input", "the request has invalid fields").with_details(json!({ "fields": fields }))
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// A failure the client cannot fix. The cause is logged here, with the request's span, and
    /// replaced by a generic message; the request id in the body lets support find the log line.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "something went wrong on our side; quote the request id",
        )
    }

    /// A dependency is briefly unavailable (throttled, timed out): the client may retry.
    pub fn unavailable(cause: &dyn std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "dependency unavailable");
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the service is busy; retry shortly")
    }

    pub fn body(&self, request_id: &str) -> Value {
        let mut error = json!({ "code": self.code, "message": self.message, "request_id": request_id });
        if let Some(details) = &self.details {
            error["details"] = details.clone();
        }
        json!({ "error": error })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Unavailable(_) => Self::unavailable(&e),
            crate::store::StoreError::Other(_) => Self::internal(&e),
        }
    }
}

/// A list's failure: a cursor this API never returned is the client's to fix.
impl From<crate::store::ListError> for ApiError {
    fn from(e: crate::store::ListError) -> Self {
        match e {
            crate::store::ListError::BadCursor => {
                ApiError::bad_request("invalid_cursor", "cursor must be a next_cursor value this API returned")
            }
            crate::store::ListError::Store(cause) => cause.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_documented_shape() {
        let e = ApiError::invalid_fields(&[("name", "too long".into())]);
        assert_eq!(
            e.body("req-1"),
            json!({"error": {"code": "invalid_input", "message": "the request has invalid fields",
                "request_id": "req-1", "details": {"fields": {"name": "too long"}}}})
        );
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let e = ApiError::internal(&"dynamodb: ResourceNotFoundException table shop");
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.body("r").to_string().contains("dynamodb"));
    }
}
