//! AWS SDK clients as a Lambda function needs them, and nothing more.
//!
//! A function's cold start pays for every byte of its binary and for everything done before its
//! first request, so the clients are built without `aws-config`'s general-purpose machinery
//! (profile files, SSO, STS web identity, IMDS region probing: none of which a Lambda function
//! uses, all of which it would link and set up):
//!
//! - **credentials** from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`,
//!   which Lambda sets for the execution role (and the local stack for its emulators);
//! - **region** from `AWS_REGION` (Lambda sets it);
//! - **endpoint** from the SDK's standard `AWS_ENDPOINT_URL_<SERVICE>` or `AWS_ENDPOINT_URL`, so
//!   the same binaries run against AWS, LocalStack or the local stack unchanged;
//! - **one HTTP client**: hyper with rustls on the *ring* crypto provider (the one reqwest uses
//!   too: one crypto library in the binary, not two), connections pooled per instance;
//! - **trust roots compiled in** ([`TrustRoots`]): AWS endpoints present certificates of Amazon
//!   Trust Services, so those roots (Amazon Root CA 1–4, cross-signed by Starfield Services Root
//!   G2) are all the client needs. The SDK's default, the system store, costs the first request
//!   of every cold start 3–5 ms (reading and parsing ~145 certificates of `/etc/ssl/certs`,
//!   measured); an endpoint override to `https://` (LocalStack, a proxy with its own CA) gets the
//!   system store, as does `TLS_TRUST_ROOTS=system`;
//! - a **pinned behavior version** ([`behavior_version`]), so an SDK update cannot change retry or
//!   timeout defaults under us unnoticed;
//! - the **app name** from `AWS_SDK_UA_APP_ID` in the user agent (the local DynamoDB proxy counts
//!   calls per function by it).

use aws_sdk_dynamodb::config::{AppName, BehaviorVersion, Credentials, Region, SharedCredentialsProvider};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// The roots AWS service endpoints chain to: Amazon Root CA 1–4 and Starfield Services Root
/// Certificate Authority – G2 (<https://www.amazontrust.com/repository/>).
const AMAZON_TRUST_SERVICES: &str = include_str!("amazon-trust-services.pem");

/// Which roots the HTTPS client trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustRoots {
    /// Amazon Trust Services' roots, compiled in: AWS endpoints, no file read at all.
    Amazon,
    /// The system store (`/etc/ssl/certs`, read at the first connection).
    System,
}

impl TrustRoots {
    /// `System` when `TLS_TRUST_ROOTS=system` or an endpoint override is `https://` (it may be
    /// anything: LocalStack's certificate, a corporate proxy's CA); else `Amazon`. Plain `http://`
    /// overrides (the local stack) never use TLS, so they need no roots.
    pub fn from_env() -> Self {
        let https_override = std::env::vars()
            .any(|(k, v)| k.starts_with("AWS_ENDPOINT_URL") && v.trim().to_ascii_lowercase().starts_with("https://"));
        match var("TLS_TRUST_ROOTS").as_deref() {
            Some("system") => TrustRoots::System,
            _ if https_override => TrustRoots::System,
            _ => TrustRoots::Amazon,
        }
    }

    fn store(self) -> TrustStore {
        match self {
            TrustRoots::Amazon => TrustStore::empty().with_pem_certificate(AMAZON_TRUST_SERVICES.as_bytes()),
            TrustRoots::System => TrustStore::default(),
        }
    }
}

/// The SDK defaults (retries, timeouts, stalled-stream protection) this code was written against.
pub fn behavior_version() -> BehaviorVersion {
    BehaviorVersion::v2026_01_12()
}

/// What every client of one instance shares.
#[derive(Debug, Clone)]
pub struct AwsEnv {
    pub region: Region,
    pub credentials: SharedCredentialsProvider,
    pub http: SharedHttpClient,
    pub app_name: Option<AppName>,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// The HTTPS client every SDK client of the instance uses (rustls + ring, trusting `roots`).
pub fn https_client(roots: TrustRoots) -> SharedHttpClient {
    let context = TlsContext::builder().with_trust_store(roots.store()).build().expect("a trust store is all we set");
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
        .tls_context(context)
        .build_https()
}

impl AwsEnv {
    /// From the environment Lambda provides. Missing credentials are an empty set (an anonymous
    /// client fails its first request, loudly), not an error at cold start: tools run it too.
    pub fn from_env() -> Self {
        let credentials = Credentials::new(
            var("AWS_ACCESS_KEY_ID").unwrap_or_default(),
            var("AWS_SECRET_ACCESS_KEY").unwrap_or_default(),
            var("AWS_SESSION_TOKEN"),
            None,
            "environment",
        );
        Self {
            region: Region::new(
                var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")).unwrap_or_else(|| "us-east-1".into()),
            ),
            credentials: SharedCredentialsProvider::new(credentials),
            http: https_client(TrustRoots::from_env()),
            app_name: var("AWS_SDK_UA_APP_ID").and_then(|a| AppName::new(a).ok()),
        }
    }

    /// `AWS_ENDPOINT_URL_<SERVICE>`, else `AWS_ENDPOINT_URL`.
    pub fn endpoint(service: &str) -> Option<String> {
        var(&format!("AWS_ENDPOINT_URL_{service}")).or_else(|| var("AWS_ENDPOINT_URL"))
    }

    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        let mut config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(behavior_version())
            .region(self.region.clone())
            .credentials_provider(self.credentials.clone())
            .http_client(self.http.clone());
        config.set_app_name(self.app_name.clone());
        config.set_endpoint_url(Self::endpoint("DYNAMODB"));
        aws_sdk_dynamodb::Client::from_conf(config.build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;

    #[test]
    fn the_compiled_in_roots_are_the_five_aws_documents() {
        let ders: Vec<_> = rustls_pki_types::CertificateDer::pem_slice_iter(AMAZON_TRUST_SERVICES.as_bytes())
            .collect::<Result<_, _>>()
            .expect("valid PEM");
        assert_eq!(ders.len(), 5);
        // What the SDK does with them at the first connection: every one must be a usable anchor.
        for der in &ders {
            webpki::anchor_from_trusted_cert(der).expect("a trust anchor");
        }
    }
}
