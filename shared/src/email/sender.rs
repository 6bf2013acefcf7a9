//! Sending a rendered e-mail: the [`MailSender`] port and its Amazon SESv2 adapter.
//!
//! `SENDER_EMAIL` is the From address; it must be a verified SES identity (the template grants
//! `ses:SendEmail` on exactly that identity). `AWS_ENDPOINT_URL_SESV2` points the client at an
//! emulator (the local stack's moto) without code changes. The SDK retries throttling and 5xx
//! itself; what still fails is returned, and the notifier fails the batch so Lambda redelivers it.

use super::Email;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use std::future::Future;

#[derive(Debug, thiserror::Error)]
#[error("sending failed: {0}")]
pub struct SendError(pub String);

pub trait MailSender: Send + Sync {
    /// Sends it; returns the provider's message id.
    fn send(&self, email: &Email) -> impl Future<Output = Result<String, SendError>> + Send;
}

#[derive(Debug, Clone)]
pub struct SesSender {
    client: Client,
    from: String,
}

impl SesSender {
    pub fn new(client: Client, from: impl Into<String>) -> Self {
        Self { client, from: from.into() }
    }

    /// AWS config from the environment (region, credentials, `AWS_ENDPOINT_URL_SESV2`).
    pub async fn from_env(from: impl Into<String>) -> Self {
        let sdk = aws_config::load_from_env().await;
        Self::new(Client::new(&sdk), from)
    }
}

fn content(data: &str) -> Result<Content, SendError> {
    Content::builder().data(data).charset("UTF-8").build().map_err(|e| SendError(e.to_string()))
}

impl MailSender for SesSender {
    async fn send(&self, email: &Email) -> Result<String, SendError> {
        let body = Body::builder().text(content(&email.text)?).html(content(&email.html)?).build();
        let message = Message::builder().subject(content(&email.subject)?).body(body).build();
        let out = self
            .client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(&email.to).build())
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await
            .map_err(|e| SendError(format!("{}", aws_sdk_sesv2::error::DisplayErrorContext(&e))))?;
        Ok(out.message_id.unwrap_or_default())
    }
}
