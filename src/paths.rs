//! The data dir's layout, named once: every file and folder the daemon keeps
//! under `paths.data_dir` is built here, so the writers (ingest, init, the
//! MQTT mirror) and the readers (the NVR's file routes, `check`) cannot
//! disagree about where something lives.

use std::path::{Path, PathBuf};

use crate::config::PathsConfig;

/// Where ffmpeg writes a camera's chunks that are not finished yet.
const INPROGRESS: &str = ".inprogress";
/// Where retention parks a chunk between dropping its row and deleting it.
const TRASH: &str = ".trash";

/// `paths.data_dir` and what lives in it.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
    frames: PathBuf,
}

impl DataDir {
    /// The layout under the configured data dir (and frames dir, which may be elsewhere).
    pub fn new(paths: &PathsConfig) -> Self {
        Self {
            root: paths.data_dir.clone(),
            frames: paths.frames_dir(),
        }
    }

    /// The one SQLite file.
    pub fn database(&self) -> PathBuf {
        self.root.join("opennvr.db")
    }

    /// The JWT signing secret, generated at first start.
    pub fn jwt_secret(&self) -> PathBuf {
        self.root.join("jwt-secret")
    }

    /// The first admin's generated password, until it is changed.
    pub fn initial_admin_password(&self) -> PathBuf {
        self.root.join("initial-admin-password")
    }

    /// The MQTT node id generated at first start.
    pub fn mqtt_node_id(&self) -> PathBuf {
        self.root.join("mqtt-node-id")
    }

    /// The demo camera's clip, transcoded once.
    pub fn demo_clip(&self) -> PathBuf {
        self.root.join("demo").join("vtest.mp4")
    }

    /// The recordings tree.
    pub fn recordings(&self) -> Recordings {
        Recordings(self.root.join("recordings"))
    }

    /// The frames root (`opennvr://frames/...` URIs and each camera's latest frame).
    pub fn frames(&self) -> PathBuf {
        self.frames.clone()
    }

    /// Event snapshots, `<camera>/<ms>-<track>-<kind>.jpg`.
    pub fn snapshots(&self) -> PathBuf {
        self.root.join("snapshots")
    }
}

/// A camera's latest frame as JPEG, relative to the frames root: the camera
/// task encodes it from the raw frames at most once a second, `GET
/// /api/v1/cameras/{id}/snapshot.jpg` serves it.
pub fn latest_frame(camera: &str) -> String {
    format!("{camera}/latest.jpg")
}

/// A camera's latest raw frame (rgb24 PPM), relative to the frames root:
/// ffmpeg writes it, the camera task reads it (`ingest::raw`).
pub fn latest_raw_frame(camera: &str) -> String {
    format!("{camera}/latest.ppm")
}

/// The recordings tree: `<camera>/<start_ms>.mp4` finished chunks (index
/// rows name them relative to the root), `<camera>/.inprogress/` for
/// ffmpeg's open run, `<camera>/.trash/` for chunks being retired.
#[derive(Debug, Clone)]
pub struct Recordings(PathBuf);

impl Recordings {
    /// The tree rooted at `root`.
    pub fn new(root: PathBuf) -> Self {
        Self(root)
    }

    /// The root.
    pub fn root(&self) -> &Path {
        &self.0
    }

    /// A camera's finished chunks.
    pub fn camera(&self, camera: &str) -> PathBuf {
        self.0.join(camera)
    }

    /// Where a camera's ffmpeg writes.
    pub fn inprogress(&self, camera: &str) -> PathBuf {
        self.camera(camera).join(INPROGRESS)
    }

    /// Where a camera's retired chunks wait to be deleted.
    pub fn trash(&self, camera: &str) -> PathBuf {
        self.camera(camera).join(TRASH)
    }

    /// A chunk named by its index row (`Recording::path`).
    pub fn chunk(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_the_documented_one() {
        let d = DataDir::new(&PathsConfig {
            data_dir: "/d".into(),
            ..PathsConfig::default()
        });
        assert_eq!(d.database(), Path::new("/d/opennvr.db"));
        assert_eq!(d.frames(), Path::new("/d/frames"));
        assert_eq!(d.snapshots(), Path::new("/d/snapshots"));
        let r = d.recordings();
        assert_eq!(r.root(), Path::new("/d/recordings"));
        assert_eq!(r.inprogress("c"), Path::new("/d/recordings/c/.inprogress"));
        assert_eq!(r.trash("c"), Path::new("/d/recordings/c/.trash"));
        assert_eq!(r.chunk("c/1.mp4"), Path::new("/d/recordings/c/1.mp4"));
        assert_eq!(latest_frame("c"), "c/latest.jpg");
    }
}
