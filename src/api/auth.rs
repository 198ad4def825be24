//! The adapter's bearer token (OpenNVR adapter contract v1, §3.8), for the
//! whole port: `Authorization: Bearer <token>` on every route but `/health`
//! and `/v1/health`; `/capabilities` and `/hardware/evaluation` (root and
//! `/v1`) stay open for the registration window (5 minutes after start), so
//! KAI-C can probe a new adapter before it hands out the token. No token
//! configured: no auth (the default, on loopback). DeepStack clients cannot
//! send a header: their form's `api_key` is checked by the route instead.
//!
//! Every answer echoes `X-Correlation-Id` (a fresh one when the request has
//! none), as the contract asks, so log lines join across KAI-C and us.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::AiState;
use crate::clock::Clock;

/// How long after start `/capabilities` and `/hardware/evaluation` answer
/// without the token (the contract's registration grace window).
pub const REGISTRATION_GRACE: Duration = Duration::from_secs(5 * 60);

const CORRELATION_ID: &str = "x-correlation-id";

/// The token and what the operator should be told about it. Its `Debug`
/// never shows the token.
pub struct AdapterAuth {
    token: Option<String>,
    /// The clock's monotonic time at start: the registration window's origin.
    started: Duration,
    clock: Arc<dyn Clock>,
    /// Set when the adapter listens beyond loopback without a token.
    warning: Option<String>,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `Bearer` credential at all.
    Missing,
    /// A credential that is not the token.
    Invalid,
}

impl Refusal {
    /// The contract's code for it.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::Missing => "auth_missing",
            Refusal::Invalid => "auth_invalid",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Refusal::Missing => "Authorization: Bearer <token> required",
            Refusal::Invalid => "invalid bearer token",
        }
    }
}

impl std::fmt::Debug for AdapterAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdapterAuth")
            .field("token_required", &self.token.is_some())
            .field("warning", &self.warning)
            .finish()
    }
}

impl AdapterAuth {
    /// `token` from `[ai] token` / `OPENNVR_ADAPTER_TOKEN` (blank = none);
    /// `listen` decides whether running without one deserves a warning; the
    /// registration window runs on `clock`'s monotonic time.
    pub fn new(token: Option<&str>, listen: SocketAddr, clock: Arc<dyn Clock>) -> Self {
        let token = token
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        let warning = (token.is_none() && !listen.ip().is_loopback()).then(|| {
            format!(
                "the AI adapter listens on {listen} without a token: anyone who can reach it can \
                 run inference and read its metrics; set [ai] token or OPENNVR_ADAPTER_TOKEN"
            )
        });
        Self {
            token,
            started: clock.mono(),
            clock,
            warning,
        }
    }

    /// Whether a token is required.
    pub fn required(&self) -> bool {
        self.token.is_some()
    }

    /// The loud warning for the log and `/health`, if any.
    pub fn warning(&self) -> Option<&str> {
        self.warning.as_deref()
    }

    /// What `/health` says about auth.
    pub fn report(&self) -> serde_json::Value {
        json!({"token_required": self.required(), "warning": self.warning})
    }

    /// Checks a presented secret (a bearer credential or a DeepStack
    /// `api_key`) in constant time: both sides are hashed first, so neither
    /// the content nor the length of the token leaks through timing.
    pub fn check_secret(&self, presented: Option<&str>) -> Result<(), Refusal> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        let presented = presented.map(str::trim).filter(|p| !p.is_empty());
        let presented = presented.ok_or(Refusal::Missing)?;
        let (a, b) = (Sha256::digest(token), Sha256::digest(presented));
        let diff = a.iter().zip(b.iter()).fold(0u8, |d, (x, y)| d | (x ^ y));
        if diff == 0 {
            Ok(())
        } else {
            Err(Refusal::Invalid)
        }
    }

    /// Checks the `Authorization` header (scheme case-insensitive).
    pub fn check_header(&self, value: Option<&HeaderValue>) -> Result<(), Refusal> {
        let bearer = value
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t);
        self.check_secret(bearer)
    }

    /// Whether `path` needs the token now.
    fn guarded(&self, path: &str) -> bool {
        let since_start = self.clock.mono().saturating_sub(self.started);
        let contract = path.strip_prefix("/v1").unwrap_or(path);
        match contract {
            "/health" => false,
            "/capabilities" | "/hardware/evaluation" => since_start >= REGISTRATION_GRACE,
            // DeepStack clients authenticate with the form's `api_key`.
            _ => !path.starts_with("/v1/vision/"),
        }
    }
}

/// The 401 for `path`: the contract's failure envelope under `/v1`, the
/// root API's error shape elsewhere.
fn refused(path: &str, why: Refusal) -> Response {
    let body = if path.starts_with("/v1/") {
        json!({"status": "error", "error": {
            "category": "permission_denied", "code": why.code(), "message": why.message(),
            "transient": false, "details": {}}})
    } else {
        json!({"error": {"code": why.code(), "message": why.message()}, "detail": why.message()})
    };
    let mut resp = (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

/// A correlation id safe to echo: the client's when it is short and
/// printable, else a fresh random one.
fn correlation_id(req: &Request) -> HeaderValue {
    req.headers()
        .get(CORRELATION_ID)
        .filter(|v| v.len() <= 128 && v.to_str().is_ok_and(|s| !s.is_empty()))
        .cloned()
        .unwrap_or_else(|| {
            let id = hex::encode(rand::random::<[u8; 16]>());
            HeaderValue::from_str(&id).unwrap_or(HeaderValue::from_static("none"))
        })
}

/// The middleware in front of every adapter route.
pub async fn guard(State(st): State<Arc<AiState>>, req: Request, next: Next) -> Response {
    let id = correlation_id(&req);
    let path = req.uri().path().to_owned();
    let mut resp = if st.auth.guarded(&path) {
        match st
            .auth
            .check_header(req.headers().get(header::AUTHORIZATION))
        {
            Ok(()) => next.run(req).await,
            Err(why) => {
                // Debug, and the path cut short: unauthenticated clients
                // must not be able to fill the log.
                let shown = &path[..path.floor_char_boundary(128)];
                tracing::debug!(path = shown, code = why.code(), "adapter auth refused");
                refused(&path, why)
            }
        }
    } else {
        next.run(req).await
    };
    resp.headers_mut().insert(CORRELATION_ID, id);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{ManualClock, SystemClock};

    fn auth(token: Option<&str>) -> AdapterAuth {
        AdapterAuth::new(token, ([127, 0, 0, 1], 9100).into(), Arc::new(SystemClock))
    }

    #[test]
    fn tokens_compare_whole_and_schemes_ignore_case() {
        let a = auth(Some("s3cret"));
        let h = |v: &str| HeaderValue::from_str(v).unwrap();
        assert_eq!(a.check_header(Some(&h("Bearer s3cret"))), Ok(()));
        assert_eq!(a.check_header(Some(&h("bearer s3cret"))), Ok(()));
        assert_eq!(
            a.check_header(Some(&h("Bearer s3cre"))),
            Err(Refusal::Invalid)
        );
        assert_eq!(
            a.check_header(Some(&h("Bearer s3cret2"))),
            Err(Refusal::Invalid)
        );
        assert_eq!(
            a.check_header(Some(&h("Basic s3cret"))),
            Err(Refusal::Missing)
        );
        assert_eq!(a.check_header(None), Err(Refusal::Missing));
        assert_eq!(auth(None).check_header(None), Ok(()));
        assert_eq!(
            auth(Some("  ")).check_header(None),
            Ok(()),
            "blank is no token"
        );
    }

    #[test]
    fn health_is_open_and_registration_probes_open_in_the_window() {
        let clock = Arc::new(ManualClock::new(0));
        let a = AdapterAuth::new(Some("t"), ([127, 0, 0, 1], 9100).into(), clock.clone());
        assert!(!a.guarded("/health") && !a.guarded("/v1/health"));
        assert!(!a.guarded("/v1/capabilities") && !a.guarded("/hardware/evaluation"));
        assert!(a.guarded("/v1/infer") && a.guarded("/infer") && a.guarded("/metrics"));
        clock.advance(REGISTRATION_GRACE.as_millis() as i64 - 1);
        assert!(!a.guarded("/capabilities"), "still inside the window");
        clock.advance(1);
        assert!(a.guarded("/v1/capabilities") && a.guarded("/capabilities"));
        assert!(a.guarded("/v1/hardware/evaluation") && a.guarded("/hardware/evaluation"));
        assert!(!a.guarded("/v1/health") && !a.guarded("/health"));
    }

    #[test]
    fn debug_never_shows_the_token() {
        let shown = format!("{:?}", auth(Some("s3cret-value")));
        assert!(!shown.contains("s3cret") && shown.contains("token_required: true"));
    }

    #[test]
    fn only_an_exposed_adapter_without_token_warns() {
        let open = AdapterAuth::new(None, ([0, 0, 0, 0], 9100).into(), Arc::new(SystemClock));
        assert!(open.warning().unwrap().contains("0.0.0.0:9100"));
        assert!(AdapterAuth::new(
            Some("t"),
            ([0, 0, 0, 0], 9100).into(),
            Arc::new(SystemClock)
        )
        .warning()
        .is_none());
        assert!(auth(None).warning().is_none());
    }
}
