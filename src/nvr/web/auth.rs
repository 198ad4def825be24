//! `/api/v1/auth/*` (login, refresh, me) and `/api/v1/tokens` (API tokens).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{WebError, WebResult};
use super::extract::{Form, Json as JsonBody, Path};
use super::{Admin, ClientIp, NvrState};
use crate::nvr::auth::{self, AuthError, Credential, Principal, TokenKind, TokenPair};
use crate::nvr::store::{db, ApiToken, Role, User};

/// Login credentials; the form variant is OAuth2's password grant, whose
/// other fields (`grant_type`, `scope`, ...) are accepted and ignored.
#[derive(Deserialize)]
pub struct Credentials {
    username: String,
    password: String,
}

/// `POST /api/v1/auth/login` with `application/x-www-form-urlencoded`.
pub async fn login_form(
    State(st): State<Arc<NvrState>>,
    ip: ClientIp,
    Form(c): Form<Credentials>,
) -> WebResult<Json<TokenPair>> {
    login(&st, ip, c).await
}

/// `POST /api/v1/auth/login-json` with `{username, password}`.
pub async fn login_json(
    State(st): State<Arc<NvrState>>,
    ip: ClientIp,
    JsonBody(c): JsonBody<Credentials>,
) -> WebResult<Json<TokenPair>> {
    login(&st, ip, c).await
}

/// Issues a token pair to a caller whose password checks out ([`check_password`]).
async fn login(st: &NvrState, ip: ClientIp, c: Credentials) -> WebResult<Json<TokenPair>> {
    let user = check_password(st, ip, c.username, c.password).await?;
    Ok(Json(st.keys.issue(&user)?))
}

/// The one password check of port 8000 (the API's logins and the web
/// console's sign-in form): counts the attempt against the rate limit first,
/// then checks the password in a bounded hashing slot (always hashing, even
/// for an unknown user, so timing does not reveal which usernames exist). A
/// burst of logins therefore checks at most the limit's worth of passwords
/// per user and IP, and at most `login_hash_concurrency` at once.
pub(crate) async fn check_password(
    st: &NvrState,
    ClientIp(ip): ClientIp,
    username: String,
    password: String,
) -> WebResult<User> {
    if username.len() > 256 || password.len() > 1024 {
        return Err(AuthError::BadCredentials.into());
    }
    let attempt = st.limiter.reserve(&username, ip)?;
    let name = username.clone();
    let user = st
        .store
        .read(move |conn| db::user_by_name(conn, &name))
        .await?;
    let phc = user.as_ref().map(|u| u.password_hash.clone());
    let ok = match st.limits.hashing.verify(password, phc).await {
        Ok(ok) => ok,
        Err(e) => {
            // No password was checked: the attempt does not count.
            st.limiter.give_back(attempt);
            return Err(e.into());
        }
    };
    match user {
        Some(u) if ok => {
            st.limiter.succeed(attempt);
            tracing::info!(user = %u.username, %ip, "login");
            Ok(u)
        }
        _ => {
            tracing::warn!(user = %username, %ip, "failed login");
            Err(AuthError::BadCredentials.into())
        }
    }
}

/// The refresh request body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    refresh_token: String,
}

/// `POST /api/v1/auth/refresh`: a new pair, with the user's current role,
/// for a valid refresh token whose user still exists and has neither had
/// their password reset nor logged out since.
pub async fn refresh(
    State(st): State<Arc<NvrState>>,
    JsonBody(b): JsonBody<RefreshBody>,
) -> WebResult<Json<TokenPair>> {
    let claims = st.keys.verify(&b.refresh_token, TokenKind::Refresh)?;
    let uid = claims.uid;
    let user = st.store.read(move |c| db::user_by_id(c, uid)).await?;
    match user {
        Some(u) if u.token_version == claims.ver && u.username == claims.sub => {
            Ok(Json(st.keys.issue(&u)?))
        }
        _ => Err(AuthError::InvalidToken.into()),
    }
}

/// `GET /api/v1/auth/me`: who the caller is, as their user stands now. Beside our
/// fields, upstream's user fields its clients decide tiers from
/// (`is_superuser`, `role_name`, `role_id`; its camera-agent treats anyone
/// else as a viewer), plus `email` (we keep none: `null`) and `mfa_enabled`
/// (we have no MFA: `false`). `role_id` is 1 for admin, 2 for viewer.
pub async fn me(p: Principal) -> Json<Value> {
    let mut v = super::users::account(p.user_id, &p.username, p.role);
    v["auth"] = json!(p.via);
    Json(v)
}

/// `POST /api/v1/auth/logout`: with a JWT, the user's token version moves
/// on, so every access and refresh token they hold stops working at its
/// next use (sign-out everywhere, their console sessions included); with an
/// API token, that token is revoked. Either way at once.
pub async fn logout(State(st): State<Arc<NvrState>>, p: Principal) -> WebResult<Json<Value>> {
    let uid = p.user_id;
    let revoked = match p.credential {
        Credential::ApiToken { id } => {
            st.store
                .writer()
                .call(move |c, now| db::revoke_token(c, id, Some(uid), now))
                .await?;
            "api_token"
        }
        Credential::Jwt { .. } => {
            st.store
                .writer()
                .call(move |c, now| db::end_sessions(c, uid, now))
                .await?;
            "sessions"
        }
    };
    tracing::info!(user = %p.username, revoked, "logout");
    Ok(Json(json!({ "message": "Logged out", "revoked": revoked })))
}

/// `POST /api/v1/tokens` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    name: String,
    /// Least privilege by default: an integration that only reads gets `viewer`.
    #[serde(default = "viewer")]
    role: Role,
    /// Optional lifetime in seconds; none means until revoked.
    #[serde(default)]
    expires_in_s: Option<i64>,
}

fn viewer() -> Role {
    Role::Viewer
}

/// `POST /api/v1/tokens` (admin): mints a token, shown in this answer only.
/// Only a logged-in user may: a token minted with an API token could outlive
/// it and survive its revocation, so API tokens get 403.
pub async fn create_token(
    State(st): State<Arc<NvrState>>,
    Admin(p): Admin,
    JsonBody(b): JsonBody<NewToken>,
) -> WebResult<(StatusCode, Json<Value>)> {
    if matches!(p.credential, Credential::ApiToken { .. }) {
        return Err(AuthError::TokenCannotMint.into());
    }
    let (row, token) = mint_token(&st, p.user_id, &b.name, b.role, b.expires_in_s).await?;
    let mut v = serde_json::to_value(&row).unwrap_or_default();
    v["token"] = json!(token);
    Ok((StatusCode::CREATED, Json(v)))
}

/// Mints an API token for user `uid` (the API's and the console's one
/// way): checks the name and lifetime, stores the hash, and returns the
/// row and the token itself, which is shown once and never again.
pub(crate) async fn mint_token(
    st: &NvrState,
    uid: i64,
    name: &str,
    role: Role,
    expires_in_s: Option<i64>,
) -> WebResult<(ApiToken, String)> {
    let name = name.trim().to_owned();
    if name.is_empty() || name.len() > 128 {
        return Err(WebError::BadRequest(
            "name must have 1-128 characters".into(),
        ));
    }
    if expires_in_s.is_some_and(|s| s <= 0 || s > 10 * 365 * 86_400) {
        return Err(WebError::BadRequest(
            "expires_in_s must be 1..=315360000".into(),
        ));
    }
    let (token, hash) = auth::new_api_token();
    let row = st
        .store
        .writer()
        .call(move |c, now| {
            let exp = expires_in_s.map(|s| now + s * 1000);
            db::create_token(c, uid, &name, &hash, role, now, exp)
        })
        .await?;
    Ok((row, token))
}

/// `GET /api/v1/tokens` (admin): every token, without secrets.
pub async fn list_tokens(State(st): State<Arc<NvrState>>, _: Admin) -> WebResult<Json<Value>> {
    let rows = st.store.read(|c| db::list_tokens(c, None)).await?;
    Ok(Json(json!(rows)))
}

/// `DELETE /api/v1/tokens/{id}` (admin): revokes at once; the row stays for audit.
pub async fn revoke_token(
    State(st): State<Arc<NvrState>>,
    _: Admin,
    Path(id): Path<i64>,
) -> WebResult<StatusCode> {
    st.store
        .writer()
        .call(move |c, now| db::revoke_token(c, id, None, now))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
