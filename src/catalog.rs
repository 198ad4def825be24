//! The installed models, as recorded by `models/fetch.sh` in `manifest.json`.
//!
//! The manifest records the sha256 of every file at install time; we verify
//! before loading so a corrupted or swapped file is refused, not run.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Why the models directory cannot be used. A variant says its cause in its
/// message, so it does not return it from `source()`.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// No `manifest.json`: models were never fetched (the daemon runs without tasks).
    #[error("no models manifest at {0} (run models/fetch.sh)")]
    NoManifest(PathBuf),
    /// The manifest exists but cannot be read.
    #[error("cannot read {path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// The manifest is not the JSON we wrote.
    #[error("invalid manifest {path}: {cause}")]
    Parse {
        path: PathBuf,
        cause: serde_json::Error,
    },
}

/// A companion file (decoder layout, labels) with its own checksum.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileRef {
    pub file: String,
    pub sha256: String,
}

/// Class labels: a checksummed file, or inline for small heads.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Labels {
    // First: serde would also read a two-element list as a `FileRef`.
    Inline(Vec<String>),
    File(FileRef),
}

/// Per-channel input normalisation `(byte - means[c]) * scale`, as recorded
/// for models whose training did not use the plain 0..1 range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Per channel, in the model's channel order.
    pub means: [f32; 3],
    pub scale: f32,
}

/// The model's input tensor as the converter wrote it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct InputSpec {
    /// Dimensions; symbolic ones (batch `N`) are strings.
    #[serde(default)]
    pub shape: Vec<serde_json::Value>,
    #[serde(default)]
    pub pad_value: Option<f32>,
    #[serde(default)]
    pub normalization: Option<Normalization>,
}

/// One model the daemon can load.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelEntry {
    /// Stable name used in config and API responses (`model_id`).
    pub id: String,
    /// File name inside the models dir.
    pub file: String,
    /// Hex sha256 of `file` as installed.
    pub sha256: String,
    /// How to interpret the model: `yolo-darknet`, `yolo-ultralytics`, ...
    #[serde(default)]
    pub kind: String,
    /// Decoder layout JSON, for kinds that need one.
    #[serde(default)]
    pub sidecar: Option<FileRef>,
    #[serde(default)]
    pub labels: Option<Labels>,
    /// A text model's `tokenizer.json` (BLIP captioners).
    #[serde(default)]
    pub tokenizer: Option<FileRef>,
    #[serde(default)]
    pub input: InputSpec,
    /// Where the weights came from (package, version, checksum); shown, not interpreted.
    #[serde(default)]
    pub source: serde_json::Value,
    #[serde(default)]
    pub license: Option<String>,
}

impl ModelEntry {
    /// The square input side, when the last input dimension is fixed.
    pub fn input_size(&self) -> Option<u32> {
        self.input
            .shape
            .last()?
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
    }

    /// Every file this entry depends on, with its expected checksum.
    pub fn files(&self) -> Vec<(&str, &str)> {
        let mut v = vec![(self.file.as_str(), self.sha256.as_str())];
        if let Some(s) = &self.sidecar {
            v.push((&s.file, &s.sha256));
        }
        if let Some(Labels::File(l)) = &self.labels {
            v.push((&l.file, &l.sha256));
        }
        if let Some(t) = &self.tokenizer {
            v.push((&t.file, &t.sha256));
        }
        v
    }
}

#[derive(Debug, Deserialize)]
struct Manifest {
    models: Vec<ModelEntry>,
}

/// The outcome of checking one file against its recorded checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Integrity {
    Ok,
    Missing,
    Altered { file: String, actual: String },
}

/// The models directory and its manifest.
#[derive(Debug, Clone)]
pub struct Catalog {
    dir: PathBuf,
    entries: Vec<ModelEntry>,
}

impl Catalog {
    /// Reads `<dir>/manifest.json`.
    pub fn open(dir: &Path) -> Result<Self, CatalogError> {
        let path = dir.join("manifest.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(CatalogError::NoManifest(path))
            }
            Err(cause) => return Err(CatalogError::Io { path, cause }),
        };
        let m: Manifest =
            serde_json::from_str(&text).map_err(|cause| CatalogError::Parse { path, cause })?;
        Ok(Self {
            dir: dir.to_owned(),
            entries: m.models,
        })
    }

    /// A catalog with nothing installed; the daemon still serves, with no tasks.
    pub fn empty(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            entries: Vec::new(),
        }
    }

    pub fn entries(&self) -> &[ModelEntry] {
        &self.entries
    }

    pub fn get(&self, id: &str) -> Option<&ModelEntry> {
        self.entries.iter().find(|e| e.id == id)
    }

    /// A path inside the models dir; manifest names are plain file names.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// Whether the entry's file exists (cheap; used for `/capabilities`).
    pub fn installed(&self, e: &ModelEntry) -> bool {
        self.path(&e.file).is_file()
    }

    /// Hashes the entry's files and compares them with the manifest and,
    /// for files this release knows, with the checksums pinned in the binary
    /// (so editing the manifest cannot bless a swapped file).
    pub fn verify(&self, e: &ModelEntry) -> Integrity {
        for (file, want) in e.files() {
            let pinned = pinned_sha256(file);
            match sha256_file(&self.path(file)) {
                Err(_) => return Integrity::Missing,
                Ok(h) if h.eq_ignore_ascii_case(want) && pinned.is_none_or(|p| p == h) => {}
                Ok(actual) => {
                    return Integrity::Altered {
                        file: file.to_owned(),
                        actual,
                    }
                }
            }
        }
        Integrity::Ok
    }
}

/// Checksums of the files `models/fetch.sh` produces, pinned at build time
/// (the conversion is byte-for-byte reproducible).
const PINNED: &str = include_str!("../models/expected.sha256");

/// The pinned sha256 of a model file name, if this release knows it.
pub fn pinned_sha256(file: &str) -> Option<&'static str> {
    pinned_in(PINNED, file)
}

/// The sha256 that `list` (lines of `sha256sum` output) pins for `file`.
pub fn pinned_in<'a>(list: &'a str, file: &str) -> Option<&'a str> {
    list.lines().find_map(|l| {
        let (sha, name) = l.split_once(char::is_whitespace)?;
        (name.trim().trim_start_matches('*') == file).then_some(sha)
    })
}

/// Hex sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    sha256_read(std::fs::File::open(path)?)
}

/// Hex sha256 of everything `r` yields, streamed.
pub fn sha256_read(mut r: impl Read) -> std::io::Result<String> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_detects_missing_and_altered() {
        let dir = std::env::temp_dir().join(format!("opennvr-cat-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.onnx"), b"abc").unwrap();
        let sha_abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        std::fs::write(
            dir.join("manifest.json"),
            format!(
                r#"{{"version":1,"models":[{{"id":"a","file":"a.onnx","sha256":"{sha_abc}"}},
                {{"id":"b","file":"b.onnx","sha256":"{sha_abc}"}}]}}"#
            ),
        )
        .unwrap();
        let c = Catalog::open(&dir).unwrap();
        assert_eq!(c.verify(c.get("a").unwrap()), Integrity::Ok);
        assert_eq!(c.verify(c.get("b").unwrap()), Integrity::Missing);
        std::fs::write(dir.join("a.onnx"), b"abd").unwrap();
        assert!(matches!(
            c.verify(c.get("a").unwrap()),
            Integrity::Altered { .. }
        ));
        assert!(matches!(
            Catalog::open(&dir.join("nope")),
            Err(CatalogError::NoManifest(_))
        ));
    }
}
