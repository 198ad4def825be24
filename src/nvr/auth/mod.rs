//! Who is calling and what they may do: passwords, JWTs, API tokens, stream
//! tickets and the login rate limit. Pure logic over an injected clock; the
//! web layer wires it to requests.

pub mod hashing;
pub mod jwt;
pub mod limiter;
pub mod password;
pub mod secret;
pub mod ticket;

use serde::Serialize;

use super::store::{Role, StoreError, User};

pub use hashing::HashGate;
pub use jwt::{JwtKeys, TokenKind, TokenPair};
pub use limiter::LoginLimiter;
pub use ticket::Tickets;

/// Why a caller was refused; the web layer maps these to 401/403/429.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header (or ticket) at all.
    #[error("authentication required")]
    Missing,
    /// The token is malformed, wrongly signed, of the wrong kind, or revoked.
    #[error("invalid token")]
    InvalidToken,
    /// The token was valid once and has expired.
    #[error("token expired")]
    Expired,
    /// Wrong username or password (deliberately not saying which).
    #[error("invalid username or password")]
    BadCredentials,
    /// Authenticated, but the role does not allow this.
    #[error("this action requires the admin role")]
    Forbidden,
    /// Too many failed logins; try again after this many seconds.
    #[error("too many failed logins; retry in {0} s")]
    RateLimited(i64),
    /// Every password-check slot stayed busy; try again after this many seconds.
    #[error("too many logins at once; retry in {0} s")]
    Busy(i64),
    /// API tokens may not mint API tokens: a token made with one would
    /// outlive it and survive its revocation.
    #[error("API tokens cannot create API tokens; log in as a user to create one")]
    TokenCannotMint,
    /// API tokens may not add users or set passwords either: a login made
    /// with a token would outlive the token and survive its revocation.
    #[error("API tokens cannot add users or set passwords; log in as a user to do it")]
    TokenCannotGrant,
    /// A password or username that does not meet the rules.
    #[error("{0}")]
    Invalid(String),
    /// Looking the user or token up failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing failed (out of memory, bad parameters); a 500.
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, Serialize)]
pub struct Principal {
    pub user_id: i64,
    pub username: String,
    pub role: Role,
    /// How it authenticated: `jwt`, `api_token` or `ticket`.
    pub via: &'static str,
    /// What the authentication rests on; a long-lived stream re-checks it.
    #[serde(skip)]
    pub credential: Credential,
}

/// The credential behind a [`Principal`] (a ticket carries the one it was
/// bought with), so that an open stream can be ended when it stops being valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// A JWT access token, valid until `expires_s` (epoch seconds) while
    /// user `user_id` still exists with token version `version` (a password
    /// reset, a logout or the user's removal ends it at the next request).
    Jwt {
        user_id: i64,
        version: i64,
        expires_s: i64,
    },
    /// An API token; revocable and maybe expiring, so looked up again.
    ApiToken { id: i64 },
}

impl Credential {
    /// `Expired` when a JWT's time is up at `now_ms`; whether it still
    /// stands otherwise (and API tokens at all) needs the store.
    pub fn check_time(&self, now_ms: i64) -> Result<(), AuthError> {
        match self {
            Credential::Jwt { expires_s, .. } if now_ms / 1000 >= *expires_s => {
                Err(AuthError::Expired)
            }
            _ => Ok(()),
        }
    }
}

impl Principal {
    /// This principal as its user stands now (`user` is their row, read
    /// this request): a JWT holds only while the user exists with the token
    /// version it was signed with, and its role and name are the row's, so a
    /// changed role takes effect at the next request. An API token keeps its
    /// own role (a role change revokes the user's tokens).
    pub fn into_current(mut self, user: Option<&User>) -> Result<Principal, AuthError> {
        if let Credential::Jwt { version, .. } = self.credential {
            match user {
                Some(u) if u.id == self.user_id && u.token_version == version => {
                    self.role = u.role;
                    self.username.clone_from(&u.username);
                }
                _ => return Err(AuthError::InvalidToken),
            }
        }
        Ok(self)
    }

    /// Errors unless the caller may write (admins only).
    pub fn require_admin(&self) -> Result<(), AuthError> {
        match self.role {
            Role::Admin => Ok(()),
            Role::Viewer => Err(AuthError::Forbidden),
        }
    }
}

/// The prefix that tells an API token from a JWT in a bearer header.
pub const API_TOKEN_PREFIX: &str = "onvr_";

/// A fresh API token (shown once) and the hash to store.
pub fn new_api_token() -> (String, String) {
    let token = format!("{API_TOKEN_PREFIX}{}", secret::random_hex(32));
    let hash = hash_api_token(&token);
    (token, hash)
}

/// What is stored for an API token: its sha256, hex. The token has 256 bits
/// of entropy, so a plain hash (no salt, no stretching) is enough and lets the
/// lookup be an indexed equality.
pub fn hash_api_token(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jwt_credential_expires_on_the_clock_and_an_api_token_needs_the_store() {
        let jwt = Credential::Jwt {
            user_id: 1,
            version: 0,
            expires_s: 100,
        };
        assert!(jwt.check_time(99_999).is_ok());
        assert!(matches!(jwt.check_time(100_000), Err(AuthError::Expired)));
        assert!(Credential::ApiToken { id: 1 }.check_time(i64::MAX).is_ok());
    }

    fn row(role: Role, token_version: i64) -> User {
        User {
            id: 7,
            username: "ann".into(),
            password_hash: String::new(),
            role,
            token_version,
            created_at: 0,
        }
    }

    fn jwt_principal(role: Role, version: i64) -> Principal {
        Principal {
            user_id: 7,
            username: "ann".into(),
            role,
            via: "jwt",
            credential: Credential::Jwt {
                user_id: 7,
                version,
                expires_s: 100,
            },
        }
    }

    #[test]
    fn a_jwt_takes_the_role_of_the_row_and_dies_with_its_version_or_its_user() {
        let demoted = jwt_principal(Role::Admin, 3).into_current(Some(&row(Role::Viewer, 3)));
        assert_eq!(demoted.unwrap().role, Role::Viewer);
        let reset = jwt_principal(Role::Admin, 3).into_current(Some(&row(Role::Admin, 4)));
        assert!(matches!(reset, Err(AuthError::InvalidToken)));
        let removed = jwt_principal(Role::Viewer, 3).into_current(None);
        assert!(matches!(removed, Err(AuthError::InvalidToken)));
        let mut other = row(Role::Admin, 3);
        other.id = 8;
        assert!(jwt_principal(Role::Viewer, 3)
            .into_current(Some(&other))
            .is_err());
        // An API token keeps the role it was minted with.
        let mut api = jwt_principal(Role::Viewer, 0);
        api.credential = Credential::ApiToken { id: 1 };
        assert_eq!(api.into_current(None).unwrap().role, Role::Viewer);
    }
}
