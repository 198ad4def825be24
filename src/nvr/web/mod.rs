//! The NVR core's HTTP surface (port 8000), one file per resource.
//!
//! Every route demands a bearer token (a JWT access token or an API token)
//! except `GET /health`, login and refresh; the stream also takes a ticket.

pub(crate) mod auth;
mod body;
pub(crate) mod cameras;
pub mod error;
pub(crate) mod events;
mod events_ws;
mod extract;
pub(crate) mod files;
pub mod limits;
mod recordings;
mod stream;
mod users;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use self::error::WebError;
use super::auth::{
    hash_api_token, AuthError, Credential, JwtKeys, LoginLimiter, Principal, Tickets,
    API_TOKEN_PREFIX,
};
use super::live::LiveCameras;
use super::store::{db, Store, User};
use crate::clock::Clock;

/// Everything the NVR handlers share.
pub struct NvrState {
    pub store: Store,
    pub keys: JwtKeys,
    pub limiter: LoginLimiter,
    pub tickets: Tickets,
    pub clock: Arc<dyn Clock>,
    /// Root of the MP4 chunks; recording paths resolve under it and never escape.
    pub recordings_dir: PathBuf,
    /// Root of `<camera>/latest.jpg`, written by the ingest pipeline.
    pub frames_dir: PathBuf,
    /// Root of event snapshots (`snapshot_path` is relative to it).
    pub snapshots_dir: PathBuf,
    /// Live ingest counters per camera; `None` when cameras are not run.
    pub cameras: Option<Arc<dyn LiveCameras>>,
    pub started: Instant,
    pub max_body: usize,
    /// Every other bound a client is held to (`[nvr]` in the config).
    pub limits: limits::Limits,
    /// The daemon's shutdown token: live streams never end on their own, so
    /// each takes a child of it to let graceful shutdown finish.
    pub shutdown: tokio_util::sync::CancellationToken,
}

impl NvrState {
    /// The state `run` serves for `cfg`, over an opened `store`, signing with
    /// `jwt_secret` (see `cmd::init::prepare`). Tokens, the login window and
    /// tickets all read `clock`, so in-process tests move time with a
    /// `ManualClock`; `cameras` starts `None` (`run` sets it when it runs them).
    pub fn new(
        cfg: &crate::config::Config,
        store: Store,
        jwt_secret: &[u8],
        clock: Arc<dyn Clock>,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<Self, AuthError> {
        let n = &cfg.nvr;
        let data = crate::paths::DataDir::new(&cfg.paths);
        Ok(NvrState {
            keys: JwtKeys::new(
                jwt_secret,
                n.access_token_ttl_s,
                n.refresh_token_ttl_s,
                clock.clone(),
            )?,
            limiter: LoginLimiter::new(
                n.login_failures_per_user,
                n.login_failures_per_ip,
                n.login_window_s,
                clock.clone(),
            ),
            tickets: Tickets::new(n.ticket_ttl_s, clock.clone()),
            store,
            clock,
            recordings_dir: data.recordings().root().to_owned(),
            frames_dir: data.frames(),
            snapshots_dir: data.snapshots(),
            cameras: None,
            started: Instant::now(),
            max_body: n.max_body_bytes,
            limits: limits::Limits::new(n),
            shutdown,
        })
    }
}

/// Builds the NVR router. Serve it with connect info (`into_make_service_with_connect_info`)
/// so the login rate limit sees client addresses.
pub fn router(state: Arc<NvrState>) -> Router {
    let limit = state.max_body;
    let mut r = Router::new()
        .route("/health", get(health))
        .route("/api/v1/auth/login", post(auth::login_form))
        .route("/api/v1/auth/login-json", post(auth::login_json))
        .route("/api/v1/auth/refresh", post(auth::refresh))
        .route("/api/v1/auth/me", get(auth::me))
        .route("/api/v1/auth/logout", post(auth::logout))
        .route("/api/v1/tokens/{id}", delete(auth::revoke_token))
        .route("/api/v1/users/me", get(auth::me))
        .route(
            "/api/v1/users/{id}",
            get(users::get_one)
                .patch(users::update)
                .put(users::update)
                .delete(users::remove),
        )
        .route(
            "/api/v1/cameras/{id}",
            get(cameras::get_one)
                .post(cameras::create_at)
                .put(cameras::update)
                .delete(cameras::remove),
        )
        .route("/api/v1/cameras/{id}/snapshot.jpg", get(cameras::snapshot))
        .route("/api/v1/cameras/{id}/status", get(cameras::status))
        .route(
            "/api/v1/recordings/{camera_id}/{recording_id}/content",
            get(recordings::content),
        )
        .route("/api/v1/events/latest", get(events::latest))
        .route("/api/v1/events/stream", get(stream::stream))
        .route("/api/v1/events/ticket", post(stream::ticket))
        .route("/api/v1/events/ws-ticket", post(stream::ticket))
        .route("/api/v1/events/ws", get(events_ws::ws))
        .route("/api/v1/events/{id}", get(events::get_one))
        .route("/api/v1/events/{id}/snapshot.jpg", get(events::snapshot));
    // Collections answer with and without a trailing slash (FastAPI
    // clients often send one).
    for path in ["/api/v1/tokens", "/api/v1/tokens/"] {
        r = r.route(path, get(auth::list_tokens).post(auth::create_token));
    }
    for path in ["/api/v1/users", "/api/v1/users/"] {
        r = r.route(path, get(users::list).post(users::create));
    }
    for path in ["/api/v1/cameras", "/api/v1/cameras/"] {
        r = r.route(path, get(cameras::list).post(cameras::create));
    }
    for path in [
        "/api/v1/recordings/{camera_id}",
        "/api/v1/recordings/{camera_id}/",
    ] {
        r = r.route(path, get(recordings::list));
    }
    for path in ["/api/v1/events", "/api/v1/events/"] {
        r = r.route(path, get(events::list).post(events::create));
    }
    r.fallback(crate::serve::not_found)
        .method_not_allowed_fallback(crate::serve::method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            limit,
            body::refuse_oversized,
        ))
        .with_state(state)
}

async fn health(axum::extract::State(st): axum::extract::State<Arc<NvrState>>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": st.started.elapsed().as_secs(),
    }))
}

/// The bearer token of a request, if it has one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Resolves a bearer token: API tokens (by prefix) against the store, JWTs
/// by signature and then against their user's row ([`current`]).
async fn principal_from_token(st: &NvrState, token: &str) -> Result<Principal, AuthError> {
    if !token.starts_with(API_TOKEN_PREFIX) {
        let claimed = st.keys.principal(token)?;
        return current(st, claimed).await;
    }
    let hash = hash_api_token(token);
    let now = st.clock.now_ms();
    let found = st
        .store
        .read(move |c| db::token_by_hash(c, &hash, now))
        .await?;
    let (t, username) = found.ok_or(AuthError::InvalidToken)?;
    Ok(Principal {
        user_id: t.user_id,
        username,
        role: t.role,
        via: "api_token",
        credential: Credential::ApiToken { id: t.id },
    })
}

/// Whether `c` still stands, with one indexed read of the store: a JWT
/// until it expires (on our clock) while its user exists with the token
/// version it was signed with (their row is returned, for its current
/// role); an API token until it is revoked or expires.
async fn credential_valid(st: &NvrState, c: Credential) -> Result<Option<User>, AuthError> {
    let now = st.clock.now_ms();
    c.check_time(now)?;
    match c {
        Credential::ApiToken { id } => {
            let live = st
                .store
                .read(move |conn| db::token_live(conn, id, now))
                .await?;
            if !live {
                return Err(AuthError::InvalidToken);
            }
            Ok(None)
        }
        Credential::Jwt {
            user_id, version, ..
        } => {
            let user = st
                .store
                .read(move |conn| db::user_by_id(conn, user_id))
                .await?;
            match user {
                Some(u) if u.token_version == version => Ok(Some(u)),
                _ => Err(AuthError::InvalidToken),
            }
        }
    }
}

/// `p` as its credential stands now (a JWT's role and name from the user's
/// row): what every request and every ticket redemption goes through, so a
/// role change, a password reset or a removal counts at the next one.
async fn current(st: &NvrState, p: Principal) -> Result<Principal, AuthError> {
    let user = credential_valid(st, p.credential).await?;
    p.into_current(user.as_ref())
}

/// Authenticates from the `Authorization` header.
impl FromRequestParts<Arc<NvrState>> for Principal {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, st: &Arc<NvrState>) -> Result<Self, WebError> {
        let token = bearer(&parts.headers).ok_or(AuthError::Missing)?;
        Ok(principal_from_token(st, token).await?)
    }
}

/// An authenticated caller with the admin role: the extractor for writes.
pub struct Admin(pub Principal);

impl FromRequestParts<Arc<NvrState>> for Admin {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, st: &Arc<NvrState>) -> Result<Self, WebError> {
        let p = Principal::from_request_parts(parts, st).await?;
        p.require_admin()?;
        Ok(Admin(p))
    }
}

/// The client's address, for the login rate limit; unspecified when the
/// router is served without connect info (unit tests).
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, WebError> {
        Ok(ClientIp(crate::serve::peer_ip(&parts.extensions)))
    }
}

/// Camera ids appear in paths, file names and frame URIs: keep them plain.
pub fn valid_camera_id(id: &str) -> Result<(), WebError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        && !id.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(WebError::BadRequest(
            "camera id must be 1-64 characters of A-Z a-z 0-9 _ - . (not starting with .)".into(),
        ))
    }
}
