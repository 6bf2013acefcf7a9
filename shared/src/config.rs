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

/// The webhook signing secrets, `WEBHOOK_SECRETS`: comma-separated, newest first. The gateway
/// signs with all of them and the webhook accepts any, so a secret is rotated by adding the new
/// one, deploying, then removing the old one.
pub fn webhook_secrets_from_env() -> Result<Vec<SecretString>, ConfigError> {
    parse_webhook_secrets(&required("WEBHOOK_SECRETS")?)
}

/// Shortest webhook secret accepted: HMAC-SHA256 keys should not be guessable.
const MIN_WEBHOOK_SECRET_BYTES: usize = 24;

fn parse_webhook_secrets(raw: &str) -> Result<Vec<SecretString>, ConfigError> {
    let invalid = |why: &str| ConfigError::Invalid { name: "WEBHOOK_SECRETS", why: why.into() };
    if raw.starts_with("{{resolve:") {
        return Err(invalid("is an unresolved CloudFormation dynamic reference; create the secret first (see README)"));
    }
    let secrets: Vec<&str> = raw.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    if secrets.is_empty() || secrets.iter().any(|s| s.len() < MIN_WEBHOOK_SECRET_BYTES) {
        return Err(invalid(&format!("needs secrets of at least {MIN_WEBHOOK_SECRET_BYTES} bytes each")));
    }
    Ok(secrets.into_iter().map(SecretString::from).collect())
}

/// Shortest API key or signing secret accepted from the environment.
const MIN_SECRET_VAR_BYTES: usize = 24;

/// A secret (`GATEWAY_API_KEY`, `MOCK_SIGNING_SECRET`, …): set, long enough, and not an
/// unresolved CloudFormation dynamic reference.
pub fn secret_from_env(name: &'static str) -> Result<SecretString, ConfigError> {
    parse_secret(name, &required(name)?)
}

fn parse_secret(name: &'static str, raw: &str) -> Result<SecretString, ConfigError> {
    if raw.starts_with("{{resolve:") {
        return Err(ConfigError::Invalid {
            name,
            why: "is an unresolved CloudFormation dynamic reference; create the secret first (see README)".into(),
        });
    }
    if raw.trim().len() < MIN_SECRET_VAR_BYTES {
        return Err(ConfigError::Invalid { name, why: format!("must be at least {MIN_SECRET_VAR_BYTES} bytes") });
    }
    Ok(SecretString::from(raw.trim().to_owned()))
}

/// `true` or `false` (default `false`): anything else is a configuration error, not a silent no.
pub fn flag_from_env(name: &'static str) -> Result<bool, ConfigError> {
    match env::var(name).ok().as_deref().map(str::trim) {
        None | Some("") | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ConfigError::Invalid { name, why: "must be true or false".into() }),
    }
}

/// A base URL variable (`GATEWAY_URL`, `WEBHOOK_URL`): must be http(s).
pub fn url_from_env(name: &'static str) -> Result<String, ConfigError> {
    let url = required(name)?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(ConfigError::Invalid { name, why: "must be an http:// or https:// URL".into() });
    }
    Ok(url)
}

/// Whole seconds from `name`, `default` when unset.
pub fn seconds_from_env(name: &'static str, default: i64) -> Result<i64, ConfigError> {
    match env::var(name).ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()) {
        None => Ok(default),
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or(ConfigError::Invalid { name, why: "must be a whole number of seconds".into() }),
    }
}

/// A whole number from `name` within `range`, `default` when unset or blank.
pub fn bounded_from_env<T>(name: &'static str, default: T, range: std::ops::RangeInclusive<T>) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    parse_bounded(name, env::var(name).ok().as_deref(), default, range)
}

fn parse_bounded<T>(
    name: &'static str,
    raw: Option<&str>,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(default),
        Some(s) => s.parse::<T>().ok().filter(|n| range.contains(n)).ok_or_else(|| ConfigError::Invalid {
            name,
            why: format!("must be a whole number from {} to {}", range.start(), range.end()),
        }),
    }
}

/// The mock gateway's waits: `MOCK_DELAY_SECONDS` (`tok_delay`, default 30) and
/// `MOCK_LATE_SECONDS` (`tok_late`, default 20 minutes: past the default 15-minute reservation).
pub fn mock_delays_from_env() -> Result<crate::mock_gateway::scenario::Delays, ConfigError> {
    Ok(crate::mock_gateway::scenario::Delays {
        delay: seconds_from_env("MOCK_DELAY_SECONDS", 30)?,
        late: seconds_from_env("MOCK_LATE_SECONDS", 20 * 60)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservation_window_defaults_to_15_minutes_and_is_bounded() {
        assert_eq!(parse_minutes(None).unwrap(), time::Duration::minutes(15));
        assert_eq!(parse_minutes(Some("30")).unwrap(), time::Duration::minutes(30));
        for bad in ["0", "-1", "abc", "100000"] {
            assert!(parse_minutes(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn bounded_numbers_default_when_unset_and_refuse_what_is_out_of_range() {
        assert_eq!(parse_bounded("N", None, 8usize, 1..=64).unwrap(), 8);
        assert_eq!(parse_bounded("N", Some(" 64 "), 8usize, 1..=64).unwrap(), 64);
        for bad in ["0", "65", "-1", "x", "18446744073709551616"] {
            let e = parse_bounded("N", Some(bad), 8usize, 1..=64).unwrap_err().to_string();
            assert!(e.contains("from 1 to 64"), "{bad}: {e}");
        }
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let c = AuthConfig { jwt_secret: SecretString::from("super-secret"), issuer: "i".into(), audience: "a".into() };
        assert!(!format!("{c:?}").contains("super-secret"));
    }

    #[test]
    fn webhook_secrets_are_a_list_for_rotation_and_must_be_long() {
        let two = parse_webhook_secrets(" new-secret-0123456789abcdef, old-secret-0123456789abcdef ").unwrap();
        assert_eq!(two.len(), 2);
        assert_eq!(two[0].expose_secret(), "new-secret-0123456789abcdef");
        assert!(parse_webhook_secrets("short").is_err());
        assert!(parse_webhook_secrets(" , ").is_err());
        assert!(parse_webhook_secrets("{{resolve:secretsmanager:x:SecretString:webhook_secret}}").is_err());
    }
}
