//! Sending a rendered e-mail: the [`MailSender`] port and its Amazon SESv2 adapter.
//!
//! `SENDER_EMAIL` is the From address; it must be a verified SES identity (the template grants
//! `ses:SendEmail` on exactly that identity). `AWS_ENDPOINT_URL_SESV2` points the client at an
//! emulator (the local stack's moto) without code changes. The SDK retries **nothing** here
//! (one attempt per call): the notifier's own retry — pacing a throttle (`email::pace`), the
//! batch's redelivery for the rest — is the only one. The SDK's standard retries would send a
//! throttled e-mail again at once and unpaced; would send again a `SendEmail` that got no answer
//! and that SES may have taken (a duplicate nobody sees); and, retrying a refused connection
//! with backoff, would keep an e-mail claimed for seconds while SES is down, so that an instance
//! dying meanwhile leaves an unknown outcome where one attempt would have known "not sent" in a
//! millisecond (the soak found those). What fails is told apart, because each calls for another
//! action:
//!
//! - [`SendError::Refused`]: SES refuses *this e-mail* and will refuse it every time —
//!   `MessageRejected` (an unverified recipient while the account is in the sandbox, content SES
//!   will not send), `BadRequestException` (an address SES cannot send to: a local part that is not
//!   7-bit ASCII, a malformed one). The notifier records it and moves on; retrying would block every
//!   e-mail behind it until the records age out.
//! - [`SendError::Throttled`]: SES's sending rate exceeded (HTTP 429 `TooManyRequestsException`,
//!   "Maximum sending rate exceeded."): the e-mail was not accepted and is fine; send it later
//!   (`email::pace::after_throttle`).
//! - [`SendError::Failed`]: anything else — SES unreachable, the day's quota used up ("Daily
//!   message quota exceeded.": waiting a day is not the notifier's to do), and the account-wide refusals (`SendingPausedException`,
//!   `AccountSuspendedException`, `MailFromDomainNotVerifiedException`, `NotFoundException` of the
//!   identity): those are ours to fix and affect every e-mail alike, so dropping the e-mail would
//!   be wrong; the batch is retried (bounded by the trigger) and lands in its dead-letter queue.
//!   SES unreachable means *never reached*: the connection was refused or could not be made.
//! - [`SendError::Unknown`]: no answer at all — the connection cut mid-request, a timeout, an
//!   answer that could not be read. SES may have accepted the e-mail: the notifier keeps its
//!   claim, so the redelivery decides it as an unknown outcome (`email::unknown`) instead of
//!   sending it again blindly. For the same reason the SDK may not retry such a `SendEmail`
//!   itself.
//!
//! [`MailSender::send_quota`] is SESv2 `GetAccount`'s `SendQuota` (`ses:GetAccount`, on `*`: the
//! action has no resource type), read once per instance at cold start.

use super::Email;
use super::pace::SendQuota;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::error::ProvideErrorMetadata;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use std::future::Future;

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// SES will never send this e-mail: record it, skip it.
    #[error("refused by SES: {0}")]
    Refused(String),
    /// SES's sending rate exceeded: this e-mail was not accepted; send it a little later.
    #[error("throttled by SES: {0}")]
    Throttled(String),
    /// Not accepted (SES answered an error, or was never reached): worth trying again later.
    #[error("sending failed: {0}")]
    Failed(String),
    /// No answer: SES may or may not have accepted it.
    #[error("no answer from SES: {0}")]
    Unknown(String),
}

/// SES error codes that refuse one e-mail for good (the others concern every e-mail, or the moment).
const REFUSES_THE_EMAIL: &[&str] = &["MessageRejected", "BadRequestException"];
/// What SES answers past the account's sending rate: SESv2 `TooManyRequestsException` (HTTP 429);
/// the Query API (v1) and the developer guide say `Throttling` / `ThrottlingException`.
const THROTTLED: &[&str] = &["TooManyRequestsException", "ThrottlingException", "Throttling"];
/// The same codes past the day's quota say so: nothing to wait out within an invocation.
const DAILY_QUOTA_EXCEEDED: &str = "Daily message quota exceeded";

/// Which [`SendError`] an SES error code (and its message) is.
pub fn classify(code: Option<&str>, message: String) -> SendError {
    match code {
        Some(c) if REFUSES_THE_EMAIL.contains(&c) => SendError::Refused(format!("{c}: {message}")),
        Some(c) if THROTTLED.contains(&c) && !message.contains(DAILY_QUOTA_EXCEEDED) => {
            SendError::Throttled(format!("{c}: {message}"))
        }
        Some(c) => SendError::Failed(format!("{c}: {message}")),
        None => SendError::Failed(message),
    }
}

pub trait MailSender: Send + Sync {
    /// Sends it; returns the provider's message id.
    fn send(&self, email: &Email) -> impl Future<Output = Result<String, SendError>> + Send;

    /// The account's sending quota.
    fn send_quota(&self) -> impl Future<Output = Result<SendQuota, SendError>> + Send;
}

/// Whether a failure to reach SES came before any byte of the request could reach it: the
/// connection was refused or could not be made (DNS, no route). Anything else that left no
/// answer may have been taken.
pub fn never_reached(error: &(dyn std::error::Error + 'static)) -> bool {
    use std::io::ErrorKind::*;
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(io.kind(), ConnectionRefused | AddrNotAvailable | HostUnreachable | NetworkUnreachable)
        {
            return true;
        }
        let text = e.to_string();
        if text.contains("tcp connect error") || text.contains("dns error") {
            return true;
        }
        next = e.source();
    }
    false
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
            .http_client(aws.http.clone())
            .retry_config(aws_sdk_sesv2::config::retry::RetryConfig::standard().with_max_attempts(1));
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
                use aws_sdk_sesv2::error::SdkError;
                let why = format!("{}", aws_sdk_sesv2::error::DisplayErrorContext(&e));
                match &e {
                    SdkError::ServiceError(s) => classify(s.err().code(), why),
                    SdkError::ConstructionFailure(_) => SendError::Failed(why),
                    SdkError::DispatchFailure(d) if d.as_connector_error().is_none_or(|c| never_reached(c)) => {
                        SendError::Failed(why)
                    }
                    _ => SendError::Unknown(why),
                }
            })?;
        Ok(out.message_id.unwrap_or_default())
    }

    async fn send_quota(&self) -> Result<SendQuota, SendError> {
        let out = self.client.get_account().send().await.map_err(|e| {
            let code = e.as_service_error().and_then(|s| s.code()).map(str::to_owned);
            classify(code.as_deref(), format!("{}", aws_sdk_sesv2::error::DisplayErrorContext(&e)))
        })?;
        let quota = out.send_quota.ok_or_else(|| SendError::Failed("GetAccount answered no SendQuota".into()))?;
        Ok(SendQuota {
            max_send_rate: quota.max_send_rate,
            max_24_hour_send: quota.max24_hour_send,
            sent_last_24_hours: quota.sent_last24_hours,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_refusals_of_the_email_itself_are_final_and_only_the_rate_is_waited_out() {
        for code in ["MessageRejected", "BadRequestException"] {
            assert!(matches!(classify(Some(code), "x".into()), SendError::Refused(_)), "{code}");
        }
        for code in ["TooManyRequestsException", "ThrottlingException", "Throttling"] {
            let e = classify(Some(code), "Maximum sending rate exceeded.".into());
            assert!(matches!(e, SendError::Throttled(_)), "{code}");
            let e = classify(Some(code), "Daily message quota exceeded.".into());
            assert!(matches!(e, SendError::Failed(_)), "{code}: a day is not waited out");
        }
        for code in [
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

    #[derive(Debug, thiserror::Error)]
    #[error("client error (Connect)")]
    struct Wrapper(#[source] std::io::Error);

    #[test]
    fn only_a_connection_never_made_is_surely_not_sent() {
        use std::io::{Error, ErrorKind};
        let refused = Wrapper(Error::from(ErrorKind::ConnectionRefused));
        assert!(never_reached(&refused));
        for maybe_taken in
            [ErrorKind::UnexpectedEof, ErrorKind::ConnectionReset, ErrorKind::BrokenPipe, ErrorKind::TimedOut]
        {
            assert!(!never_reached(&Wrapper(Error::from(maybe_taken))), "{maybe_taken:?}");
        }
    }
}
