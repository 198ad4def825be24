//! Reads an event's snapshot JPEG, confined to the snapshots directory.
//!
//! `snapshot_path` comes from the event (and `POST /api/v1/events` lets an
//! admin set it), so it is opened like every file a client can name:
//! confined to its folder, and size-limited.

use std::path::{Path, PathBuf};

/// Largest snapshot published; a bigger file is skipped (the event is not).
pub const MAX_SNAPSHOT_BYTES: u64 = 4 * 1024 * 1024;

/// The JPEG at `rel` under `root`, or `None` if it is absent, escapes the
/// root (a symlink out included: `crate::confine`), is not a plain file or
/// is too big. A leading `snapshots/` is accepted (paths relative to the
/// data dir).
pub async fn load(root: &Path, rel: &str) -> Option<Vec<u8>> {
    let rel = Path::new(rel);
    let rel = rel.strip_prefix("snapshots").unwrap_or(rel).to_path_buf();
    let root: PathBuf = root.to_path_buf();
    tokio::task::spawn_blocking(move || crate::confine::read(&root, &rel, MAX_SNAPSHOT_BYTES))
        .await
        .ok()?
        .ok()?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_files_inside_the_root_are_read() {
        let dir = std::env::temp_dir().join(format!("onvr-snap-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let root = dir.join("snapshots");
        std::fs::create_dir_all(root.join("cam")).unwrap();
        std::fs::write(root.join("cam/1.jpg"), b"jpeg").unwrap();
        std::fs::write(dir.join("secret"), b"no").unwrap();
        assert_eq!(
            load(&root, "cam/1.jpg").await.as_deref(),
            Some(&b"jpeg"[..])
        );
        assert_eq!(
            load(&root, "snapshots/cam/1.jpg").await.as_deref(),
            Some(&b"jpeg"[..])
        );
        assert_eq!(load(&root, "../secret").await, None);
        assert_eq!(load(&root, "/etc/passwd").await, None);
        assert_eq!(load(&root, "cam/missing.jpg").await, None);
        assert_eq!(load(&root, "cam").await, None);
        std::os::unix::fs::symlink(dir.join("secret"), root.join("cam/link.jpg")).unwrap();
        assert_eq!(
            load(&root, "cam/link.jpg").await,
            None,
            "a symlink out is refused"
        );
    }
}
