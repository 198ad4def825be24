//! Opening a file by a relative path that a client or a stored row chose,
//! without ever reaching outside its folder: the one way the daemon opens
//! frames (port 9100), served files (port 8000) and the snapshots the MQTT
//! mirror publishes.
//!
//! Checking a path and then opening it by name leaves a window in which a
//! symlink can be swapped in. So the path is canonicalised under the
//! canonical root, the last component is opened without following a
//! symlink, and the file actually opened (as the kernel names it in
//! `/proc/self/fd`) must be a regular file under the root. What the caller
//! gets is that open file, never a name to open again.

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Component, Path, PathBuf};

/// Why a confined open failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Confined {
    /// The path (or a symlink on it) leads out of the root.
    #[error("the path leads out of its folder")]
    Escapes,
    /// Nothing there, or not a regular file.
    #[error("no such file")]
    Missing,
}

/// `rel` as a path of plain names (no `..`, `.`, root or prefix), or `None`.
pub fn plain_relative(rel: &Path) -> Option<&Path> {
    let plain = rel.components().all(|c| matches!(c, Component::Normal(_)));
    (plain && !rel.as_os_str().is_empty()).then_some(rel)
}

/// Opens `rel` under `root` for reading, confined as the module says.
pub fn open(root: &Path, rel: &Path) -> Result<File, Confined> {
    let rel = plain_relative(rel).ok_or(Confined::Escapes)?;
    let root = root.canonicalize().map_err(|_| Confined::Missing)?;
    let canon = root
        .join(rel)
        .canonicalize()
        .map_err(|_| Confined::Missing)?;
    if !canon.starts_with(&root) {
        tracing::warn!(path = %rel.display(), "a symlink leads out of its folder; not opened");
        return Err(Confined::Escapes);
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&canon)
        .map_err(|_| Confined::Missing)?;
    if !file.metadata().map_err(|_| Confined::Missing)?.is_file() {
        return Err(Confined::Missing);
    }
    let opened = std::fs::read_link(fd_path(&file)).map_err(|_| Confined::Missing)?;
    if !opened.starts_with(&root) {
        return Err(Confined::Escapes);
    }
    Ok(file)
}

/// Reads a confined file of at most `max` bytes; `Ok(None)` when it is larger.
pub fn read(root: &Path, rel: &Path, max: u64) -> Result<Option<Vec<u8>>, Confined> {
    use std::io::Read;
    let file = open(root, rel)?;
    let len = file.metadata().map_err(|_| Confined::Missing)?.len();
    if len > max {
        return Ok(None);
    }
    let mut buf = Vec::with_capacity(len as usize);
    // `take` holds us to the limit even if the file grows after the check.
    file.take(max + 1)
        .read_to_end(&mut buf)
        .map_err(|_| Confined::Missing)?;
    Ok((buf.len() as u64 <= max).then_some(buf))
}

/// The `/proc` name of an open file: opening it opens that very file again
/// (how a file we checked is handed to code that opens by path).
pub fn fd_path(f: &File) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_inside_the_root_are_opened() {
        let base = std::env::temp_dir().join(format!("onvr-confine-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("root");
        std::fs::create_dir_all(root.join("cam/dir")).unwrap();
        std::fs::write(base.join("secret"), b"s").unwrap();
        std::fs::write(root.join("cam/a.jpg"), b"abc").unwrap();
        let link = |to: &Path, at: &str| std::os::unix::fs::symlink(to, root.join(at)).unwrap();
        link(&base.join("secret"), "cam/out.jpg");
        link(&base, "cam/up");
        link(&root.join("cam/a.jpg"), "cam/in.jpg");
        let p = Path::new;
        assert!(open(&root, p("cam/a.jpg")).is_ok());
        assert!(
            open(&root, p("cam/in.jpg")).is_ok(),
            "a link inside is fine"
        );
        assert_eq!(open(&root, p("cam/out.jpg")).err(), Some(Confined::Escapes));
        assert_eq!(
            open(&root, p("cam/up/secret")).err(),
            Some(Confined::Escapes)
        );
        assert_eq!(open(&root, p("../secret")).err(), Some(Confined::Escapes));
        assert_eq!(open(&root, p("/etc/passwd")).err(), Some(Confined::Escapes));
        assert_eq!(open(&root, p("cam/dir")).err(), Some(Confined::Missing));
        assert_eq!(
            open(&root, p("cam/none.jpg")).err(),
            Some(Confined::Missing)
        );
        assert_eq!(read(&root, p("cam/a.jpg"), 3), Ok(Some(b"abc".to_vec())));
        assert_eq!(read(&root, p("cam/a.jpg"), 2), Ok(None), "over the limit");
        let _ = std::fs::remove_dir_all(&base);
    }
}
