//! Users: a validated e-mail address, a password policy and a role.
//!
//! E-mail addresses are unique case-insensitively: `Ann@Example.com` and `ann@example.com` are
//! the same account. The address is kept as typed for display and lower-cased for the uniqueness key.
//!
//! An address is only accepted if SES can send to it: SES does not support SMTPUTF8, so the local
//! part (before the `@`) must be 7-bit ASCII, and a domain with non-ASCII characters is accepted in
//! its Punycode form (IDNA, RFC 3492): `ann@bücher.example` is stored, shown and mailed as
//! `ann@xn--bcher-kva.example`. An account whose welcome e-mail could never be delivered is not
//! an account anyone can use to shop.
//!
//! Roles are never derived from an address: everyone signs up as a customer, and an operator makes
//! an admin with the `shop-admin` command (see `admin::`), with AWS credentials of their own.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// RFC 5321 caps a forward path at 256 octets, so an address is at most 254.
const MAX_EMAIL_LEN: usize = 254;
/// RFC 5321: a local part has at most 64 octets.
const MAX_LOCAL_LEN: usize = 64;
/// OWASP: at least 8 characters; an upper bound keeps hashing cost bounded for every request.
pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_BYTES: usize = 256;
const MAX_NAME_CHARS: usize = 100;

/// An address SES can send to. Parsed once: deserialising one goes through [`Email::parse`] too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    /// Deliberately simple: one `@`, an ASCII local part, a domain with a dot (IDN domains become
    /// Punycode), no spaces. Whether the address really exists is proven by mail, not by a regex.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        let (local, domain) = s.split_once('@').ok_or("email is not a valid address")?;
        let invalid = || "email is not a valid address".to_owned();
        if local.is_empty() || domain.contains('@') || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        if !local.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(
                "email must have a plain ASCII part before the @ (our mail service cannot send to others)".into()
            );
        }
        if local.len() > MAX_LOCAL_LEN {
            return Err(invalid());
        }
        let domain = idna::domain_to_ascii(domain).map_err(|_| invalid())?;
        let labels_ok = domain
            .split('.')
            .all(|l| (1..=63).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        if !domain.contains('.') || !labels_ok {
            return Err(invalid());
        }
        let address = format!("{local}@{domain}");
        if address.len() > MAX_EMAIL_LEN {
            return Err(invalid());
        }
        Ok(Self(address))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The uniqueness key.
    pub fn normalized(&self) -> String {
        self.0.to_lowercase()
    }
}

impl TryFrom<String> for Email {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Email> for String {
    fn from(e: Email) -> Self {
        e.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks the password policy; returns the reason on failure. The password itself is never echoed.
pub fn check_password_policy(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!("password must be at least {MIN_PASSWORD_CHARS} characters"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!("password must be at most {MAX_PASSWORD_BYTES} bytes"));
    }
    Ok(())
}

pub fn parse_display_name(raw: Option<&str>) -> Result<String, String> {
    let name = raw.unwrap_or("").trim();
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!("name must be at most {MAX_NAME_CHARS} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("name must not contain control characters".into());
    }
    Ok(name.to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Customer,
    Admin,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: Uuid,
    pub email: Email,
    pub name: String,
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses_and_trims() {
        let e = Email::parse("  Ann.Lee+shop@Example.COM ").unwrap();
        // The part before the @ as typed; the domain as IDNA writes it (lower case).
        assert_eq!(e.as_str(), "Ann.Lee+shop@example.com");
        assert_eq!(e.normalized(), "ann.lee+shop@example.com");
    }

    #[test]
    fn rejects_malformed_addresses() {
        let long = format!("{}@example.com", "a".repeat(250));
        for bad in [
            "",
            "ann",
            "@example.com",
            "ann@",
            "ann@example",
            "a b@example.com",
            "a@b@c.com",
            "a@.com",
            "a@x..com",
            &long,
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn password_policy_bounds_both_ends() {
        assert!(check_password_policy("short").is_err());
        assert!(check_password_policy("long enough").is_ok());
        assert!(check_password_policy(&"x".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
    }

    #[test]
    fn only_addresses_ses_can_send_to() {
        let idn = Email::parse("Ann@Bücher.Example").unwrap();
        assert_eq!(idn.as_str(), "Ann@xn--bcher-kva.example", "IDN domains become Punycode");
        assert_eq!(idn.normalized(), "ann@xn--bcher-kva.example");
        for bad in ["josé@example.com", "ünïcode@example.com", "a\u{200b}b@example.com", "ann@exa_mple.com"] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Email::parse("josé@example.com").unwrap_err().contains("ASCII"));
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(65))).is_err(), "local part over 64");
    }

    #[test]
    fn deserialising_parses() {
        assert!(serde_json::from_str::<Email>("\"not an address\"").is_err());
        let e: Email = serde_json::from_str("\"ann@bücher.example\"").unwrap();
        assert_eq!(serde_json::to_string(&e).unwrap(), "\"ann@xn--bcher-kva.example\"");
    }
}
