//! Serving files from the data dir (chunks, latest frames, snapshots):
//! stored relative paths are confined to their root, symlinks that lead out
//! of it are not followed, and tower-http handles `Range`,
//! `If-Modified-Since` and `HEAD`.

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Component, Path, PathBuf};

use axum::extract::Request;
use axum::http::{header, HeaderValue};
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

/// Opens `rel` under `root` as the AI port's frame store does, and more:
/// the path is canonicalised (every symlink resolved) and must stay under
/// the canonical root; the final component is opened without following a
/// symlink; and the file actually opened (as the kernel names it) must be a
/// regular file under the root, so a swap between check and open changes
/// nothing. `None` for anything else.
pub fn open_confined(root: &Path, rel: &str) -> Option<File> {
    let joined = resolve(root, rel)?;
    let root = root.canonicalize().ok()?;
    let canon = joined.canonicalize().ok()?;
    if !canon.starts_with(&root) {
        tracing::warn!(path = %joined.display(), "a symlink leads out of its folder; not served");
        return None;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&canon)
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let opened = std::fs::read_link(fd_path(&file)).ok()?;
    opened.starts_with(&root).then_some(file)
}

/// The `/proc` name of an open file: opening it opens that very file again.
fn fd_path(f: &File) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd()))
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

    #[test]
    fn symlinks_out_of_the_root_are_not_opened() {
        let base = std::env::temp_dir().join(format!("onvr-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("root");
        std::fs::create_dir_all(root.join("cam")).unwrap();
        std::fs::write(base.join("secret"), b"s").unwrap();
        std::fs::write(root.join("cam/a.jpg"), b"a").unwrap();
        let link = |to: &Path, at: &str| std::os::unix::fs::symlink(to, root.join(at)).unwrap();
        link(&base.join("secret"), "cam/out.jpg");
        link(&base, "cam/up");
        link(&root.join("cam/a.jpg"), "cam/in.jpg");
        std::fs::create_dir_all(root.join("cam/dir")).unwrap();
        assert!(open_confined(&root, "cam/a.jpg").is_some());
        assert!(
            open_confined(&root, "cam/in.jpg").is_some(),
            "a link inside is fine"
        );
        for rel in [
            "cam/out.jpg",
            "cam/up/secret",
            "cam/dir",
            "cam/none.jpg",
            "../secret",
        ] {
            assert!(open_confined(&root, rel).is_none(), "{rel}");
        }
        let _ = std::fs::remove_dir_all(&base);
    }
}
