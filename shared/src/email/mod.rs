//! E-mail to customers, one per domain event: what it says and how it is sent.
//!
//! - [`templates`]: the event → e-mail mapping; text and HTML bodies rendered from the files in
//!   `templates/` (embedded in the binary at compile time, so a Lambda needs no extra files);
//! - [`sender`]: the port to send a rendered e-mail, and its SESv2 adapter;
//! - [`pace`]: keeping pace with the account's SES sending quota, and what a throttle means;
//! - [`unknown`]: what to do with an e-mail an attempt may or may not have sent (it died between
//!   SES's answer and the record), per kind of e-mail.
//!
//! Who decides *when* to send (once per event, in batches from Kafka) is `api::notifier`.

pub mod pace;
pub mod sender;
pub mod templates;
pub mod unknown;

/// A rendered e-mail, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}
