//! Amazon MSK with IAM access control: how the producer proves who it is.
//!
//! MSK's IAM listener (port 9098) speaks SASL_SSL with the OAUTHBEARER mechanism; the "token" is a
//! SigV4-presigned `kafka-cluster:Connect` URL, made from the function's own credentials (its
//! execution role) by the `aws-msk-iam-sasl-signer` crate, valid for 15 minutes. librdkafka asks
//! for a token when it connects and again before the last one expires, through the client
//! context's OAUTHBEARER refresh callback, implemented here.
//!
//! The callback is synchronous and runs on librdkafka's polling thread (never on the Tokio
//! runtime), while the signer is async: it is run to completion on the runtime the producer was
//! created in, through a captured [`tokio::runtime::Handle`]. With `KAFKA_AUTH=plaintext` the
//! context is inert: librdkafka only calls the callback for `sasl.mechanism=OAUTHBEARER`.

use rdkafka::ClientContext;
use rdkafka::client::OAuthToken;
use std::error::Error;

pub struct MskIamContext {
    signer: Option<Signer>,
}

struct Signer {
    region: String,
    runtime: tokio::runtime::Handle,
}

impl MskIamContext {
    /// No IAM: plaintext (or another mechanism configured without a callback).
    pub fn none() -> Self {
        Self { signer: None }
    }

    /// Tokens for the cluster's region. Must be called inside a Tokio runtime.
    pub fn for_region(region: &str) -> Self {
        Self { signer: Some(Signer { region: region.to_owned(), runtime: tokio::runtime::Handle::current() }) }
    }
}

impl ClientContext for MskIamContext {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(&self, _config: Option<&str>) -> Result<OAuthToken, Box<dyn Error>> {
        let signer = self.signer.as_ref().ok_or("OAUTHBEARER requested but KAFKA_AUTH is not msk-iam")?;
        let region = aws_config::Region::new(signer.region.clone());
        let (token, expires_at_ms) =
            signer.runtime.block_on(aws_msk_iam_sasl_signer::generate_auth_token(region)).map_err(|e| {
                tracing::error!(error = %e, "could not sign an MSK IAM token");
                e
            })?;
        // The principal is informational for MSK (it authorises the signed identity).
        Ok(OAuthToken { token, principal_name: String::new(), lifetime_ms: expires_at_ms })
    }
}
