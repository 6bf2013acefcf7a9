//! Typed configuration, read once from the environment at cold start.
//!
//! Every function reads what it needs and fails its init (so Lambda reports an init error and
//! never serves a request half-configured) when something is missing or malformed. Secrets are
//! wrapped in [`SecretString`], whose `Debug` prints `[REDACTED]`, so logging a config is safe.

use secrecy::{ExposeSecret, SecretString};
use std::env;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {why}")]
    Invalid { name: &'static str, why: String },
}

fn required(name: &'static str) -> Result<String, ConfigError> {
    match env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ConfigError::Missing(name)),
    }
}

/// Where the data lives.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub table_name: String,
}

impl StoreConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self { table_name: required("TABLE_NAME")? })
    }
}

/// How tokens are issued and checked.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub jwt_secret: SecretString,
    pub issuer: String,
    pub audience: String,
}

/// HS256 needs a key at least as long as its output (RFC 7518 §3.2).
const MIN_SECRET_BYTES: usize = 32;

impl AuthConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let jwt_secret = SecretString::from(required("JWT_SECRET")?);
        if jwt_secret.expose_secret().len() < MIN_SECRET_BYTES {
            return Err(ConfigError::Invalid {
                name: "JWT_SECRET",
                why: format!("must be at least {MIN_SECRET_BYTES} bytes"),
            });
        }
        if jwt_secret.expose_secret().starts_with("{{resolve:") {
            return Err(ConfigError::Invalid {
                name: "JWT_SECRET",
                why: "is an unresolved CloudFormation dynamic reference; create the secret first (see README)".into(),
            });
        }
        Ok(Self { jwt_secret, issuer: required("JWT_ISSUER")?, audience: required("JWT_AUDIENCE")? })
    }
}

/// How long an unpaid order holds its units (`RESERVATION_MINUTES`, default 15).
pub fn reservation_window_from_env() -> Result<time::Duration, ConfigError> {
    parse_minutes(env::var("RESERVATION_MINUTES").ok().as_deref())
}

const DEFAULT_RESERVATION_MINUTES: i64 = 15;

fn parse_minutes(raw: Option<&str>) -> Result<time::Duration, ConfigError> {
    let minutes = match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => DEFAULT_RESERVATION_MINUTES,
        Some(s) => s.parse::<i64>().ok().filter(|m| (1..=24 * 60).contains(m)).ok_or(ConfigError::Invalid {
            name: "RESERVATION_MINUTES",
            why: "must be a whole number of minutes from 1 to 1440".into(),
        })?,
    };
    Ok(time::Duration::minutes(minutes))
}

/// Comma-separated e-mails that become admins when they sign up, normalised to lower case.
pub fn admin_emails_from_env() -> Vec<String> {
    parse_admin_emails(&env::var("ADMIN_EMAILS").unwrap_or_default())
}

fn parse_admin_emails(raw: &str) -> Vec<String> {
    raw.split(',').map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_emails_are_trimmed_lowercased_and_blank_entries_dropped() {
        assert_eq!(parse_admin_emails(" Boss@Shop.test, ,ops@shop.test "), vec!["boss@shop.test", "ops@shop.test"]);
        assert!(parse_admin_emails("").is_empty());
    }

    #[test]
    fn reservation_window_defaults_to_15_minutes_and_is_bounded() {
        assert_eq!(parse_minutes(None).unwrap(), time::Duration::minutes(15));
        assert_eq!(parse_minutes(Some("30")).unwrap(), time::Duration::minutes(30));
        for bad in ["0", "-1", "abc", "100000"] {
            assert!(parse_minutes(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let c = AuthConfig { jwt_secret: SecretString::from("super-secret"), issuer: "i".into(), audience: "a".into() };
        assert!(!format!("{c:?}").contains("super-secret"));
    }
}
