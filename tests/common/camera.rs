//! Real video for the ingest tests: the vtest clip as H.264, and a real RTSP
//! server (GStreamer's, from Debian) serving it on loopback.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use super::{temp_dir, wait_for, Daemon};

/// Debian opencv-doc's street clip (pedestrians), transcoded once per test
/// process to H.264 MP4 the way the demo camera does it.
pub fn vtest_mp4() -> PathBuf {
    static CLIP: OnceLock<PathBuf> = OnceLock::new();
    CLIP.get_or_init(|| {
        let src = super::fixture(opennvr_edge::ingest::demo::VTEST);
        let dest = temp_dir("vtest").join("vtest.mp4");
        opennvr_edge::ingest::demo::transcode(Path::new("ffmpeg"), &src, &dest)
            .expect("transcode vtest.avi (ffmpeg with libx264)");
        dest
    })
    .clone()
}

/// A free TCP port on loopback (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `tests/fixtures/rtsp_server.py`: rtsp://127.0.0.1:PORT/cam, killed on drop.
pub struct RtspServer {
    child: Option<Child>,
    pub port: u16,
    clip: PathBuf,
}

impl RtspServer {
    pub fn start(clip: &Path) -> RtspServer {
        let mut s = RtspServer {
            child: None,
            port: free_port(),
            clip: clip.to_owned(),
        };
        s.resume();
        s
    }

    pub fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}/cam", self.port)
    }

    /// Kills the server, as a camera losing power would.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts (again) on the same port; returns once it listens.
    pub fn resume(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rtsp_server.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(self.port.to_string())
            .arg(&self.clip)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect(
                "start the RTSP server (python3-gi, gir1.2-gst-rtsp-server-1.0: scripts/setup.sh)",
            );
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "RTSP server did not start");
        self.child = Some(child);
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Adds a camera through the API as admin.
pub fn add_camera(d: &Daemon, token: &str, id: &str, url: &str, detect_fps: f64) {
    let r = super::client()
        .post(d.nvr_url("/api/v1/cameras"))
        .bearer_auth(token)
        .json(&serde_json::json!({"id": id, "source_url": url, "detect_fps": detect_fps}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201, "create camera {id}");
}

/// GETs JSON with a bearer token.
pub fn get_auth(d: &Daemon, token: &str, path: &str) -> serde_json::Value {
    let r = super::client()
        .get(d.nvr_url(path))
        .bearer_auth(token)
        .send()
        .unwrap();
    assert!(r.status().is_success(), "GET {path}: {}", r.status());
    r.json().unwrap()
}

/// The chunks of `camera` indexed so far.
pub fn chunks(d: &Daemon, token: &str, camera: &str) -> Vec<serde_json::Value> {
    let v = get_auth(
        d,
        token,
        &format!("/api/v1/recordings/{camera}?start_unix=0&end_unix=253402300799"),
    );
    v.as_array().unwrap().clone()
}

/// Events of `camera` (oldest first) of `kind`.
pub fn events(d: &Daemon, token: &str, camera: &str, kind: &str) -> Vec<serde_json::Value> {
    let v = get_auth(
        d,
        token,
        &format!("/api/v1/events?camera_id={camera}&type={kind}&limit=1000"),
    );
    let mut all = v.as_array().unwrap().clone();
    all.reverse();
    all
}

/// Waits until `camera` has at least `n` events of `kind`.
pub fn wait_events(
    d: &Daemon,
    token: &str,
    camera: &str,
    kind: &str,
    n: usize,
    limit: Duration,
) -> Vec<serde_json::Value> {
    wait_for(limit, || {
        let e = events(d, token, camera, kind);
        (e.len() >= n).then_some(e)
    })
    .unwrap_or_else(|| panic!("no {n} {kind} events for {camera} within {limit:?}"))
}

/// The playable duration of an MP4 file, by ffprobe.
pub fn probe_duration(file: &Path) -> f64 {
    opennvr_edge::ingest::recorder::probe_duration(Path::new("ffprobe"), file)
        .unwrap_or_else(|| panic!("{} does not play", file.display()))
}
