//! Sending a rendered e-mail: the [`MailSender`] port and its Amazon SESv2 adapter.
//!
//! `SENDER_EMAIL` is the From address; it must be a verified SES identity (the template grants
//! `ses:SendEmail` on exactly that identity). `AWS_ENDPOINT_URL_SESV2` points the client at an
//! emulator (the local stack's moto) without code changes. The SDK retries throttling and 5xx
//! itself; what still fails is told apart, because the two call for opposite actions:
//!
//! - [`SendError::Refused`]: SES refuses *this e-mail* and will refuse it every time —
//!   `MessageRejected` (an unverified recipient while the account is in the sandbox, content SES
//!   will not send), `BadRequestException` (an address SES cannot send to: a local part that is not
//!   7-bit ASCII, a malformed one). The notifier records it and moves on; retrying would block every
//!   e-mail behind it until the records age out.
//! - [`SendError::Failed`]: anything else — throttling the SDK's retries did not outlast, SES
//!   unreachable, and the account-wide refusals (`SendingPausedException`,
//!   `AccountSuspendedException`, `MailFromDomainNotVerifiedException`, `NotFoundException` of the
//!   identity): those are ours to fix and affect every e-mail alike, so dropping the e-mail would
//!   be wrong; the batch is retried (bounded by the trigger) and lands in its dead-letter queue.

use super::Email;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::error::ProvideErrorMetadata;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use std::future::Future;

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// SES will never send this e-mail: record it, skip it.
    #[error("refused by SES: {0}")]
    Refused(String),
    /// Worth trying again later.
    #[error("sending failed: {0}")]
    Failed(String),
}

/// SES error codes that refuse one e-mail for good (the others concern every e-mail, or the moment).
const REFUSES_THE_EMAIL: &[&str] = &["MessageRejected", "BadRequestException"];

/// Which [`SendError`] an SES error code is.
pub fn classify(code: Option<&str>, message: String) -> SendError {
    match code {
        Some(c) if REFUSES_THE_EMAIL.contains(&c) => SendError::Refused(format!("{c}: {message}")),
        Some(c) => SendError::Failed(format!("{c}: {message}")),
        None => SendError::Failed(message),
    }
}

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

    /// The client from the environment Lambda provides (`AWS_ENDPOINT_URL_SESV2` points it at an
    /// emulator; see [`crate::aws`]).
    pub fn from_env(from: impl Into<String>, aws: &crate::aws::AwsEnv) -> Self {
        let mut config = aws_sdk_sesv2::Config::builder()
            .behavior_version(crate::aws::behavior_version())
            .region(aws.region.clone())
            .credentials_provider(aws.credentials.clone())
            .http_client(aws.http.clone());
        config.set_app_name(aws.app_name.clone());
        config.set_endpoint_url(crate::aws::AwsEnv::endpoint("SESV2"));
        Self::new(Client::from_conf(config.build()), from)
    }
}

fn content(data: &str) -> Result<Content, SendError> {
    Content::builder().data(data).charset("UTF-8").build().map_err(|e| SendError::Failed(e.to_string()))
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
            .map_err(|e| {
                let code = e.as_service_error().and_then(|s| s.code()).map(str::to_owned);
                classify(code.as_deref(), format!("{}", aws_sdk_sesv2::error::DisplayErrorContext(&e)))
            })?;
        Ok(out.message_id.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_refusals_of_the_email_itself_are_final() {
        for code in ["MessageRejected", "BadRequestException"] {
            assert!(matches!(classify(Some(code), "x".into()), SendError::Refused(_)), "{code}");
        }
        for code in [
            "TooManyRequestsException",
            "LimitExceededException",
            "SendingPausedException",
            "AccountSuspendedException",
            "MailFromDomainNotVerifiedException",
            "NotFoundException",
            "InternalFailure",
        ] {
            assert!(matches!(classify(Some(code), "x".into()), SendError::Failed(_)), "{code}");
        }
        assert!(matches!(classify(None, "connection refused".into()), SendError::Failed(_)));
    }
}
