//! Password hashing with Argon2id (the crate's defaults: OWASP's minimum).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;

use super::AuthError;

/// Shortest password accepted; the box faces a LAN, and often the internet.
pub const MIN_PASSWORD_LEN: usize = 8;

/// Checks the password rules before hashing.
pub fn validate(password: &str) -> Result<(), AuthError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(AuthError::Invalid(format!(
            "password must have at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    if password.len() > 1024 {
        return Err(AuthError::Invalid("password is too long".into()));
    }
    Ok(())
}

/// Hashes `password` into a PHC string with a fresh random salt.
pub fn hash(password: &str) -> Result<String, AuthError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| AuthError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// True when `password` matches the stored PHC string. A corrupt stored hash
/// counts as a mismatch (and is logged), never as a match.
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(e) => {
            tracing::error!(error = %e, "stored password hash does not parse");
            false
        }
    }
}

/// A hash to verify against when the user does not exist, so that a wrong
/// username costs the same time as a wrong password (no user enumeration).
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash("not-a-real-password").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_verifies_only_the_same_password() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse", &h));
        assert!(!verify("correct horsE", &h));
        assert!(!verify("x", "not a phc string"));
        assert_ne!(h, hash("correct horse").unwrap(), "salts differ");
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(validate("short").is_err());
        assert!(validate("long enough").is_ok());
    }
}
