//! Password hashing with Argon2id (the crate's defaults: OWASP's minimum).

use argon2::password_hash::{Output, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
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

/// Longest username; names show in logs, JWTs and pages.
pub const MAX_USERNAME_LEN: usize = 64;

/// Checks the username rules: 1-64 characters of `A-Z a-z 0-9 _ - . @`, so
/// a name is safe in a log line, a URL and an HTML page as it is.
pub fn validate_username(name: &str) -> Result<(), AuthError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_USERNAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(AuthError::Invalid(format!(
            "username must be 1-{MAX_USERNAME_LEN} characters of A-Z a-z 0-9 _ - . @"
        )))
    }
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

/// Most Argon2 memory a stored hash may ask of [`verify_in`] (256 MiB); a
/// hash asking more is treated as corrupt.
const MAX_BLOCKS: usize = 256 * 1024;

/// True when `password` matches the stored PHC string, hashing in `memory`
/// (grown as the stored parameters need, then reused), so a thread that
/// checks passwords all day allocates its ~19 MiB once instead of once per
/// check. A corrupt stored hash counts as a mismatch (and is logged).
pub fn verify_in(memory: &mut Vec<Block>, password: &str, phc: &str) -> bool {
    let check = |memory: &mut Vec<Block>| -> Result<bool, String> {
        let e = |e: &dyn std::fmt::Display| e.to_string();
        let h = PasswordHash::new(phc).map_err(|x| e(&x))?;
        let algorithm = Algorithm::try_from(h.algorithm).map_err(|x| e(&x))?;
        let version = match h.version {
            Some(v) => Version::try_from(v).map_err(|x| e(&x))?,
            None => Version::default(),
        };
        let params = Params::try_from(&h).map_err(|x| e(&x))?;
        let (Some(salt), Some(expected)) = (h.salt, h.hash) else {
            return Err("no salt or no hash".into());
        };
        let need = params.block_count();
        if need > MAX_BLOCKS {
            return Err(format!("asks for {need} KiB of memory"));
        }
        if memory.len() < need {
            memory.resize(need, Block::new());
        }
        let mut salt_buf = [0u8; 64];
        let salt = salt.decode_b64(&mut salt_buf).map_err(|x| e(&x))?;
        let mut out = vec![0u8; expected.len()];
        Argon2::new(algorithm, version, params)
            .hash_password_into_with_memory(
                password.as_bytes(),
                salt,
                &mut out,
                &mut memory[..need],
            )
            .map_err(|x| e(&x))?;
        // Output's equality is constant-time.
        Ok(Output::new(&out).map_err(|x| e(&x))? == expected)
    };
    check(memory).unwrap_or_else(|err| {
        tracing::error!(error = %err, "stored password hash does not parse");
        false
    })
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
        let mut mem = Vec::new();
        assert!(verify_in(&mut mem, "correct horse", &h));
        assert!(!verify_in(&mut mem, "correct horsE", &h));
        assert!(!verify_in(&mut mem, "x", "not a phc string"));
        assert_ne!(h, hash("correct horse").unwrap(), "salts differ");
    }

    #[test]
    fn verifying_reuses_its_memory_and_refuses_greedy_hashes() {
        let mut mem = Vec::new();
        let h = hash("correct horse").unwrap();
        for _ in 0..2 {
            assert!(verify_in(&mut mem, "correct horse", &h));
            assert!(!verify_in(&mut mem, "correct horsE", &h));
        }
        assert_eq!(mem.len(), 19 * 1024, "the default parameters' memory, once");
        assert!(!verify_in(&mut mem, "x", "not a phc string"));
        let greedy = h.replace("m=19456", "m=4000000");
        assert!(!verify_in(&mut mem, "correct horse", &greedy));
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(validate("short").is_err());
        assert!(validate("long enough").is_ok());
        assert!(validate(&"x".repeat(1025)).is_err());
    }

    #[test]
    fn usernames_are_plain_and_bounded() {
        for ok in ["admin", "a", "jo.doe@site", "x_-1", &"n".repeat(64)] {
            assert!(validate_username(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "<b>", "é", "a\n", &"n".repeat(65)] {
            assert!(validate_username(bad).is_err(), "{bad:?}");
        }
    }
}
