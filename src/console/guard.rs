//! Who is looking at a page: the session behind the cookie, checked against
//! the store on every request (a removed user, a changed role or a reset
//! password takes effect at the next page), and the CSRF check of forms.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ConsoleError;
use super::session::{cookie, same_secret, COOKIE};
use super::ConsoleState;
use crate::nvr::store::{db, Role, User};
use crate::nvr::web::error::WebError;

/// A browser with a live session, and its user as stored now.
pub struct Signed {
    pub user: User,
    /// The session id (from the cookie), to end it at logout.
    pub sid: String,
    /// The token this session's forms carry.
    pub csrf: String,
}

/// What every page's `<nav>` needs.
#[derive(Clone)]
pub struct Nav {
    pub username: String,
    pub admin: bool,
    pub csrf: String,
}

impl Signed {
    /// The nav of this session's pages.
    pub fn nav(&self) -> Nav {
        Nav {
            username: self.user.username.clone(),
            admin: self.user.role == Role::Admin,
            csrf: self.csrf.clone(),
        }
    }

    /// `Forbidden` unless the user is an administrator.
    pub fn require_admin(&self) -> Result<(), ConsoleError> {
        match self.user.role {
            Role::Admin => Ok(()),
            Role::Viewer => Err(ConsoleError::Forbidden),
        }
    }

    /// `Csrf` unless `sent` is this session's token.
    pub fn check_csrf(&self, sent: Option<&str>) -> Result<(), ConsoleError> {
        match sent {
            Some(t) if same_secret(t, &self.csrf) => Ok(()),
            _ => Err(ConsoleError::Csrf),
        }
    }
}

/// The session `sid` names, if it is live and its user still stands with
/// the same token version; a session whose user is gone or changed ends.
pub async fn signed_in(st: &ConsoleState, sid: &str) -> Result<Signed, ConsoleError> {
    let s = st.sessions.get(sid).ok_or(ConsoleError::SignIn)?;
    let uid = s.user_id;
    let user = st.nvr.store.read(move |c| db::user_by_id(c, uid)).await?;
    match user {
        Some(u) if u.token_version == s.token_version => Ok(Signed {
            user: u,
            sid: sid.to_owned(),
            csrf: s.csrf,
        }),
        _ => {
            st.sessions.end(sid);
            Err(ConsoleError::SignIn)
        }
    }
}

impl FromRequestParts<Arc<ConsoleState>> for Signed {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        st: &Arc<ConsoleState>,
    ) -> Result<Self, ConsoleError> {
        let sid = cookie(&parts.headers, COOKIE).ok_or(ConsoleError::SignIn)?;
        signed_in(st, sid).await
    }
}

/// A signed-in administrator: the extractor of every `/admin` page.
pub struct AdminOnly(pub Signed);

impl FromRequestParts<Arc<ConsoleState>> for AdminOnly {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        st: &Arc<ConsoleState>,
    ) -> Result<Self, ConsoleError> {
        let s = Signed::from_request_parts(parts, st).await?;
        s.require_admin()?;
        Ok(AdminOnly(s))
    }
}

/// A posted form (`application/x-www-form-urlencoded`) of a signed-in
/// browser whose `csrf` field is its session's token, checked before the
/// rest of the form is read into `T`; the body is bounded by the router's
/// `DefaultBodyLimit`.
pub struct Posted<T>(pub Signed, pub T);

impl<T: DeserializeOwned> FromRequest<Arc<ConsoleState>> for Posted<T> {
    type Rejection = ConsoleError;

    async fn from_request(req: Request, st: &Arc<ConsoleState>) -> Result<Self, ConsoleError> {
        let (mut parts, body) = req.into_parts();
        let who = Signed::from_request_parts(&mut parts, st).await?;
        let req = Request::from_parts(parts, body);
        let bytes = Bytes::from_request(req, st).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ConsoleError::Web(WebError::TooLarge(e.body_text()))
            } else {
                ConsoleError::BadRequest(e.body_text())
            }
        })?;
        who.check_csrf(form_field(&bytes, "csrf").as_deref())?;
        let form = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| ConsoleError::BadRequest(format!("bad form: {e}")))?;
        Ok(Posted(who, form))
    }
}

/// A form with no field but its CSRF token (logout, delete, revoke).
#[derive(serde::Deserialize)]
pub struct NoFields {}

/// The first value of `name` in a urlencoded form.
pub fn form_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}
