//! What to do with an e-mail whose send has an **unknown outcome**: an attempt claimed it, called
//! SES, and died (crashed, timed out, was throttled by DynamoDB until it died) before recording
//! SES's answer. SES's `SendEmail` takes no idempotency key and has no "did you send this?" call,
//! so nothing can find out: the e-mail went out once, or not at all. Either choice is wrong for
//! some of those e-mails; this module makes the choice once per kind of e-mail, on purpose, where
//! the compiler keeps it complete (a new event type does not build until it is decided here).
//!
//! The rule: **send again** what the customer needs in hand — to act on it (a reset link, a
//! payment to try again) or to keep it (a receipt, money on its way back): a second copy of those
//! is harmless, a missing one is a support ticket. **Let be** what only tells the customer what
//! they already see (a welcome, "we received your order", "your order was cancelled / expired"):
//! a missing one costs nothing, a second copy looks broken.
//!
//! Every unknown outcome is counted (`EmailsOutcomeUnknown`, which an alarm watches) and logged
//! with its event id and the choice made, so each possible duplicate or loss is accounted for.

use crate::events::event::EventType;

/// The decision for an e-mail whose earlier attempt may or may not have sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterUnknown {
    /// Send it again: at worst the customer gets it twice.
    SendAgain,
    /// Settle it as it is: at worst the customer never got it.
    LetBe,
}

impl AfterUnknown {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SendAgain => "send_again",
            Self::LetBe => "let_be",
        }
    }
}

/// The decision for this kind of e-mail.
pub fn after_unknown(kind: EventType) -> AfterUnknown {
    use AfterUnknown::*;
    match kind {
        // Something to act on.
        EventType::PasswordResetRequested | EventType::OrderPaymentFailed => SendAgain,
        // Something to keep: proof of payment, and of money coming back.
        EventType::OrderPaid
        | EventType::OrderRefundRequired
        | EventType::RefundRequested
        | EventType::RefundCompleted => SendAgain,
        // What the storefront already shows.
        EventType::UserSignedUp | EventType::OrderPlaced | EventType::OrderCancelled | EventType::OrderExpired => LetBe,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_and_links_are_sent_again_courtesies_are_let_be() {
        let again: Vec<_> =
            EventType::ALL.into_iter().filter(|t| after_unknown(*t) == AfterUnknown::SendAgain).collect();
        assert_eq!(
            again,
            [
                EventType::OrderPaid,
                EventType::OrderPaymentFailed,
                EventType::OrderRefundRequired,
                EventType::RefundRequested,
                EventType::RefundCompleted,
                EventType::PasswordResetRequested,
            ]
        );
    }
}
