//! Users: a validated e-mail address, a password policy and a role.
//!
//! E-mail addresses are unique case-insensitively: `Ann@Example.com` and `ann@example.com` are
//! the same account. The address is kept as typed for display and lower-cased for the uniqueness key.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// RFC 5321 caps a forward path at 256 octets, so an address is at most 254.
const MAX_EMAIL_LEN: usize = 254;
/// OWASP: at least 8 characters; an upper bound keeps hashing cost bounded for every request.
pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_BYTES: usize = 256;
const MAX_NAME_CHARS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Email(String);

impl Email {
    /// Deliberately simple: one `@`, something on both sides, a dot in the domain, no spaces.
    /// Whether the address really exists is proven by mail, not by a regex.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        let valid = s.len() <= MAX_EMAIL_LEN
            && !s.chars().any(|c| c.is_whitespace() || c.is_control())
            && match s.split_once('@') {
                Some((local, domain)) => {
                    !local.is_empty()
                        && !domain.contains('@')
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                        && !domain.contains("..")
                }
                None => false,
            };
        if valid { Ok(Self(s.to_owned())) } else { Err("email is not a valid address".into()) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The uniqueness key.
    pub fn normalized(&self) -> String {
        self.0.to_lowercase()
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

impl Role {
    /// The first admins are named by configuration (`ADMIN_EMAILS`); everyone else is a customer.
    pub fn for_signup(email: &Email, admin_emails: &[String]) -> Self {
        let key = email.normalized();
        if admin_emails.contains(&key) { Self::Admin } else { Self::Customer }
    }
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
        assert_eq!(e.as_str(), "Ann.Lee+shop@Example.COM");
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
    fn admin_role_only_for_configured_emails() {
        let admins = vec!["boss@shop.test".to_owned()];
        assert_eq!(Role::for_signup(&Email::parse("Boss@Shop.test").unwrap(), &admins), Role::Admin);
        assert_eq!(Role::for_signup(&Email::parse("ann@shop.test").unwrap(), &admins), Role::Customer);
    }
}
