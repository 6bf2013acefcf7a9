//! SASL/OAUTHBEARER with MSK IAM tokens: the front does what MSK's IAM listener does, because
//! tansu knows no SASL.
//!
//! **The exchange.** After ApiVersions, a SASL client sends SaslHandshake (KIP-43) naming its
//! mechanism, then its SASL messages inside SaslAuthenticate requests (KIP-152) — v0 of the
//! handshake sends them as raw frames instead, which the front does not speak (it advertises
//! SaslHandshake v1 only, see [`super::api_versions`]). OAUTHBEARER (KIP-255) needs
//! one message: the client's initial response (RFC 7628 §3.1), a GS2 header and key/value pairs
//! separated by `\x01`:
//!
//! ```text
//! n,,\x01auth=Bearer <token>\x01\x01
//! ```
//!
//! **The token.** MSK's is a SigV4-*presigned* URL, base64url without padding:
//! `https://kafka.<region>.amazonaws.com/?Action=kafka-cluster%3AConnect&X-Amz-Algorithm=…&
//! X-Amz-Credential=<key id>%2F<date>%2F<region>%2Fkafka-cluster%2Faws4_request&X-Amz-Date=…&
//! X-Amz-Expires=900&X-Amz-Security-Token=…&X-Amz-Signature=…` (`shop_kafka::msk_iam` builds it).
//! The caller is named as the other fronts name theirs, by [`Authorizer::caller`]: the key id of
//! `X-Amz-Credential` names the function, and the security token must be the one the stack issued
//! with it. The signature itself is not checked: the stack's question is *which role*, and the
//! key id and session token answer it as surely as they do for the DynamoDB proxy.
//!
//! **The decision.** MSK authorizes `kafka-cluster:Connect` on the cluster at authentication; a
//! refusal is SaslAuthenticate's error 58 (SASL_AUTHENTICATION_FAILED) with IAM's message, and the
//! broker then closes the connection. Success returns `session_lifetime_ms` (v1+), the token's
//! remaining life: the client authenticates again on the same connection before it ends (KIP-368),
//! which the front serves like the first time. A token signed with keys the stack did not issue is
//! the operator (a tool or a test), authenticated and not judged, like the connections that never
//! authenticate at all.

use http::{HeaderMap, HeaderValue};
use kafka_protocol::messages::{SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse};
use kafka_protocol::protocol::StrBytes;
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

use super::judge::{CONNECT, Cluster};
use crate::emulators::iam::authorizer::{Access, Authorizer, Caller};

pub const MECHANISM: &str = "OAUTHBEARER";

pub const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
pub const ILLEGAL_SASL_STATE: i16 = 34;
pub const SASL_AUTHENTICATION_FAILED: i16 = 58;

/// What AWS answers for a key id it issued with another session token.
const INVALID_TOKEN: &str = "The security token included in the request is invalid.";

/// Who a connection authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A function, by logical id: its requests are judged by its role.
    Function(String),
    /// Keys the stack did not issue: not judged.
    Operator,
}

/// A successful authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub principal: Principal,
    /// How long it holds (the token's remaining life).
    pub lifetime_ms: i64,
}

/// The bearer token of an OAUTHBEARER client's initial response (RFC 7628 §3.1):
/// `gs2-header \x01 *(key=value \x01) \x01`, the gs2-header being `n,` or `y,`, an optional
/// `a=<authzid>`, and `,`; the token is the `auth` pair's value after the `Bearer` scheme.
pub fn bearer_token(message: &[u8]) -> Result<&str, String> {
    let text = std::str::from_utf8(message).map_err(|_| "the OAUTHBEARER message is not UTF-8".to_owned())?;
    let malformed = || format!("not an OAUTHBEARER initial response: {:?}", text.chars().take(40).collect::<String>());
    let rest = text.strip_prefix("n,").or_else(|| text.strip_prefix("y,")).ok_or_else(malformed)?;
    let (authzid, pairs) = rest.split_once(',').ok_or_else(malformed)?;
    if !(authzid.is_empty() || authzid.starts_with("a=")) {
        return Err(malformed());
    }
    let pairs = pairs.strip_prefix('\x01').and_then(|p| p.strip_suffix("\x01\x01")).ok_or_else(malformed)?;
    let auth = pairs
        .split('\x01')
        .find_map(|pair| pair.strip_prefix("auth="))
        .ok_or_else(|| "the OAUTHBEARER message has no auth=".to_owned())?;
    let (scheme, token) = auth.split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("Bearer") || token.trim().is_empty() {
        return Err(malformed());
    }
    Ok(token.trim())
}

/// The presigned `kafka-cluster:Connect` URL a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectUrl {
    /// Its query string, as signed.
    pub query: String,
    /// `X-Amz-Security-Token`.
    pub security_token: Option<String>,
    /// `X-Amz-Date` + `X-Amz-Expires`.
    pub expires: OffsetDateTime,
}

impl ConnectUrl {
    pub fn from_token(token: &str) -> Result<Self, String> {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.trim_end_matches('='))
            .map_err(|_| "the token is not base64url".to_owned())?;
        let url = String::from_utf8(bytes).map_err(|_| "the token is not a URL".to_owned())?;
        let (_, query) = url
            .strip_prefix("https://")
            .and_then(|u| u.split_once('?'))
            .ok_or_else(|| "the token is not a presigned URL".to_owned())?;
        let param = |name: &str| {
            form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.into_owned())
        };
        if param("Action").as_deref() != Some(CONNECT) {
            return Err(format!("the token is not signed for {CONNECT}"));
        }
        let date = param("X-Amz-Date")
            .and_then(|d| {
                PrimitiveDateTime::parse(
                    &d,
                    time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"),
                )
                .ok()
            })
            .ok_or_else(|| "the token has no valid X-Amz-Date".to_owned())?;
        let expires_in = param("X-Amz-Expires")
            .and_then(|e| e.parse::<i64>().ok())
            .ok_or_else(|| "the token has no valid X-Amz-Expires".to_owned())?;
        Ok(Self {
            query: query.to_owned(),
            security_token: param("X-Amz-Security-Token"),
            expires: date.assume_utc() + Duration::seconds(expires_in),
        })
    }

    /// What [`Authorizer::caller`] reads besides the query: the session token.
    pub fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = self.security_token.as_deref().and_then(|t| HeaderValue::from_str(t).ok()) {
            headers.insert("x-amz-security-token", value);
        }
        headers
    }
}

/// Authenticates the client's initial response at `now`, and authorizes `kafka-cluster:Connect`
/// for a function. The error is the message SaslAuthenticate carries back.
pub fn authenticate(
    iam: &Authorizer,
    cluster: &Cluster,
    message: &[u8],
    now: OffsetDateTime,
) -> Result<Session, String> {
    let url = ConnectUrl::from_token(bearer_token(message)?)?;
    let lifetime_ms = i64::try_from((url.expires - now).whole_milliseconds()).unwrap_or(i64::MAX);
    if lifetime_ms <= 0 {
        return Err("the token has expired".to_owned());
    }
    let principal = match iam.caller(&url.headers(), Some(&url.query)) {
        Caller::Operator => Principal::Operator,
        Caller::BadToken => return Err(INVALID_TOKEN.to_owned()),
        Caller::Function(function) => {
            iam.authorize(&function, &[Access::new(CONNECT, cluster.arn())]).map_err(|denied| denied.message)?;
            Principal::Function(function)
        }
    };
    Ok(Session { principal, lifetime_ms })
}

/// The answer to SaslHandshake: OAUTHBEARER is the one mechanism (error 33 for any other).
pub fn handshake(request: &SaslHandshakeRequest) -> SaslHandshakeResponse {
    let error_code = if request.mechanism.as_str() == MECHANISM { 0 } else { UNSUPPORTED_SASL_MECHANISM };
    SaslHandshakeResponse::default()
        .with_error_code(error_code)
        .with_mechanisms(vec![StrBytes::from_static_str(MECHANISM)])
}

/// The answer to SaslAuthenticate.
pub fn authenticated(outcome: &Result<Session, String>) -> SaslAuthenticateResponse {
    match outcome {
        Ok(session) => {
            SaslAuthenticateResponse::default().with_error_message(None).with_session_lifetime_ms(session.lifetime_ms)
        }
        Err(message) => failed(SASL_AUTHENTICATION_FAILED, message),
    }
}

/// A SaslAuthenticate error.
pub fn failed(error_code: i16, message: &str) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(error_code)
        .with_error_message(Some(StrBytes::from_string(message.to_owned())))
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::frame::{encode_response, tests::b};
    use super::*;
    use crate::emulators::iam::Roles;
    use crate::emulators::iam::authorizer::Mode;
    use base64::Engine;

    pub const CLUSTER: &str = "arn:aws:kafka:us-east-1:123456789012:cluster/shop/abcd-1";

    /// `Relay` may connect, produce idempotently and describe and write `allowed`; `Stranger` may
    /// do nothing on the cluster.
    pub fn authorizer() -> Authorizer {
        let template = format!(
            r#"
Resources:
  Relay:
    Type: AWS::Serverless::Function
    Properties:
      Policies:
        - Statement:
            - Effect: Allow
              Action: [kafka-cluster:Connect, kafka-cluster:WriteDataIdempotently]
              Resource: {CLUSTER}
            - Effect: Allow
              Action: [kafka-cluster:DescribeTopic, kafka-cluster:WriteData]
              Resource: arn:aws:kafka:us-east-1:123456789012:topic/shop/abcd-1/allowed
  Stranger:
    Type: AWS::Serverless::Function
    Properties:
      Policies:
        - Statement:
            - Effect: Allow
              Action: [kafka-cluster:Connect]
              Resource: arn:aws:kafka:us-east-1:123456789012:cluster/other/x
"#
        );
        Authorizer::new(Roles::from_template(&template).unwrap(), Mode::Enforce)
    }

    pub fn now() -> OffsetDateTime {
        time::macros::datetime!(2027-01-15 08:05 UTC)
    }

    /// The token `shop_kafka::msk_iam` would send, signed at `signed` for 900 s (the signature is
    /// not checked).
    pub fn token_at(key_id: &str, session_token: &str, signed: OffsetDateTime) -> String {
        let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let date =
            signed.format(time::macros::format_description!("[year][month][day]T[hour][minute][second]Z")).unwrap();
        let url = format!(
            "https://kafka.us-east-1.amazonaws.com/?Action=kafka-cluster%3AConnect&X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential={key_id}%2F20270115%2Fus-east-1%2Fkafka-cluster%2Faws4_request&X-Amz-Date={date}\
             &X-Amz-Expires=900&X-Amz-Security-Token={}&X-Amz-SignedHeaders=host&X-Amz-Signature=abc\
             &User-Agent=shop-outbox-relay%2F0.1.0",
            encode(session_token)
        );
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url)
    }

    /// Signed at 08:00, five minutes before [`now`].
    pub fn token(key_id: &str, session_token: &str) -> String {
        token_at(key_id, session_token, time::macros::datetime!(2027-01-15 08:00 UTC))
    }

    pub fn message(token: &str) -> Vec<u8> {
        format!("n,,\x01auth=Bearer {token}\x01\x01").into_bytes()
    }

    /// `function`'s initial response, signed at 08:00.
    pub fn function_message(iam: &Authorizer, function: &str) -> Vec<u8> {
        let c = iam.credentials(function).unwrap();
        message(&token(&c.access_key_id, &c.session_token))
    }

    #[test]
    fn the_token_is_the_auth_pairs_bearer_value() {
        assert_eq!(bearer_token(b"n,,\x01auth=Bearer abc.def\x01\x01"), Ok("abc.def"));
        assert_eq!(bearer_token(b"n,a=someone,\x01host=h\x01auth=bearer abc\x01port=9098\x01\x01"), Ok("abc"));
        for bad in [
            &b"\x01"[..],                                 // the client's error reply to a challenge
            b"n,,\x01auth=Bearer abc\x01",                // no closing kvsep
            b"p=tls-unique,,\x01auth=Bearer abc\x01\x01", // channel binding: not OAUTHBEARER's
            b"n,,\x01auth=Basic abc\x01\x01",
            b"n,,\x01host=h\x01\x01",
            b"n,,\xff\x01\x01",
        ] {
            assert!(bearer_token(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_token_is_a_presigned_connect_url() {
        let url = ConnectUrl::from_token(&token("ASIAEXAMPLE", "tok/en+")).unwrap();
        assert_eq!(url.security_token.as_deref(), Some("tok/en+"));
        assert_eq!(url.expires, time::macros::datetime!(2027-01-15 08:15 UTC));
        assert!(url.query.contains("X-Amz-Credential=ASIAEXAMPLE%2F"), "{}", url.query);
        assert_eq!(url.headers()["x-amz-security-token"], "tok/en+");
        // Padding is tolerated; anything else is refused.
        assert!(ConnectUrl::from_token(&format!("{}==", token("A", "t"))).is_ok());
        let other = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode("https://sts.amazonaws.com/?Action=GetCallerIdentity");
        assert!(ConnectUrl::from_token(&other).unwrap_err().contains("kafka-cluster:Connect"));
        assert!(ConnectUrl::from_token("!!!").is_err());
    }

    #[test]
    fn a_functions_token_names_it_and_connect_is_judged_by_its_role() {
        let iam = authorizer();
        let cluster = Cluster::new(CLUSTER);
        let session = authenticate(&iam, &cluster, &function_message(&iam, "Relay"), now()).unwrap();
        assert_eq!(session, Session { principal: Principal::Function("Relay".into()), lifetime_ms: 600_000 });

        let denied = authenticate(&iam, &cluster, &function_message(&iam, "Stranger"), now()).unwrap_err();
        assert!(
            denied.contains("is not authorized to perform: kafka-cluster:Connect on resource: arn:aws:kafka"),
            "{denied}"
        );
    }

    #[test]
    fn foreign_keys_are_the_operator_and_a_wrong_session_token_or_an_old_token_fails() {
        let iam = authorizer();
        let cluster = Cluster::new(CLUSTER);
        let operator = authenticate(&iam, &cluster, &message(&token("AKIAOPERATOR", "x")), now()).unwrap();
        assert_eq!(operator.principal, Principal::Operator);

        let key = iam.credentials("Relay").unwrap().access_key_id.clone();
        let stolen = authenticate(&iam, &cluster, &message(&token(&key, "not-its-token")), now());
        assert_eq!(stolen, Err(INVALID_TOKEN.to_owned()));

        let later = now() + Duration::minutes(20);
        assert!(authenticate(&iam, &cluster, &function_message(&iam, "Relay"), later).unwrap_err().contains("expired"));
    }

    #[test]
    fn handshake_answers_name_oauthbearer() {
        let ok = handshake(&SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("OAUTHBEARER")));
        // SaslHandshake v1 response: error_code i16, mechanisms array (i32 count, i16 strings).
        let bytes = b().i32(5).i16(0).i32(1).string(Some("OAUTHBEARER")).frame();
        assert_eq!(encode_response(5, 1, &ok).unwrap(), bytes);
        let plain = handshake(&SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")));
        assert_eq!(plain.error_code, UNSUPPORTED_SASL_MECHANISM);
    }

    #[test]
    fn authenticate_answers_per_version() {
        let ok = authenticated(&Ok(Session { principal: Principal::Operator, lifetime_ms: 600_000 }));
        // v0: error_code, error_message (nullable string), auth_bytes (i32-length bytes).
        assert_eq!(encode_response(3, 0, &ok).unwrap(), b().i32(3).i16(0).i16(-1).i32(0).frame());
        // v1 adds session_lifetime_ms.
        assert_eq!(encode_response(3, 1, &ok).unwrap(), b().i32(3).i16(0).i16(-1).i32(0).i64(600_000).frame());
        // v2 is flexible: response header v1 (tags), compact string and bytes, tags.
        let no = authenticated(&Err("Access denied".into()));
        assert_eq!(
            encode_response(3, 2, &no).unwrap(),
            b().i32(3).no_tags().i16(58).compact_string(Some("Access denied")).uvarint(1).i64(0).no_tags().frame()
        );
    }
}
