//! HS256 access and refresh tokens, checked against an injected clock.

use std::sync::Arc;

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::{AuthError, Credential, Principal};
use crate::clock::Clock;
use crate::nvr::store::{Role, User};

/// Access tokens authorise requests; refresh tokens only mint new pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Access,
    Refresh,
}

/// What our JWTs carry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Username, as the seed's FastAPI backend puts it.
    pub sub: String,
    pub uid: i64,
    pub role: Role,
    pub typ: TokenKind,
    /// The user's token version at issue; when it moves on (password
    /// reset, logout) every token signed before stops working.
    pub ver: i64,
    /// Issued at, epoch seconds.
    pub iat: i64,
    /// Expires at, epoch seconds.
    pub exp: i64,
}

/// The login answer, shaped like the seed's (`token_type: "bearer"`).
#[derive(Debug, Clone, Serialize)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

/// The signing secret and lifetimes.
pub struct JwtKeys {
    enc: EncodingKey,
    dec: DecodingKey,
    validation: Validation,
    access_ttl_s: i64,
    refresh_ttl_s: i64,
    clock: Arc<dyn Clock>,
}

impl JwtKeys {
    /// Keys from the secret generated at first start; fails only for a
    /// secret the HMAC backend refuses.
    pub fn new(
        secret: &[u8],
        access_ttl_s: i64,
        refresh_ttl_s: i64,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked against our clock below, so tests can move time.
        validation.validate_exp = false;
        validation.required_spec_claims = ["exp".to_owned(), "sub".to_owned()].into();
        let bad = |e: jsonwebtoken::errors::Error| AuthError::Hash(e.to_string());
        Ok(Self {
            enc: EncodingKey::from_secret(secret).map_err(bad)?,
            dec: DecodingKey::from_secret(secret).map_err(bad)?,
            validation,
            access_ttl_s,
            refresh_ttl_s,
            clock,
        })
    }

    fn sign(&self, user: &User, typ: TokenKind, ttl_s: i64) -> Result<String, AuthError> {
        let iat = self.clock.now_ms() / 1000;
        let claims = Claims {
            sub: user.username.clone(),
            uid: user.id,
            role: user.role,
            typ,
            ver: user.token_version,
            iat,
            exp: iat + ttl_s,
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.enc)
            .map_err(|e| AuthError::Hash(e.to_string()))
    }

    /// A fresh access + refresh pair for `user`.
    pub fn issue(&self, user: &User) -> Result<TokenPair, AuthError> {
        Ok(TokenPair {
            access_token: self.sign(user, TokenKind::Access, self.access_ttl_s)?,
            refresh_token: self.sign(user, TokenKind::Refresh, self.refresh_ttl_s)?,
            token_type: "bearer",
            expires_in: self.access_ttl_s,
        })
    }

    /// Verifies signature (HS256 only: `none` and other algorithms fail),
    /// expiry against our clock, and the token kind.
    pub fn verify(&self, token: &str, want: TokenKind) -> Result<Claims, AuthError> {
        let data = decode::<Claims>(token, &self.dec, &self.validation)
            .map_err(|_| AuthError::InvalidToken)?;
        let c = data.claims;
        if c.typ != want {
            return Err(AuthError::InvalidToken);
        }
        if self.clock.now_ms() / 1000 >= c.exp {
            return Err(AuthError::Expired);
        }
        Ok(c)
    }

    /// The principal a valid access token claims, as signed; the web layer
    /// holds it against the user's row ([`Principal::into_current`]) before use.
    pub fn principal(&self, token: &str) -> Result<Principal, AuthError> {
        let c = self.verify(token, TokenKind::Access)?;
        Ok(Principal {
            user_id: c.uid,
            username: c.sub,
            role: c.role,
            via: "jwt",
            credential: Credential::Jwt {
                user_id: c.uid,
                version: c.ver,
                expires_s: c.exp,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use base64::Engine as _;

    fn user() -> User {
        User {
            id: 7,
            username: "ann".into(),
            password_hash: String::new(),
            role: Role::Viewer,
            token_version: 0,
            created_at: 0,
        }
    }

    fn keys(clock: Arc<ManualClock>) -> JwtKeys {
        JwtKeys::new(b"0123456789abcdef0123456789abcdef", 60, 3600, clock).unwrap()
    }

    #[test]
    fn access_token_expires_on_the_clock() {
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let k = keys(clock.clone());
        let pair = k.issue(&user()).unwrap();
        assert_eq!(k.principal(&pair.access_token).unwrap().username, "ann");
        clock.advance(59_000);
        assert!(k.principal(&pair.access_token).is_ok());
        clock.advance(1_000);
        assert!(matches!(
            k.principal(&pair.access_token),
            Err(AuthError::Expired)
        ));
        // The refresh token lives longer but is not an access token.
        assert!(matches!(
            k.principal(&pair.refresh_token),
            Err(AuthError::InvalidToken)
        ));
        assert!(k.verify(&pair.refresh_token, TokenKind::Refresh).is_ok());
    }

    #[test]
    fn forged_tokens_fail() {
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let k = keys(clock.clone());
        let other = JwtKeys::new(b"another-secret-another-secret-xx", 60, 3600, clock).unwrap();
        let good = k.issue(&user()).unwrap().access_token;
        assert!(k
            .principal(&other.issue(&user()).unwrap().access_token)
            .is_err());
        // Tamper with the payload: claim admin.
        let parts: Vec<&str> = good.split('.').collect();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload = String::from_utf8(b64.decode(parts[1]).unwrap()).unwrap();
        let evil = b64.encode(payload.replace("viewer", "admin"));
        assert!(k
            .principal(&format!("{}.{}.{}", parts[0], evil, parts[2]))
            .is_err());
        // alg: none with no signature.
        let none = b64.encode(r#"{"alg":"none","typ":"JWT"}"#);
        assert!(k.principal(&format!("{none}.{}.", parts[1])).is_err());
        assert!(k.principal("garbage").is_err());
    }
}
