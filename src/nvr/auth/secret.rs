//! Randomness and the secret files generated at first start.

use std::io::Write;
use std::path::Path;

use rand::RngCore;

/// `n` random bytes from the OS-seeded CSPRNG, hex encoded.
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// Writes `contents` to a new file readable only by the owner (0600).
/// Fails if the file exists, so a secret is never silently replaced.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents)?;
    f.sync_all()
}

/// Reads the secret at `path`, generating `n_bytes` of randomness (hex) into
/// it on first start. A file others can read is tightened to 0600 with a warning.
pub fn load_or_create(path: &Path, n_bytes: usize) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(s) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(path)?.permissions().mode();
                if mode & 0o077 != 0 {
                    tracing::warn!(path = %path.display(), "secret file was readable by others; setting 0600");
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
                }
            }
            let s = s.trim().to_owned();
            if s.len() < 32 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("secret in {} is too short", path.display()),
                ));
            }
            Ok(s)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let s = random_hex(n_bytes);
            write_private(path, s.as_bytes())?;
            Ok(s)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_created_once_with_0600() {
        let dir = std::env::temp_dir().join(format!("onvr-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("s");
        let _ = std::fs::remove_file(&p);
        let a = load_or_create(&p, 32).unwrap();
        let b = load_or_create(&p, 32).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(write_private(&p, b"x").is_err());
    }
}
