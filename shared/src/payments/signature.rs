//! **Where the webhook signature is made and checked.**
//!
//! The gateway sends `Payment-Signature: t=<unix seconds>,v1=<hex>` with every webhook, where
//! `v1 = hex(HMAC-SHA256(secret, "<t>.<raw body>"))`. Checking it:
//!
//! 1. over the **raw bytes** received, never over re-serialised JSON (a parser may reorder keys,
//!    and then a valid signature fails, or worse, a changed body passes);
//! 2. in **constant time** (`Mac::verify_slice` compares with `subtle`), so the time a wrong
//!    guess takes says nothing about how many bytes were right;
//! 3. with `t` within [`TOLERANCE_SECS`] of now, so a captured request cannot be replayed later
//!    (and a replay inside the window is caught by the event-id dedupe in `settle`);
//! 4. accepting **any** `v1=` in the header against **any** configured secret: while a secret is
//!    rotated the gateway signs with both, and we accept both until the old one is removed.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

pub const HEADER: &str = "payment-signature";
/// How far `t` may be from our clock, either way.
pub const TOLERANCE_SECS: i64 = 300;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Payment-Signature header is missing or not `t=<unix>,v1=<hex>`")]
    Malformed,
    #[error("the signature timestamp is more than {TOLERANCE_SECS} s away from now")]
    Stale,
    #[error("no signature matches the body")]
    Mismatch,
}

fn mac(secret: &[u8], t: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header value for `body` sent at unix time `t`, signed with each of `secrets` (one `v1` each).
pub fn sign(secrets: &[SecretString], t: i64, body: &[u8]) -> String {
    let mut header = format!("t={t}");
    for secret in secrets {
        let v1 = hex::encode(mac(secret.expose_secret().as_bytes(), t, body).finalize().into_bytes());
        header.push_str(&format!(",v1={v1}"));
    }
    header
}

/// Checks `header` against the raw `body` at unix time `now`.
pub fn verify(header: Option<&str>, body: &[u8], secrets: &[SecretString], now: i64) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Malformed)?;
    let mut t = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v.parse::<i64>().map_err(|_| SignatureError::Malformed)?),
            // Undecodable v1 values are skipped, like unknown schemes: they can match nothing.
            Some(("v1", v)) => signatures.extend(hex::decode(v).ok()),
            Some(_) => {}
            None => return Err(SignatureError::Malformed),
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    // `abs_diff`: a timestamp near i64::MIN or MAX must be stale, not an overflow.
    if now.abs_diff(t) > TOLERANCE_SECS.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    let matches = secrets.iter().any(|secret| {
        let expected = mac(secret.expose_secret().as_bytes(), t, body);
        signatures.iter().any(|sig| expected.clone().verify_slice(sig).is_ok())
    });
    if matches { Ok(()) } else { Err(SignatureError::Mismatch) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(s: &[&str]) -> Vec<SecretString> {
        s.iter().map(|s| SecretString::from(*s)).collect()
    }

    const BODY: &[u8] = br#"{"id":"evt_1","type":"charge.succeeded"}"#;
    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_signature_made_with_the_secret_verifies() {
        let s = secrets(&["whsec_current"]);
        let header = sign(&s, NOW, BODY);
        assert!(header.starts_with(&format!("t={NOW},v1=")));
        assert_eq!(verify(Some(&header), BODY, &s, NOW), Ok(()));
        assert_eq!(verify(Some(&header), BODY, &s, NOW + TOLERANCE_SECS), Ok(()));
    }

    #[test]
    fn known_answer() {
        // python3 -c 'import hmac,hashlib; print(hmac.new(b"k", b"1.{}", hashlib.sha256).hexdigest())'
        assert_eq!(
            sign(&secrets(&["k"]), 1, b"{}"),
            "t=1,v1=3dd49b2593d0f9a349e9e71c4bde3e2b862c2be4003fe9b4ba81332029310158"
        );
    }

    #[test]
    fn altered_body_wrong_secret_and_stale_timestamps_are_refused() {
        let s = secrets(&["whsec_current"]);
        let header = sign(&s, NOW, BODY);
        let altered = br#"{"id":"evt_1","type":"charge.failed"}"#;
        assert_eq!(verify(Some(&header), altered, &s, NOW), Err(SignatureError::Mismatch));
        assert_eq!(verify(Some(&header), BODY, &secrets(&["whsec_other"]), NOW), Err(SignatureError::Mismatch));
        assert_eq!(verify(Some(&header), BODY, &s, NOW + TOLERANCE_SECS + 1), Err(SignatureError::Stale));
        assert_eq!(verify(Some(&header), BODY, &s, NOW - TOLERANCE_SECS - 1), Err(SignatureError::Stale));
    }

    #[test]
    fn timestamps_at_the_ends_of_i64_are_stale_not_an_overflow() {
        let s = secrets(&["k"]);
        for (t, now) in [(i64::MIN, i64::MAX), (i64::MAX, i64::MIN), (i64::MIN, 0), (i64::MAX, NOW)] {
            let header = format!("t={t},v1=00ff");
            assert_eq!(verify(Some(&header), BODY, &s, now), Err(SignatureError::Stale), "t={t} now={now}");
        }
    }

    #[test]
    fn malformed_headers_are_told_apart_from_wrong_signatures() {
        let s = secrets(&["k"]);
        for bad in
            [None, Some(""), Some("v1=abcd"), Some("t=abc,v1=abcd"), Some("t=1"), Some("t=1,v1=zz"), Some("garbage")]
        {
            assert_eq!(verify(bad, BODY, &s, 1), Err(SignatureError::Malformed), "{bad:?}");
        }
        assert_eq!(verify(Some("t=1,v1=00ff"), BODY, &s, 1), Err(SignatureError::Mismatch));
    }

    #[test]
    fn rotation_accepts_any_v1_against_any_secret() {
        let old_and_new = secrets(&["whsec_old", "whsec_new"]);
        // The gateway signs with both during a rotation; a receiver that knows only one accepts.
        let both = sign(&old_and_new, NOW, BODY);
        assert_eq!(verify(Some(&both), BODY, &secrets(&["whsec_new"]), NOW), Ok(()));
        assert_eq!(verify(Some(&both), BODY, &secrets(&["whsec_old"]), NOW), Ok(()));
        // A receiver that knows both accepts a gateway still signing with the old one only.
        let old_only = sign(&secrets(&["whsec_old"]), NOW, BODY);
        assert_eq!(verify(Some(&old_only), BODY, &old_and_new, NOW), Ok(()));
        // Extra schemes and unknown v1 values are ignored, not fatal.
        let mixed = format!("{old_only},v0=whatever,v1=00");
        assert_eq!(verify(Some(&mixed), BODY, &old_and_new, NOW), Ok(()));
    }
}
