//! Password hashing with argon2id, OWASP's recommended parameters (m = 19 MiB, t = 2, p = 1).
//!
//! Hashing costs tens of milliseconds of CPU on purpose, so it runs on tokio's blocking pool
//! rather than stalling the async executor. The PHC string stores salt and parameters, so the
//! parameters can be raised later without invalidating existing hashes.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};

const M_COST_KIB: u32 = 19_456;
const T_COST: u32 = 2;
const P_COST: u32 = 1;

/// A hash of a password nobody has, with the same parameters: verifying against it when an
/// e-mail is unknown makes login take as long as for a known one, so timing does not reveal
/// which addresses have accounts.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2hvcC1kdW1teS1zYWx0$Cf8DJH+IuRnXy2vJ4Q8sQnGz6K4o4Z4sG3UuVq0t0bE";

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("hashing failed: {0}")]
    Hash(String),
    #[error("hashing task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

fn hasher() -> Argon2<'static> {
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None).expect("static argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `password` into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`).
pub async fn hash(password: SecretString) -> Result<String, PasswordError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        hasher()
            .hash_password(password.expose_secret().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| PasswordError::Hash(e.to_string()))
    })
    .await?
}

/// True when `password` matches `phc`. `None` verifies against a dummy hash and returns false,
/// taking the same time as a real check.
pub async fn verify(password: SecretString, phc: Option<String>) -> Result<bool, PasswordError> {
    tokio::task::spawn_blocking(move || {
        let known = phc.is_some();
        let stored = phc.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let parsed = PasswordHash::new(&stored).map_err(|e| PasswordError::Hash(e.to_string()))?;
        let matches = hasher().verify_password(password.expose_secret().as_bytes(), &parsed).is_ok();
        Ok(known && matches)
    })
    .await?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_is_argon2id_with_owasp_parameters_and_verifies() {
        let phc = hash(SecretString::from("correct horse")).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify(SecretString::from("correct horse"), Some(phc.clone())).await.unwrap());
        assert!(!verify(SecretString::from("wrong horse"), Some(phc)).await.unwrap());
    }

    #[tokio::test]
    async fn unknown_user_never_verifies_and_dummy_has_the_same_parameters() {
        assert!(DUMMY_HASH.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
        assert!(!verify(SecretString::from("anything"), None).await.unwrap());
    }
}
