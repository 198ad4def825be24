//! What every console answer carries: the security headers (a strict
//! Content-Security-Policy with no inline script or style, no framing, no
//! referrer, no sniffing), and the HTML page of an error, rendered here
//! with the signed-in browser's nav.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ErrorPage;
use super::guard::signed_in;
use super::pages::error_page;
use super::session::{cookie, COOKIE};
use super::ConsoleState;

/// The policy of every page: our own files only; no inline script, no
/// inline style (attributes included), no plugins, no framing, forms post
/// only to us.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self'; media-src 'self'; connect-src 'self'; font-src 'self'; object-src 'none'; \
base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const HEADERS: [(HeaderName, &str); 5] = [
    (header::CONTENT_SECURITY_POLICY, CSP),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    ),
];

/// Runs the handler, renders an error page if it failed, and sets the
/// security headers on whatever goes out.
pub async fn finish(State(st): State<Arc<ConsoleState>>, req: Request, next: Next) -> Response {
    let sid = cookie(req.headers(), COOKIE).map(str::to_owned);
    let mut resp = next.run(req).await;
    if let Some(ErrorPage(message)) = resp.extensions_mut().remove::<ErrorPage>() {
        let nav = match &sid {
            Some(id) => signed_in(&st, id).await.ok().map(|s| s.nav()),
            None => None,
        };
        let (parts, _) = resp.into_parts();
        let page = error_page(nav, parts.status.as_u16(), message);
        let mut new = page.into_response();
        *new.status_mut() = parts.status;
        for (k, v) in parts.headers.iter() {
            if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
                new.headers_mut().insert(k, v.clone());
            }
        }
        resp = new;
    }
    let h = resp.headers_mut();
    for (name, value) in HEADERS {
        h.insert(name, HeaderValue::from_static(value));
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        // Pages show what one user may see: never from a shared cache.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}
