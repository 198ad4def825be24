//! The one place console errors become HTTP: a redirect to the sign-in
//! page, or an HTML error page with its status (rendered, with the nav
//! when the browser is signed in, by `headers::finish`).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::nvr::auth::AuthError;
use crate::nvr::store::StoreError;
use crate::nvr::web::error::WebError;

/// Everything a console handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No live session: the page redirects to `/login`.
    #[error("sign in first")]
    SignIn,
    /// A viewer on an administration page.
    #[error("this page is for administrators")]
    Forbidden,
    /// A form without this session's CSRF token, or with another one.
    #[error("the form did not come from this console's page (missing or wrong CSRF token); reload the page and send it again")]
    Csrf,
    /// A bad form field or query parameter.
    #[error("{0}")]
    BadRequest(String),
    /// Something the path names does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A template failed to render (a bug); a 500.
    #[error("rendering the page failed: {0}")]
    Render(String),
    /// The NVR core said no (validation, store, auth).
    #[error(transparent)]
    Web(#[from] WebError),
}

impl From<StoreError> for ConsoleError {
    fn from(e: StoreError) -> Self {
        ConsoleError::Web(e.into())
    }
}

impl From<AuthError> for ConsoleError {
    fn from(e: AuthError) -> Self {
        ConsoleError::Web(e.into())
    }
}

/// Shorthand for handlers.
pub type ConsoleResult<T> = Result<T, ConsoleError>;

/// An error answer whose page is still to be rendered: its message.
#[derive(Clone)]
pub struct ErrorPage(pub String);

impl ConsoleError {
    fn status(&self) -> StatusCode {
        match self {
            ConsoleError::SignIn => StatusCode::SEE_OTHER,
            ConsoleError::Forbidden | ConsoleError::Csrf => StatusCode::FORBIDDEN,
            ConsoleError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ConsoleError::NotFound(_) => StatusCode::NOT_FOUND,
            ConsoleError::Render(_) => StatusCode::INTERNAL_SERVER_ERROR,
            // The NVR's one mapping gives the status; its JSON body is not used.
            ConsoleError::Web(w) => w.status_code().0,
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status == StatusCode::SEE_OTHER {
            return redirect("/login");
        }
        let message = if status.is_server_error() {
            tracing::error!(error = %self, "console request failed");
            match status {
                StatusCode::INSUFFICIENT_STORAGE => {
                    "the data disk is full; nothing was stored".to_owned()
                }
                StatusCode::SERVICE_UNAVAILABLE => self.to_string(),
                _ => "internal error; see the daemon log".to_owned(),
            }
        } else {
            self.to_string()
        };
        let mut resp = status.into_response();
        if let ConsoleError::Web(WebError::Auth(AuthError::RateLimited(s) | AuthError::Busy(s))) =
            &self
        {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp.extensions_mut().insert(ErrorPage(message));
        resp
    }
}

/// A 303 to `to` (after a form, or to the sign-in page).
pub fn redirect(to: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
}
