//! One call in the AWS JSON 1.0 protocol, as the stack speaks it to its emulators where it has
//! no SDK client: DynamoDB Local's Streams API ([`crate::emulators::streams`]) and moto's SQS
//! ([`crate::emulators::sqs`]).
//!
//! A call is a `POST` of a JSON body naming its operation in `X-Amz-Target`. Neither emulator
//! checks the signature, but both read the credential scope of the `Authorization` header (moto
//! routes a call to a service by it), so an unsigned header with the right scope is enough.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// A JSON-protocol client for one service (`dynamodb`, `sqs`) at one endpoint.
#[derive(Clone)]
pub struct Client {
    endpoint: String,
    authorization: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(endpoint: &str, service: &str) -> Self {
        Self {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            authorization: format!(
                "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, \
                 Signature=0"
            ),
            http: reqwest::Client::new(),
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Calls `target` (`DynamoDBStreams_20120810.GetRecords`, `AmazonSQS.SendMessage`); an error
    /// answer is an `Err` with the status and body, an empty body is `{}`.
    pub async fn call(&self, target: &str, body: &Value) -> Result<Value> {
        let response = self
            .http
            .post(&self.endpoint)
            .header("x-amz-target", target)
            .header("content-type", "application/x-amz-json-1.0")
            .header("authorization", &self.authorization)
            .body(body.to_string())
            .send()
            .await
            .with_context(|| format!("{target} at {}", self.endpoint))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("{target} answered {status}: {text}");
        }
        Ok(if text.trim().is_empty() { json!({}) } else { serde_json::from_str(&text)? })
    }
}
