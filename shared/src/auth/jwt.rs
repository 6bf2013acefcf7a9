//! Access tokens: HS256 JWTs valid for one hour.
//!
//! Claims: `sub` (user id), `role`, `email`, `gen`, `iss`, `aud`, `iat`, `exp`. Verification is
//! strict: only HS256 (so `alg: none` or an RSA/HMAC confusion is refused), issuer and audience
//! must match, every registered claim must be present, and clock leeway is a few seconds only.
//!
//! A signature proves who the token was issued to, not that the session is still open: `gen` is
//! the account's session generation when it was issued, and `auth::session` refuses a token whose
//! generation is no longer the account's (signed out everywhere, password changed, account
//! closed). Tokens from before generations existed have none and read as generation 0.

use crate::domain::user::Role;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const TOKEN_TTL_SECS: i64 = 3600;
const LEEWAY_SECS: u64 = 5;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub role: Role,
    pub email: String,
    /// The account's session generation at issue (see the module docs).
    #[serde(default, rename = "gen")]
    pub generation: u64,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

/// Who is calling, once the token checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: Uuid,
    pub role: Role,
    pub email: String,
    /// The session generation the token was issued in.
    pub generation: u64,
}

/// Issues and verifies tokens; built once at cold start.
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys stay out of logs.
        f.debug_struct("Tokens").field("issuer", &self.issuer).field("audience", &self.audience).finish()
    }
}

impl Tokens {
    pub fn new(secret: &SecretString, issuer: &str, audience: &str) -> Self {
        let key = secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        Self {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            validation,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        }
    }

    /// A token for `user`, valid from `now` (unix seconds) for [`TOKEN_TTL_SECS`].
    pub fn issue(
        &self,
        user_id: Uuid,
        role: Role,
        email: &str,
        generation: u64,
        now: i64,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let claims = Claims {
            sub: user_id,
            role,
            email: email.to_owned(),
            generation,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            exp: now + TOKEN_TTL_SECS,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    /// The caller behind `token`, or `None` for any token that is not ours, unexpired and intact.
    pub fn verify(&self, token: &str) -> Option<Principal> {
        let data = decode::<Claims>(token, &self.decoding, &self.validation).ok()?;
        let c = data.claims;
        Some(Principal { user_id: c.sub, role: c.role, email: c.email, generation: c.generation })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn tokens() -> Tokens {
        Tokens::new(&SecretString::from("0123456789abcdef0123456789abcdef"), "shop-test", "shop-test-api")
    }

    fn now() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    #[test]
    fn round_trip() {
        let t = tokens();
        let id = Uuid::new_v4();
        let token = t.issue(id, Role::Admin, "a@b.co", 3, now()).unwrap();
        assert_eq!(
            t.verify(&token),
            Some(Principal { user_id: id, role: Role::Admin, email: "a@b.co".into(), generation: 3 })
        );
    }

    #[test]
    fn expired_wrong_key_wrong_audience_and_tampering_are_refused() {
        let t = tokens();
        let id = Uuid::new_v4();
        assert!(t.verify(&t.issue(id, Role::Customer, "a@b.co", 0, now() - TOKEN_TTL_SECS - 60).unwrap()).is_none());
        let other = Tokens::new(&SecretString::from("another-secret-another-secret-!!"), "shop-test", "shop-test-api");
        assert!(t.verify(&other.issue(id, Role::Customer, "a@b.co", 0, now()).unwrap()).is_none());
        let foreign = Tokens::new(&SecretString::from("0123456789abcdef0123456789abcdef"), "shop-test", "elsewhere");
        assert!(t.verify(&foreign.issue(id, Role::Customer, "a@b.co", 0, now()).unwrap()).is_none());

        // Promote ourselves to admin by editing the payload: the signature no longer matches.
        let token = t.issue(id, Role::Customer, "a@b.co", 0, now()).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        let forged = URL_SAFE_NO_PAD.encode(payload.replace("customer", "admin"));
        assert!(t.verify(&format!("{}.{}.{}", parts[0], forged, parts[2])).is_none());
    }

    #[test]
    fn alg_none_and_garbage_are_refused() {
        let t = tokens();
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let claims = URL_SAFE_NO_PAD.encode(
            serde_json::json!({"sub": Uuid::new_v4(), "role": "admin", "email": "x@y.z", "iss": "shop-test",
                "aud": "shop-test-api", "iat": now(), "exp": now() + 600})
            .to_string(),
        );
        assert!(t.verify(&format!("{header}.{claims}.")).is_none());
        for garbage in ["", "abc", "a.b.c", "....", "Bearer x"] {
            assert!(t.verify(garbage).is_none());
        }
    }
}
