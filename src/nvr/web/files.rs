//! Serving files from the data dir (chunks, latest frames, snapshots):
//! stored relative paths are confined to their root, symlinks that lead out
//! of it are not followed, and tower-http handles `Range`,
//! `If-Modified-Since` and `HEAD`.

use std::fs::File;
use std::path::Path;

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;
use tower_http::services::ServeFile;

use super::error::{WebError, WebResult};
use crate::confine::{self, fd_path};

/// Opens `rel` under `root`, confined to it (`crate::confine`); `None`
/// for anything that escapes or is not a regular file there.
pub fn open_confined(root: &Path, rel: &str) -> Option<File> {
    confine::open(root, Path::new(rel)).ok()
}

/// The media type of what we serve, by the stored name's extension.
fn content_type(rel: &str) -> HeaderValue {
    let ext = Path::new(rel)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    HeaderValue::from_static(match ext.as_deref() {
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        Some("mp4") => "video/mp4",
        _ => "application/octet-stream",
    })
}

/// Serves `rel` under `root`; a path that escapes, a symlink out, or a
/// missing file is a 404 naming `what`.
pub async fn serve(
    root: &Path,
    rel: &str,
    what: &'static str,
    req: Request,
) -> WebResult<Response> {
    let file = open_confined(root, rel).ok_or(WebError::NotFound(what))?;
    // tower-http opens by path: give it the file we checked, not the name again.
    let served = ServeFile::new(fd_path(&file)).oneshot(req).await;
    drop(file);
    match served {
        Ok(resp) => {
            let mut resp = resp.into_response();
            if resp.headers().contains_key(header::CONTENT_TYPE) {
                resp.headers_mut()
                    .insert(header::CONTENT_TYPE, content_type(rel));
            }
            Ok(resp)
        }
        Err(e) => {
            tracing::error!(error = %e, path = %rel, "serving a file failed");
            Err(WebError::NotFound(what))
        }
    }
}
