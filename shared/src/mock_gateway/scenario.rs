//! Test tokens: the payment token decides what the mock gateway does with a charge. Pure.
//!
//! | token | charge status | webhooks |
//! |---|---|---|
//! | `tok_success` | `succeeded` | `charge.succeeded` now |
//! | `tok_fail` | `failed` (declined) | `charge.failed` now |
//! | `tok_delay` | `pending`, `succeeded` after the delay | `charge.succeeded` after the delay |
//! | `tok_duplicate` | `succeeded` | the same `charge.succeeded` event twice, concurrently |
//! | `tok_out_of_order` | `succeeded` | a `charge.failed`, then a `charge.succeeded` (another event) |
//! | `tok_late` | `pending`, `succeeded` after the late delay | `charge.succeeded` after the late delay (past the order's deadline) |

use crate::domain::payment::ChargeStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Token {
    Success,
    Fail,
    Delay,
    Duplicate,
    OutOfOrder,
    Late,
}

impl Token {
    pub const ALL: [Self; 6] = [Self::Success, Self::Fail, Self::Delay, Self::Duplicate, Self::OutOfOrder, Self::Late];

    /// The test card's token, as a client sends it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "tok_success",
            Self::Fail => "tok_fail",
            Self::Delay => "tok_delay",
            Self::Duplicate => "tok_duplicate",
            Self::OutOfOrder => "tok_out_of_order",
            Self::Late => "tok_late",
        }
    }

    pub fn parse(token: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == token)
    }
}

/// The two configurable waits, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delays {
    /// `tok_delay`: "settles later".
    pub delay: i64,
    /// `tok_late`: longer than an order's reservation window.
    pub late: i64,
}

/// One webhook to send: which event (same index = same event id and body), its outcome, and how
/// long after the charge it is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedWebhook {
    pub event: usize,
    pub status: ChargeStatus,
    pub after: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// What the charge settles to, `after` seconds from creation (0 = at once).
    pub final_status: ChargeStatus,
    pub settles_after: i64,
    pub webhooks: Vec<PlannedWebhook>,
    /// Send the webhooks due now all at once rather than in order.
    pub concurrent: bool,
}

pub fn plan(token: Token, delays: Delays) -> Plan {
    use ChargeStatus::{Failed, Succeeded};
    let now = |event, status| PlannedWebhook { event, status, after: 0 };
    let (final_status, settles_after, webhooks, concurrent) = match token {
        Token::Success => (Succeeded, 0, vec![now(0, Succeeded)], false),
        Token::Fail => (Failed, 0, vec![now(0, Failed)], false),
        Token::Delay => {
            (Succeeded, delays.delay, vec![PlannedWebhook { after: delays.delay, ..now(0, Succeeded) }], false)
        }
        Token::Duplicate => (Succeeded, 0, vec![now(0, Succeeded), now(0, Succeeded)], true),
        Token::OutOfOrder => (Succeeded, 0, vec![now(0, Failed), now(1, Succeeded)], false),
        Token::Late => {
            (Succeeded, delays.late, vec![PlannedWebhook { after: delays.late, ..now(0, Succeeded) }], false)
        }
    };
    Plan { final_status, settles_after, webhooks, concurrent }
}

/// The status a client reading the charge at `now` sees.
pub fn status_at(final_status: ChargeStatus, settles_at: i64, now: i64) -> ChargeStatus {
    if now >= settles_at { final_status } else { ChargeStatus::Pending }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Delays = Delays { delay: 30, late: 1200 };

    #[test]
    fn every_token_ends_in_its_final_status_and_its_last_webhook_says_so() {
        for t in ["tok_success", "tok_fail", "tok_delay", "tok_duplicate", "tok_out_of_order", "tok_late"] {
            let p = plan(Token::parse(t).unwrap(), D);
            assert_eq!(p.webhooks.last().unwrap().status, p.final_status, "{t}");
            assert!(p.webhooks.iter().all(|w| w.after == p.settles_after || w.after == 0), "{t}");
        }
        assert_eq!(Token::parse("tok_unknown"), None);
    }

    #[test]
    fn chaos_tokens() {
        let dup = plan(Token::Duplicate, D);
        assert_eq!(dup.webhooks[0], dup.webhooks[1], "the same event twice");
        assert!(dup.concurrent);
        let ooo = plan(Token::OutOfOrder, D);
        assert_eq!((ooo.webhooks[0].status, ooo.webhooks[1].status), (ChargeStatus::Failed, ChargeStatus::Succeeded));
        assert_ne!(ooo.webhooks[0].event, ooo.webhooks[1].event, "two distinct events");
        assert_eq!(plan(Token::Late, D).webhooks[0].after, 1200);
    }

    #[test]
    fn a_delayed_charge_reads_pending_until_it_settles() {
        assert_eq!(status_at(ChargeStatus::Succeeded, 100, 99), ChargeStatus::Pending);
        assert_eq!(status_at(ChargeStatus::Succeeded, 100, 100), ChargeStatus::Succeeded);
    }
}
