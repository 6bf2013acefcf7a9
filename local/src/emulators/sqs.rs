//! The local stand-in for Amazon SQS: the template's queues, in the same moto server that plays
//! SES (moto serves every AWS API it knows on one port).
//!
//! Queues exist for the event sources' on-failure destinations (`DestinationConfig.OnFailure`),
//! where an event source mapping puts what it gave up on. The stack creates every
//! `AWS::SQS::Queue` of the template at start, named by its logical id, so `!GetAtt Q.Arn` in the
//! template ([`crate::template`]) points at it. Calls use SQS's JSON protocol (`X-Amz-Target:
//! AmazonSQS.<Action>`), what the AWS SDKs speak today.
//!
//! An event source mapping sends to its destination with its function's role, as Lambda does:
//! [`Sqs::send`] first asks IAM for `sqs:SendMessage` on the queue's ARN as that function, and
//! a denial fails the send with AWS's message (the trigger logs it; the record is not delivered,
//! as on Lambda).
//!
//! Tests read a queue through the Invoke API: `GET /_local/sqs/<LogicalId>` answers all its
//! messages' bodies (parsed as JSON where they are), read without consuming them: reads hide what
//! they received until an empty answer says everything was seen, then make it all visible again.

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::emulators::iam::authorizer::{Access, Authorizer};
use crate::template::{ACCOUNT_ID, REGION};

/// The template's queues in one moto server.
#[derive(Clone)]
pub struct Sqs(crate::emulators::aws_json::Client, Authorizer);

/// The queue name in an SQS ARN (`arn:aws:sqs:<region>:<account>:<name>`).
pub fn queue_name(arn: &str) -> Option<&str> {
    arn.strip_prefix("arn:aws:sqs:").and_then(|rest| rest.rsplit(':').next()).filter(|n| !n.is_empty())
}

impl Sqs {
    /// Creates every queue in `names` (idempotent, as SQS's CreateQueue is).
    pub async fn start(endpoint: &str, names: &[String], iam: &Authorizer) -> Result<Self> {
        let sqs = Self(crate::emulators::aws_json::Client::new(endpoint, "sqs"), iam.clone());
        for name in names {
            sqs.call("CreateQueue", json!({ "QueueName": name }))
                .await
                .with_context(|| format!("creating queue {name}"))?;
        }
        Ok(sqs)
    }

    fn url(&self, name: &str) -> String {
        format!("{}/{ACCOUNT_ID}/{name}", self.0.endpoint())
    }

    async fn call(&self, action: &str, body: Value) -> Result<Value> {
        self.0.call(&format!("AmazonSQS.{action}"), &body).await
    }

    /// Sends one message to the queue named `name`, as `function` (its role must allow it).
    pub async fn send(&self, function: &str, name: &str, body: &Value) -> Result<()> {
        let queue = format!("arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}");
        if let Err(denied) = self.1.authorize(function, &[Access::new("sqs:SendMessage", queue)]) {
            anyhow::bail!("AccessDenied: {}", denied.message);
        }
        self.call("SendMessage", json!({ "QueueUrl": self.url(name), "MessageBody": body.to_string() })).await?;
        Ok(())
    }

    /// Every message of the queue, left in the queue (see the module docs).
    pub async fn peek(&self, name: &str) -> Result<Vec<Value>> {
        let mut seen = std::collections::HashSet::new();
        let mut bodies = Vec::new();
        let mut handles = Vec::new();
        for _ in 0..1000 {
            let out = self
                .call(
                    "ReceiveMessage",
                    json!({ "QueueUrl": self.url(name), "MaxNumberOfMessages": 10, "VisibilityTimeout": 30 }),
                )
                .await?;
            let messages = out.get("Messages").and_then(Value::as_array).cloned().unwrap_or_default();
            if messages.is_empty() {
                break;
            }
            for m in messages {
                let id = m.get("MessageId").and_then(Value::as_str).unwrap_or_default().to_owned();
                if let Some(handle) = m.get("ReceiptHandle").and_then(Value::as_str) {
                    handles.push(handle.to_owned());
                }
                if let (true, Some(body)) = (seen.insert(id), m.get("Body").and_then(Value::as_str)) {
                    bodies.push(serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned())));
                }
            }
        }
        for handle in handles {
            self.call(
                "ChangeMessageVisibility",
                json!({ "QueueUrl": self.url(name), "ReceiptHandle": handle, "VisibilityTimeout": 0 }),
            )
            .await?;
        }
        Ok(bodies)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn queue_names_come_from_arns() {
        assert_eq!(
            super::queue_name("arn:aws:sqs:us-east-1:123456789012:OutboxRelayDeadLetters"),
            Some("OutboxRelayDeadLetters")
        );
        assert_eq!(super::queue_name("OutboxRelayDeadLetters.Arn"), None);
    }
}
