//! Password-reset tokens: what the e-mailed link carries.
//!
//! Following the OWASP Forgot Password Cheat Sheet: 32 bytes from the operating system's CSPRNG
//! (256 bits, so guessing is hopeless and no per-token rate limit is needed for safety — the
//! per-client limit is only there to keep guessers from costing us), written as 43 characters of
//! unpadded base64url so it fits a URL untouched. The table stores only its SHA-256 ([`hash`]):
//! a fast hash is right for a random secret of this size (a slow one protects low-entropy
//! passwords), and someone who reads the table cannot use what they read.
//!
//! Tokens are pure values here; where they are stored, how long they live and what makes them
//! invalid (used, superseded, expired, account closed) is `api::account::reset`'s.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const BYTES: usize = 32;
/// `BYTES` in unpadded base64url.
pub const LEN: usize = 43;

/// A reset token. `Debug` never prints it, so a `?event` in a log line cannot leak one.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ResetToken(String);

impl std::fmt::Debug for ResetToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResetToken(<redacted>)")
    }
}

impl ResetToken {
    pub fn generate() -> Self {
        let bytes: [u8; BYTES] = rand::random();
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A token as a client sent it back, if it has the shape of one; anything else can match
    /// nothing, so it is refused without a read.
    pub fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        let decoded = URL_SAFE_NO_PAD.decode(raw).ok()?;
        (raw.len() == LEN && decoded.len() == BYTES).then(|| Self(raw.to_owned()))
    }

    /// What the table keeps: the SHA-256, hex.
    pub fn hash(&self) -> String {
        hash(&self.0)
    }

    /// The token itself: for the e-mail only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// The stored form of a token.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_differ() {
        let a = ResetToken::generate();
        assert_eq!(a.expose().len(), LEN);
        assert_eq!(ResetToken::parse(a.expose()), Some(a.clone()));
        assert_ne!(a, ResetToken::generate());
        assert_eq!(a.hash().len(), 64);
        assert!(!format!("{a:?}").contains(a.expose()), "Debug must not print the token");
    }

    #[test]
    fn anything_else_is_not_a_token() {
        let a = ResetToken::generate();
        let long = "A".repeat(10_000);
        for bad in ["", "abc", &long, "é".repeat(43).as_str(), &format!("{}=", a.expose()), &a.expose()[1..]] {
            assert_eq!(ResetToken::parse(bad), None, "{bad:?}");
        }
    }
}
