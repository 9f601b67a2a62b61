//! Password hashing with argon2id (PHC string format, per-password salt).
//! Hashing runs on the blocking pool: it is deliberately slow.

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use super::{Error, Result};

pub const MIN_LEN: usize = 8;
pub const MAX_LEN: usize = 100;

pub fn validate(password: &str) -> Result<()> {
    let n = password.chars().count();
    if !(MIN_LEN..=MAX_LEN).contains(&n) {
        return Err(Error::Invalid(format!("password must be {MIN_LEN}-{MAX_LEN} characters")));
    }
    Ok(())
}

/// Hashes run at once. Each takes about 19 MiB and a core for its whole run:
/// more at once than there are cores adds no throughput, only memory (a
/// flood of logins would otherwise take gigabytes). Others wait their turn.
fn permits() -> &'static tokio::sync::Semaphore {
    static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    PERMITS.get_or_init(|| tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())))
}

/// Runs argon2 work on the blocking pool, within `permits`.
async fn run_argon2<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    let _permit = permits().acquire().await.map_err(|e| Error::Internal(e.to_string()))?;
    tokio::task::spawn_blocking(work).await.map_err(|e| Error::Internal(e.to_string()))?
}

pub async fn hash(password: &str) -> Result<String> {
    let password = password.to_string();
    run_argon2(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::Internal(format!("hashing password: {e}")))
    })
    .await
}

pub async fn verify(password: &str, stored: &str) -> Result<bool> {
    let password = password.to_string();
    let stored = stored.to_string();
    run_argon2(move || {
        let parsed = PasswordHash::new(&stored).map_err(|e| Error::Internal(format!("stored hash: {e}")))?;
        Ok(Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_and_salted() {
        let a = hash("correct horse").await.unwrap();
        let b = hash("correct horse").await.unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b);
        assert!(verify("correct horse", &a).await.unwrap());
        assert!(!verify("wrong horse!", &a).await.unwrap());
    }

    #[test]
    fn length_rules() {
        assert!(validate("1234567").is_err());
        assert!(validate("12345678").is_ok());
        assert!(validate(&"x".repeat(101)).is_err());
    }
}
