//! `/login` and `/logout`: the sign-in form (the API's users, password
//! check, hashing slots and login limiter) and the end of a session.

use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::html_with;
use crate::console::error::{redirect, ConsoleError, ConsoleResult};
use crate::console::guard::{form_field, Nav, NoFields, Posted};
use crate::console::session::{cookie, same_secret, set_cookie, COOKIE, LOGIN_COOKIE};
use crate::console::ConsoleState;
use crate::nvr::auth::{secret::random_hex, AuthError};
use crate::nvr::web::auth::check_password;
use crate::nvr::web::error::WebError;
use crate::nvr::web::ClientIp;

/// How long a sign-in form stays usable, seconds.
const FORM_TTL_S: i64 = 3600;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginView {
    nav: Option<Nav>,
    csrf: String,
    username: String,
    error: Option<String>,
}

/// The sign-in form, with a fresh CSRF token in a cookie and in the form
/// (double submit: no session exists yet to hold it).
fn form(username: String, error: Option<String>, status: StatusCode) -> ConsoleResult<Response> {
    let csrf = random_hex(32);
    let view = LoginView {
        nav: None,
        csrf: csrf.clone(),
        username,
        error,
    };
    let mut resp = html_with(&view, status)?;
    let c = set_cookie(LOGIN_COOKIE, &csrf, "/login", FORM_TTL_S);
    if let Ok(v) = c.parse() {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

/// `GET /login`.
pub async fn page() -> ConsoleResult<Response> {
    form(String::new(), None, StatusCode::OK)
}

#[derive(Deserialize)]
struct Credentials {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// `POST /login`: the form's CSRF token must match its cookie (403 if not);
/// then the password is checked as the API checks it (rate limit first).
/// Success starts a session (a new id: nothing chosen before sign-in
/// survives it) and goes to the live page; failure shows the form again.
pub async fn submit(
    State(st): State<Arc<ConsoleState>>,
    ip: ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> ConsoleResult<Response> {
    let sent = form_field(&body, "csrf");
    match (cookie(&headers, LOGIN_COOKIE), sent.as_deref()) {
        (Some(c), Some(s)) if same_secret(c, s) => {}
        _ => return Err(ConsoleError::Csrf),
    }
    let c: Credentials = serde_urlencoded::from_bytes(&body)
        .map_err(|e| ConsoleError::BadRequest(format!("bad form: {e}")))?;
    let name = c.username.clone();
    let user = match check_password(&st.nvr, ip, c.username, c.password).await {
        Ok(u) => u,
        Err(WebError::Auth(
            e @ (AuthError::BadCredentials | AuthError::RateLimited(_) | AuthError::Busy(_)),
        )) => {
            let status = WebError::Auth(e).status_code().0;
            let text = match status {
                StatusCode::UNAUTHORIZED => "Wrong username or password.".to_owned(),
                _ => "Too many sign-in attempts; wait a little and try again.".to_owned(),
            };
            return form(name, Some(text), status);
        }
        Err(e) => return Err(e.into()),
    };
    let sid = match st.sessions.start(user.id, user.token_version) {
        Ok(sid) => sid,
        Err(full) => {
            tracing::warn!(user = %user.username, "console sign-in refused: {full}");
            return form(
                name,
                Some(format!("{full}.")),
                StatusCode::SERVICE_UNAVAILABLE,
            );
        }
    };
    let mut resp = redirect("/");
    let h = resp.headers_mut();
    let max = st.sessions.max_age_s();
    for c in [
        set_cookie(COOKIE, &sid, "/", max),
        set_cookie(LOGIN_COOKIE, "", "/login", 0),
    ] {
        if let Ok(v) = c.parse() {
            h.append(header::SET_COOKIE, v);
        }
    }
    Ok(resp)
}

/// `POST /logout`: ends the session here, on the server (the old cookie is
/// refused from now on), clears the cookie and goes to the sign-in page.
pub async fn logout(
    State(st): State<Arc<ConsoleState>>,
    Posted(who, NoFields {}): Posted<NoFields>,
) -> impl IntoResponse {
    st.sessions.end(&who.sid);
    tracing::info!(user = %who.user.username, "console logout");
    let mut resp = redirect("/login");
    if let Ok(v) = set_cookie(COOKIE, "", "/", 0).parse() {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}
