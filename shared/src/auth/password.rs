//! Password hashing with argon2id, OWASP's recommended parameters (m = 19 MiB, t = 2, p = 1).
//!
//! Hashing costs tens of milliseconds of CPU on purpose, so it runs on tokio's blocking pool
//! rather than stalling the async executor. The PHC string stores salt and parameters, so the
//! parameters can be raised later without invalidating existing hashes.
//!
//! argon2's 19 MiB of working memory is allocated **once per process** and reused: allocated per
//! call, on whichever blocking-pool thread runs it, glibc kept a 19 MiB block per thread's arena,
//! and a log-in instance grew to 121 MiB of resident memory (`cargo local bench`); page-faulting
//! fresh memory also cost every call time. A Lambda instance serves one request at a time, so
//! the one buffer behind a mutex is never waited for there.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use std::sync::{Mutex, PoisonError};

const M_COST_KIB: u32 = 19_456;
const T_COST: u32 = 2;
const P_COST: u32 = 1;

/// A hash of a password nobody has, with the same parameters: verifying against it when an
/// e-mail is unknown makes login take as long as for a known one, so timing does not reveal
/// which addresses have accounts.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2hvcC1kdW1teS1zYWx0$Cf8DJH+IuRnXy2vJ4Q8sQnGz6K4o4Z4sG3UuVq0t0bE";

/// argon2's working memory, reused by every hash of this process.
static MEMORY: Mutex<Vec<Block>> = Mutex::new(Vec::new());

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("hashing failed: {0}")]
    Hash(String),
    #[error("hashing task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl From<argon2::password_hash::Error> for PasswordError {
    fn from(e: argon2::password_hash::Error) -> Self {
        Self::Hash(e.to_string())
    }
}

impl From<argon2::Error> for PasswordError {
    fn from(e: argon2::Error) -> Self {
        Self::Hash(e.to_string())
    }
}

fn params() -> Params {
    Params::new(M_COST_KIB, T_COST, P_COST, None).expect("static argon2 parameters are valid")
}

/// The raw argon2 output of `password` with `salt`, computed in the process's reused memory.
fn output(
    algorithm: Algorithm,
    version: Version,
    params: &Params,
    password: &[u8],
    salt: Salt<'_>,
) -> Result<Output, argon2::password_hash::Error> {
    let mut salt_bytes = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_bytes)?;
    let blocks = params.block_count();
    let mut memory = MEMORY.lock().unwrap_or_else(PoisonError::into_inner);
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let argon2 = Argon2::new(algorithm, version, params.clone());
    Output::init_with(params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN), |out| {
        Ok(argon2.hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])?)
    })
}

/// Hashes `password` into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`).
pub async fn hash(password: SecretString) -> Result<String, PasswordError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        let params = params();
        let hash =
            output(Algorithm::Argon2id, Version::V0x13, &params, password.expose_secret().as_bytes(), salt.as_salt())?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params)?,
            salt: Some(salt.as_salt()),
            hash: Some(hash),
        };
        Ok(phc.to_string())
    })
    .await?
}

/// True when `password` matches `phc`. `None` verifies against a dummy hash and returns false,
/// taking the same time as a real check.
pub async fn verify(password: SecretString, phc: Option<String>) -> Result<bool, PasswordError> {
    tokio::task::spawn_blocking(move || {
        let known = phc.is_some();
        let stored = phc.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let parsed = PasswordHash::new(&stored)?;
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return Err(PasswordError::Hash("stored hash has no salt or output".into()));
        };
        let algorithm = Algorithm::try_from(parsed.algorithm)?;
        let version = parsed.version.map(Version::try_from).transpose()?.unwrap_or_default();
        let params = Params::try_from(&parsed)?;
        let computed = output(algorithm, version, &params, password.expose_secret().as_bytes(), salt)?;
        // `Output`'s equality is constant-time.
        Ok(known && computed == expected)
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

    #[tokio::test]
    async fn hashes_verify_with_the_crates_own_verifier_and_the_other_way_round() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let ours = hash(SecretString::from("tr0ub4dor")).await.unwrap();
        let crate_hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, params());
        assert!(crate_hasher.verify_password(b"tr0ub4dor", &PasswordHash::new(&ours).unwrap()).is_ok());
        let theirs = crate_hasher.hash_password(b"tr0ub4dor", &SaltString::generate(&mut OsRng)).unwrap().to_string();
        assert!(verify(SecretString::from("tr0ub4dor"), Some(theirs.clone())).await.unwrap());
        assert!(!verify(SecretString::from("tr0ub4dor!"), Some(theirs)).await.unwrap());
    }
}
