//! Serving files from the data dir (chunks, latest frames, snapshots):
//! stored relative paths are confined to their root, and tower-http handles
//! `Range`, `If-Modified-Since` and `HEAD`.

use std::path::{Component, Path, PathBuf};

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;
use tower_http::services::ServeFile;

use super::error::{WebError, WebResult};

/// Resolves a stored relative path under `root`, refusing anything that
/// could leave it (absolute paths, `..`, empty).
pub fn resolve(root: &Path, rel: &str) -> Option<PathBuf> {
    let rel = Path::new(rel);
    let plain = rel.components().all(|c| matches!(c, Component::Normal(_)));
    (plain && !rel.as_os_str().is_empty()).then(|| root.join(rel))
}

/// Serves `rel` under `root`; a path that escapes or a missing file is a
/// 404 naming `what`.
pub async fn serve(
    root: &Path,
    rel: &str,
    what: &'static str,
    req: Request,
) -> WebResult<Response> {
    let path = resolve(root, rel).ok_or_else(|| {
        tracing::error!(path = %rel, "stored path escapes its folder");
        WebError::NotFound(what)
    })?;
    if !path.is_file() {
        return Err(WebError::NotFound(what));
    }
    match ServeFile::new(&path).oneshot(req).await {
        Ok(resp) => Ok(resp.into_response()),
        Err(e) => {
            tracing::error!(error = %e, path = %path.display(), "serving a file failed");
            Err(WebError::NotFound(what))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_escape() {
        let root = Path::new("/data/recordings");
        assert_eq!(
            resolve(root, "cam/1.mp4"),
            Some(PathBuf::from("/data/recordings/cam/1.mp4"))
        );
        assert_eq!(resolve(root, "../etc/passwd"), None);
        assert_eq!(resolve(root, "/etc/passwd"), None);
        assert_eq!(resolve(root, "cam/../../x"), None);
        assert_eq!(resolve(root, ""), None);
    }
}
