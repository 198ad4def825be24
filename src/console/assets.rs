//! The files the pages load, compiled into the binary: our stylesheet and
//! script, and htmx, vendored from its npm package with a pinned sha256
//! (`assets/vendor-htmx.sh` fetches and checks it; docs/console.md).

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// The vendored htmx's file name, versioned so it can be cached for good.
pub const HTMX: &str = "htmx-2.0.4.min.js";

const HTMX_JS: &[u8] = include_bytes!("assets/htmx-2.0.4.min.js");
const CONSOLE_JS: &[u8] = include_bytes!("assets/console.js");
const CONSOLE_CSS: &[u8] = include_bytes!("assets/console.css");
const ICON: &[u8] = include_bytes!("assets/icon.svg");

/// `GET /console/assets/{name}`: a file by name; the versioned library for a
/// year (immutable), our own files revalidated on every load.
pub async fn asset(Path(name): Path<String>) -> Response {
    const JS: &str = "text/javascript; charset=utf-8";
    let (body, kind, cache) = match name.as_str() {
        HTMX => (HTMX_JS, JS, "public, max-age=31536000, immutable"),
        "console.js" => (CONSOLE_JS, JS, "no-cache"),
        "console.css" => (CONSOLE_CSS, "text/css; charset=utf-8", "no-cache"),
        "icon.svg" => (ICON, "image/svg+xml", "public, max-age=86400"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, cache)],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    /// The embedded htmx is the file the vendoring script pinned.
    #[test]
    fn the_vendored_library_matches_its_pinned_checksum() {
        use sha2::Digest;
        let script = include_str!("assets/vendor-htmx.sh");
        let pinned = script
            .lines()
            .find_map(|l| l.strip_prefix("FILE_SHA256="))
            .expect("FILE_SHA256= in vendor-htmx.sh");
        assert_eq!(
            hex::encode(sha2::Sha256::digest(super::HTMX_JS)),
            pinned.trim_matches('"')
        );
    }
}
