//! Amazon MSK with IAM access control: how the producer proves who it is.
//!
//! MSK's IAM listener (port 9098) speaks SASL_SSL with the OAUTHBEARER mechanism; the "token" is a
//! SigV4-presigned `kafka-cluster:Connect` URL, signed with the function's own credentials (its
//! execution role), valid for 15 minutes, base64url-encoded (the format of AWS's own
//! `aws-msk-iam-sasl-signer` libraries: `https://kafka.<region>.amazonaws.com/?Action=kafka-cluster%3AConnect`
//! plus the SigV4 query parameters plus a `User-Agent`). librdkafka asks for a token when it
//! connects and again before the last one expires, through the client context's OAUTHBEARER
//! refresh callback, implemented here.
//!
//! Signed here with `aws-sigv4` rather than with the `aws-msk-iam-sasl-signer` crate, because that
//! crate turns on the AWS SDK's default HTTPS client and `aws-config`, and Cargo unifies features
//! over the workspace build: every function, not only this relay, would link a second TLS stack.
//! The credentials are the ones Lambda gives the function in its environment (`shop::aws`).
//! With `KAFKA_AUTH=plaintext` the context is inert: librdkafka only calls the callback for
//! `sasl.mechanism=OAUTHBEARER`.

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign};
use aws_sigv4::sign::v4;
use base64::Engine;
use rdkafka::ClientContext;
use rdkafka::client::OAuthToken;
use std::error::Error;
use std::time::{Duration, SystemTime};

/// How long a token is valid (the MSK IAM libraries' default).
const EXPIRY: Duration = Duration::from_secs(900);

pub struct MskIamContext {
    region: Option<String>,
}

impl MskIamContext {
    /// No IAM: plaintext (or another mechanism configured without a callback).
    pub fn none() -> Self {
        Self { region: None }
    }

    /// Tokens for the cluster's region.
    pub fn for_region(region: &str) -> Self {
        Self { region: Some(region.to_owned()) }
    }
}

/// The token for `region`, signed with `credentials` at `now`, and when it expires (ms since epoch).
pub fn token(region: &str, credentials: Credentials, now: SystemTime) -> Result<(String, i64), String> {
    let url = format!("https://kafka.{region}.amazonaws.com/?Action=kafka-cluster%3AConnect");
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(EXPIRY);
    let identity = credentials.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("kafka-cluster")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| format!("signing parameters: {e}"))?;
    let request = SignableRequest::new("GET", &url, std::iter::empty(), SignableBody::Bytes(&[]))
        .map_err(|e| format!("request to sign: {e}"))?;
    let (instructions, _) = sign(request, &params.into()).map_err(|e| format!("signing: {e}"))?.into_parts();
    let mut signed = url;
    for (name, value) in instructions.params() {
        signed.push_str(&format!("&{name}={}", percent(value)));
    }
    signed.push_str(&format!("&User-Agent=shop-outbox-relay%2F{}", env!("CARGO_PKG_VERSION")));
    let expires = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default() + EXPIRY;
    let expires_ms = i64::try_from(expires.as_millis()).unwrap_or(i64::MAX);
    Ok((base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signed), expires_ms))
}

/// Query-string encoding as SigV4 wants it (RFC 3986 unreserved characters kept).
fn percent(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn env_credentials() -> Credentials {
    let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
    Credentials::new(
        var("AWS_ACCESS_KEY_ID").unwrap_or_default(),
        var("AWS_SECRET_ACCESS_KEY").unwrap_or_default(),
        var("AWS_SESSION_TOKEN"),
        None,
        "environment",
    )
}

impl ClientContext for MskIamContext {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(&self, _config: Option<&str>) -> Result<OAuthToken, Box<dyn Error>> {
        let region = self.region.as_deref().ok_or("OAUTHBEARER requested but KAFKA_AUTH is not msk-iam")?;
        let (token, lifetime_ms) = token(region, env_credentials(), SystemTime::now()).map_err(|e| {
            tracing::error!(error = %e, "could not sign an MSK IAM token");
            e
        })?;
        // The principal is informational for MSK (it authorises the signed identity).
        Ok(OAuthToken { token, principal_name: String::new(), lifetime_ms })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_a_presigned_connect_url_valid_for_15_minutes() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let creds = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            Some("tok/en".into()),
            None,
            "t",
        );
        let (token, expires_ms) = token("eu-west-1", creds, now).unwrap();
        let url = String::from_utf8(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&token).unwrap()).unwrap();
        assert!(url.starts_with("https://kafka.eu-west-1.amazonaws.com/?Action=kafka-cluster%3AConnect&"), "{url}");
        for part in [
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "X-Amz-Credential=AKIDEXAMPLE%2F20270115%2Feu-west-1%2Fkafka-cluster%2Faws4_request",
            "X-Amz-Date=20270115T080000Z",
            "X-Amz-Expires=900",
            "X-Amz-Security-Token=tok%2Fen",
            "X-Amz-SignedHeaders=host",
            "X-Amz-Signature=",
            "User-Agent=shop-outbox-relay",
        ] {
            assert!(url.contains(part), "{part} in {url}");
        }
        assert_eq!(expires_ms, 1_800_000_900_000);
        assert!(!token.contains('=') && !token.contains('+') && !token.contains('/'), "base64url without padding");
    }
}
